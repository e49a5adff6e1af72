package poller_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// A resync with a snapshot publishes one snapshot event per current item,
// unchanged ones included, all with its id; what changed meanwhile is in
// the batch as a snapshot too; what was deleted is a delete; and the
// revisions go on from there, so the next change is above the snapshot.
func TestResyncSnapshotPublishesEveryItemOnce(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 11, SeedItems: 150, Resources: []string{"tasks"}})
	p := h.poller(poller.Config{}, h.deps())
	evs := h.stream()
	cycle(t, p)
	ids := h.sim.IDs("tasks")
	if err := h.sim.Update("tasks", ids[3], map[string]any{"title": "changed before the resync"}); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Delete("tasks", ids[4]); err != nil {
		t.Fatal(err)
	}

	id, err := p.Resync("r-1", true)
	if err != nil || id != "r-1" {
		t.Fatalf("Resync = %q, %v", id, err)
	}
	// A second ask before the cycle begins joins the first.
	if id, err := p.Resync("r-2", false); err != nil || id != "r-1" {
		t.Fatalf("a second Resync = %q, %v; want it to join r-1", id, err)
	}
	stats := cycle(t, p)
	if stats.Kind != poller.KindSnapshot || stats.ResyncID != "r-1" || stats.Snapshot != 149 || stats.Deleted != 1 {
		t.Fatalf("resync cycle stats %+v; want a snapshot of 149 items and 1 delete for r-1", stats)
	}
	got := evs.next()
	revision := map[string]uint64{}
	for _, e := range got {
		switch {
		case e.Op == events.OpDeleted && e.ID == ids[4]:
		case e.Op != events.OpSnapshot || e.ResyncID != "r-1" || e.Before != nil:
			t.Errorf("event %s %s (resync %q): want a snapshot of r-1", e.Op, e.ID, e.ResyncID)
		case revision[e.ID] != 0:
			t.Errorf("two snapshots of %s", e.ID)
		}
		revision[e.ID] = e.Revision
	}
	if len(got) != 150 {
		t.Fatalf("%d events, want 149 snapshots and 1 delete", len(got))
	}
	now, _ := h.sim.Get("tasks", ids[3])
	for _, e := range got {
		if e.ID == ids[3] && string(e.After) != string(now) {
			t.Errorf("the snapshot of %s is %s, want its current state %s", e.ID, e.After, now)
		}
	}

	// Nothing more to say; and the next change is above its snapshot.
	if stats := cycle(t, p); len(evs.next()) != 0 || stats.Kind != poller.KindFull || stats.ResyncID != "" {
		t.Fatalf("the cycle after the resync: %+v", stats)
	}
	if err := h.sim.Update("tasks", ids[5], map[string]any{"title": "after the resync"}); err != nil {
		t.Fatal(err)
	}
	cycle(t, p)
	after := evs.next()
	if len(after) != 1 || after[0].Op != events.OpUpdated || after[0].Revision <= revision[ids[5]] {
		t.Fatalf("after the resync: %+v; want one update above revision %d", after, revision[ids[5]])
	}

	// A restart does not repeat the snapshot.
	p2 := h.poller(poller.Config{}, h.deps())
	cycle(t, p2)
	if got := evs.next(); len(got) != 0 {
		t.Errorf("a restart after the resync published %d events", len(got))
	}
}

// A full resync is a full traversal at once, also for a resource polled
// incrementally, and publishes only what changed.
func TestResyncFullIsAFullTraversal(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 12, SeedItems: 40, Resources: []string{"tasks"}})
	p := h.poller(poller.Config{ChangedSince: "updated_since", FullEvery: time.Hour}, h.deps())
	evs := h.stream()
	cycle(t, p)
	if stats := cycle(t, p); stats.Kind != poller.KindIncremental {
		t.Fatalf("second cycle is %s, want incremental", stats.Kind)
	}
	if _, err := p.Resync("r-full", false); err != nil {
		t.Fatal(err)
	}
	stats := cycle(t, p)
	if stats.Kind != poller.KindFull || stats.ResyncID != "r-full" || stats.Seen != 40 {
		t.Fatalf("resync cycle %+v; want a full traversal of 40 for r-full", stats)
	}
	if got := evs.next(); len(got) != 0 {
		t.Errorf("a full resync without changes published %d events", len(got))
	}
}

// Only the lease holder resyncs.
func TestResyncRefusedWithoutTheLease(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 13, SeedItems: 5, Resources: []string{"tasks"}})
	deps := h.deps()
	deps.Lease = neverHeld{}
	p := h.poller(poller.Config{}, deps)
	if _, err := p.Resync("r", true); !errors.Is(err, poller.ErrNotHolder) {
		t.Fatalf("Resync without the lease: %v, want ErrNotHolder", err)
	}
}

type neverHeld struct{}

func (neverHeld) Hold(context.Context) (time.Time, bool, error) { return time.Time{}, false, nil }
func (neverHeld) Release(context.Context) error                 { return nil }

// Run reports every cycle it finishes, a resync's with its id, and a
// resync asked for starts its cycle at once rather than after the interval.
func TestRunReportsEveryCycle(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 14, SeedItems: 30, Resources: []string{"tasks"}})
	deps := h.deps()
	reports := &reportRecorder{got: make(chan events.CycleReport, 16)}
	deps.Reports = reports
	p := h.poller(poller.Config{Interval: time.Hour, Instance: "bridge-7"}, deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, time.Second) }()
	defer func() { cancel(); <-done }()

	first := reports.next(t)
	if first.Resource != "tasks" || first.Kind != events.CycleFull || first.Outcome != events.CycleComplete ||
		first.Instance != "bridge-7" || first.Items != 30 || first.Pages == 0 || first.Requests < first.Pages ||
		first.FinishedAt.Before(first.StartedAt) || first.ResyncID != "" || first.Error != "" {
		t.Fatalf("first report %+v", first)
	}
	if _, err := p.Resync("r-run", true); err != nil {
		t.Fatal(err)
	}
	// Within the test's deadline, not the hour's interval.
	second := reports.next(t)
	if second.Kind != events.CycleSnapshot || second.ResyncID != "r-run" || second.Snapshot != 30 || second.Outcome != events.CycleComplete {
		t.Fatalf("resync report %+v", second)
	}
}

type reportRecorder struct {
	got chan events.CycleReport
}

func (r *reportRecorder) Report(_ context.Context, rep events.CycleReport) { r.got <- rep }

func (r *reportRecorder) next(t *testing.T) events.CycleReport {
	t.Helper()
	select {
	case rep := <-r.got:
		return rep
	case <-time.After(30 * time.Second):
		t.Fatal("no cycle report within 30s")
	}
	return events.CycleReport{}
}
