package publisher_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/publisher"
)

type fallbackLog struct {
	mu        sync.Mutex
	calls     []string
	uncounted int
}

func (f *fallbackLog) BudgetFallback(alone bool, share float64, replicas int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if alone {
		f.calls = append(f.calls, "alone")
	} else {
		f.calls = append(f.calls, "shared")
	}
}

func (f *fallbackLog) BudgetUncounted(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uncounted++
}

func (f *fallbackLog) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSharedBudgetSplitsTheRate takes as fast as it can from two replicas
// and holds what they got together to the one rate.
func TestSharedBudgetSplitsTheRate(t *testing.T) {
	_, _, _, res := setup(t)
	ctx := context.Background()
	const rate, capacity = 40.0, 4
	var budgets []*publisher.SharedBudget
	for _, id := range []string{"pod-a", "pod-b"} {
		b, err := publisher.NewSharedBudget(ctx, res.Leases, id, rate, capacity, nil)
		if err != nil {
			t.Fatal(err)
		}
		budgets = append(budgets, b)
	}
	runCtx, stop := context.WithTimeout(ctx, 3*time.Second)
	defer stop()
	var got [2]atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i, b := range budgets {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b.Take(runCtx, 2) == nil {
					got[i].Add(2)
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := got[0].Load() + got[1].Load()
	// The pool starts full; every token after that is earned by time.
	bound := rate*elapsed.Seconds() + capacity
	if float64(total) > bound {
		t.Fatalf("two replicas took %d tokens in %s of a %v/s budget, more than %.0f", total, elapsed, rate, bound)
	}
	if got[0].Load() == 0 || got[1].Load() == 0 {
		t.Fatalf("a replica got nothing: %d and %d", got[0].Load(), got[1].Load())
	}
	t.Logf("pod-a %d, pod-b %d tokens in %s (bound %.0f)", got[0].Load(), got[1].Load(), elapsed, bound)
}

func TestSharedBudgetCountsReplicas(t *testing.T) {
	_, _, _, res := setup(t) // lease TTL 1s
	ctx := context.Background()
	a, _ := publisher.NewSharedBudget(ctx, res.Leases, "pod-a", 10, 1, nil)
	b, _ := publisher.NewSharedBudget(ctx, res.Leases, "pod-b", 10, 1, nil)
	actx, stopA := context.WithCancel(ctx)
	defer stopA()
	bctx, stopB := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- a.Run(actx) }()
	go func() { done <- b.Run(bctx) }()
	eventually(t, "both replicas count two", func() bool { return a.Stats().Replicas == 2 && b.Stats().Replicas == 2 })
	if s := a.Stats(); s.Share != 5 {
		t.Fatalf("equal share of 10/s among 2 = %v", s.Share)
	}
	stopB() // leaves the count on the way out
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod-a counts itself alone", func() bool { return a.Stats().Replicas == 1 })
}

func TestSharedBudgetPauseHoldsEveryReplica(t *testing.T) {
	_, _, _, res := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := publisher.NewSharedBudget(ctx, res.Leases, "pod-a", 100, 10, nil)
	b, _ := publisher.NewSharedBudget(ctx, res.Leases, "pod-b", 100, 10, nil)
	go func() { _ = a.Run(ctx) }()
	until := time.Now().Add(700 * time.Millisecond)
	a.PauseAll(until)
	eventually(t, "the pause is in the pool", func() bool {
		e, err := res.Leases.Get(ctx, "budget.tokens")
		if err != nil {
			return false
		}
		var p struct {
			PausedUntil time.Time `json:"paused_until"`
		}
		return json.Unmarshal(e.Value(), &p) == nil && !p.PausedUntil.Before(until)
	})
	if err := b.Take(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); now.Before(until) {
		t.Fatalf("pod-b was granted a token %s before the pause pod-a heard of ended", until.Sub(now))
	}
}

func TestSharedBudgetAloneWhenNATSIsGone(t *testing.T) {
	srv, _, _, res := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &fallbackLog{}
	a, _ := publisher.NewSharedBudget(ctx, res.Leases, "pod-a", 20, 2, log)
	b, _ := publisher.NewSharedBudget(ctx, res.Leases, "pod-b", 20, 2, nil)
	bctx, stopB := context.WithCancel(ctx)
	go func() { _ = a.Run(ctx) }()
	go func() { _ = b.Run(bctx) }()
	eventually(t, "two replicas counted", func() bool { return a.Stats().Replicas == 2 })
	if err := a.Take(ctx, 1); err != nil {
		t.Fatal(err)
	}
	stopB() // a dead pod-b could not leave; a stopped one does, so stop it first
	srv.Stop()
	// Without NATS, requests still get turns: from the equal share of
	// the two replicas last counted.
	for range 3 {
		tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
		err := a.Take(tctx, 1)
		tcancel()
		if err != nil {
			t.Fatalf("no token without NATS: %v", err)
		}
	}
	s := a.Stats()
	if !s.Alone || s.Share != 10 || s.Fallbacks != 1 {
		t.Fatalf("stats without NATS = %+v, want alone with a share of 10/s, one fallback", s)
	}
	srv.Restart()
	eventually(t, "the budget is shared again", func() bool { return !a.Stats().Alone })
	if err := a.Take(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := log.seen(); len(got) != 2 || got[0] != "alone" || got[1] != "shared" {
		t.Fatalf("observer heard %v, want [alone shared]", got)
	}
}
