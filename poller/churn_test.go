package poller_test

import (
	"context"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// TestChurnMatchesTheMutationLog runs the poller against steady churn and
// holds its events to the simulator's log of every mutation. A poller sees
// states, not mutations: two updates between polls are one update, and an
// item created and deleted between polls is never seen. Within that, every
// change must arrive once and nothing extra.
func TestChurnMatchesTheMutationLog(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 10, SeedItems: 400, Resources: []string{"tasks"}, Churn: 60})
	rec := &recorder{}
	deps := h.deps()
	deps.Observer = rec
	p := h.poller(poller.Config{Interval: 30 * time.Millisecond}, deps)
	evs := h.stream()
	cycle(t, p) // baseline
	base := h.sim.LastSeq()
	baseline := map[string][]byte{}
	for _, id := range h.sim.IDs("tasks") {
		raw, _ := h.sim.Get("tasks", id)
		baseline[id] = raw
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx, time.Second)
	}()
	if err := h.sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := h.sim.SetChurn(0); err != nil {
		t.Fatal(err)
	}
	settled := rec.count()
	for rec.count() < settled+3 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	rec.mu.Lock()
	for i, err := range rec.errs {
		if err != nil {
			t.Errorf("cycle %d: %v", i, err)
		}
	}
	cycles := len(rec.cycles)
	rec.mu.Unlock()

	muts := h.sim.MutationsSince(base)
	all := evs.next()
	checkEvents(t, h, all, baseline, base)
	counts := map[events.Op]int{}
	for _, e := range all {
		counts[e.Op]++
	}
	t.Logf("%d mutations, %d cycles, events: %d created, %d updated, %d deleted", len(muts), cycles,
		counts[events.OpCreated], counts[events.OpUpdated], counts[events.OpDeleted])
	if len(muts) < 100 || counts[events.OpDeleted] == 0 || counts[events.OpCreated] == 0 {
		t.Errorf("too little churn to prove anything")
	}
}
