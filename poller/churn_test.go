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
	states := map[string]map[string]bool{} // every state each item was in
	created, deleted := map[string]bool{}, map[string]bool{}
	for id, raw := range baseline {
		states[id] = map[string]bool{string(raw): true}
	}
	for _, m := range muts {
		if states[m.ID] == nil {
			states[m.ID] = map[string]bool{}
		}
		states[m.ID][string(m.Item)] = true
		switch m.Op {
		case sim.OpCreated:
			created[m.ID] = true
		case sim.OpDeleted:
			deleted[m.ID] = true
		}
	}
	byID := map[string][]events.Event{}
	all := evs.next()
	for _, e := range all {
		byID[e.ID] = append(byID[e.ID], e)
	}
	counts := map[events.Op]int{}
	for id, list := range byID {
		prev, existed := baseline[id], baseline[id] != nil
		for _, e := range list {
			counts[e.Op]++
			switch e.Op {
			case events.OpCreated:
				if existed || !created[id] {
					t.Errorf("%s: created, but it existed or was never created", id)
				}
				existed = true
			case events.OpUpdated:
				if !existed || string(e.Before) != string(prev) {
					t.Errorf("%s: update does not follow the previous state", id)
				}
			case events.OpDeleted:
				if !existed || !deleted[id] || string(e.Before) != string(prev) {
					t.Errorf("%s: delete of an item that was not deleted, or out of order", id)
				}
				existed = false
			default:
				t.Errorf("%s: unexpected %s", id, e.Op)
			}
			if e.After != nil && !states[id][string(e.After)] {
				t.Errorf("%s: %s with a state the item never had: %s", id, e.Op, e.After)
			}
			if e.After != nil {
				prev = e.After
			}
		}
		final, ok := h.sim.Get("tasks", id)
		if ok != existed || (ok && string(final) != string(prev)) {
			t.Errorf("%s: events end in %s (exists %v), the API has %s (exists %v)", id, prev, existed, final, ok)
		}
	}
	// Every item that exists at the end and changed is accounted for.
	for _, id := range h.sim.IDs("tasks") {
		final, _ := h.sim.Get("tasks", id)
		if baseline[id] != nil && string(baseline[id]) == string(final) {
			continue
		}
		if len(byID[id]) == 0 {
			t.Errorf("%s changed (or was created) and no event says so", id)
		}
	}
	for id := range deleted {
		if baseline[id] != nil && len(byID[id]) == 0 {
			t.Errorf("%s was deleted and no event says so", id)
		}
	}
	t.Logf("%d mutations, %d cycles, events: %d created, %d updated, %d deleted", len(muts), cycles,
		counts[events.OpCreated], counts[events.OpUpdated], counts[events.OpDeleted])
	if len(muts) < 100 || counts[events.OpDeleted] == 0 || counts[events.OpCreated] == 0 {
		t.Errorf("too little churn to prove anything")
	}
}
