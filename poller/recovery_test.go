package poller_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// crashingMirror stands for a bridge killed after JetStream acknowledged
// the events but before their state was stored.
type crashingMirror struct {
	poller.Mirror
	crash bool
}

var errKilled = errors.New("killed")

func (m *crashingMirror) Commit(ctx context.Context, resource string, w []plan.Write) ([]plan.Committed, error) {
	if m.crash {
		return nil, errKilled
	}
	return m.Mirror.Commit(ctx, resource, w)
}

func TestHardStopBetweenPublishAndCommit(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 8, SeedItems: 300, Resources: []string{"tasks"}})
	deps := h.deps()
	mirror := &crashingMirror{Mirror: deps.Mirror}
	deps.Mirror = mirror
	p := h.poller(poller.Config{}, deps)
	evs := h.stream()
	cycle(t, p)

	ids := h.sim.IDs("tasks")
	for _, id := range ids[:5] {
		if err := h.sim.Update("tasks", id, map[string]any{"status": "blocked"}); err != nil {
			t.Fatal(err)
		}
	}
	newID, _ := h.sim.Create("tasks", map[string]any{"title": "created before the crash"})
	_ = h.sim.Delete("tasks", ids[250])
	mirror.crash = true
	if _, err := p.RunOnce(context.Background()); !errors.Is(err, errKilled) {
		t.Fatalf("err = %v, want the simulated kill", err)
	}
	first := evs.next()
	if len(first) != 6 {
		t.Fatalf("%d events before the kill, want 5 updates and 1 create (deletes wait for a complete cycle)", len(first))
	}

	// While the bridge is down, one of the changed items changes again.
	if err := h.sim.Update("tasks", ids[0], map[string]any{"status": "done"}); err != nil {
		t.Fatal(err)
	}

	// A new process: nothing in memory, everything from NATS.
	restarted := h.poller(poller.Config{}, h.deps())
	stats := cycle(t, restarted)
	second := evs.next()
	got := byOp(second)
	if len(second) != 2 || len(got[events.OpUpdated]) != 1 || len(got[events.OpDeleted]) != 1 {
		t.Fatalf("after the restart: %d events %+v, want the second update of %s and the delete of %s",
			len(second), second, ids[0], ids[250])
	}
	u := got[events.OpUpdated][0]
	if u.ID != ids[0] || string(u.Before) != string(first[0].After) {
		t.Errorf("the update after the restart does not follow the one before it: before %s, want %s", u.Before, first[0].After)
	}
	if u.Revision <= first[0].Revision {
		t.Errorf("revision %d after %d", u.Revision, first[0].Revision)
	}
	if stats.Created != 0 {
		t.Errorf("%s created again after the restart", newID)
	}
	cycle(t, restarted)
	if got := evs.next(); len(got) != 0 {
		t.Errorf("a restart with no changes published %d events", len(got))
	}
	// And a second restart with no changes publishes nothing either.
	cycle(t, h.poller(poller.Config{}, h.deps()))
	if got := evs.next(); len(got) != 0 {
		t.Errorf("a second restart published %d events", len(got))
	}
}

func TestOnlyTheLeaseHolderPolls(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 9, SeedItems: 50, Resources: []string{"tasks"}})
	ctx := context.Background()
	type instance struct {
		rec    *recorder
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(name string) *instance {
		leases, err := publisher.NewLeases(ctx, h.res.Leases, name)
		if err != nil {
			t.Fatal(err)
		}
		deps := h.deps()
		in := &instance{rec: &recorder{}, done: make(chan struct{})}
		deps.Lease = leases.For("tasks")
		deps.Observer = in.rec
		p := h.poller(poller.Config{Interval: 50 * time.Millisecond}, deps)
		var runCtx context.Context
		runCtx, in.cancel = context.WithCancel(ctx)
		go func() {
			defer close(in.done)
			_ = p.Run(runCtx, time.Second)
		}()
		t.Cleanup(func() { in.cancel(); <-in.done })
		return in
	}
	a := start("pod-a")
	time.Sleep(100 * time.Millisecond) // let a take the lease first
	b := start("pod-b")
	time.Sleep(time.Second)
	if a.rec.count() == 0 || b.rec.count() != 0 {
		t.Fatalf("cycles: a %d, b %d; want only a", a.rec.count(), b.rec.count())
	}

	// a stops (and releases): b takes over.
	a.cancel()
	<-a.done
	stopped := time.Now()
	for b.rec.count() == 0 {
		if time.Since(stopped) > 3*time.Second {
			t.Fatal("b did not start polling within 3s of a stopping")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("b polled %s after a stopped", time.Since(stopped).Round(10*time.Millisecond))
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	for _, err := range b.rec.errs {
		if err != nil {
			t.Errorf("b cycle: %v", err)
		}
	}
}

// TestWriteThroughCreateLeftUncommittedIsStoredByTheNextCycle: a command's
// write-through published the creation of an item and its bridge died
// before storing it, and the item was deleted before any traversal saw
// it. The lease holder's next cycle reads the events others published,
// stores the creation the mirror lacks, and publishes the delete:
// subscribers who saw the item created see it deleted, once, and a
// restart publishes nothing more.
func TestWriteThroughCreateLeftUncommittedIsStoredByTheNextCycle(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 10, SeedItems: 20, Resources: []string{"tasks"}})
	deps := h.deps()
	p := h.poller(poller.Config{}, deps)
	evs := h.stream()
	cycle(t, p)

	id, err := h.sim.Create("tasks", map[string]any{"title": "made by a command"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := h.sim.Get("tasks", id)
	created := events.Event{Resource: "tasks", ID: id, Op: events.OpCreated, Revision: events.ChangeRevision(0),
		After: raw, DetectedAt: time.Now().UTC()}
	out := []plan.Outgoing{{EventID: events.EventID("tasks", id, events.OpCreated, 0), Event: created}}
	if err := deps.Sink.Publish(context.Background(), out, func(int, plan.Ack) {}); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Delete("tasks", id); err != nil {
		t.Fatal(err)
	}
	// Another change, so the cycle publishes after the creation and its
	// checkpoint passes it.
	other := h.sim.IDs("tasks")[0]
	if err := h.sim.Update("tasks", other, map[string]any{"title": "moved on"}); err != nil {
		t.Fatal(err)
	}
	cycle(t, p)
	got := evs.next()
	// The stream holds the write-through's create, then the cycle's events.
	var ofItem []events.Event
	for _, e := range got {
		if e.ID == id {
			ofItem = append(ofItem, e)
		}
	}
	if len(ofItem) != 2 || ofItem[0].Op != events.OpCreated || ofItem[1].Op != events.OpDeleted ||
		string(ofItem[1].Before) != string(raw) || ofItem[1].Revision <= created.Revision {
		t.Fatalf("the events of %s: %+v; want the write-through's create and then, from the next cycle, its delete", id, ofItem)
	}

	restarted := h.poller(poller.Config{}, h.deps())
	cycle(t, restarted)
	cycle(t, restarted)
	if got := evs.next(); len(got) != 0 {
		t.Fatalf("after the restart: %+v; want nothing more", got)
	}
}
