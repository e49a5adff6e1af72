package rockety

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Lane is a request's place in the queue for the API budget. When requests
// wait for a turn, a higher lane is served first: a command must not wait
// behind the hundreds of page requests of a full traversal.
type Lane uint8

// The lanes, lowest first. The zero value is the lowest, so a request
// nobody marked never jumps the queue.
const (
	// LaneFull is full traversals and resync snapshots.
	LaneFull Lane = iota
	// LaneIncremental is incremental cycles and catch-ups.
	LaneIncremental
	// LaneCommand is command writes.
	LaneCommand
	laneCount
)

// Lanes lists every lane, lowest first, for metrics.
func Lanes() []Lane { return []Lane{LaneFull, LaneIncremental, LaneCommand} }

func (l Lane) String() string {
	switch l {
	case LaneFull:
		return "full"
	case LaneIncremental:
		return "incremental"
	case LaneCommand:
		return "command"
	}
	return "unknown"
}

type laneKey struct{}

// WithLane marks every request made with ctx as being of lane l.
func WithLane(ctx context.Context, l Lane) context.Context {
	return context.WithValue(ctx, laneKey{}, l)
}

// LaneOf is the lane WithLane gave ctx, or LaneFull.
func LaneOf(ctx context.Context) Lane {
	l, _ := ctx.Value(laneKey{}).(Lane)
	return l
}

// Tokens is where a Budget draws its turns from: a limiter of this process
// at first, or one budget shared by every replica (Budget.ShareWith).
type Tokens interface {
	// Take blocks until n turns are granted, all of them, and returns nil;
	// or until ctx ends, and returns its cause with nothing granted.
	Take(ctx context.Context, n int) error
}

// PauseSharer is implemented by Tokens that tell every replica to hold its
// requests when the API asked one of them to (a 429, or a spent quota).
type PauseSharer interface {
	PauseAll(until time.Time)
}

// LimitSharer is implemented by Tokens that tell every replica of a lower
// rate learned from the API (Budget.Learn).
type LimitSharer interface {
	LimitAll(perSecond float64, until time.Time)
}

// Budget hands out turns to send a request at ROCKETY_RATE_LIMIT per
// second, by lane: the waiting requests of the highest lane go first, in
// order of arrival within a lane. Turns are drawn from the Tokens in small
// batches (up to the burst), so a shared budget costs one round trip per
// batch, not per request; a take in flight for a lower lane is given up
// when a higher one starts waiting, so a command waits about one token
// interval however busy the budget is.
type Budget struct {
	rate  float64
	burst int
	lanes bool

	mu     sync.Mutex
	tokens Tokens
	local  *rate.Limiter
	// learned, while before learnedUntil, is a lower rate than rate
	// that the API showed (Learn).
	learned      float64
	learnedUntil time.Time
	waiting      [laneCount][]*turn
	queued       int
	dispatching  bool
	takeLane     Lane
	cancelTake   context.CancelFunc

	granted atomic.Uint64
	window  grantWindow
}

type turn struct {
	ready   chan struct{}
	lane    Lane
	granted bool
}

// NewBudget returns a budget of perSecond requests per second (more than
// 0), drawn from a limiter of this process until ShareWith.
func NewBudget(perSecond float64) *Budget {
	burst := max(1, int(perSecond/10))
	local := rate.NewLimiter(rate.Limit(perSecond), burst)
	return &Budget{
		rate:   perSecond,
		burst:  burst,
		lanes:  true,
		local:  local,
		tokens: localTokens{local},
	}
}

// Learn lowers the budget to perSecond until until: the quota an API
// without rate-limit headers showed when it refused a request. Every
// replica sharing the budget is told. A rate no lower than the one in
// force changes nothing; Learn reports whether it lowered it.
func (b *Budget) Learn(perSecond float64, until time.Time) bool {
	b.mu.Lock()
	if perSecond <= 0 || perSecond >= b.inForceLocked(time.Now()) {
		b.mu.Unlock()
		return false
	}
	b.learned, b.learnedUntil = perSecond, until
	b.local.SetLimit(rate.Limit(perSecond))
	t := b.tokens
	b.mu.Unlock()
	if s, ok := t.(LimitSharer); ok {
		s.LimitAll(perSecond, until)
	}
	return true
}

// InForce is the rate in force now: Rate, or a lower one learned.
func (b *Budget) InForce() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inForceLocked(time.Now())
}

func (b *Budget) inForceLocked(now time.Time) float64 {
	if b.learned > 0 && !now.Before(b.learnedUntil) {
		b.learned = 0
		b.local.SetLimit(rate.Limit(b.rate))
	}
	if b.learned > 0 {
		return b.learned
	}
	return b.rate
}

// WithoutLanes makes b serve every request in order of arrival, whatever
// its lane: the budget without its priorities, for comparisons.
func (b *Budget) WithoutLanes() *Budget {
	b.mu.Lock()
	b.lanes = false
	b.mu.Unlock()
	return b
}

// Rate is the budget in requests per second.
func (b *Budget) Rate() float64 { return b.rate }

// Burst is the most turns taken at once, and so the most requests that may
// start together after a quiet spell.
func (b *Budget) Burst() int { return b.burst }

// ShareWith makes b draw its turns from t from now on: the budget of every
// replica, say. Waiting requests keep their places.
func (b *Budget) ShareWith(t Tokens) {
	b.mu.Lock()
	b.tokens = t
	if b.cancelTake != nil {
		b.cancelTake() // the take in flight is from the old source
	}
	b.mu.Unlock()
}

// Granted is how many turns this budget has handed out.
func (b *Budget) Granted() uint64 { return b.granted.Load() }

// GrantedRate is the turns handed out per second over the last ten seconds.
func (b *Budget) GrantedRate() float64 { return b.window.rate(time.Now()) }

// PauseAll tells every replica sharing the budget to hold its requests
// until until; a budget of this process alone has nobody to tell.
func (b *Budget) PauseAll(until time.Time) {
	b.mu.Lock()
	t := b.tokens
	b.mu.Unlock()
	if s, ok := t.(PauseSharer); ok {
		s.PauseAll(until)
	}
}

// Wait blocks until the request may be sent, or until ctx ends.
func (b *Budget) Wait(ctx context.Context, lane Lane) error {
	if lane >= laneCount {
		lane = LaneFull
	}
	t := &turn{ready: make(chan struct{}), lane: lane}
	b.mu.Lock()
	if !b.lanes {
		t.lane = LaneFull
	}
	b.waiting[t.lane] = append(b.waiting[t.lane], t)
	b.queued++
	switch {
	case !b.dispatching:
		b.dispatching = true
		go b.dispatch()
	case b.cancelTake != nil && t.lane > b.takeLane:
		b.cancelTake()
	}
	b.mu.Unlock()

	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.granted {
		return nil // granted as ctx ended: the turn is spent either way
	}
	q := b.waiting[t.lane]
	for i, w := range q {
		if w == t {
			b.waiting[t.lane] = append(q[:i:i], q[i+1:]...)
			b.queued--
			break
		}
	}
	if b.queued == 0 && b.cancelTake != nil {
		b.cancelTake()
	}
	return context.Cause(ctx)
}

// dispatch takes turns for the waiting requests until none waits. It runs
// only while someone waits, so it needs no owner beyond them: the last one
// to give up ends its take.
func (b *Budget) dispatch() {
	for {
		b.mu.Lock()
		if b.queued == 0 {
			b.dispatching = false
			b.mu.Unlock()
			return
		}
		top := b.topLane()
		want := b.queued
		if top == LaneCommand {
			// A command takes no more than the commands waiting: a
			// smaller take is granted sooner.
			want = len(b.waiting[LaneCommand])
		}
		want = min(want, b.burst)
		b.inForceLocked(time.Now()) // a learned rate ends on time
		ctx, cancel := context.WithCancel(context.Background())
		b.cancelTake, b.takeLane = cancel, top
		tokens := b.tokens
		b.mu.Unlock()

		err := tokens.Take(ctx, want)
		cancel()

		b.mu.Lock()
		b.cancelTake = nil
		if err == nil {
			b.grantLocked(want)
		}
		b.mu.Unlock()
	}
}

func (b *Budget) topLane() Lane {
	for l := laneCount - 1; l > LaneFull; l-- {
		if len(b.waiting[l]) > 0 {
			return l
		}
	}
	return LaneFull
}

// grantLocked hands n turns to the first waiters of the highest lanes.
// Turns for waiters that gave up meanwhile are lost, never spent twice.
func (b *Budget) grantLocked(n int) {
	given := 0
	for l := laneCount - 1; n > 0; l-- {
		q := b.waiting[l]
		k := min(n, len(q))
		for _, t := range q[:k] {
			t.granted = true
			close(t.ready)
		}
		b.waiting[l] = q[k:]
		b.queued -= k
		n -= k
		given += k
		if l == LaneFull {
			break
		}
	}
	b.granted.Add(uint64(given))
	b.window.add(time.Now(), given)
}

type localTokens struct{ lim *rate.Limiter }

func (l localTokens) Take(ctx context.Context, n int) error { return l.lim.WaitN(ctx, n) }

// grantWindow counts grants per second over the last ten seconds.
type grantWindow struct {
	mu     sync.Mutex
	second int64
	counts [11]int
}

func (g *grantWindow) add(now time.Time, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.advance(now.Unix())
	g.counts[now.Unix()%int64(len(g.counts))] += n
}

func (g *grantWindow) advance(sec int64) {
	if g.second == 0 || sec-g.second >= int64(len(g.counts)) {
		g.counts = [11]int{}
	} else {
		for s := g.second + 1; s <= sec; s++ {
			g.counts[s%int64(len(g.counts))] = 0
		}
	}
	if sec > g.second {
		g.second = sec
	}
}

// rate is the grants of the ten whole seconds before now, per second.
func (g *grantWindow) rate(now time.Time) float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.advance(now.Unix())
	total := 0
	for i, c := range g.counts {
		if int64(i) != now.Unix()%int64(len(g.counts)) {
			total += c
		}
	}
	return float64(total) / 10
}
