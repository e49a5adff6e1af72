package rockety

import (
	"context"
	"errors"
	"testing"
	"time"
)

// handTokens grants turns only when the test says so, so the order in
// which a Budget serves its lanes shows without any timing.
type handTokens struct{ takes chan *take }

type take struct {
	n    int
	ctx  context.Context
	done chan struct{}
}

func newHandTokens() *handTokens { return &handTokens{takes: make(chan *take)} }

func (h *handTokens) Take(ctx context.Context, n int) error {
	t := &take{n: n, ctx: ctx, done: make(chan struct{})}
	select {
	case h.takes <- t:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// next is the next take that is not given up before the test looks at it.
func (h *handTokens) next(t *testing.T) *take {
	t.Helper()
	for {
		select {
		case tk := <-h.takes:
			if tk.ctx.Err() == nil {
				return tk
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no take asked for")
		}
	}
}

type waited struct {
	name string
	err  error
}

func startWaiter(ctx context.Context, b *Budget, lane Lane, name string, out chan<- waited) {
	go func() { out <- waited{name, b.Wait(ctx, lane)} }()
}

// queued waits until n requests wait in b, so the test knows their order.
func queued(t *testing.T, b *Budget, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		q := b.queued
		b.mu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests wait, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func budgetOf(src Tokens, burst int) *Budget {
	b := NewBudget(float64(burst * 10))
	b.ShareWith(src)
	return b
}

func TestBudgetServesHigherLanesFirst(t *testing.T) {
	src := newHandTokens()
	b := budgetOf(src, 1)
	out := make(chan waited, 8)
	ctx := context.Background()
	startWaiter(ctx, b, LaneFull, "full-1", out)
	first := src.next(t) // the dispatcher takes for full-1
	startWaiter(ctx, b, LaneFull, "full-2", out)
	queued(t, b, 2)
	startWaiter(ctx, b, LaneIncremental, "incr-1", out)
	queued(t, b, 3)
	startWaiter(ctx, b, LaneCommand, "cmd-1", out)
	queued(t, b, 4)
	// The take for the full lane was given up for the command's.
	<-first.ctx.Done()
	var order []string
	for range 4 {
		tk := src.next(t)
		if tk.n != 1 {
			t.Fatalf("took %d turns at once, want 1 (burst 1)", tk.n)
		}
		close(tk.done)
		w := <-out
		if w.err != nil {
			t.Fatal(w.err)
		}
		order = append(order, w.name)
	}
	want := []string{"cmd-1", "incr-1", "full-1", "full-2"}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("served %v, want %v", order, want)
		}
	}
}

func TestBudgetWithoutLanesServesInArrivalOrder(t *testing.T) {
	src := newHandTokens()
	b := budgetOf(src, 1).WithoutLanes()
	out := make(chan waited, 8)
	ctx := context.Background()
	startWaiter(ctx, b, LaneFull, "full-1", out)
	tk := src.next(t)
	startWaiter(ctx, b, LaneCommand, "cmd-1", out)
	queued(t, b, 2)
	close(tk.done)
	if w := <-out; w.name != "full-1" {
		t.Fatalf("served %s first, want full-1", w.name)
	}
	close(src.next(t).done)
	if w := <-out; w.name != "cmd-1" {
		t.Fatalf("served %s, want cmd-1", w.name)
	}
}

func TestBudgetTakesABatchForWaitingRequests(t *testing.T) {
	src := newHandTokens()
	b := budgetOf(src, 3)
	out := make(chan waited, 8)
	ctx := context.Background()
	startWaiter(ctx, b, LaneFull, "a", out)
	first := src.next(t)
	for _, n := range []string{"b", "c", "d"} {
		startWaiter(ctx, b, LaneFull, n, out)
	}
	queued(t, b, 4)
	close(first.done) // one turn, asked for when one request waited
	<-out
	tk := src.next(t)
	if tk.n != 3 {
		t.Fatalf("took %d turns for 3 waiting requests (burst 3), want 3", tk.n)
	}
	close(tk.done)
	for range 3 {
		if w := <-out; w.err != nil {
			t.Fatal(w.err)
		}
	}
}

func TestBudgetCommandTakesOnlyForCommands(t *testing.T) {
	src := newHandTokens()
	b := budgetOf(src, 4)
	out := make(chan waited, 8)
	ctx := context.Background()
	startWaiter(ctx, b, LaneFull, "full-1", out)
	src.next(t) // never granted: the full lane is starved on purpose
	startWaiter(ctx, b, LaneFull, "full-2", out)
	startWaiter(ctx, b, LaneCommand, "cmd-1", out)
	queued(t, b, 3)
	tk := src.next(t)
	if tk.n != 1 {
		t.Fatalf("took %d turns for one command, want 1: a smaller take comes sooner", tk.n)
	}
	close(tk.done)
	if w := <-out; w.name != "cmd-1" {
		t.Fatalf("served %s, want cmd-1", w.name)
	}
}

func TestBudgetWaiterGivesUp(t *testing.T) {
	src := newHandTokens()
	b := budgetOf(src, 1)
	out := make(chan waited, 8)
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("test: stop waiting")
	startWaiter(ctx, b, LaneFull, "a", out)
	tk := src.next(t)
	cancel(stop)
	if w := <-out; !errors.Is(w.err, stop) {
		t.Fatalf("Wait = %v, want the context's cause", w.err)
	}
	// The last waiter gone, the take ends and the dispatcher stops.
	<-tk.ctx.Done()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		running := b.dispatching
		b.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dispatcher still runs with nobody waiting")
		}
		time.Sleep(time.Millisecond)
	}
	// And the budget still serves the next request.
	startWaiter(context.Background(), b, LaneCommand, "b", out)
	close(src.next(t).done)
	if w := <-out; w.err != nil || w.name != "b" {
		t.Fatalf("after a waiter gave up: %v", w)
	}
}

func TestBudgetLocalLimiterGrants(t *testing.T) {
	b := NewBudget(1000)
	ctx := context.Background()
	for range 50 {
		if err := b.Wait(ctx, LaneIncremental); err != nil {
			t.Fatal(err)
		}
	}
	if b.Granted() != 50 {
		t.Fatalf("Granted = %d, want 50", b.Granted())
	}
}

func TestGrantWindow(t *testing.T) {
	var g grantWindow
	base := time.Unix(1_000_000, 0)
	for s := range 10 {
		g.add(base.Add(time.Duration(s)*time.Second), 5)
	}
	// At second 10 the ten whole seconds before it hold 50 grants.
	if r := g.rate(base.Add(10 * time.Second)); r != 5 {
		t.Fatalf("rate = %v, want 5", r)
	}
	if r := g.rate(base.Add(15 * time.Second)); r != 2.5 {
		t.Fatalf("rate five seconds later = %v, want 2.5", r)
	}
	if r := g.rate(base.Add(time.Hour)); r != 0 {
		t.Fatalf("rate an hour later = %v, want 0", r)
	}
}

func TestLaneOf(t *testing.T) {
	ctx := context.Background()
	if LaneOf(ctx) != LaneFull {
		t.Fatalf("an unmarked request is %s, want full", LaneOf(ctx))
	}
	if LaneOf(WithLane(ctx, LaneCommand)) != LaneCommand {
		t.Fatal("WithLane(command) is not read back")
	}
	for _, l := range Lanes() {
		if l.String() == "unknown" {
			t.Fatalf("lane %d has no name", l)
		}
	}
}
