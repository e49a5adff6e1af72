package poller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

func byOp(evs []events.Event) map[events.Op][]events.Event {
	out := map[events.Op][]events.Event{}
	for _, e := range evs {
		out[e.Op] = append(out[e.Op], e)
	}
	return out
}

func TestBaselinePublishesNothingThenChangesAreExact(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 1, SeedItems: 250, Resources: []string{"projects", "tasks", "users"}})
	p := h.poller(poller.Config{}, h.deps())
	evs := h.stream()

	stats := cycle(t, p)
	if got := evs.next(); len(got) != 0 {
		t.Fatalf("baseline published %d events", len(got))
	}
	if stats.Seen != 250 || p.Tracked() != 250 || !stats.Complete {
		t.Fatalf("baseline stats %+v, tracked %d", stats, p.Tracked())
	}
	if stats := cycle(t, p); len(evs.next()) != 0 || stats.Seen != 250 {
		t.Fatalf("a cycle without changes published events: %+v", stats)
	}

	ids := h.sim.IDs("tasks")
	newID, err := h.sim.Create("tasks", map[string]any{"title": "Brand new", "project_id": 1})
	if err != nil {
		t.Fatal(err)
	}
	beforeUpdate, _ := h.sim.Get("tasks", ids[10])
	if err := h.sim.Update("tasks", ids[10], map[string]any{"title": "Renamed", "status": "done"}); err != nil {
		t.Fatal(err)
	}
	beforeDelete, _ := h.sim.Get("tasks", ids[200])
	if err := h.sim.Delete("tasks", ids[200]); err != nil {
		t.Fatal(err)
	}
	stats = cycle(t, p)
	got := byOp(evs.next())
	if len(got[events.OpCreated]) != 1 || len(got[events.OpUpdated]) != 1 || len(got[events.OpDeleted]) != 1 || len(got) != 3 {
		t.Fatalf("events = %+v, want one of each", got)
	}
	if stats.Created != 1 || stats.Updated != 1 || stats.Deleted != 1 || stats.Suspected != 1 || stats.Confirmed != 1 {
		t.Errorf("stats = %+v", stats)
	}

	c := got[events.OpCreated][0]
	nowNew, _ := h.sim.Get("tasks", newID)
	if c.ID != newID || c.Before != nil || string(c.After) != string(nowNew) || c.Revision != 1 {
		t.Errorf("created = %+v", c)
	}
	u := got[events.OpUpdated][0]
	nowUpdated, _ := h.sim.Get("tasks", ids[10])
	if u.ID != ids[10] || string(u.Before) != string(beforeUpdate) || string(u.After) != string(nowUpdated) ||
		!slices.Equal(u.Changed, []string{"status", "title", "updated_at"}) {
		t.Errorf("updated = %s: before %s after %s changed %v", u.ID, u.Before, u.After, u.Changed)
	}
	d := got[events.OpDeleted][0]
	if d.ID != ids[200] || string(d.Before) != string(beforeDelete) || d.After != nil {
		t.Errorf("deleted = %+v", d)
	}
	if stats := cycle(t, p); len(evs.next()) != 0 || stats.Seen != 250 {
		t.Fatalf("the cycle after the changes published again: %+v", stats)
	}
}

func TestKeyOrderAndWhitespacePublishNothing(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 2, SeedItems: 20, Resources: []string{"tasks"}})
	p := h.poller(poller.Config{}, h.deps())
	evs := h.stream()
	cycle(t, p)
	for _, id := range h.sim.IDs("tasks")[:5] {
		raw, _ := h.sim.Get("tasks", id)
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		slices.Reverse(keys)
		var b strings.Builder
		b.WriteString("{\n")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(" ,\n")
			}
			fmt.Fprintf(&b, "  %q :  %s", k, fields[k])
		}
		b.WriteString("\n}")
		if err := h.sim.SetRaw("tasks", id, []byte(b.String())); err != nil {
			t.Fatal(err)
		}
		if now, _ := h.sim.Get("tasks", id); string(now) == string(raw) {
			t.Fatal("SetRaw did not change the bytes; the test proves nothing")
		}
	}
	cycle(t, p)
	if got := evs.next(); len(got) != 0 {
		t.Errorf("reordered keys published %d events: %+v", len(got), got)
	}
}

func TestABABPublishesThreeUpdates(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 3, SeedItems: 10, Resources: []string{"tasks"}})
	p := h.poller(poller.Config{}, h.deps())
	evs := h.stream()
	cycle(t, p)
	id := h.sim.IDs("tasks")[3]
	raw, _ := h.sim.Get("tasks", id)
	var a map[string]json.RawMessage
	_ = json.Unmarshal(raw, &a)
	b := map[string]json.RawMessage{}
	for k, v := range a {
		b[k] = v
	}
	b["title"] = json.RawMessage(`"B"`)
	aRaw, _ := json.Marshal(a)
	bRaw, _ := json.Marshal(b)
	for _, state := range [][]byte{bRaw, aRaw, bRaw} {
		if err := h.sim.SetRaw("tasks", id, state); err != nil {
			t.Fatal(err)
		}
		cycle(t, p)
	}
	got := evs.next()
	if len(got) != 3 {
		t.Fatalf("%d events, want 3 updates", len(got))
	}
	// The ids are not in the body; rebuild them the way the bridge does.
	seen := map[uint64]bool{}
	for i, e := range got {
		if e.Op != events.OpUpdated || !slices.Equal(e.Changed, []string{"title"}) {
			t.Errorf("event %d = %s %v", i, e.Op, e.Changed)
		}
		if i > 0 && e.Revision <= got[i-1].Revision {
			t.Errorf("revision %d after %d: not increasing", e.Revision, got[i-1].Revision)
		}
		seen[e.Revision] = true
	}
	if len(seen) != 3 {
		t.Errorf("revisions %v are not distinct, so neither are the event ids", seen)
	}
	if string(got[0].After) != string(bRaw) || string(got[1].After) != string(aRaw) || string(got[2].Before) != string(aRaw) {
		t.Errorf("states do not follow A→B→A→B")
	}
}

func TestFailingPageHoldsDeletesUntilItRecovers(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 4, SeedItems: 500, Resources: []string{"tasks"}})
	p := h.poller(poller.Config{}, h.deps())
	evs := h.stream()
	cycle(t, p)
	ids := h.sim.IDs("tasks")
	deleted := []string{ids[5], ids[150], ids[480]} // before, on and after the failing page
	for _, id := range deleted {
		if err := h.sim.Delete("tasks", id); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.sim.SetFaults(sim.Faults{FailPage: sim.FailPage{Resource: "tasks", Page: 2}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, err := p.RunOnce(context.Background())
		if !errors.Is(err, poller.ErrIncomplete) || !errors.Is(err, rockety.ErrTransient) {
			t.Fatalf("cycle with a failing page: err = %v, want ErrIncomplete", err)
		}
		if got := evs.next(); len(got) != 0 {
			t.Fatalf("a failing page published %d events: %+v", len(got), got)
		}
	}
	if err := h.sim.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	cycle(t, p)
	got := evs.next()
	var gotIDs []string
	for _, e := range got {
		if e.Op != events.OpDeleted {
			t.Errorf("unexpected %s %s", e.Op, e.ID)
		}
		gotIDs = append(gotIDs, e.ID)
	}
	slices.Sort(gotIDs)
	want := slices.Clone(deleted)
	slices.Sort(want)
	if !slices.Equal(gotIDs, want) {
		t.Errorf("deleted %v, want %v", gotIDs, want)
	}
	cycle(t, p)
	if got := evs.next(); len(got) != 0 {
		t.Errorf("deletes published again: %+v", got)
	}
}

func TestPageDriftNeverMakesAFalseDelete(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 5, SeedItems: 1000, Resources: []string{"tasks"}})
	p := h.poller(poller.Config{}, h.deps())
	evs := h.stream()
	cycle(t, p)
	start := h.sim.LastSeq()
	if err := h.sim.SetFaults(sim.Faults{DriftInserts: 3}); err != nil {
		t.Fatal(err)
	}
	var all []events.Event
	for range 4 {
		stats := cycle(t, p)
		all = append(all, evs.next()...)
		t.Logf("drifting cycle: %d pages, %d seen, %d seen twice, %d suspected, %d still there",
			stats.Pages, stats.Seen, stats.Dupes, stats.Suspected, stats.StillThere)
	}
	if err := h.sim.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		cycle(t, p)
		all = append(all, evs.next()...)
	}
	inserted := map[string]bool{}
	for _, m := range h.sim.MutationsSince(start) {
		if m.Op != sim.OpCreated {
			t.Fatalf("unexpected mutation %+v", m)
		}
		inserted[m.ID] = true
	}
	if len(inserted) < 100 {
		t.Fatalf("only %d inserts: the drift did not happen", len(inserted))
	}
	created := map[string]int{}
	for _, e := range all {
		if e.Op != events.OpCreated {
			t.Errorf("drift produced a %s of %s", e.Op, e.ID)
			continue
		}
		created[e.ID]++
	}
	for id := range inserted {
		if created[id] != 1 {
			t.Errorf("inserted item %s created %d times", id, created[id])
		}
	}
	if len(created) != len(inserted) {
		t.Errorf("%d created events for %d inserts", len(created), len(inserted))
	}
}

func TestMassDeleteGuard(t *testing.T) {
	for _, tt := range []struct {
		name      string
		deleted   int
		wantGuard bool
	}{
		{"over the ratio", 60, true},
		{"below the ratio", 30, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, sim.Options{Seed: 6, SeedItems: 100, Resources: []string{"tasks"}})
			p := h.poller(poller.Config{MaxDeleteRatio: 0.5}, h.deps())
			evs := h.stream()
			cycle(t, p)
			for _, id := range h.sim.IDs("tasks")[:tt.deleted] {
				if err := h.sim.Delete("tasks", id); err != nil {
					t.Fatal(err)
				}
			}
			h.sim.ResetStats()
			stats := cycle(t, p)
			got := evs.next()
			if stats.GuardTripped != tt.wantGuard {
				t.Errorf("guard tripped = %v, want %v (%+v)", stats.GuardTripped, tt.wantGuard, stats)
			}
			if tt.wantGuard {
				if len(got) != 0 {
					t.Errorf("the guard let %d events through", len(got))
				}
				if n := h.sim.Stats().ByMethod["GET"]; n != 1 {
					t.Errorf("%d GETs: a tripped guard should not confirm one by one", n)
				}
				return
			}
			if len(got) != tt.deleted || stats.Deleted != tt.deleted {
				t.Errorf("%d delete events, want %d", len(got), tt.deleted)
			}
		})
	}
}

func TestSnapshotInitialSync(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 7, SeedItems: 120, Resources: []string{"users"}})
	p := h.poller(poller.Config{Resource: "users", InitialSync: poller.SyncSnapshot}, h.deps())
	evs := h.stream()
	stats := cycle(t, p)
	got := evs.next()
	if len(got) != 120 || stats.Snapshot != 120 {
		t.Fatalf("%d events, want 120 snapshots", len(got))
	}
	for _, e := range got {
		if e.Op != events.OpSnapshot || e.Before != nil || e.After == nil {
			t.Fatalf("event %+v", e)
		}
	}
	// A restart does not snapshot again.
	p2 := h.poller(poller.Config{Resource: "users", InitialSync: poller.SyncSnapshot}, h.deps())
	cycle(t, p2)
	if got := evs.next(); len(got) != 0 {
		t.Errorf("a restart published %d events", len(got))
	}
}

// TestDuplicateWithAnotherState: the event id a cycle publishes is taken
// already by an event that carries another state — a command's
// write-through published A→C and had not stored C yet when this cycle,
// which read the API while it was D, published A→D with the same id.
// JetStream keeps A→C; the cycle stores C, not D, so the next cycle
// reports C→D and the item's events stay a chain.
func TestDuplicateWithAnotherState(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 5, SeedItems: 10, Resources: []string{"tasks"}})
	deps := h.deps()
	p := h.poller(poller.Config{}, deps)
	evs := h.stream()
	cycle(t, p)
	id := h.sim.IDs("tasks")[2]
	a, _ := h.sim.Get("tasks", id)
	withTitle := func(title string) []byte {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(a, &m)
		m["title"] = json.RawMessage(`"` + title + `"`)
		raw, _ := json.Marshal(m)
		return raw
	}
	c, d := withTitle("C"), withTitle("D")
	stored, err := publisher.NewStateStore(h.js, h.res.State).Lookup(context.Background(), "tasks", []string{id})
	if err != nil {
		t.Fatal(err)
	}
	entry := stored[0]
	e := events.Event{Resource: "tasks", ID: id, Op: events.OpUpdated, Revision: events.ChangeRevision(entry.Revision),
		Before: a, After: c, Changed: []string{"title"}, DetectedAt: time.Now().UTC()}
	taken := []plan.Outgoing{{EventID: events.EventID("tasks", id, events.OpUpdated, entry.Revision), Event: e}}
	if err := deps.Sink.Publish(context.Background(), taken, func(int, plan.Ack) {}); err != nil {
		t.Fatal(err)
	}
	evs.next()

	if err := h.sim.SetRaw("tasks", id, d); err != nil {
		t.Fatal(err)
	}
	if stats := cycle(t, p); stats.Updated != 0 {
		t.Errorf("the dropped duplicate counted as published: %+v", stats)
	}
	if got := evs.next(); len(got) != 0 {
		t.Fatalf("%d events stored beside the one with the same id", len(got))
	}
	cycle(t, p)
	got := evs.next()
	if len(got) != 1 || got[0].Op != events.OpUpdated || string(got[0].Before) != string(c) || string(got[0].After) != string(d) {
		t.Fatalf("after the duplicate: %+v; want one update C→D", got)
	}
	if got[0].Revision <= e.Revision {
		t.Errorf("revision %d after %d", got[0].Revision, e.Revision)
	}
	if cycle(t, p); len(evs.next()) != 0 {
		t.Error("a third cycle published more")
	}
}

// TestDeleteAfterAnUncommittedUpdate: a command's write-through published
// an update A→C of an item and did not store C (its bridge died between
// the two); then the item was deleted. The cycle must not publish a
// delete that replaces A as well (two events of one revision, the delete's
// before A where subscribers last saw C): it stores C, as a recovery
// would, and the next cycle deletes C.
func TestDeleteAfterAnUncommittedUpdate(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 5, SeedItems: 20, Resources: []string{"tasks"}})
	deps := h.deps()
	p := h.poller(poller.Config{}, deps)
	evs := h.stream()
	cycle(t, p)
	id := h.sim.IDs("tasks")[3]
	a, _ := h.sim.Get("tasks", id)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(a, &m)
	m["title"] = json.RawMessage(`"C"`)
	c, _ := json.Marshal(m)
	stored, err := publisher.NewStateStore(h.js, h.res.State).Lookup(context.Background(), "tasks", []string{id})
	if err != nil {
		t.Fatal(err)
	}
	update := events.Event{Resource: "tasks", ID: id, Op: events.OpUpdated, Revision: events.ChangeRevision(stored[0].Revision),
		Before: a, After: c, Changed: []string{"title"}, DetectedAt: time.Now().UTC()}
	out := []plan.Outgoing{{EventID: events.EventID("tasks", id, events.OpUpdated, stored[0].Revision), Event: update}}
	if err := deps.Sink.Publish(context.Background(), out, func(int, plan.Ack) {}); err != nil {
		t.Fatal(err)
	}
	evs.next()
	if err := h.sim.Delete("tasks", id); err != nil {
		t.Fatal(err)
	}

	cycle(t, p)
	if got := evs.next(); len(got) != 0 {
		t.Fatalf("the cycle after the uncommitted update published %+v; want nothing until the update is stored", got)
	}
	cycle(t, p)
	got := evs.next()
	if len(got) != 1 || got[0].Op != events.OpDeleted || string(got[0].Before) != string(c) || got[0].Revision <= update.Revision {
		t.Fatalf("then: %+v; want one delete of C, after revision %d", got, update.Revision)
	}
}
