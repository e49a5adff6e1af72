package poller_test

import (
	"context"
	"errors"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// incremental is a poller configuration with incremental polling on and
// no full traversal due within a test, unless fullEvery says otherwise.
func incremental(lookback, fullEvery time.Duration) poller.Config {
	if fullEvery == 0 {
		fullEvery = time.Hour
	}
	return poller.Config{Interval: 30 * time.Millisecond, ChangedSince: "updated_since", Lookback: lookback, FullEvery: fullEvery}
}

// lostDeletesOnly fails unless every problem of r is a delete no event
// reported yet: what incremental cycles leave to the next full traversal.
func lostDeletesOnly(t *testing.T, r judge.Report) int {
	t.Helper()
	n := 0
	for _, p := range r.Problems {
		if p.Kind != judge.Lost || !strings.Contains(p.What, "the API deleted the item") && !strings.Contains(p.What, "no event says so") {
			t.Errorf("%s", p)
			continue
		}
		n++
	}
	return n
}

// TestIncrementalChurnIsExact: under steady churn, incremental cycles
// publish every create and update once and no delete; the next full
// traversal publishes the deletes, and then every change is accounted for.
func TestIncrementalChurnIsExact(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 21, SeedItems: 400, Resources: []string{"tasks"}, Churn: 60})
	run := startChurnWith(t, h, incremental(time.Second, 0))
	time.Sleep(3 * time.Second)
	run.settle(t)
	kinds := run.rec.kinds()
	if kinds[poller.KindFull] != 0 || kinds[poller.KindIncremental] < 10 {
		t.Fatalf("cycles after the baseline: %v, want incremental ones only", kinds)
	}
	pages := run.rec.sum(t, func(s poller.CycleStats) int { return s.Pages })
	t.Logf("%d incremental cycles read %d pages", kinds[poller.KindIncremental], pages)

	evs, r := run.report(t, "")
	for _, o := range evs {
		if o.Event.Op == events.OpDeleted {
			t.Fatalf("an incremental cycle published a delete: %+v", o.Event)
		}
	}
	pending := lostDeletesOnly(t, r)
	if r.Mutations[sim.OpDeleted] == 0 || r.Events[events.OpUpdated] == 0 || r.Events[events.OpCreated] == 0 {
		t.Fatalf("too little churn to prove anything: %v, events %v", r.Mutations, r.Events)
	}

	// A full traversal (a restart after the interval has passed) brings the deletes.
	full := h.poller(incremental(time.Second, time.Millisecond), h.deps())
	if s := cycle(t, full); s.Kind != poller.KindFull || s.Deleted == 0 || s.Missed != 0 {
		t.Errorf("the full traversal: %+v", s)
	}
	evs = run.judge(t)
	t.Logf("%d events; %d items were deleted and waited for the full traversal", len(evs), pending)
}

// TestLaggingFilterMissesNothingWithinTheLookback: the API shows a change
// to the filter 1.5 s late (its search index lags); a 3 s lookback asks
// again for it, so incremental cycles miss nothing and the full traversal
// finds nothing they should have seen.
func TestLaggingFilterMissesNothingWithinTheLookback(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 22, SeedItems: 300, Resources: []string{"tasks"}, Churn: 40,
		Faults: sim.Faults{ChangesLag: 1500 * time.Millisecond}})
	run := startChurnWith(t, h, incremental(3*time.Second, 0))
	time.Sleep(3 * time.Second)
	if err := h.sim.SetChurn(0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the last changes become visible to the filter
	run.settle(t)
	_, r := run.report(t, "")
	lostDeletesOnly(t, r)

	full := h.poller(incremental(3*time.Second, time.Millisecond), h.deps())
	s := cycle(t, full)
	if s.Kind != poller.KindFull || s.Missed != 0 || s.Created+s.Updated != 0 {
		t.Errorf("the full traversal found what the incremental cycles should have: %+v", s)
	}
	run.judge(t)
}

// TestIgnoredFilterFallsBackToFullTraversals: an API that ignores the
// parameter answers the whole list; the first incremental cycle sees items
// older than it asked for, says so once, and from then on the resource is
// polled by full traversals, deletes included, and stays exact.
func TestIgnoredFilterFallsBackToFullTraversals(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 23, SeedItems: 300, Resources: []string{"tasks"}, Churn: 40,
		Faults: sim.Faults{IgnoreChangedSince: true}})
	run := startChurnWith(t, h, incremental(time.Second, 0))
	time.Sleep(2 * time.Second)
	run.settle(t)
	run.rec.mu.Lock()
	var distrusted []string
	afterFallback := map[poller.Kind]int{}
	for _, s := range run.rec.cycles {
		if len(distrusted) > 0 {
			afterFallback[s.Kind]++
		}
		if s.Distrusted != "" {
			distrusted = append(distrusted, s.Distrusted)
			if s.Kind != poller.KindIncremental || s.Complete {
				t.Errorf("the cycle that found the filter ignored: %+v", s)
			}
		}
	}
	run.rec.mu.Unlock()
	if len(distrusted) != 1 || !strings.Contains(distrusted[0], "updated_since") {
		t.Fatalf("fallbacks: %q, want one naming the parameter", distrusted)
	}
	if afterFallback[poller.KindIncremental] != 0 || afterFallback[poller.KindFull] < 3 {
		t.Errorf("cycles after the fallback: %v, want full traversals only", afterFallback)
	}
	t.Log(distrusted[0])
	evs := run.judge(t)
	deletes := 0
	for _, o := range evs {
		if o.Event.Op == events.OpDeleted {
			deletes++
		}
	}
	if deletes == 0 {
		t.Error("no deletes: the full traversals after the fallback proved nothing")
	}
}

// TestSoftDeletesFromIncrementalCycles: an API that marks deleted items
// (deleted_at) and keeps listing them; every delete is published from the
// incremental cycles, with the last live state as before, a restored item
// is a create, and an item left marked publishes nothing more.
func TestSoftDeletesFromIncrementalCycles(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 24, SeedItems: 300, Resources: []string{"tasks"}, Churn: 60,
		Faults: sim.Faults{SoftDelete: true}})
	cfg := incremental(time.Second, 0)
	cfg.DeletedField = "deleted_at"
	run := startChurnWith(t, h, cfg)
	time.Sleep(4 * time.Second)
	run.settle(t)
	if kinds := run.rec.kinds(); kinds[poller.KindFull] != 0 {
		t.Fatalf("cycles: %v, want incremental ones only", kinds)
	}
	evs, r := run.report(t, "deleted_at")
	judge.Fail(t, r, nil)
	restored := 0
	deleted := map[string]bool{}
	for _, o := range evs {
		switch o.Event.Op {
		case events.OpDeleted:
			deleted[o.Event.ID] = true
		case events.OpCreated:
			if deleted[o.Event.ID] {
				restored++
			}
		}
	}
	t.Logf("%d events: %v; %d deletes, %d items restored after one", len(evs), r.Events, len(deleted), restored)
	if len(deleted) == 0 {
		t.Fatal("no soft deletes to judge")
	}

	// Listed again and again, the soft-deleted items cost nothing: no
	// lookup, no event, in incremental and full cycles alike.
	evsAfter := h.stream()
	evsAfter.next()
	again := h.poller(func() poller.Config { c := cfg; c.FullEvery = time.Millisecond; return c }(), h.deps())
	for range 2 {
		if s := cycle(t, again); s.Created+s.Updated+s.Deleted != 0 {
			t.Errorf("a quiet cycle published: %+v", s)
		}
	}
	if got := evsAfter.next(); len(got) != 0 {
		t.Errorf("%d events from quiet cycles", len(got))
	}
}

// TestRestartKeepsTheCursorAndTheFullTraversalSchedule: a restarted bridge
// goes on with an incremental cycle from the stored cursor, one request
// when nothing changed; a full traversal comes when the stored time of the
// last one says it is due, not at every start.
func TestRestartKeepsTheCursorAndTheFullTraversalSchedule(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 25, SeedItems: 1000, Resources: []string{"tasks"}})
	cfg := incremental(time.Second, 0)
	p := h.poller(cfg, h.deps())
	if s := cycle(t, p); s.Kind != poller.KindFull || s.Cursor.IsZero() {
		t.Fatalf("first cycle %+v, want a full traversal that sets the cursor", s)
	}
	ids := h.sim.IDs("tasks")
	if err := h.sim.Update("tasks", ids[10], map[string]any{"status": "blocked"}); err != nil {
		t.Fatal(err)
	}
	s := cycle(t, p)
	if s.Kind != poller.KindIncremental || s.Updated != 1 || s.Pages != 1 {
		t.Fatalf("second cycle %+v, want one incremental page with the update", s)
	}
	cursor := s.Cursor

	before := h.sim.Stats().Total
	restarted := h.poller(cfg, h.deps())
	s = cycle(t, restarted)
	if s.Kind != poller.KindIncremental || !s.Cursor.Equal(cursor) || s.Created+s.Updated+s.Deleted != 0 {
		t.Errorf("first cycle after a restart %+v, want an incremental one from cursor %s with nothing new", s, cursor)
	}
	if n := h.sim.Stats().Total - before; n != 1 {
		t.Errorf("an idle incremental cycle after a restart made %d requests, want 1", n)
	}

	// Due: the next start runs a full traversal first.
	time.Sleep(20 * time.Millisecond)
	due := h.poller(func() poller.Config { c := cfg; c.FullEvery = 10 * time.Millisecond; return c }(), h.deps())
	if s := cycle(t, due); s.Kind != poller.KindFull || s.Pages < 10 {
		t.Errorf("first cycle after a restart with a full traversal due: %+v", s)
	}
}

// TestKilledBetweenPublishAndCommitInAnIncrementalCycle: the bridge dies
// after JetStream acknowledged an incremental cycle's events and before
// their state and the cursor were stored. The next start commits them from
// the journal, asks from the old cursor again, and publishes nothing twice.
func TestKilledBetweenPublishAndCommitInAnIncrementalCycle(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 26, SeedItems: 500, Resources: []string{"tasks"}})
	cfg := incremental(time.Second, 0)
	deps := h.deps()
	mirror := &crashingMirror{Mirror: deps.Mirror}
	deps.Mirror = mirror
	p := h.poller(cfg, deps)
	evs := h.stream()
	cycle(t, p)
	ids := h.sim.IDs("tasks")
	for _, id := range ids[:4] {
		if err := h.sim.Update("tasks", id, map[string]any{"status": "blocked"}); err != nil {
			t.Fatal(err)
		}
	}
	newID, _ := h.sim.Create("tasks", map[string]any{"title": "created before the kill"})
	mirror.crash = true
	s, err := p.RunOnce(context.Background())
	if !errors.Is(err, errKilled) || s.Kind != poller.KindIncremental {
		t.Fatalf("cycle %+v err %v, want the simulated kill in an incremental cycle", s, err)
	}
	if got := evs.next(); len(got) != 5 {
		t.Fatalf("%d events before the kill, want 4 updates and 1 create", len(got))
	}
	// While it is down, one item changes again.
	if err := h.sim.Update("tasks", ids[0], map[string]any{"status": "done"}); err != nil {
		t.Fatal(err)
	}
	restarted := h.poller(cfg, h.deps())
	s = cycle(t, restarted)
	got := evs.next()
	if s.Kind != poller.KindIncremental || len(got) != 1 || got[0].Op != events.OpUpdated || got[0].ID != ids[0] {
		t.Fatalf("after the restart: %+v and %d events %+v, want one incremental update of %s", s, len(got), got, ids[0])
	}
	if s.Created != 0 {
		t.Errorf("%s was created again", newID)
	}
	if s := cycle(t, restarted); s.Created+s.Updated+s.Deleted != 0 {
		t.Errorf("a quiet cycle published %+v", s)
	}
}

// TestFullTraversalCountsWhatTheFilterMissed: a filter that silently
// leaves a change out (here: an index an hour behind) is caught by the
// next full traversal, which publishes the change and counts it as missed.
func TestFullTraversalCountsWhatTheFilterMissed(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 27, SeedItems: 200, Resources: []string{"tasks"}})
	const lookback = 100 * time.Millisecond
	cfg := incremental(lookback, 2*time.Second)
	p := h.poller(cfg, h.deps())
	evs := h.stream()
	cycle(t, p)
	if err := h.sim.SetFaults(sim.Faults{ChangesLag: time.Hour}); err != nil {
		t.Fatal(err)
	}
	id := h.sim.IDs("tasks")[3]
	if err := h.sim.Update("tasks", id, map[string]any{"status": "blocked"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * lookback)
	if s := cycle(t, p); s.Kind != poller.KindIncremental || s.Updated != 0 {
		t.Fatalf("incremental cycle %+v, want one that sees nothing", s)
	}
	time.Sleep(2 * time.Second)
	s := cycle(t, p)
	if s.Kind != poller.KindFull || s.Updated != 1 || s.Missed != 1 {
		t.Fatalf("full traversal %+v, want the update published and counted as missed", s)
	}
	if got := evs.next(); len(got) != 1 || got[0].ID != id || got[0].Op != events.OpUpdated {
		t.Errorf("events %+v, want the update of %s", got, id)
	}
}

// pageHook calls at(n) before it hands on page n of an unfiltered list,
// and onGet before each GET of one item.
type pageHook struct {
	poller.Lister
	at    func(n int)
	onGet func()
}

func (l pageHook) Get(ctx context.Context, resource string, id rockety.ID) (rockety.Item, error) {
	if l.onGet != nil {
		l.onGet()
	}
	return l.Lister.Get(ctx, resource, id)
}

func (l pageHook) Pages(ctx context.Context, resource string, filters ...rockety.Filter) iter.Seq2[*rockety.Page, error] {
	return func(yield func(*rockety.Page, error) bool) {
		for page, err := range l.Lister.Pages(ctx, resource, filters...) {
			if err == nil && len(filters) == 0 {
				l.at(page.Number)
			}
			if !yield(page, err) {
				return
			}
		}
	}
}

// TestFullTraversalCatchesUpOnChanges: a change made during a long full
// traversal to an item whose page was read already arrives in that cycle,
// from the traversal's catch-up on changed items, once.
func TestFullTraversalCatchesUpOnChanges(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 28, SeedItems: 2000, Resources: []string{"tasks"}})
	first := h.sim.IDs("tasks")[0]
	deps := h.deps()
	armed := false
	deps.Lister = pageHook{Lister: deps.Lister, at: func(n int) {
		if n == 10 && armed {
			armed = false
			if err := h.sim.Update("tasks", first, map[string]any{"status": "blocked"}); err != nil {
				t.Error(err)
			}
		}
	}}
	cfg := incremental(time.Second, time.Millisecond) // every cycle is full
	cfg.Interval = time.Nanosecond                    // a catch-up after every page
	p := h.poller(cfg, deps)
	evs := h.stream()
	cycle(t, p) // the first: sets the cursor, no catch-ups
	time.Sleep(5 * time.Millisecond)
	armed = true
	s := cycle(t, p)
	if s.Kind != poller.KindFull || s.CatchUps == 0 || s.Updated != 1 {
		for _, e := range evs.next() {
			t.Logf("%s %s rev %d before %s after %s", e.Op, e.ID, e.Revision, e.Before, e.After)
		}
		t.Fatalf("full traversal %+v, want the update from a catch-up", s)
	}
	got := evs.next()
	if len(got) != 1 || got[0].ID != first || got[0].Op != events.OpUpdated {
		t.Fatalf("events %+v, want one update of %s", got, first)
	}
	time.Sleep(5 * time.Millisecond)
	if s := cycle(t, p); s.Created+s.Updated+s.Deleted != 0 {
		t.Errorf("the next cycle published %+v", s)
	}
}

// TestNoChangedAtValuesMeansFullTraversals: with a changed-at field no
// item has, there is no cursor to ask from: every cycle is a full
// traversal, and changes and deletes arrive as without incremental polling.
func TestNoChangedAtValuesMeansFullTraversals(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 29, SeedItems: 300, Resources: []string{"tasks"}})
	cfg := incremental(time.Second, 0)
	cfg.ChangedAtField = "modified_at"
	p := h.poller(cfg, h.deps())
	evs := h.stream()
	for i := range 3 {
		if s := cycle(t, p); s.Kind != poller.KindFull || !s.Cursor.IsZero() {
			t.Fatalf("cycle %d: %+v, want a full traversal without a cursor", i, s)
		}
	}
	ids := h.sim.IDs("tasks")
	if err := h.sim.Update("tasks", ids[1], map[string]any{"status": "blocked"}); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Delete("tasks", ids[2]); err != nil {
		t.Fatal(err)
	}
	if s := cycle(t, p); s.Kind != poller.KindFull || s.Updated != 1 || s.Deleted != 1 {
		t.Fatalf("cycle after the changes: %+v", s)
	}
	if got := evs.next(); len(got) != 2 {
		t.Errorf("%d events, want the update and the delete", len(got))
	}
}

// TestConfirmingDeletesCatchesUpOnChanges: the GETs that confirm a full
// traversal's deletes take a while at the API's rate; a change made
// meanwhile arrives in that cycle too.
func TestConfirmingDeletesCatchesUpOnChanges(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 30, SeedItems: 300, Resources: []string{"tasks"}})
	ids := h.sim.IDs("tasks")
	deps := h.deps()
	var once sync.Once
	armed := false
	deps.Lister = pageHook{Lister: deps.Lister, at: func(int) {}, onGet: func() {
		if armed {
			once.Do(func() {
				if err := h.sim.Update("tasks", ids[0], map[string]any{"status": "blocked"}); err != nil {
					t.Error(err)
				}
			})
		}
	}}
	cfg := incremental(time.Second, time.Millisecond)
	cfg.Interval = time.Nanosecond
	cfg.ConfirmConcurrency = 1
	p := h.poller(cfg, deps)
	evs := h.stream()
	cycle(t, p)
	for _, id := range ids[100:105] {
		if err := h.sim.Delete("tasks", id); err != nil {
			t.Fatal(err)
		}
	}
	armed = true
	time.Sleep(5 * time.Millisecond)
	s := cycle(t, p)
	if s.Deleted != 5 || s.Updated != 1 {
		t.Fatalf("full traversal %+v, want the 5 deletes and the update made while they were confirmed", s)
	}
	if got := byOp(evs.next()); len(got[events.OpUpdated]) != 1 || got[events.OpUpdated][0].ID != ids[0] {
		t.Errorf("updates %+v, want one of %s", got[events.OpUpdated], ids[0])
	}
}

// TestCatchUpAsksFromWhatItListed: a full traversal's own page shows a
// change newer than one made on a page it read already; the next catch-up
// still asks from what the catch-ups listed, and finds the older change.
func TestCatchUpAsksFromWhatItListed(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 31, SeedItems: 1000, Resources: []string{"tasks"}})
	ids := h.sim.IDs("tasks") // pages of 100: ids[0] on page 1, ids[750] on page 8
	var mu sync.Mutex
	var ahead time.Duration // the poller's clock runs ahead by this
	deps := h.deps()
	deps.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(ahead) }
	armed := false
	deps.Lister = pageHook{Lister: deps.Lister, at: func(n int) {
		switch {
		case !armed:
		case n == 4:
			if err := h.sim.Update("tasks", ids[0], map[string]any{"status": "first"}); err != nil {
				t.Error(err)
			}
			time.Sleep(1100 * time.Millisecond) // the filter's time is in whole seconds
			if err := h.sim.Update("tasks", ids[750], map[string]any{"status": "second"}); err != nil {
				t.Error(err)
			}
		case n == 9: // page 8 showed the second change: a catch-up is due now
			mu.Lock()
			ahead += 2 * time.Hour
			mu.Unlock()
		}
	}}
	cfg := incremental(0, time.Millisecond) // every cycle full, no lookback
	cfg.Interval = time.Hour
	p := h.poller(cfg, deps)
	evs := h.stream()
	cycle(t, p)
	time.Sleep(5 * time.Millisecond)
	armed = true
	s := cycle(t, p)
	if s.Updated != 2 || s.CatchUps != 2 {
		t.Fatalf("full traversal %+v, want both updates, from its two catch-ups (at its first page, and after page 9)", s)
	}
	got := map[string]int{}
	for _, e := range evs.next() {
		got[e.ID]++
	}
	if got[ids[0]] != 1 || got[ids[750]] != 1 {
		t.Errorf("updates %v, want one of %s and one of %s", got, ids[0], ids[750])
	}
}
