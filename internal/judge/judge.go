// Package judge holds change events to the truth: the simulator's items at a
// baseline, its mutation log after it, and its items at the end. Compare is
// the one judge every test of the bridge's events uses, in one process or
// across many; Mirror holds the bridge's KV mirror to the API's items.
//
// It is for tests and the reliability suite only.
package judge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// Key names one item.
type Key struct{ Resource, ID string }

func (k Key) String() string { return k.Resource + "/" + k.ID }

// Truth is what the simulator says happened.
type Truth struct {
	// Baseline holds the items when the bridge's baseline cycle had
	// recorded them.
	Baseline map[Key]json.RawMessage
	// Mutations are those after the baseline, oldest first.
	Mutations []sim.Mutation
	// Final holds the API's items once everything settled.
	Final map[Key]json.RawMessage
}

// Observed is one change event as read from the events stream.
type Observed struct {
	Seq   uint64 // stream sequence
	MsgID string // Nats-Msg-Id
	Event events.Event
}

// Kind is a kind of problem. Each one fails a test.
type Kind string

// The kinds of problem.
const (
	Lost        Kind = "lost"         // a change the API made that no event reports
	Duplicate   Kind = "duplicate"    // an event id, or a change, reported twice
	FalseDelete Kind = "false delete" // a delete of an item the API still had
	Invented    Kind = "invented"     // a state or a creation the API never had
	OutOfStep   Kind = "out of step"  // events that do not chain (revision, before)
)

// Kinds lists every kind of problem, in the order reports show them.
var Kinds = []Kind{Lost, Duplicate, FalseDelete, Invented, OutOfStep}

// Problem is one thing the events got wrong, said so a person can look it
// up: the item, the stream sequences, the log sequences.
type Problem struct {
	Kind Kind
	Key  Key
	What string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Kind, p.Key, p.What) }

// Report is the outcome of Compare.
type Report struct {
	Items     int            // items that existed at some point
	Changed   int            // items whose state at the end differs from the baseline
	Mutations map[string]int // by op
	Events    map[events.Op]int
	Problems  []Problem
	// Delays are, for each event after the baseline, the time from the
	// mutation that made the state it reports to its detected_at.
	Delays []time.Duration
}

// Delay returns the q-quantile of the delays (q in [0, 1]).
func (r Report) Delay(q float64) time.Duration {
	if len(r.Delays) == 0 {
		return 0
	}
	d := slices.Sorted(slices.Values(r.Delays))
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

// Count returns how many problems are of kind.
func (r Report) Count(kind Kind) int {
	n := 0
	for _, p := range r.Problems {
		if p.Kind == kind {
			n++
		}
	}
	return n
}

// deleteSlack is how far a delete event's detected_at may precede the
// mutation that deleted the item: the bridge and the simulator share the
// clock, and the bridge detects a delete only after a GET answered 404.
const deleteSlack = 50 * time.Millisecond

// Compare holds the events to the truth, by net change: polling merges the
// changes made between two polls into one, so an item's events need not
// follow each mutation, but they must chain:
//
//   - no event id twice;
//   - per item, revisions strictly grow; a created event only for an item the
//     API created and while it did not exist; an update's before is the
//     previous event's after (the baseline first); a delete only for an item
//     the API deleted, not before it did, with the last reported state;
//   - every after is a state the item really had;
//   - the last event leaves the item as the API has it at the end, and an
//     item whose state at the end differs from the baseline has events.
func Compare(t Truth, evs []Observed) Report {
	r := Report{Mutations: map[string]int{}, Events: map[events.Op]int{}}
	states := map[Key]map[string]bool{}
	addState := func(k Key, raw []byte) {
		if states[k] == nil {
			states[k] = map[string]bool{}
		}
		states[k][Norm(raw)] = true
	}
	for k, raw := range t.Baseline {
		addState(k, raw)
	}
	created := map[Key]bool{}
	// deletedAt holds each item's deletes in order: an item may be
	// deleted, restored and deleted again under its id (soft deletes).
	deletedAt := map[Key][]time.Time{}
	madeAt := map[Key]map[string]time.Time{} // when a state first appeared
	for _, m := range t.Mutations {
		k := Key{m.Resource, m.ID}
		addState(k, m.Item)
		if m.Op != sim.OpDeleted {
			if madeAt[k] == nil {
				madeAt[k] = map[string]time.Time{}
			}
			if _, ok := madeAt[k][Norm(m.Item)]; !ok {
				madeAt[k][Norm(m.Item)] = m.Time
			}
		}
		r.Mutations[m.Op]++
		switch m.Op {
		case sim.OpCreated:
			created[k] = true
		case sim.OpDeleted:
			deletedAt[k] = append(deletedAt[k], m.Time)
		}
	}
	r.Items = len(states)

	// One problem per item: what follows the first one in an item's chain
	// is told with it, so the counts are of items, not of echoes.
	first := map[Key]int{}
	add := func(kind Kind, k Key, format string, args ...any) {
		what := fmt.Sprintf(format, args...)
		if i, ok := first[k]; ok {
			r.Problems[i].What += "; then " + what
			return
		}
		first[k] = len(r.Problems)
		r.Problems = append(r.Problems, Problem{Kind: kind, Key: k, What: what})
	}
	byKey := map[Key][]Observed{}
	firstSeq := map[string]uint64{}
	for _, o := range evs {
		k := Key{o.Event.Resource, o.Event.ID}
		r.Events[o.Event.Op]++
		if s, dup := firstSeq[o.MsgID]; dup {
			add(Duplicate, k, "event id %s at stream seq %d and again at %d", o.MsgID, s, o.Seq)
			continue
		}
		firstSeq[o.MsgID] = o.Seq
		byKey[k] = append(byKey[k], o)
	}

	for _, k := range SortedKeys(byKey) {
		list := byKey[k]
		prev := t.Baseline[k]
		existed := prev != nil
		var lastRev uint64
		deletes := deletedAt[k] // those no delete event has reported yet
		var lastDelete time.Time
		for _, o := range list {
			e := o.Event
			at := fmt.Sprintf("%s event at stream seq %d", e.Op, o.Seq)
			if e.Revision <= lastRev {
				add(OutOfStep, k, "%s has revision %d after %d", at, e.Revision, lastRev)
			}
			lastRev = max(lastRev, e.Revision)
			switch e.Op {
			case events.OpCreated:
				switch {
				case existed:
					add(Duplicate, k, "%s while the item existed (last reported %s)", at, Short(prev))
				case !created[k]:
					add(Invented, k, "%s, but the API never created it after the baseline", at)
				}
				existed = true
			case events.OpUpdated:
				switch {
				case !existed:
					add(OutOfStep, k, "%s while the item did not exist", at)
				case Norm(e.Before) == Norm(prev):
				case Norm(e.After) == Norm(prev):
					add(Duplicate, k, "%s repeats the change to %s, reported before", at, Short(e.After))
				default:
					add(Lost, k, "%s has before %s, but the last reported state is %s: a change between was not reported",
						at, Short(e.Before), Short(prev))
				}
			case events.OpDeleted:
				// The event reports the deletes made up to when it was
				// detected (polling merges those between two polls).
				reported := 0
				for reported < len(deletes) && !deletes[reported].After(e.DetectedAt.Add(deleteSlack)) {
					reported++
				}
				if reported > 0 {
					lastDelete, deletes = deletes[reported-1], deletes[reported:]
				}
				switch {
				case len(deletedAt[k]) == 0:
					add(FalseDelete, k, "%s, but the API never deleted it", at)
				case !existed:
					add(Duplicate, k, "%s of an item already reported deleted", at)
				case reported == 0 && len(deletes) == 0:
					add(FalseDelete, k, "%s detected at %s, but every delete the API made of it was reported already",
						at, e.DetectedAt.Format(time.RFC3339Nano))
				case reported == 0:
					add(FalseDelete, k, "%s detected at %s, before the API deleted it at %s",
						at, e.DetectedAt.Format(time.RFC3339Nano), deletes[0].Format(time.RFC3339Nano))
				case Norm(e.Before) != Norm(prev):
					add(OutOfStep, k, "%s has before %s, not the last reported state %s", at, Short(e.Before), Short(prev))
				}
				existed = false
			case events.OpSnapshot:
				add(Invented, k, "%s: the bridge started from a silent baseline", at)
				existed = true
			}
			if when, ok := madeAt[k][Norm(e.After)]; ok && e.After != nil {
				r.Delays = append(r.Delays, e.DetectedAt.Sub(when))
			} else if e.Op == events.OpDeleted && !lastDelete.IsZero() {
				r.Delays = append(r.Delays, e.DetectedAt.Sub(lastDelete))
			}
			if e.After != nil {
				if !states[k][Norm(e.After)] {
					add(Invented, k, "%s reports %s, a state the item never had", at, Short(e.After))
				}
				prev = e.After
			}
		}
		final, ok := t.Final[k]
		last := list[len(list)-1].Seq
		var end string
		switch {
		case ok && !existed:
			end = fmt.Sprintf("the API has the item (%s), but its last event (seq %d) says it is gone", Short(final), last)
		case !ok && existed:
			end = fmt.Sprintf("the API deleted the item, but no event says so (last event seq %d, %s)", last, Short(prev))
		case ok && Norm(final) != Norm(prev):
			end = fmt.Sprintf("the API has %s, but the last event (seq %d) left it at %s", Short(final), last, Short(prev))
		}
		if end != "" {
			add(Lost, k, "%s", end)
		}
	}

	all := maps.Clone(t.Baseline)
	if all == nil {
		all = map[Key]json.RawMessage{}
	}
	maps.Copy(all, t.Final)
	for _, k := range SortedKeys(all) {
		base, final := t.Baseline[k], t.Final[k]
		if (base == nil) == (final == nil) && Norm(base) == Norm(final) {
			continue
		}
		r.Changed++
		if len(byKey[k]) == 0 {
			add(Lost, k, "changed from %s to %s and no event says so", Short(base), Short(final))
		}
	}
	return r
}

// Mirror compares the bridge's mirror with the API's items, one line per
// item that differs.
func Mirror(mirror, final map[Key]json.RawMessage) []string {
	var diffs []string
	for _, k := range SortedKeys(final) {
		got, ok := mirror[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: the API has it, the mirror does not", k))
		case Norm(got) != Norm(final[k]):
			diffs = append(diffs, fmt.Sprintf("%s: the mirror has %s, the API %s", k, Short(got), Short(final[k])))
		}
	}
	for _, k := range SortedKeys(mirror) {
		if _, ok := final[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: the mirror has it (%s), the API does not", k, Short(mirror[k])))
		}
	}
	return diffs
}

// Fail fails the test with every problem of the report, grouped by kind,
// the first few of each in full, and with the mirror's differences.
func Fail(t testing.TB, r Report, mirrorDiffs []string) {
	t.Helper()
	for _, kind := range Kinds {
		n := r.Count(kind)
		if n == 0 {
			continue
		}
		var lines []string
		for _, p := range r.Problems {
			if p.Kind == kind && len(lines) < 20 {
				lines = append(lines, "  "+p.String())
			}
		}
		t.Errorf("%d items with a %s change:\n%s", n, kind, strings.Join(lines, "\n"))
	}
	if len(mirrorDiffs) > 0 {
		t.Errorf("the mirror differs from the API for %d items:\n  %s", len(mirrorDiffs),
			strings.Join(mirrorDiffs[:min(20, len(mirrorDiffs))], "\n  "))
	}
}

// Items returns the simulator's items of resources, and the position of its
// mutation log they stand at. The simulator must not churn meanwhile.
func Items(s *sim.Server, resources ...string) (map[Key]json.RawMessage, uint64) {
	seq := s.LastSeq()
	out := map[Key]json.RawMessage{}
	for _, r := range resources {
		for _, id := range s.IDs(r) {
			if raw, ok := s.Get(r, id); ok {
				out[Key{r, id}] = raw
			}
		}
	}
	return out, seq
}

// SortedKeys returns the keys of m by resource, then id (numeric ids in
// numeric order).
func SortedKeys[V any](m map[Key]V) []Key {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b Key) int {
		if c := strings.Compare(a.Resource, b.Resource); c != 0 {
			return c
		}
		if len(a.ID) != len(b.ID) {
			return len(a.ID) - len(b.ID)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return keys
}

// Norm is an item's JSON without insignificant whitespace; "" for none.
func Norm(raw []byte) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// Short shows an item's state in a problem: its updated_at, which every
// change of the simulator bumps, or the start of its JSON.
func Short(raw []byte) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "nothing"
	}
	var v struct {
		UpdatedAt string `json:"updated_at"`
	}
	if json.Unmarshal(raw, &v) == nil && v.UpdatedAt != "" {
		return "the state of " + v.UpdatedAt
	}
	s := Norm(raw)
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}
