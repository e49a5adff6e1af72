package publisher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
)

// Keys of the shared API budget in the leases bucket. Resource names hold
// no dot, so they never meet a lease.
const (
	budgetPoolKey     = "budget.tokens"
	budgetReplicasKey = "budget.replicas."
)

// budgetOpTimeout bounds one KV request of the budget. Requests to the API
// wait on it, so a NATS that does not answer in this time is taken for
// gone and the replica spends its equal share meanwhile.
const budgetOpTimeout = time.Second

// BudgetObserver hears when the shared budget cannot be reached and the
// replica spends an equal share alone, and when it is back.
type BudgetObserver interface {
	BudgetFallback(alone bool, share float64, replicas int, err error)
	// BudgetUncounted: the replicas could not be counted (a missing
	// permission, say), so the equal share of an outage may be wrong.
	// Said once until a count succeeds again.
	BudgetUncounted(err error)
}

// SharedBudget is the API budget (ROCKETY_RATE_LIMIT) of every replica
// with the same prefix: one token bucket in the leases bucket, key
// budget.tokens, taken from with compare-and-set in the batches a
// rockety.Budget asks for. A replica holds no share, so one that dies
// leaves nothing behind, and one alone gets the whole rate. Every replica
// also renews budget.replicas.<instance> in the leases bucket, whose TTL
// (BRIDGE_LEASE_TTL) drops a dead one from the count: when NATS cannot be
// reached, a replica spends rate ÷ the last count it knew, until it can.
//
// It implements rockety.Tokens and rockety.PauseSharer.
type SharedBudget struct {
	kv       jetstream.KeyValue
	instance string
	rate     float64
	capacity float64
	ttl      time.Duration
	observer BudgetObserver
	now      func() time.Time

	mu sync.Mutex
	// cached is the pool as this replica last read or wrote it, and its
	// revision: a take tries the compare-and-set on it before reading.
	cached    tokenPool
	cachedRev uint64
	haveCache bool
	replicas  int
	alone     bool
	local     tokenPool // the equal share while alone
	learned   learnedLimit
	lastErr   error

	fallbacks atomic.Uint64
	uncounted bool // the last count failed, and the observer was told
	pauses    chan time.Time
	limits    chan learnedLimit
}

type learnedLimit struct {
	perSecond float64
	until     time.Time
}

// NewSharedBudget shares rate requests per second, in takes of at most
// capacity, with every replica using kv (Resources.Leases).
func NewSharedBudget(ctx context.Context, kv jetstream.KeyValue, instanceID string, rate float64, capacity int, observer BudgetObserver) (*SharedBudget, error) {
	if instanceID == "" {
		return nil, errors.New("publisher: empty instance id (BRIDGE_INSTANCE_ID)")
	}
	if rate <= 0 {
		return nil, fmt.Errorf("publisher: a shared budget of %v requests per second; want more than 0", rate)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("publisher: reading the leases bucket: %w", err)
	}
	return &SharedBudget{kv: kv, instance: instanceID, rate: rate, capacity: float64(max(1, capacity)),
		ttl: st.TTL(), observer: observer, now: time.Now, replicas: 1, pauses: make(chan time.Time, 1), limits: make(chan learnedLimit, 1)}, nil
}

// BudgetStats is what a replica knows of the shared budget.
type BudgetStats struct {
	// Replicas is how many replicas shared it at the last count.
	Replicas int
	// Alone: NATS cannot be reached and this replica spends Share alone.
	Alone bool
	// Share is this replica's equal share, rate ÷ Replicas.
	Share float64
	// Fallbacks counts the times the replica went alone.
	Fallbacks uint64
}

// Stats reports the budget's state, for metrics.
func (s *SharedBudget) Stats() BudgetStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return BudgetStats{Replicas: s.replicas, Alone: s.alone, Share: s.rate / float64(s.replicas), Fallbacks: s.fallbacks.Load()}
}

// Take blocks until n tokens are this replica's. Only ctx ends it with an
// error: when NATS fails, the tokens come from the equal share.
func (s *SharedBudget) Take(ctx context.Context, n int) error {
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		alone := s.alone
		s.mu.Unlock()
		var taken bool
		var wait time.Duration
		var err error
		if alone {
			wait = s.takeAlone(n)
			taken = wait == 0
		} else {
			taken, wait, err = s.takeShared(ctx, n)
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err != nil {
			s.goAlone(err)
			continue
		}
		if taken {
			return nil
		}
		if wait == 0 {
			continue // another replica took first
		}
		if alone {
			// Look again at least every second: the shared budget may be
			// back (Run finds out), and its state is then the one to use.
			wait = min(wait, time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// takeShared tries one compare-and-set of the pool. It reports whether the
// tokens are taken; if not, how long to wait for them (0: try again now,
// another replica took first), or why NATS failed.
func (s *SharedBudget) takeShared(ctx context.Context, n int) (taken bool, wait time.Duration, err error) {
	s.mu.Lock()
	pool, rev, have := s.cached, s.cachedRev, s.haveCache
	s.mu.Unlock()
	opCtx, cancel := context.WithTimeout(ctx, budgetOpTimeout)
	defer cancel()
	if !have {
		if pool, rev, err = s.read(opCtx); err != nil {
			return false, 0, err
		}
	}
	next, wait := pool.take(s.now(), s.rate, s.capacity, n)
	if wait > 0 {
		s.remember(pool, rev)
		return false, wait, nil
	}
	newRev, err := s.write(opCtx, next, rev)
	switch {
	case err == nil:
		s.remember(next, newRev)
		return true, 0, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		// Another replica took first: read its pool and try again.
		s.forget()
		return false, 0, nil
	default:
		s.forget()
		return false, 0, err
	}
}

func (s *SharedBudget) read(ctx context.Context) (tokenPool, uint64, error) {
	e, err := s.kv.Get(ctx, budgetPoolKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		// Untouched for a lease TTL, or never written: a full pool.
		return tokenPool{}, 0, nil
	case err != nil:
		return tokenPool{}, 0, fmt.Errorf("publisher: reading the API budget %s in %s: %w", budgetPoolKey, s.kv.Bucket(), err)
	}
	return decodePool(e.Value()), e.Revision(), nil
}

func (s *SharedBudget) write(ctx context.Context, p tokenPool, rev uint64) (uint64, error) {
	if rev == 0 {
		return s.kv.Create(ctx, budgetPoolKey, p.encode())
	}
	return s.kv.Update(ctx, budgetPoolKey, p.encode(), rev)
}

func (s *SharedBudget) remember(p tokenPool, rev uint64) {
	s.mu.Lock()
	s.cached, s.cachedRev, s.haveCache = p, rev, true
	s.mu.Unlock()
}

func (s *SharedBudget) forget() {
	s.mu.Lock()
	s.haveCache = false
	s.mu.Unlock()
}

// takeAlone takes from this replica's equal share.
func (s *SharedBudget) takeAlone(n int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	rate := s.rate
	if s.learned.perSecond > 0 && s.now().Before(s.learned.until) {
		rate = min(rate, s.learned.perSecond)
	}
	share := rate / float64(s.replicas)
	next, wait := s.local.take(s.now(), share, max(1, s.capacity/float64(s.replicas)), n)
	if wait == 0 {
		s.local = next
	}
	return wait
}

func (s *SharedBudget) goAlone(err error) {
	s.mu.Lock()
	was := s.alone
	s.alone, s.lastErr = true, err
	s.local = tokenPool{At: s.now()} // empty: the share starts now
	replicas := s.replicas
	s.mu.Unlock()
	if !was {
		s.fallbacks.Add(1)
		if s.observer != nil {
			s.observer.BudgetFallback(true, s.rate/float64(replicas), replicas, err)
		}
	}
}

func (s *SharedBudget) backTogether() {
	s.mu.Lock()
	was := s.alone
	s.alone, s.lastErr = false, nil
	replicas := s.replicas
	s.mu.Unlock()
	if was && s.observer != nil {
		s.observer.BudgetFallback(false, s.rate/float64(replicas), replicas, nil)
	}
}

// PauseAll holds every replica's requests until until: the API said the
// budget is spent. The pool is written by Run, so the request that heard
// it does not wait for NATS.
func (s *SharedBudget) PauseAll(until time.Time) {
	for {
		select {
		case s.pauses <- until:
			return
		default:
		}
		select {
		case old := <-s.pauses:
			if old.After(until) {
				until = old
			}
		default:
		}
	}
}

// LimitAll lowers every replica's rate to perSecond until until: an API
// without rate-limit headers showed its quota. Like PauseAll, Run writes
// it into the pool.
func (s *SharedBudget) LimitAll(perSecond float64, until time.Time) {
	l := learnedLimit{perSecond, until}
	s.mu.Lock()
	s.learned = l
	s.mu.Unlock()
	for {
		select {
		case s.limits <- l:
			return
		default:
		}
		select {
		case old := <-s.limits:
			if old.perSecond < l.perSecond {
				l = old
			}
		default:
		}
	}
}

// Run renews this replica's place in the count, shares pauses, and finds
// out when NATS is back after a failure, until ctx ends; then it leaves
// the count, so the others' equal share grows at once.
func (s *SharedBudget) Run(ctx context.Context) error {
	key := budgetReplicasKey + events.Escape(s.instance)
	renew := time.NewTicker(max(100*time.Millisecond, s.ttl/3))
	defer renew.Stop()
	probe := time.NewTicker(time.Second)
	defer probe.Stop()
	s.renew(ctx, key)
	for {
		select {
		case <-ctx.Done():
			leave, cancel := context.WithTimeout(context.WithoutCancel(ctx), budgetOpTimeout)
			_ = s.kv.Delete(leave, key)
			cancel()
			return nil
		case <-renew.C:
			s.renew(ctx, key)
		case until := <-s.pauses:
			s.share(ctx, func(p tokenPool) (tokenPool, bool) { return p.pause(until) })
		case l := <-s.limits:
			s.share(ctx, func(p tokenPool) (tokenPool, bool) { return p.limit(l.perSecond, l.until, s.now()) })
		case <-probe.C:
			s.mu.Lock()
			alone := s.alone
			s.mu.Unlock()
			if alone {
				opCtx, cancel := context.WithTimeout(ctx, budgetOpTimeout)
				if _, _, err := s.read(opCtx); err == nil {
					s.forget()
					s.backTogether()
				}
				cancel()
			}
		}
	}
}

// renew puts this replica's key and counts the replicas' keys. A failure
// keeps the last count: it is what the equal share is reckoned from.
func (s *SharedBudget) renew(ctx context.Context, key string) {
	opCtx, cancel := context.WithTimeout(ctx, budgetOpTimeout)
	defer cancel()
	if _, err := s.kv.Put(opCtx, key, []byte(s.instance)); err != nil {
		s.countFailed(ctx, fmt.Errorf("publisher: renewing %s in %s: %w", key, s.kv.Bucket(), err))
		return
	}
	lister, err := s.kv.ListKeysFiltered(opCtx, budgetReplicasKey+">")
	if err != nil {
		s.countFailed(ctx, fmt.Errorf("publisher: listing %s* in %s: %w", budgetReplicasKey, s.kv.Bucket(), err))
		return
	}
	defer func() { _ = lister.Stop() }()
	count := 0
	for k := range lister.Keys() {
		if strings.HasPrefix(k, budgetReplicasKey) {
			count++
		}
	}
	if count > 0 {
		s.mu.Lock()
		s.replicas = count
		s.uncounted = false
		s.mu.Unlock()
	}
}

func (s *SharedBudget) countFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // shutting down
	}
	s.mu.Lock()
	tell := !s.uncounted && !s.alone // alone, the outage is said already
	s.uncounted = true
	s.mu.Unlock()
	if tell && s.observer != nil {
		s.observer.BudgetUncounted(err)
	}
}

// share writes what change makes of the pool into it, unless change says
// the pool has it already (a later pause, a lower limit).
func (s *SharedBudget) share(ctx context.Context, change func(tokenPool) (tokenPool, bool)) {
	for attempt := 0; attempt < 10; attempt++ {
		opCtx, cancel := context.WithTimeout(ctx, budgetOpTimeout)
		pool, rev, err := s.read(opCtx)
		if err != nil {
			cancel()
			return // alone, this replica's own client holds its requests
		}
		next, changed := change(pool)
		if !changed {
			cancel()
			return
		}
		if rev == 0 {
			next.At = s.now() // a pool never written starts full, now
			next.Tokens = s.capacity
		}
		newRev, err := s.write(opCtx, next, rev)
		cancel()
		if err == nil {
			s.remember(next, newRev)
			return
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return
		}
	}
}
