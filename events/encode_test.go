package events

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestEncodeEvent holds the event encoder to encoding/json's bytes, the
// unusual parts first.
func TestEncodeEvent(t *testing.T) {
	at := time.Date(2026, 12, 2, 14, 0, 0, 123456000, time.UTC)
	tests := []struct {
		name string
		e    Event
	}{
		{"an update", Event{Resource: "tasks", Op: OpUpdated, ID: "42", Revision: 3, Before: json.RawMessage(`{"id":42,"t":"a"}`),
			After: json.RawMessage(`{"id":42,"t":"b"}`), Changed: []string{"t"}, DetectedAt: at}},
		{"a create: no before, no changed", Event{Resource: "tasks", Op: OpCreated, ID: "1", Revision: 1, After: json.RawMessage(`{"id":1}`), DetectedAt: at}},
		{"a delete", Event{Resource: "tasks", Op: OpDeleted, ID: "1", Revision: 9, Before: json.RawMessage(`{"id":1}`), DetectedAt: at}},
		{"an item with whitespace is compacted", Event{Resource: "tasks", Op: OpCreated, ID: "1", Revision: 1,
			After: json.RawMessage("{ \"id\" : 1,\n\t\"s\": \"a b\" }"), DetectedAt: at}},
		{"strings to escape", Event{Resource: "tasks", Op: OpUpdated, ID: "a\"b\\c\n<é>\u2028", Revision: 2, Before: json.RawMessage(`{}`),
			After: json.RawMessage(`{}`), Changed: []string{"<x>", "y\tz", "\xff"}, DetectedAt: at}},
		{"U+2028 inside an item", Event{Resource: "tasks", Op: OpCreated, ID: "1", Revision: 1, After: json.RawMessage("{\"s\":\"a\u2028b\u2029\"}"), DetectedAt: at}},
		{"an escaped quote inside an item", Event{Resource: "tasks", Op: OpCreated, ID: "1", Revision: 1, After: json.RawMessage(`{"s":"a\" }"}`), DetectedAt: at}},
		{"a resync's snapshot", Event{Resource: "tasks", Op: OpSnapshot, ID: "1", Revision: 4, After: json.RawMessage(`{"id":1}`), DetectedAt: at, ResyncID: "9xQ<\"é"}},
		{"another zone", Event{Resource: "tasks", Op: OpCreated, ID: "1", Revision: 1, After: json.RawMessage(`{}`), DetectedAt: at.In(time.FixedZone("X", 3600))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := EncodeJSON(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := encodeEvent(tt.e)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("encodeEvent:\n got %s (%v)\nwant %s", got, err, want)
			}
		})
	}
	if _, err := encodeEvent(Event{Resource: "tasks", Op: OpCreated, ID: "1", After: json.RawMessage(`{ "a": }`)}); err == nil {
		t.Error("an item that is not JSON (with whitespace to drop) was encoded")
	}
}

func FuzzEncodeEvent(f *testing.F) {
	f.Add("42", []byte(`{"id":42}`), []byte("{ \"id\": 42 }"), "title")
	f.Add("a\"b", []byte(`{"s":"\u2028"}`), []byte(nil), "\x00")
	f.Fuzz(func(t *testing.T, id string, before, after []byte, changed string) {
		e := Event{Resource: "tasks", Op: OpUpdated, ID: id, Revision: 7, Changed: []string{changed},
			DetectedAt: time.Date(2026, 12, 2, 14, 0, 0, 1, time.UTC), ResyncID: changed}
		if before != nil {
			e.Before = before
		}
		if after != nil {
			e.After = after
		}
		want, err := EncodeJSON(e)
		if err != nil {
			return // invalid items: encodeEvent trusts compact ones (they come validated from the API)
		}
		got, err := encodeEvent(e)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("encodeEvent:\n got %s (%v)\nwant %s", got, err, want)
		}
	})
}

func BenchmarkEncodeEvent(b *testing.B) {
	item := []byte(`{"id":4242,"project_id":17,"title":"Write the quarterly report","status":"open","priority":"high","assignee_id":31,"labels":["finance","q4"],"due_on":"2026-12-15","estimate_hours":6.5,"description":"Collect the numbers from every team and write them up.","created_at":"2026-11-01T09:12:44Z","updated_at":"2026-11-30T17:03:09Z"}`)
	e := Event{Resource: "tasks", Op: OpUpdated, ID: "4242", Revision: 3, Before: item, After: item, Changed: []string{"status"}, DetectedAt: time.Now()}
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeEvent(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodeJSON(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
