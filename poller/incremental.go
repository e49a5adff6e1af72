package poller

import (
	"encoding/json"
	"time"

	"github.com/rockety-io/rockety-bridge/plan"
)

// Kind says what a cycle reads.
type Kind string

// The kinds of cycle, as cycle reports and metrics name them.
const (
	// KindFull traverses the whole list: the only source of deletes by
	// absence.
	KindFull Kind = "full"
	// KindIncremental lists only items changed since the cursor
	// (ROCKETY_CHANGED_SINCE); it never deletes by absence.
	KindIncremental Kind = "incremental"
	// KindSnapshot is a full traversal that publishes one snapshot event
	// per item (BRIDGE_INITIAL_SYNC=snapshot).
	KindSnapshot Kind = "snapshot"
)

// schedule is what decides a cycle's kind.
type schedule struct {
	incremental bool // ROCKETY_CHANGED_SINCE names the resource
	distrusted  bool // the API ignored the filter: full traversals only
	synced      bool
	initial     InitialSync
	bookmark    plan.Bookmark
	fullEvery   time.Duration
}

// nextKind: incremental when the resource is configured for it, has a
// cursor, and had a full traversal within fullEvery; full otherwise. The
// first cycle of a resource is full (a snapshot with
// BRIDGE_INITIAL_SYNC=snapshot), and so is the first without a cursor: the
// filter needs a time to ask from.
func (s schedule) nextKind(now time.Time) Kind {
	switch {
	case !s.synced && s.initial == SyncSnapshot:
		return KindSnapshot
	case !s.synced, !s.incremental, s.distrusted, s.bookmark.Cursor.IsZero(), s.bookmark.LastFull.IsZero():
		return KindFull
	case now.Sub(s.bookmark.LastFull) >= s.fullEvery, s.bookmark.LastFull.After(now):
		// A last full traversal in the future: the clock was set back,
		// and waiting for it to catch up could take any time.
		return KindFull
	}
	return KindIncremental
}

// filterTime is the time an incremental cycle asks from: the cursor minus
// the lookback, down to the second (the form every API parses; asking a
// little earlier costs only items the diff finds unchanged).
func filterTime(cursor time.Time, lookback time.Duration) time.Time {
	return cursor.Add(-lookback).UTC().Truncate(time.Second)
}

// changedAt reads an item's changed-at field (RFC 3339). A missing or
// malformed value is not a time: the item is still diffed, and does not
// move the cursor.
func changedAt(item []byte, field string) (time.Time, bool) {
	raw, ok := plan.Field(item, field)
	if !ok || len(raw) < 2 || raw[0] != '"' {
		return time.Time{}, false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// coverage is the span of changed-at times that incremental cycles since
// the last full traversal have asked about and left behind: a change in
// it that a full traversal finds is one the filter missed
// (incremental_missed_total). It ends at the lookback before the later of
// the cycle's start (the bridge's clock) and the cursor (the API's), so
// that a change the API shows the filter late, within the lookback, is
// not counted: the next incremental cycle still asks for it.
type coverage struct {
	from, to time.Time
}

func (c *coverage) add(since, start, cursor time.Time, lookback time.Duration) {
	end := start
	if cursor.After(end) {
		end = cursor
	}
	end = end.Add(-lookback)
	if end.Before(since) {
		return
	}
	if c.from.IsZero() || since.Before(c.from) {
		c.from = since
	}
	if end.After(c.to) {
		c.to = end
	}
}

// covers reports whether an incremental cycle should have seen a change
// made at t.
func (c coverage) covers(t time.Time) bool {
	return !c.from.IsZero() && !t.Before(c.from) && !t.After(c.to)
}
