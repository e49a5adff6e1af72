package poller

import (
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/plan"
)

func TestNextKind(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	cursor := now.Add(-time.Minute)
	recent := now.Add(-5 * time.Minute)
	on := func(b plan.Bookmark) schedule {
		return schedule{incremental: true, synced: true, initial: SyncBaseline, bookmark: b, fullEvery: 15 * time.Minute}
	}
	tests := []struct {
		name string
		s    schedule
		want Kind
	}{
		{"first cycle of a resource, baseline", schedule{incremental: true, initial: SyncBaseline, fullEvery: time.Minute}, KindFull},
		{"first cycle of a resource, snapshot", schedule{incremental: true, initial: SyncSnapshot, fullEvery: time.Minute}, KindSnapshot},
		{"synced, incremental off", schedule{synced: true, bookmark: plan.Bookmark{Cursor: cursor, LastFull: recent}}, KindFull},
		{"no cursor yet (no item had a changed-at value)", on(plan.Bookmark{LastFull: recent}), KindFull},
		{"no full traversal on record (a record of an older bridge)", on(plan.Bookmark{Cursor: cursor}), KindFull},
		{"cursor and a recent full traversal", on(plan.Bookmark{Cursor: cursor, LastFull: recent}), KindIncremental},
		{"the full traversal is due", on(plan.Bookmark{Cursor: cursor, LastFull: now.Add(-15 * time.Minute)}), KindFull},
		{"the full traversal is overdue (a bridge down for a day)", on(plan.Bookmark{Cursor: cursor, LastFull: now.Add(-24 * time.Hour)}), KindFull},
		{"the last full traversal is in the future (the clock was set back)", on(plan.Bookmark{Cursor: cursor, LastFull: now.Add(time.Hour)}), KindFull},
		{"the filter is distrusted", func() schedule {
			s := on(plan.Bookmark{Cursor: cursor, LastFull: recent})
			s.distrusted = true
			return s
		}(), KindFull},
	}
	for _, tt := range tests {
		if got := tt.s.nextKind(now); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestFilterTime(t *testing.T) {
	cursor := time.Date(2026, 12, 2, 12, 0, 30, 999_999_000, time.FixedZone("CET", 3600))
	tests := []struct {
		lookback time.Duration
		want     string
	}{
		{0, "2026-12-02T11:00:30Z"}, // down to the second: never later than the cursor
		{time.Minute, "2026-12-02T10:59:30Z"},
		{1500 * time.Millisecond, "2026-12-02T11:00:29Z"},
		{24 * time.Hour, "2026-12-01T11:00:30Z"},
	}
	for _, tt := range tests {
		got := filterTime(cursor, tt.lookback)
		if got.Format(time.RFC3339) != tt.want || got.After(cursor.Add(-tt.lookback)) {
			t.Errorf("lookback %s: %s, want %s", tt.lookback, got.Format(time.RFC3339Nano), tt.want)
		}
	}
}

func TestChangedAt(t *testing.T) {
	tests := []struct {
		item string
		want string // "" when not a time
	}{
		{`{"id":1,"updated_at":"2026-12-02T12:00:00Z"}`, "2026-12-02T12:00:00Z"},
		{`{"id":1,"updated_at":"2026-12-02T12:00:00.123456Z"}`, "2026-12-02T12:00:00.123456Z"},
		{`{"id":1,"updated_at":"2026-12-02T13:00:00+01:00"}`, "2026-12-02T12:00:00Z"},
		{`{"id":1}`, ""},
		{`{"id":1,"updated_at":null}`, ""},
		{`{"id":1,"updated_at":""}`, ""},
		{`{"id":1,"updated_at":"yesterday"}`, ""},
		{`{"id":1,"updated_at":"2026-12-02"}`, ""},
		{`{"id":1,"updated_at":1764676800}`, ""}, // a Unix time is not RFC 3339
		{`{"id":1,"meta":{"updated_at":"2026-12-02T12:00:00Z"}}`, ""},
	}
	for _, tt := range tests {
		got, ok := changedAt([]byte(tt.item), "updated_at")
		switch {
		case tt.want == "" && ok:
			t.Errorf("%s: %s, want no time", tt.item, got)
		case tt.want != "" && (!ok || got.UTC().Format(time.RFC3339Nano) != tt.want):
			t.Errorf("%s: %s %v, want %s", tt.item, got, ok, tt.want)
		}
	}
}

// TestCoverage: a change is one an incremental cycle should have seen when
// it lies between the first filter time since the last full traversal and
// the lookback before the latest cycle's start (or cursor, if later).
func TestCoverage(t *testing.T) {
	base := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	var c coverage
	if c.covers(at(0)) {
		t.Fatal("an empty coverage covers something")
	}
	const lookback = 3 * time.Second
	// A cycle starting at 10 s, filter from 5 s, cursor 9 s: 5 s to 7 s.
	c.add(at(5), at(10), at(9), lookback)
	// One starting at 15 s, filter from 6 s, cursor behind: up to 12 s.
	c.add(at(6), at(15), at(9), lookback)
	tests := []struct {
		t    float64
		want bool
	}{
		{4.9, false}, // before every filter time: a full traversal's to find
		{5, true},
		{11.9, true},
		{12, true},
		{12.1, false}, // within the lookback of the last cycle: the next still asks
		{20, false},
	}
	for _, tt := range tests {
		if got := c.covers(at(tt.t)); got != tt.want {
			t.Errorf("covers(%vs) = %v, want %v", tt.t, got, tt.want)
		}
	}
	// A cursor ahead of the bridge's clock (the API's clock runs fast)
	// counts too.
	c.add(at(6), at(16), at(30), lookback)
	if !c.covers(at(26)) || c.covers(at(27.5)) {
		t.Errorf("the cursor's end is not used: %+v", c)
	}
	// A cycle whose lookback reaches back past its filter time adds nothing.
	var d coverage
	d.add(at(10), at(11), at(10), lookback)
	if d.covers(at(10)) {
		t.Errorf("a cycle inside its own lookback covered %+v", d)
	}
}

func TestLastOfEach(t *testing.T) {
	ch := func(id, v string) Change { return Change{ID: id, Raw: []byte(v)} }
	tests := []struct {
		in   []Change
		want string
	}{
		{nil, ""},
		{[]Change{ch("1", "a"), ch("2", "b")}, "1a 2b"},
		{[]Change{ch("1", "a"), ch("2", "b"), ch("1", "c")}, "2b 1c"},
		{[]Change{ch("1", "a"), ch("1", "b"), ch("1", "c")}, "1c"},
	}
	for _, tt := range tests {
		var got []string
		for _, c := range lastOfEach(tt.in) {
			got = append(got, c.ID+string(c.Raw))
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("lastOfEach = %q, want %q", got, tt.want)
		}
	}
}

// TestRecheckMarksNothingSeen: a catch-up's list compares an item the
// cycle saw already, and leaves the traversal's own page to compare it
// again when it comes.
func TestRecheckMarksNothingSeen(t *testing.T) {
	ix := NewIndex(0)
	a, _ := plan.Hash([]byte(`{"id":7,"t":"a"}`))
	ix.Load("7", a, 0, 5, false)
	if _, _, err := ix.Diff(1, items(`{"id":7,"t":"a"}`)); err != nil { // its page: unchanged
		t.Fatal(err)
	}
	changes, err := ix.Recheck(1, items(`{"id":7,"t":"b"}`, `{"id":8,"t":"new"}`))
	if err != nil || len(changes) != 2 || !changes[0].Live || changes[1].Live {
		t.Fatalf("Recheck = %+v, %v; want the update of 7 and the create of 8", changes, err)
	}
	changes, dupes, err := ix.Diff(1, items(`{"id":8,"t":"new"}`))
	if err != nil || dupes != 0 || len(changes) != 1 {
		t.Errorf("8's own page after a catch-up listed it: %+v, %d dupes, %v", changes, dupes, err)
	}
}
