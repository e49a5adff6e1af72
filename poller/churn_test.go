package poller_test

import (
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// TestChurnMatchesTheMutationLog runs the poller against steady churn and
// holds its events to the simulator's log of every mutation. A poller sees
// states, not mutations: two updates between polls are one update, and an
// item created and deleted between polls is never seen. Within that, every
// change must arrive once and nothing extra.
func TestChurnMatchesTheMutationLog(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 10, SeedItems: 400, Resources: []string{"tasks"}, Churn: 60})
	run := startChurn(t, h)
	time.Sleep(3 * time.Second)
	run.settle(t)
	rec := run.rec
	rec.mu.Lock()
	for i, err := range rec.errs {
		if err != nil {
			t.Errorf("cycle %d: %v", i, err)
		}
	}
	cycles := len(rec.cycles)
	rec.mu.Unlock()

	muts := h.sim.MutationsSince(run.base)
	counts := map[events.Op]int{}
	for _, o := range run.judge(t) {
		counts[o.Event.Op]++
	}
	t.Logf("%d mutations, %d cycles, events: %d created, %d updated, %d deleted", len(muts), cycles,
		counts[events.OpCreated], counts[events.OpUpdated], counts[events.OpDeleted])
	if len(muts) < 100 || counts[events.OpDeleted] == 0 || counts[events.OpCreated] == 0 {
		t.Errorf("too little churn to prove anything")
	}
}
