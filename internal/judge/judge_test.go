package judge_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// st is task id in state v: what the simulator's items look like to the judge.
func st(id int, v string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":%d,"title":"t","updated_at":%q}`, id, v))
}

func mut(seq uint64, op string, id int, v string) sim.Mutation {
	return sim.Mutation{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Resource: "tasks",
		ID: fmt.Sprint(id), Op: op, Item: st(id, v)}
}

// ev is a change event at stream seq; before and after are states ("" for
// none); at is the second (after t0) the bridge detected it.
func ev(seq uint64, op events.Op, id int, rev uint64, before, after string, at int) judge.Observed {
	e := events.Event{Resource: "tasks", Op: op, ID: fmt.Sprint(id), Revision: rev,
		DetectedAt: t0.Add(time.Duration(at) * time.Second)}
	if before != "" {
		e.Before = st(id, before)
	}
	if after != "" {
		e.After = st(id, after)
	}
	return judge.Observed{Seq: seq, MsgID: fmt.Sprintf("e%d", seq), Event: e}
}

func TestCompare(t *testing.T) {
	// The Baseline: task 1 in state a, task 2 in state x. Then the API
	// updates 1 to b and c, creates 3 (m), updates 3 to n, deletes 2, and
	// creates and deletes 4 between two polls.
	base := judge.Truth{
		Baseline: map[judge.Key]json.RawMessage{{Resource: "tasks", ID: "1"}: st(1, "a"), {Resource: "tasks", ID: "2"}: st(2, "x")},
		Mutations: []sim.Mutation{
			mut(11, sim.OpUpdated, 1, "b"), mut(12, sim.OpUpdated, 1, "c"), mut(13, sim.OpCreated, 3, "m"),
			mut(14, sim.OpUpdated, 3, "n"), mut(15, sim.OpDeleted, 2, "x"), mut(16, sim.OpCreated, 4, "p"),
			mut(17, sim.OpDeleted, 4, "p"),
		},
		Final: map[judge.Key]json.RawMessage{{Resource: "tasks", ID: "1"}: st(1, "c"), {Resource: "tasks", ID: "3"}: st(3, "n")},
	}
	good := []judge.Observed{
		ev(1, events.OpUpdated, 1, 2, "a", "b", 11),
		ev(2, events.OpCreated, 3, 1, "", "n", 15), // created and updated between polls: one event
		ev(3, events.OpUpdated, 1, 3, "b", "c", 15),
		ev(4, events.OpDeleted, 2, 2, "x", "", 16),
	}
	replace := func(i int, o judge.Observed) []judge.Observed {
		out := slices.Clone(good)
		out[i] = o
		return out
	}
	tests := []struct {
		name  string
		truth func(judge.Truth) judge.Truth
		evs   []judge.Observed
		want  []string // "kind: item: words of the problem"
	}{
		{name: "every net change once", evs: good},
		{name: "merged updates", evs: []judge.Observed{
			ev(1, events.OpUpdated, 1, 2, "a", "c", 15), ev(2, events.OpCreated, 3, 1, "", "m", 13),
			ev(3, events.OpUpdated, 3, 2, "m", "n", 15), ev(4, events.OpDeleted, 2, 2, "x", "", 16)}},
		{name: "the last update lost", evs: good[:2:2], want: []string{
			"lost: tasks/1: the API has the state of c, but the last event (seq 1) left it at the state of b",
			"lost: tasks/2: changed from the state of x to nothing and no event says so"}},
		{name: "a change between lost", evs: replace(2, ev(3, events.OpUpdated, 1, 3, "z", "c", 15)), want: []string{
			"lost: tasks/1: updated event at stream seq 3 has before the state of z, but the last reported state is the state of b"}},
		{name: "a creation lost", evs: []judge.Observed{good[0], good[2], good[3]}, want: []string{
			"lost: tasks/3: changed from nothing to the state of n and no event says so"}},
		{name: "the same event id twice", evs: append(slices.Clone(good), judge.Observed{Seq: 9, MsgID: good[3].MsgID, Event: good[3].Event}),
			want: []string{"duplicate: tasks/2: event id e4 at stream seq 4 and again at 9"}},
		{name: "an update repeated under a new id", evs: append(slices.Clone(good), ev(9, events.OpUpdated, 1, 4, "b", "c", 20)),
			want: []string{"duplicate: tasks/1: updated event at stream seq 9 repeats the change to the state of c"}},
		{name: "created twice", evs: append(slices.Clone(good), ev(9, events.OpCreated, 3, 3, "", "n", 20)),
			want: []string{"duplicate: tasks/3: created event at stream seq 9 while the item existed"}},
		{name: "deleted twice", evs: append(slices.Clone(good), ev(9, events.OpDeleted, 2, 3, "x", "", 20)),
			want: []string{"duplicate: tasks/2: deleted event at stream seq 9 of an item already reported deleted"}},
		{name: "a false delete", evs: append(slices.Clone(good), ev(9, events.OpDeleted, 1, 4, "c", "", 20)),
			want: []string{"false delete: tasks/1: deleted event at stream seq 9, but the API never deleted it; then the API has the item"}},
		{name: "a false delete, then created again", evs: append(slices.Clone(good),
			ev(9, events.OpDeleted, 1, 4, "c", "", 20), ev(10, events.OpCreated, 1, 5, "", "c", 21)),
			want: []string{"false delete: tasks/1: deleted event at stream seq 9, but the API never deleted it; " +
				"then created event at stream seq 10, but the API never created it after the baseline"}},
		{name: "a delete before the API deleted", evs: replace(3, ev(4, events.OpDeleted, 2, 2, "x", "", 14)),
			want: []string{"false delete: tasks/2: deleted event at stream seq 4 detected at 2026-01-02T03:04:19Z, before the API deleted it at 2026-01-02T03:04:20Z"}},
		{name: "a state the item never had", evs: replace(0, ev(1, events.OpUpdated, 1, 2, "a", "q", 11)), want: []string{
			"invented: tasks/1: updated event at stream seq 1 reports the state of q, a state the item never had"}},
		{name: "a creation the API never made", evs: append(slices.Clone(good), ev(9, events.OpCreated, 5, 1, "", "z", 20)),
			want: []string{"invented: tasks/5: created event at stream seq 9, but the API never created it after the baseline"}},
		{name: "revisions going back", evs: replace(2, ev(3, events.OpUpdated, 1, 2, "b", "c", 15)),
			want: []string{"out of step: tasks/1: updated event at stream seq 3 has revision 2 after 2"}},
		{name: "an update of an item that is gone", evs: append(slices.Clone(good), ev(9, events.OpUpdated, 2, 3, "x", "x", 20)),
			want: []string{"out of step: tasks/2: updated event at stream seq 9 while the item did not exist"}},
		{name: "a snapshot after a silent baseline", evs: append(slices.Clone(good), ev(9, events.OpSnapshot, 1, 4, "", "c", 20)),
			want: []string{"invented: tasks/1: snapshot event at stream seq 9"}},
		{name: "deleted, restored under its id and deleted again (soft deletes)",
			truth: func(tr judge.Truth) judge.Truth {
				tr.Mutations = append(tr.Mutations, mut(18, sim.OpCreated, 2, "y"), mut(19, sim.OpDeleted, 2, "y"))
				return tr
			},
			evs: append(slices.Clone(good), ev(9, events.OpCreated, 2, 3, "", "y", 18), ev(10, events.OpDeleted, 2, 4, "y", "", 19))},
		{name: "the second delete reported before it happened",
			truth: func(tr judge.Truth) judge.Truth {
				tr.Mutations = append(tr.Mutations, mut(18, sim.OpCreated, 2, "y"), mut(25, sim.OpDeleted, 2, "y"))
				return tr
			},
			evs:  append(slices.Clone(good), ev(9, events.OpCreated, 2, 3, "", "y", 18), ev(10, events.OpDeleted, 2, 4, "y", "", 19)),
			want: []string{"false delete: tasks/2: deleted event at stream seq 10 detected at 2026-01-02T03:04:24Z, before the API deleted it at 2026-01-02T03:04:30Z"}},
		{name: "a second delete the API never made",
			truth: func(tr judge.Truth) judge.Truth {
				tr.Mutations = append(tr.Mutations, mut(18, sim.OpCreated, 2, "y"))
				tr.Final[judge.Key{Resource: "tasks", ID: "2"}] = st(2, "y")
				return tr
			},
			evs:  append(slices.Clone(good), ev(9, events.OpCreated, 2, 3, "", "y", 18), ev(10, events.OpDeleted, 2, 4, "y", "", 19)),
			want: []string{"false delete: tasks/2: deleted event at stream seq 10 detected at 2026-01-02T03:04:24Z, but every delete the API made of it was reported already; then the API has the item"}},
		{name: "a change undone between polls needs no event",
			truth: func(tr judge.Truth) judge.Truth {
				tr.Mutations = append(tr.Mutations, mut(18, sim.OpUpdated, 1, "a"))
				tr.Final[judge.Key{Resource: "tasks", ID: "1"}] = st(1, "a")
				return tr
			},
			evs: []judge.Observed{good[1], good[3]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := base
			tr.Final = map[judge.Key]json.RawMessage{}
			for k, v := range base.Final {
				tr.Final[k] = v
			}
			if tt.truth != nil {
				tr = tt.truth(tr)
			}
			r := judge.Compare(tr, tt.evs)
			var got []string
			for _, p := range r.Problems {
				got = append(got, p.String())
			}
			counted := 0
			for _, kind := range judge.Kinds {
				counted += r.Count(kind)
			}
			if counted != len(r.Problems) {
				t.Errorf("the kinds count %d problems of %d", counted, len(r.Problems))
			}
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d:\n%s\nwant it to start with\n%s", i, got[i], tt.want[i])
				}
			}
		})
	}

	r := judge.Compare(base, good)
	if r.Items != 4 || r.Changed != 3 || r.Mutations[sim.OpUpdated] != 3 || r.Events[events.OpUpdated] != 2 {
		t.Errorf("counts %+v", r)
	}
	// Delays from the mutation that made each reported state, item by
	// item: b made at 11 and seen at 11, c made at 12 and seen at 15, the
	// delete at 15 seen at 16, n made at 14 and seen at 15.
	if got := fmt.Sprint(r.Delays); got != "[0s 3s 1s 1s]" || r.Delay(0.5) != time.Second || r.Delay(1) != 3*time.Second {
		t.Errorf("delays %s, median %s, max %s", got, r.Delay(0.5), r.Delay(1))
	}
}
