package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// key names one item.
type key struct{ resource, id string }

func (k key) String() string { return k.resource + "/" + k.id }

// truth is what the simulator says happened, from its admin routes.
type truth struct {
	// baseline holds the items when the bridge's baseline cycle had
	// recorded them.
	baseline map[key]json.RawMessage
	// mutations are those after the baseline, oldest first.
	mutations []sim.Mutation
	// final holds the API's items once everything settled.
	final map[key]json.RawMessage
}

// observed is one change event as read from the events stream.
type observed struct {
	seq   uint64 // stream sequence
	msgID string // Nats-Msg-Id
	event events.Event
}

// Problem kinds. Each one fails the test.
const (
	kindLost      = "lost"         // a change the API made that no event reports
	kindDuplicate = "duplicate"    // an event id, or a change, reported twice
	kindFalseDel  = "false delete" // a delete of an item the API still had
	kindInvented  = "invented"     // a state or a creation the API never had
	kindOutOfStep = "out of step"  // events that do not chain (revision, before)
)

var problemKinds = []string{kindLost, kindDuplicate, kindFalseDel, kindInvented, kindOutOfStep}

// problem is one thing the events got wrong, said so a person can look it up:
// the item, the stream sequences, the log sequences.
type problem struct {
	kind string
	key  key
	what string
}

func (p problem) String() string { return fmt.Sprintf("%s: %s: %s", p.kind, p.key, p.what) }

// report is the outcome of compare.
type report struct {
	items     int            // items that existed at some point
	changed   int            // items whose state at the end differs from the baseline
	mutations map[string]int // by op
	events    map[events.Op]int
	problems  []problem
	// delays are, for each event after the baseline, the time from the
	// mutation that made the state it reports to its detected_at.
	delays []time.Duration
}

// delay returns the q-quantile of the delays (q in [0, 1]).
func (r report) delay(q float64) time.Duration {
	if len(r.delays) == 0 {
		return 0
	}
	d := slices.Sorted(slices.Values(r.delays))
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

func (r report) count(kind string) int {
	n := 0
	for _, p := range r.problems {
		if p.kind == kind {
			n++
		}
	}
	return n
}

// deleteSlack is how far a delete event's detected_at may precede the
// mutation that deleted the item: the bridge and the simulator share the
// clock, and the bridge detects a delete only after a GET answered 404.
const deleteSlack = 50 * time.Millisecond

// compare holds the events to the truth, by net change: polling merges the
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
func compare(t truth, evs []observed) report {
	r := report{mutations: map[string]int{}, events: map[events.Op]int{}}
	states := map[key]map[string]bool{}
	addState := func(k key, raw []byte) {
		if states[k] == nil {
			states[k] = map[string]bool{}
		}
		states[k][norm(raw)] = true
	}
	for k, raw := range t.baseline {
		addState(k, raw)
	}
	created := map[key]bool{}
	deletedAt := map[key]time.Time{}
	madeAt := map[key]map[string]time.Time{} // when a state first appeared
	for _, m := range t.mutations {
		k := key{m.Resource, m.ID}
		addState(k, m.Item)
		if m.Op != sim.OpDeleted {
			if madeAt[k] == nil {
				madeAt[k] = map[string]time.Time{}
			}
			if _, ok := madeAt[k][norm(m.Item)]; !ok {
				madeAt[k][norm(m.Item)] = m.Time
			}
		}
		r.mutations[m.Op]++
		switch m.Op {
		case sim.OpCreated:
			created[k] = true
		case sim.OpDeleted:
			deletedAt[k] = m.Time
		}
	}
	r.items = len(states)

	// One problem per item: what follows the first one in an item's chain
	// is told with it, so the counts are of items, not of echoes.
	first := map[key]int{}
	add := func(kind string, k key, format string, args ...any) {
		what := fmt.Sprintf(format, args...)
		if i, ok := first[k]; ok {
			r.problems[i].what += "; then " + what
			return
		}
		first[k] = len(r.problems)
		r.problems = append(r.problems, problem{kind: kind, key: k, what: what})
	}
	byKey := map[key][]observed{}
	firstSeq := map[string]uint64{}
	for _, o := range evs {
		k := key{o.event.Resource, o.event.ID}
		r.events[o.event.Op]++
		if s, dup := firstSeq[o.msgID]; dup {
			add(kindDuplicate, k, "event id %s at stream seq %d and again at %d", o.msgID, s, o.seq)
			continue
		}
		firstSeq[o.msgID] = o.seq
		byKey[k] = append(byKey[k], o)
	}

	for _, k := range sortedKeys(byKey) {
		list := byKey[k]
		prev := t.baseline[k]
		existed := prev != nil
		var lastRev uint64
		for _, o := range list {
			e := o.event
			at := fmt.Sprintf("%s event at stream seq %d", e.Op, o.seq)
			if e.Revision <= lastRev {
				add(kindOutOfStep, k, "%s has revision %d after %d", at, e.Revision, lastRev)
			}
			lastRev = max(lastRev, e.Revision)
			switch e.Op {
			case events.OpCreated:
				switch {
				case existed:
					add(kindDuplicate, k, "%s while the item existed (last reported %s)", at, short(prev))
				case !created[k]:
					add(kindInvented, k, "%s, but the API never created it after the baseline", at)
				}
				existed = true
			case events.OpUpdated:
				switch {
				case !existed:
					add(kindOutOfStep, k, "%s while the item did not exist", at)
				case norm(e.Before) == norm(prev):
				case norm(e.After) == norm(prev):
					add(kindDuplicate, k, "%s repeats the change to %s, reported before", at, short(e.After))
				default:
					add(kindLost, k, "%s has before %s, but the last reported state is %s: a change between was not reported",
						at, short(e.Before), short(prev))
				}
			case events.OpDeleted:
				when, wasDeleted := deletedAt[k]
				switch {
				case !wasDeleted:
					add(kindFalseDel, k, "%s, but the API never deleted it", at)
				case !existed:
					add(kindDuplicate, k, "%s of an item already reported deleted", at)
				case e.DetectedAt.Before(when.Add(-deleteSlack)):
					add(kindFalseDel, k, "%s detected at %s, before the API deleted it at %s",
						at, e.DetectedAt.Format(time.RFC3339Nano), when.Format(time.RFC3339Nano))
				case norm(e.Before) != norm(prev):
					add(kindOutOfStep, k, "%s has before %s, not the last reported state %s", at, short(e.Before), short(prev))
				}
				existed = false
			case events.OpSnapshot:
				add(kindInvented, k, "%s: the bridge started from a silent baseline", at)
				existed = true
			}
			if when, ok := madeAt[k][norm(e.After)]; ok && e.After != nil {
				r.delays = append(r.delays, e.DetectedAt.Sub(when))
			} else if when, ok := deletedAt[k]; ok && e.Op == events.OpDeleted {
				r.delays = append(r.delays, e.DetectedAt.Sub(when))
			}
			if e.After != nil {
				if !states[k][norm(e.After)] {
					add(kindInvented, k, "%s reports %s, a state the item never had", at, short(e.After))
				}
				prev = e.After
			}
		}
		final, ok := t.final[k]
		last := list[len(list)-1].seq
		var end string
		switch {
		case ok && !existed:
			end = fmt.Sprintf("the API has the item (%s), but its last event (seq %d) says it is gone", short(final), last)
		case !ok && existed:
			end = fmt.Sprintf("the API deleted the item, but no event says so (last event seq %d, %s)", last, short(prev))
		case ok && norm(final) != norm(prev):
			end = fmt.Sprintf("the API has %s, but the last event (seq %d) left it at %s", short(final), last, short(prev))
		}
		if end != "" {
			add(kindLost, k, "%s", end)
		}
	}

	all := maps.Clone(t.baseline)
	maps.Copy(all, t.final)
	for _, k := range sortedKeys(all) {
		base, final := t.baseline[k], t.final[k]
		if (base == nil) == (final == nil) && norm(base) == norm(final) {
			continue
		}
		r.changed++
		if len(byKey[k]) == 0 {
			add(kindLost, k, "changed from %s to %s and no event says so", short(base), short(final))
		}
	}
	return r
}

func sortedKeys[V any](m map[key]V) []key {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.resource, b.resource); c != 0 {
			return c
		}
		if len(a.id) != len(b.id) {
			return len(a.id) - len(b.id) // numeric ids in numeric order
		}
		return strings.Compare(a.id, b.id)
	})
	return keys
}

// norm is an item's JSON without insignificant whitespace; "" for none.
func norm(raw []byte) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// short shows an item's state in a problem: its updated_at, which every
// change of the simulator bumps, or the start of its JSON.
func short(raw []byte) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "nothing"
	}
	var v struct {
		UpdatedAt string `json:"updated_at"`
	}
	if json.Unmarshal(raw, &v) == nil && v.UpdatedAt != "" {
		return "the state of " + v.UpdatedAt
	}
	s := norm(raw)
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}
