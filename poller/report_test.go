package poller

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
)

func TestReportOf(t *testing.T) {
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	finish := start.Add(1500 * time.Millisecond)
	full := CycleStats{Kind: KindFull, Pages: 3, Requests: 4, Seen: 250, Created: 1, Updated: 2, Deleted: 3, Complete: true}
	for _, tc := range []struct {
		name    string
		stats   CycleStats
		err     error
		kind    events.CycleKind
		outcome events.CycleOutcome
		errText string
	}{
		{name: "complete", stats: full, kind: events.CycleFull, outcome: events.CycleComplete},
		{name: "complete with the guard tripped", stats: func() CycleStats { s := full; s.GuardTripped = true; return s }(),
			kind: events.CycleFull, outcome: events.CycleComplete},
		{name: "a page failed", stats: CycleStats{Kind: KindFull, Pages: 2},
			err: fmt.Errorf("%w: tasks: page 3: 500", ErrIncomplete), kind: events.CycleFull, outcome: events.CyclePartial, errText: "page 3: 500"},
		{name: "filter ignored", stats: CycleStats{Kind: KindIncremental, Distrusted: "the API ignores updated_since"},
			kind: events.CycleIncremental, outcome: events.CyclePartial, errText: "the API ignores updated_since"},
		{name: "NATS away", stats: CycleStats{Kind: KindSnapshot, ResyncID: "r-1"}, err: errors.New("nats: timeout"),
			kind: events.CycleSnapshot, outcome: events.CycleFailed, errText: "nats: timeout"},
		{name: "failed before the kind was picked", stats: CycleStats{}, err: errors.New("loading tasks: nats: timeout"),
			kind: events.CycleFull, outcome: events.CycleFailed, errText: "loading tasks"},
		{name: "lease lost", stats: CycleStats{Kind: KindFull}, err: ErrLeaseLost, kind: events.CycleFull, outcome: events.CycleFailed, errText: "lease lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := reportOf("tasks", "bridge-0", tc.stats, start, finish, tc.err)
			if r.Kind != tc.kind || r.Outcome != tc.outcome || r.Resource != "tasks" || r.Instance != "bridge-0" ||
				r.ResyncID != tc.stats.ResyncID || r.GuardTripped != tc.stats.GuardTripped {
				t.Errorf("report %+v; want kind %s, outcome %s", r, tc.kind, tc.outcome)
			}
			if (tc.errText == "") != (r.Error == "") || (tc.errText != "" && !strings.Contains(r.Error, tc.errText)) {
				t.Errorf("error %q, want one with %q", r.Error, tc.errText)
			}
			if r.StartedAt.Location() != time.UTC || !r.StartedAt.Equal(start) || !r.FinishedAt.Equal(finish) {
				t.Errorf("times %s–%s, want %s–%s in UTC", r.StartedAt, r.FinishedAt, start, finish)
			}
			if r.Pages != tc.stats.Pages || r.Requests != tc.stats.Requests || r.Items != tc.stats.Seen ||
				r.Created != tc.stats.Created || r.Updated != tc.stats.Updated || r.Deleted != tc.stats.Deleted {
				t.Errorf("counts %+v from %+v", r, tc.stats)
			}
		})
	}
}

// A resync accepted before the lease was lost is dropped with it, not run
// whenever the lease comes back.
func TestResyncDroppedWithTheLease(t *testing.T) {
	// Nothing here is called: only the lease's time and the request matter.
	p, err := New(Config{Resource: "tasks"}, Deps{Lister: struct{ Lister }{}, Mirror: struct{ Mirror }{},
		Checkpoints: struct{ Checkpoints }{}, Sink: struct{ Sink }{}, Journal: struct{ Journal }{}, Lease: struct{ Lease }{}})
	if err != nil {
		t.Fatal(err)
	}
	p.setLease(time.Now().Add(time.Minute))
	if _, err := p.Resync("r-1", true); err != nil {
		t.Fatal(err)
	}
	p.setLease(time.Time{})
	if rs := p.takeResync(); rs != nil {
		t.Fatalf("after the lease was lost the resync %+v still waits", rs)
	}
	if _, err := p.Resync("r-2", false); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("Resync without the lease: %v", err)
	}
}
