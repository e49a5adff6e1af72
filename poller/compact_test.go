package poller_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// clock is the poller's time, moved on by the test so that delete markers
// age past their retention without waiting.
type clock struct{ ahead atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.ahead.Load())) }
func (c *clock) advance(d time.Duration) { c.ahead.Add(int64(d)) }
func (h *harness) stateMsgs() (msgs uint64) {
	h.t.Helper()
	st, err := h.js.Stream(context.Background(), "KV_"+h.res.State.Bucket())
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

// TestCompaction: the delete markers of items deleted longer ago than the
// retention leave the mirror and the index after a full traversal; an id
// soft-deleted, compacted and then restored is created again with a
// revision above its earlier events' and an event id of its own; a create
// a write-through decided against the floor before it rose, and left
// uncommitted, is stored, not published twice; a restart publishes
// nothing.
func TestCompaction(t *testing.T) {
	const retention = time.Minute
	h := newHarness(t, sim.Options{Seed: 12, SeedItems: 30, Resources: []string{"tasks"}, Faults: sim.Faults{SoftDelete: true}})
	var clk clock
	cfg := poller.Config{DeleteRetention: retention, DeletedField: "deleted_at"}
	deps := h.deps()
	deps.Now = clk.now
	p := h.poller(cfg, deps)
	evs := h.stream()
	cycle(t, p)

	// Hard deletes do not exist in this API: DELETE soft-deletes, so the
	// items stay listed and can come back.
	ids := h.sim.IDs("tasks")
	gone := ids[:6]
	for _, id := range gone {
		if err := h.sim.Delete("tasks", id); err != nil {
			t.Fatal(err)
		}
	}
	if s := cycle(t, p); s.Deleted != len(gone) || s.Compacted != 0 {
		t.Fatalf("the cycle after %d deletes: deleted %d, compacted %d; want %d and 0 (not old yet)", len(gone), s.Deleted, s.Compacted, len(gone))
	}
	history := map[string][]events.Event{}
	record := func(evs []events.Event) {
		for _, e := range evs {
			history[e.ID] = append(history[e.ID], e)
		}
	}
	record(evs.next())
	if n := p.IDs(); n != len(ids) {
		t.Fatalf("%d ids tracked before compaction, want %d", n, len(ids))
	}
	before := h.stateMsgs()

	clk.advance(retention + time.Second)
	s := cycle(t, p)
	if s.CompactErr != nil || s.Compacted != len(gone) {
		t.Fatalf("compaction after the retention: %d dropped (%v), want %d", s.Compacted, s.CompactErr, len(gone))
	}
	if got := h.stateMsgs(); got != before-uint64(len(gone)) {
		t.Errorf("the mirror holds %d entries after compaction, want %d: the %d markers gone", got, before-uint64(len(gone)), len(gone))
	}
	b, _, err := deps.Checkpoints.Bookmark(context.Background(), "tasks")
	if err != nil {
		t.Fatal(err)
	}
	var highest uint64
	for _, id := range gone {
		evs := history[id]
		highest = max(highest, evs[len(evs)-1].Revision)
	}
	if b.Floor < highest || b.FloorFrom == 0 {
		t.Fatalf("bookmark %+v: want a floor at least %d, the revision of the last delete, and where it rose", b, highest)
	}
	stored, err := deps.Mirror.Lookup(context.Background(), "tasks", gone)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stored {
		if !st.Absent {
			t.Errorf("%s is still in the mirror after compaction: %+v", st.ID, st)
		}
	}
	// Still listed, soft-deleted: nothing to publish, and again after the
	// next full traversal.
	cycle(t, p)
	if got := evs.next(); len(got) != 0 {
		t.Fatalf("cycles after compaction published %+v; want nothing", got)
	}

	// Restored: created again over the floor.
	back := gone[0]
	if err := h.sim.Update("tasks", back, map[string]any{"deleted_at": nil}); err != nil {
		t.Fatal(err)
	}
	// A write-through that read the floor before it rose published the
	// create of a new item replacing 0, and died before storing it.
	made, err := h.sim.Create("tasks", map[string]any{"title": "made by a command"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := h.sim.Get("tasks", made)
	late := events.Event{Resource: "tasks", ID: made, Op: events.OpCreated, Revision: events.ChangeRevision(0), After: raw, DetectedAt: time.Now().UTC()}
	if err := deps.Sink.Publish(context.Background(), []plan.Outgoing{{EventID: events.EventID("tasks", made, events.OpCreated, 0), Event: late}},
		func(int, plan.Ack) {}); err != nil {
		t.Fatal(err)
	}
	cycle(t, p)
	got := evs.next()
	record(got)
	if len(got) != 2 || got[0].ID != made || got[1].ID != back || got[1].Op != events.OpCreated {
		t.Fatalf("after a restore and an uncommitted create: %+v; want the write-through's create of %s and the create of %s, nothing else", got, made, back)
	}
	if got[1].Revision != b.Floor+1 {
		t.Errorf("the restored %s was created at revision %d, want the floor's next, %d", back, got[1].Revision, b.Floor+1)
	}
	seen := map[string]bool{}
	for _, e := range history[back] {
		id := events.EventID("tasks", back, e.Op, e.Revision-1)
		if seen[id] {
			t.Errorf("event id %s of %s repeats: %+v", id, back, history[back])
		}
		seen[id] = true
	}
	for i := 1; i < len(history[back]); i++ {
		if history[back][i].Revision <= history[back][i-1].Revision {
			t.Errorf("the revisions of %s do not increase: %+v", back, history[back])
		}
	}
	stored, err = deps.Mirror.Lookup(context.Background(), "tasks", []string{back, made})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stored {
		if !st.Live() {
			t.Errorf("%s is not live in the mirror: %+v", st.ID, st)
		}
	}

	restartDeps := h.deps()
	restartDeps.Now = clk.now
	restarted := h.poller(cfg, restartDeps)
	cycle(t, restarted)
	cycle(t, restarted)
	if got := evs.next(); len(got) != 0 {
		t.Fatalf("after a restart: %+v; want nothing", got)
	}
	if n, want := restarted.IDs(), len(ids)+1; n != want {
		t.Errorf("the restarted poller tracks %d ids, want %d (soft-deleted ones still listed count)", n, want)
	}
}

// lostAck stores a commit and then, once armed, reports it failed: its
// acknowledgement was lost (a leader change), the writes landed.
type lostAck struct {
	poller.Mirror
	armed atomic.Bool
}

func (m *lostAck) Commit(ctx context.Context, resource string, writes []plan.Write) ([]plan.Committed, error) {
	res, err := m.Mirror.Commit(ctx, resource, writes)
	if err == nil && m.armed.CompareAndSwap(true, false) {
		return nil, errors.New("nats: timeout waiting for ack")
	}
	return res, err
}

// TestCommitWhoseAckWasLost: a create's commit landed but was reported
// failed, and the item was deleted before the next traversal. The next
// cycle loads the index again from the mirror, so the item is known live,
// missed, and its delete published.
func TestCommitWhoseAckWasLost(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 14, SeedItems: 10, Resources: []string{"tasks"}})
	deps := h.deps()
	mirror := &lostAck{Mirror: deps.Mirror}
	deps.Mirror = mirror
	p := h.poller(poller.Config{}, deps)
	evs := h.stream()
	cycle(t, p)

	id, err := h.sim.Create("tasks", map[string]any{"title": "stored, but its ack was lost"})
	if err != nil {
		t.Fatal(err)
	}
	mirror.armed.Store(true)
	if _, err := p.RunOnce(context.Background()); err == nil {
		t.Fatal("the cycle whose commit failed reported no error")
	}
	if err := h.sim.Delete("tasks", id); err != nil {
		t.Fatal(err)
	}
	cycle(t, p)
	ops := opsOf(evs.next(), id)
	if len(ops) != 2 || ops[0] != events.OpCreated || ops[1] != events.OpDeleted {
		t.Fatalf("events of %s: %v, want [created deleted]", id, ops)
	}
}

// switchLease is held while on is set.
type switchLease struct{ on atomic.Bool }

func (l *switchLease) Hold(context.Context) (time.Time, bool, error) {
	return time.Now().Add(300 * time.Millisecond), l.on.Load(), nil
}
func (l *switchLease) Release(context.Context) error { return nil }

// TestLeaseTakenAgainLoadsTheFloor: while a replica did not hold the
// lease, another raised the floor; taken again, the lease makes it load
// its state afresh, so it neither decides against the old floor nor
// writes it back over the new one.
func TestLeaseTakenAgainLoadsTheFloor(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 15, SeedItems: 10, Resources: []string{"tasks"}})
	deps := h.deps()
	lease := &switchLease{}
	lease.on.Store(true)
	deps.Lease = lease
	p := h.poller(poller.Config{Interval: 100 * time.Millisecond}, deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, time.Second) }()
	defer func() { cancel(); <-done }()
	bookmark := func() plan.Bookmark {
		b, _, err := deps.Checkpoints.Bookmark(context.Background(), "tasks")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 10s", what)
			}
		}
	}
	waitFor("first cycle", func() bool { return bookmark().Checkpoint > 0 || !bookmark().LastFull.IsZero() })

	lease.on.Store(false)
	time.Sleep(time.Second) // the lease runs out here; another replica polls
	b := bookmark()
	b.Floor, b.FloorFrom = 999, b.Checkpoint
	if err := deps.Checkpoints.SetBookmark(context.Background(), "tasks", b); err != nil {
		t.Fatal(err)
	}
	taken := b.LastFull
	lease.on.Store(true)
	waitFor("cycle after the lease was taken again", func() bool { return bookmark().LastFull.After(taken) })
	if got := bookmark(); got.Floor != 999 {
		t.Fatalf("after the lease was taken again the bookmark's floor is %d, want the 999 the other replica stored", got.Floor)
	}
}

// staleReads answers, once armed, every lookup as if nothing were stored:
// a follower of a replicated bucket that is behind.
type staleReads struct {
	poller.Mirror
	armed atomic.Bool
}

func (m *staleReads) Lookup(ctx context.Context, resource string, ids []string) ([]plan.State, error) {
	if m.armed.CompareAndSwap(true, false) {
		out := make([]plan.State, len(ids))
		for i, id := range ids {
			out[i] = plan.State{ID: id, Absent: true}
		}
		return out, nil
	}
	return m.Mirror.Lookup(ctx, resource, ids)
}

// TestStaleLookupLeavesTheIndexAlone: a lookup answered by a replica behind
// says a live item is not stored; the index keeps what it knows, so when
// the item goes, its delete is published.
func TestStaleLookupLeavesTheIndexAlone(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 16, SeedItems: 10, Resources: []string{"tasks"}})
	deps := h.deps()
	mirror := &staleReads{Mirror: deps.Mirror}
	deps.Mirror = mirror
	p := h.poller(poller.Config{}, deps)
	evs := h.stream()
	cycle(t, p)

	id := h.sim.IDs("tasks")[3]
	if err := h.sim.Update("tasks", id, map[string]any{"title": "read from a replica behind"}); err != nil {
		t.Fatal(err)
	}
	mirror.armed.Store(true)
	cycle(t, p) // the update is judged against the stale read: again next cycle
	if err := h.sim.Delete("tasks", id); err != nil {
		t.Fatal(err)
	}
	cycle(t, p)
	ops := opsOf(evs.next(), id)
	if len(ops) == 0 || ops[len(ops)-1] != events.OpDeleted {
		t.Fatalf("events of %s: %v, want its delete last", id, ops)
	}
}

// opsOf lists the ops of id's events, in order.
func opsOf(evs []events.Event, id string) []events.Op {
	var ops []events.Op
	for _, e := range evs {
		if e.ID == id {
			ops = append(ops, e.Op)
		}
	}
	return ops
}
