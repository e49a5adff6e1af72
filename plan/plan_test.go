package plan_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
)

// TestDecide has one case per row of the package comment's table, and a
// few edges of each.
func TestDecide(t *testing.T) {
	const res = "tasks"
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	a := []byte(`{"id":1,"title":"old","status":"open"}`)
	aReordered := []byte(`{"status":"open","id":1,"title":"old"}`)
	b := []byte(`{"id":1,"title":"new","status":"open"}`)
	none := plan.State{ID: "1"}
	liveA := plan.State{ID: "1", Value: a, Revision: 7}
	gone := plan.State{ID: "1", Revision: 9, Deleted: true}
	// absent: its delete marker (9) was compacted; the floor is 20.
	absent := plan.State{ID: "1", Absent: true}.AtFloor(20)
	replay := func(op events.Op, rev uint64, after []byte) plan.Observation {
		return plan.Observation{Kind: plan.Replayed, Event: events.Event{Resource: res, Op: op, ID: "1", Revision: rev, After: after}}
	}
	olderFloor := func(o plan.Observation) plan.Observation { o.OlderFloor = true; return o }
	tests := []struct {
		name        string
		stored      plan.State
		obs         plan.Observation
		outcome     plan.Outcome
		op          events.Op // "" when no event
		replaced    uint64    // the revision the event and the write replace
		before      []byte
		changed     []string
		writeValue  []byte
		noWrite     bool
		deleteWrite bool
		absentWrite bool // the write creates the entry: no revision expected
		resyncID    string
	}{
		{name: "created: never stored", stored: none, obs: plan.Observation{Kind: plan.Listed, Value: b},
			outcome: plan.Created, op: events.OpCreated, replaced: 0, writeValue: b},
		{name: "created again after a delete replaces the marker's revision", stored: gone, obs: plan.Observation{Kind: plan.Listed, Value: b, Replaces: 9},
			outcome: plan.Created, op: events.OpCreated, replaced: 9, writeValue: b},
		{name: "updated", stored: liveA, obs: plan.Observation{Kind: plan.Listed, Value: b, Replaces: 7},
			outcome: plan.Updated, op: events.OpUpdated, replaced: 7, before: a, changed: []string{"title"}, writeValue: b},
		{name: "updated: a field added and one removed", stored: liveA,
			obs:     plan.Observation{Kind: plan.Listed, Value: []byte(`{"id":1,"title":"old","due":"2027-01-01"}`), Replaces: 7},
			outcome: plan.Updated, op: events.OpUpdated, replaced: 7, before: a, changed: []string{"due", "status"},
			writeValue: []byte(`{"id":1,"title":"old","due":"2027-01-01"}`)},
		{name: "unchanged: the same bytes", stored: liveA, obs: plan.Observation{Kind: plan.Listed, Value: a, Replaces: 7},
			outcome: plan.Unchanged, noWrite: true},
		{name: "key order only: stored silently", stored: liveA, obs: plan.Observation{Kind: plan.Listed, Value: aReordered, Replaces: 7},
			outcome: plan.Reformatted, replaced: 7, writeValue: aReordered},
		{name: "a stored state that is not JSON is overwritten silently", stored: plan.State{ID: "1", Value: []byte("garbage"), Revision: 7},
			obs: plan.Observation{Kind: plan.Listed, Value: b, Replaces: 7}, outcome: plan.Reformatted, replaced: 7, writeValue: b},
		{name: "first sync, baseline: stored silently", stored: none, obs: plan.Observation{Kind: plan.Listed, Value: b, Sync: plan.FirstBaseline},
			outcome: plan.Baseline, replaced: 0, writeValue: b},
		{name: "first sync, snapshot", stored: none, obs: plan.Observation{Kind: plan.Listed, Value: b, Sync: plan.FirstSnapshot},
			outcome: plan.Snapshot, op: events.OpSnapshot, replaced: 0, writeValue: b},
		{name: "first sync, snapshot of a state already stored: nothing", stored: liveA,
			obs: plan.Observation{Kind: plan.Listed, Value: a, Sync: plan.FirstSnapshot, Replaces: 7}, outcome: plan.Unchanged, noWrite: true},
		{name: "first sync, snapshot over an older stored state", stored: liveA,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Sync: plan.FirstSnapshot, Replaces: 7}, outcome: plan.Snapshot, op: events.OpSnapshot,
			replaced: 7, writeValue: b},
		{name: "resync snapshot of an unchanged item: a snapshot, stored afresh", stored: liveA,
			obs: plan.Observation{Kind: plan.Listed, Value: a, Sync: plan.Resnapshot, Replaces: 7, ResyncID: "r-1"}, outcome: plan.Snapshot,
			op: events.OpSnapshot, replaced: 7, writeValue: a, resyncID: "r-1"},
		{name: "resync snapshot of a changed item: a snapshot, not an update", stored: liveA,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Sync: plan.Resnapshot, Replaces: 7, ResyncID: "r-1"}, outcome: plan.Snapshot,
			op: events.OpSnapshot, replaced: 7, writeValue: b, resyncID: "r-1"},
		{name: "resync snapshot of an item new to the mirror", stored: gone,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Sync: plan.Resnapshot, Replaces: 9, ResyncID: "r-1"}, outcome: plan.Snapshot,
			op: events.OpSnapshot, replaced: 9, writeValue: b, resyncID: "r-1"},
		{name: "resync snapshot of a listing older than the stored state: judged again", stored: liveA,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Sync: plan.Resnapshot, Replaces: 5, ResyncID: "r-1"}, outcome: plan.Stale, noWrite: true},
		{name: "resync snapshot of a soft-deleted item: its delete, no snapshot", stored: liveA,
			obs:     plan.Observation{Kind: plan.Listed, Value: b, Sync: plan.Resnapshot, MarkedDeleted: true, Replaces: 7, ResyncID: "r-1"},
			outcome: plan.Deleted, op: events.OpDeleted, replaced: 7, before: a, deleteWrite: true},
		{name: "replayed resync snapshot of a live item: recovered", stored: liveA, obs: replay(events.OpSnapshot, 8, b),
			outcome: plan.Recovered, replaced: 7, writeValue: b},
		{name: "deleted: a confirmed 404", stored: liveA, obs: plan.Observation{Kind: plan.Gone, Replaces: 7},
			outcome: plan.Deleted, op: events.OpDeleted, replaced: 7, before: a, deleteWrite: true},
		{name: "deleted by a command: its answer is newer than any stored revision", stored: liveA, obs: plan.Observation{Kind: plan.Gone, Answer: true},
			outcome: plan.Deleted, op: events.OpDeleted, replaced: 7, before: a, deleteWrite: true},
		{name: "gone and not live: nothing", stored: gone, obs: plan.Observation{Kind: plan.Gone, Replaces: 9}, outcome: plan.Unchanged, noWrite: true},
		{name: "deleted by a command, gone already: nothing", stored: gone, obs: plan.Observation{Kind: plan.Gone, Answer: true},
			outcome: plan.Unchanged, noWrite: true},
		{name: "gone, but someone stored a newer state since: judged again", stored: liveA,
			obs: plan.Observation{Kind: plan.Gone, Replaces: 5}, outcome: plan.Stale, noWrite: true},
		{name: "listed, but someone deleted it since: judged again, not brought back", stored: gone,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Replaces: 7}, outcome: plan.Stale, noWrite: true},
		{name: "listed, but someone stored a newer state since: judged again, not reverted", stored: liveA,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Replaces: 5}, outcome: plan.Stale, noWrite: true},
		{name: "listed, never known, but someone created it since: judged again", stored: liveA,
			obs: plan.Observation{Kind: plan.Listed, Value: b}, outcome: plan.Stale, noWrite: true},
		{name: "a command's answer over any stored revision: updated", stored: liveA,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Answer: true}, outcome: plan.Updated, op: events.OpUpdated,
			replaced: 7, before: a, changed: []string{"title"}, writeValue: b},
		{name: "a command's answer after a delete: created", stored: gone,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Answer: true}, outcome: plan.Created, op: events.OpCreated,
			replaced: 9, writeValue: b},
		{name: "replayed create of a new item: recovered", stored: none, obs: replay(events.OpCreated, 1, b),
			outcome: plan.Recovered, replaced: 0, writeValue: b},
		{name: "replayed update: recovered", stored: liveA, obs: replay(events.OpUpdated, 8, b),
			outcome: plan.Recovered, replaced: 7, writeValue: b},
		{name: "replayed delete: recovered", stored: liveA, obs: replay(events.OpDeleted, 8, nil),
			outcome: plan.Recovered, replaced: 7, deleteWrite: true},
		{name: "replayed snapshot after a delete: recovered", stored: gone, obs: replay(events.OpSnapshot, 10, b),
			outcome: plan.Recovered, replaced: 9, writeValue: b},
		{name: "replayed event already committed", stored: liveA, obs: replay(events.OpUpdated, 7, b),
			outcome: plan.Unchanged, noWrite: true},
		{name: "replayed event superseded", stored: liveA, obs: replay(events.OpUpdated, 3, b), outcome: plan.Unchanged, noWrite: true},
		{name: "replayed create of a live item does not fit", stored: liveA, obs: replay(events.OpCreated, 8, b),
			outcome: plan.Unchanged, noWrite: true},
		{name: "replayed update of a deleted item does not fit", stored: gone, obs: replay(events.OpUpdated, 10, b),
			outcome: plan.Unchanged, noWrite: true},
		{name: "soft-deleted: a delete of the last live state", stored: liveA,
			obs:     plan.Observation{Kind: plan.Listed, Value: []byte(`{"id":1,"title":"old","deleted_at":"2026-12-01T12:00:00Z"}`), MarkedDeleted: true, Replaces: 7},
			outcome: plan.Deleted, op: events.OpDeleted, replaced: 7, before: a, deleteWrite: true},
		{name: "soft-deleted and gone already: nothing", stored: gone,
			obs: plan.Observation{Kind: plan.Listed, Value: b, MarkedDeleted: true, Replaces: 9}, outcome: plan.Unchanged, noWrite: true},
		{name: "soft-deleted and never seen live: nothing, in a first sync too", stored: none,
			obs: plan.Observation{Kind: plan.Listed, Value: b, MarkedDeleted: true, Sync: plan.FirstSnapshot}, outcome: plan.Unchanged, noWrite: true},
		{name: "soft-deleted in a first baseline sync: deleted silently", stored: liveA,
			obs: plan.Observation{Kind: plan.Listed, Value: b, MarkedDeleted: true, Sync: plan.FirstBaseline, Replaces: 7}, outcome: plan.Baseline,
			replaced: 7, deleteWrite: true},
		{name: "back after a soft delete, unmarked: created", stored: gone, obs: plan.Observation{Kind: plan.Listed, Value: b, Replaces: 9},
			outcome: plan.Created, op: events.OpCreated, replaced: 9, writeValue: b},
		{name: "created again after its marker was compacted: replaces the floor", stored: absent,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Replaces: 20}, outcome: plan.Created, op: events.OpCreated, replaced: 20,
			writeValue: b, absentWrite: true},
		{name: "listed as the index knew it before the compaction: judged again", stored: absent,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Replaces: 9}, outcome: plan.Stale, noWrite: true},
		{name: "a command's answer for an absent item: created over the floor", stored: absent,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Answer: true}, outcome: plan.Created, op: events.OpCreated, replaced: 20,
			writeValue: b, absentWrite: true},
		{name: "first sync, baseline of an absent item", stored: absent,
			obs: plan.Observation{Kind: plan.Listed, Value: b, Sync: plan.FirstBaseline, Replaces: 20}, outcome: plan.Baseline, replaced: 20,
			writeValue: b, absentWrite: true},
		{name: "soft-deleted and absent: nothing", stored: absent,
			obs: plan.Observation{Kind: plan.Listed, Value: b, MarkedDeleted: true, Replaces: 20}, outcome: plan.Unchanged, noWrite: true},
		{name: "gone and absent: nothing", stored: absent, obs: plan.Observation{Kind: plan.Gone, Replaces: 20}, outcome: plan.Unchanged, noWrite: true},
		{name: "replayed create of an absent item over the floor: recovered", stored: absent, obs: replay(events.OpCreated, 21, b),
			outcome: plan.Recovered, replaced: 20, writeValue: b, absentWrite: true},
		{name: "replayed create decided against an older floor: recovered", stored: absent,
			obs: olderFloor(replay(events.OpCreated, 5, b)), outcome: plan.Recovered, replaced: 20, writeValue: b, absentWrite: true},
		{name: "replayed snapshot decided against an older floor: recovered", stored: absent,
			obs: olderFloor(replay(events.OpSnapshot, 1, b)), outcome: plan.Recovered, replaced: 20, writeValue: b, absentWrite: true},
		{name: "replayed create of an earlier life, before the floor was raised: nothing", stored: absent,
			obs: replay(events.OpCreated, 5, b), outcome: plan.Unchanged, noWrite: true},
		{name: "replayed update of an absent item: does not fit, whatever the floor", stored: absent,
			obs: olderFloor(replay(events.OpUpdated, 5, b)), outcome: plan.Unchanged, noWrite: true},
		{name: "replayed create above the floor's next: nothing", stored: absent,
			obs: olderFloor(replay(events.OpCreated, 30, b)), outcome: plan.Unchanged, noWrite: true},
		{name: "an unknown observation does nothing", stored: liveA, obs: plan.Observation{}, outcome: plan.Unchanged, noWrite: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := plan.Decide(res, tt.stored, tt.obs, now)
			if d.Outcome != tt.outcome {
				t.Fatalf("outcome %q, want %q", d.Outcome, tt.outcome)
			}
			if tt.op == "" {
				if d.Event != nil {
					t.Errorf("event %+v, want none", d.Event)
				}
			} else {
				checkEvent(t, d.Event, res, tt.op, tt.replaced, tt.before, tt.changed, now)
				if d.Event.Event.ResyncID != tt.resyncID {
					t.Errorf("resync id %q, want %q", d.Event.Event.ResyncID, tt.resyncID)
				}
				if tt.op != events.OpDeleted && string(d.Event.Event.After) != string(tt.writeValue) {
					t.Errorf("after %s, want %s", d.Event.Event.After, tt.writeValue)
				}
			}
			switch {
			case tt.noWrite:
				if d.Write != nil {
					t.Errorf("write %+v, want none", d.Write)
				}
			case d.Write == nil:
				t.Fatal("no write")
			case d.Write.ID != "1" || d.Write.Replaces != tt.replaced:
				t.Errorf("write %+v, want id 1 replacing %d", d.Write, tt.replaced)
			case d.Write.Absent != tt.absentWrite:
				t.Errorf("write %+v: absent %t, want %t", d.Write, d.Write.Absent, tt.absentWrite)
			case tt.absentWrite && d.Write.Expects() != 0:
				t.Errorf("write %+v expects revision %d of an absent entry, want 0", d.Write, d.Write.Expects())
			case tt.deleteWrite && d.Write.Value != nil:
				t.Errorf("write value %s, want a delete", d.Write.Value)
			case !tt.deleteWrite && string(d.Write.Value) != string(tt.writeValue):
				t.Errorf("write value %s, want %s", d.Write.Value, tt.writeValue)
			}
		})
	}
}

func checkEvent(t *testing.T, o *plan.Outgoing, res string, op events.Op, replaced uint64, before []byte, changed []string, now time.Time) {
	t.Helper()
	if o == nil {
		t.Fatalf("no event, want %s", op)
	}
	e := o.Event
	if e.Resource != res || e.Op != op || e.ID != "1" || e.Revision != replaced+1 || !e.DetectedAt.Equal(now) ||
		e.DetectedAt.Location() != time.UTC || string(e.Before) != string(before) || !slices.Equal(e.Changed, changed) {
		t.Errorf("event %+v; want %s of revision %d, before %s, changed %v", e, op, replaced+1, before, changed)
	}
	if o.EventID != events.EventID(res, "1", op, replaced) {
		t.Errorf("event id %s is not the id of (%s, 1, %s, %d)", o.EventID, res, op, replaced)
	}
	body, _ := json.Marshal(e)
	msg, err := events.NewMsg(events.MustSubjects("rockety"), "https://app.rockety.io/api/v1", o.EventID, e)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := events.Decode(msg); err != nil {
		t.Errorf("the event does not decode as a change event: %v (%s)", err, body)
	}
}

// TestEventIDsOfARoundTrip: A→B→A→B gives three events with three ids; a
// republish of one repeats its id.
func TestEventIDsOfARoundTrip(t *testing.T) {
	now := time.Now()
	a, b := []byte(`{"id":1,"v":"a"}`), []byte(`{"id":1,"v":"b"}`)
	s := plan.State{ID: "1", Value: a, Revision: 1}
	seen := map[string]bool{}
	for i, next := range [][]byte{b, a, b} {
		d := plan.Decide("tasks", s, plan.Observation{Kind: plan.Listed, Value: next, Replaces: s.Revision}, now)
		if d.Event == nil || seen[d.Event.EventID] {
			t.Fatalf("change %d: %+v", i, d)
		}
		again := plan.Decide("tasks", s, plan.Observation{Kind: plan.Listed, Value: next, Replaces: s.Revision}, now)
		if again.Event.EventID != d.Event.EventID {
			t.Errorf("change %d: a republish has another id", i)
		}
		seen[d.Event.EventID] = true
		s = plan.State{ID: "1", Value: next, Revision: s.Revision + 1}
	}
}

// TestAdopt: a duplicate acknowledgement with another state stores the
// state of the event that JetStream kept (the write-through's C, not the
// cycle's D), or the delete it said.
func TestAdopt(t *testing.T) {
	w := plan.Write{ID: "1", Value: []byte(`{"v":"D"}`), Replaces: 4}
	tests := []struct {
		name    string
		stored  events.Event
		want    string
		wantErr bool
	}{
		{"write-through duplicate with another state", events.Event{Resource: "tasks", ID: "1", Op: events.OpUpdated, After: json.RawMessage(`{"v":"C"}`)}, `{"v":"C"}`, false},
		{"the same state from before a crash", events.Event{Resource: "tasks", ID: "1", Op: events.OpUpdated, After: json.RawMessage(`{"v":"D"}`)}, `{"v":"D"}`, false},
		{"a stored delete", events.Event{Resource: "tasks", ID: "1", Op: events.OpDeleted}, "", false},
		{"another item under the same id", events.Event{Resource: "tasks", ID: "2", Op: events.OpUpdated}, "", true},
		{"another resource", events.Event{Resource: "users", ID: "1", Op: events.OpUpdated}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := plan.Adopt("tasks", w, tt.stored)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			if err == nil && (string(got.Value) != tt.want || got.Replaces != 4 || got.ID != "1") {
				t.Errorf("Adopt = %+v, want value %s replacing 4", got, tt.want)
			}
		})
	}
}

func TestMarkedDeleted(t *testing.T) {
	tests := []struct {
		item  string
		field string
		want  bool
	}{
		{`{"id":1,"deleted_at":"2026-12-01T12:00:00Z"}`, "deleted_at", true},
		{`{"id":1,"deleted":true}`, "deleted", true},
		{`{"id":1,"deleted":1}`, "deleted", true},
		{`{"id":1,"deleted":{"by":"ann"}}`, "deleted", true},
		{`{"id":1,"deleted_at":null}`, "deleted_at", false},
		{`{"id":1,"deleted":false}`, "deleted", false},
		{`{"id":1,"deleted_at":""}`, "deleted_at", false},
		{`{"id":1,"deleted":0}`, "deleted", false},
		{`{"id":1}`, "deleted_at", false},
		{`{"id":1,"meta":{"deleted_at":"x"}}`, "deleted_at", false}, // top level only
		{`{"id":1,"deleted_at":"x"}`, "", false},                    // off
		{`[{"deleted_at":"x"}]`, "deleted_at", false},
		{`not json`, "deleted_at", false},
	}
	for _, tt := range tests {
		if got := plan.MarkedDeleted([]byte(tt.item), tt.field); got != tt.want {
			t.Errorf("MarkedDeleted(%s, %q) = %v, want %v", tt.item, tt.field, got, tt.want)
		}
	}
}

func TestField(t *testing.T) {
	tests := []struct {
		item, name, want string
		found            bool
	}{
		{`{"id":1,"updated_at":"2026-12-01T12:00:00Z"}`, "updated_at", `"2026-12-01T12:00:00Z"`, true},
		{` { "a" : [1,{"updated_at":"no"},"]"] , "updated_at" : 5 } `, "updated_at", `5`, true},
		{`{"a":"x\"updated_at\":1","updated_at":null}`, "updated_at", `null`, true},
		{`{"upd\u0061ted_at":"esc"}`, "updated_at", `"esc"`, true},
		{`{"a":{"b":{"c":"}"}},"z":true}`, "z", `true`, true},
		{`{"id":1}`, "updated_at", ``, false},
		{`{}`, "id", ``, false},
		{`[1,2]`, "id", ``, false},
		{`{"id":`, "id", ``, false},
		{`{"a":{"b":1}`, "z", ``, false},
		{``, "id", ``, false},
	}
	for _, tt := range tests {
		got, found := plan.Field([]byte(tt.item), tt.name)
		if found != tt.found || string(got) != tt.want {
			t.Errorf("Field(%s, %q) = %s, %v; want %s, %v", tt.item, tt.name, got, found, tt.want, tt.found)
		}
	}
}

// FuzzField holds Field to encoding/json: on every valid object, it finds
// what a full decode finds.
func FuzzField(f *testing.F) {
	f.Add([]byte(`{"id":1,"updated_at":"2026-12-01T12:00:00Z"}`), "updated_at")
	f.Add([]byte(`{"a":[{"b":"]}"}],"b":{"c":[1,2]},"c":"\u00e9"}`), "c")
	f.Fuzz(func(t *testing.T, item []byte, name string) {
		got, found := plan.Field(item, name)
		var obj map[string]json.RawMessage
		if json.Unmarshal(item, &obj) != nil || obj == nil {
			return // not an object: Field may say anything but must not panic
		}
		want, ok := obj[name]
		if bytes.Count(item, []byte(`"`)) > 0 && hasDuplicateKeys(item) {
			return // encoding/json keeps the last of duplicate keys, Field the first
		}
		if found != ok || (ok && !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want))) {
			t.Errorf("Field(%s, %q) = %s, %v; encoding/json finds %s, %v", item, name, got, found, want, ok)
		}
	})
}

func hasDuplicateKeys(item []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(item))
	if _, err := dec.Token(); err != nil {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return false
		}
		key, _ := k.(string)
		if seen[key] {
			return true
		}
		seen[key] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return false
		}
	}
	return false
}
