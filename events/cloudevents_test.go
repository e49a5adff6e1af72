package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety/model"
	"github.com/rockety-io/rockety-bridge/schemas"
)

func TestPercentEncoding(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain-ASCII_1.2/3", "plain-ASCII_1.2/3"},
		{"Euro € 😀", "Euro%20%E2%82%AC%20%F0%9F%98%80"}, // the binding's own example
		{`say "hi" 100%`, "say%20%22hi%22%20100%25"},
		{"tab\there\x7f", "tab%09here%7F"},
		{"", ""},
	}
	for _, tt := range tests {
		got := events.PercentEncode(tt.in)
		if got != tt.want {
			t.Errorf("PercentEncode(%q) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := events.PercentDecode(got)
		if err != nil || back != tt.in {
			t.Errorf("PercentDecode(%q) = %q, %v", got, back, err)
		}
	}
	decode := []struct{ in, want, wantErr string }{
		{in: "%e2%82%ac", want: "€"},       // lower case is accepted
		{in: "%41bc", want: "Abc"},         // needless escapes are accepted
		{in: `"a \"b\""`, want: `a "b"`},   // double-quoted values are unquoted first
		{in: "%C0%A0", wantErr: "UTF-8"},   // the overlong space the binding says to refuse
		{in: "%4", wantErr: "cut short"},   //
		{in: "%zz", wantErr: "is not %XY"}, //
		{in: "\xff", wantErr: "not valid UTF-8"},
	}
	for _, tt := range decode {
		got, err := events.PercentDecode(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("PercentDecode(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("PercentDecode(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestEventID(t *testing.T) {
	a := events.EventID("tasks", "42", events.OpUpdated, 3)
	if a != events.EventID("tasks", "42", events.OpUpdated, 3) {
		t.Fatal("EventID is not deterministic")
	}
	if len(a) != 32 {
		t.Errorf("EventID = %q, want 32 hex characters", a)
	}
	others := []string{
		events.EventID("tasks", "42", events.OpUpdated, 4),
		events.EventID("tasks", "42", events.OpDeleted, 3),
		events.EventID("tasks", "43", events.OpUpdated, 3),
		events.EventID("users", "42", events.OpUpdated, 3),
		events.EventID("tasks", "4", events.OpUpdated, 23), // no ambiguity from concatenation
	}
	for _, o := range others {
		if o == a {
			t.Errorf("two different changes share the id %s", a)
		}
	}
	if r := events.ChangeRevision(7); r <= 7 {
		t.Errorf("ChangeRevision(7) = %d, want more than 7", r)
	}
}

func sampleEvent() events.Event {
	return events.Event{
		Resource: "tasks", Op: events.OpUpdated, ID: "a b.é", Revision: 3,
		Before:     json.RawMessage(`{"id":"a b.é","title":"old","status":"open"}`),
		After:      json.RawMessage(`{"id":"a b.é","title":"new","status":"open"}`),
		Changed:    []string{"title"},
		DetectedAt: time.Date(2026, 11, 26, 21, 0, 0, 123456000, time.UTC),
	}
}

func TestNewMsgAndDecode(t *testing.T) {
	s := events.MustSubjects("rockety")
	e := sampleEvent()
	id := events.EventID(e.Resource, e.ID, e.Op, 2)
	msg, err := events.NewMsg(s, "https://app.rockety.io/api/v1/", id, e)
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.ValidateEvent(msg.Data); err != nil {
		t.Errorf("event does not match its schema: %v", err)
	}
	if msg.Subject != "rockety.events.tasks.updated.a=20b=2E=C3=A9" {
		t.Errorf("subject = %q", msg.Subject)
	}
	wantHeaders := map[string]string{
		"ce-specversion": "1.0", "ce-id": id, "ce-type": "io.rockety.tasks.updated",
		"ce-source": "https://app.rockety.io/api/v1/tasks", "ce-subject": "a%20b.%C3%A9",
		"ce-time": "2026-11-26T21:00:00.123456Z", "ce-datacontenttype": "application/json", "Nats-Msg-Id": id,
	}
	for k, v := range wantHeaders {
		if got := msg.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	got, attrs, err := events.Decode(msg)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != e.ID || got.Revision != 3 || string(got.After) != string(e.After) || !got.DetectedAt.Equal(e.DetectedAt) ||
		attrs.Subject != e.ID || attrs.ID != id {
		t.Errorf("round trip: %+v %+v", got, attrs)
	}
	after, ok, err := events.After[model.Task](got)
	if err != nil || !ok || after.Title != "new" {
		t.Errorf("After[Task] = %+v, %v, %v", after, ok, err)
	}
	if _, ok, err := events.Before[model.Task](events.Event{Op: events.OpCreated}); ok || err != nil {
		t.Errorf("Before of a created event: %v, %v", ok, err)
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	s := events.MustSubjects("rockety")
	e := sampleEvent()
	good := func() *nats.Msg {
		m, err := events.NewMsg(s, "https://x/api", "evt1", e)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name    string
		mutate  func(m *nats.Msg)
		wantErr string
	}{
		{"no headers", func(m *nats.Msg) { m.Header = nil }, "no headers"},
		{"missing id and type", func(m *nats.Msg) { m.Header.Del("ce-id"); m.Header.Del("ce-type") },
			"header ce-id is missing; header ce-type is missing"},
		{"wrong spec version", func(m *nats.Msg) { m.Header.Set("ce-specversion", "0.3") }, `ce-specversion is "0.3"`},
		{"bad time", func(m *nats.Msg) { m.Header.Set("ce-time", "yesterday") }, "not an RFC 3339 time"},
		{"bad content type", func(m *nats.Msg) { m.Header.Set("ce-datacontenttype", "text/plain") }, "want application/json"},
		{"dedupe id differs", func(m *nats.Msg) { m.Header.Set("Nats-Msg-Id", "other") }, "Nats-Msg-Id"},
		{"foreign type", func(m *nats.Msg) { m.Header.Set("ce-type", "com.example.thing") }, "want io.rockety.<resource>"},
		{"unknown op", func(m *nats.Msg) { m.Header.Set("ce-type", "io.rockety.tasks.renamed") }, "want io.rockety.<resource>"},
		{"bad percent", func(m *nats.Msg) { m.Header.Set("ce-subject", "%C0%A0") }, "ce-subject: percent-decoded value is not valid UTF-8"},
		{"body not JSON", func(m *nats.Msg) { m.Data = []byte("{") }, "body is not an event"},
		{"body of another op", func(m *nats.Msg) { m.Header.Set("ce-type", "io.rockety.tasks.created") }, "body says tasks updated"},
		{"body of another item", func(m *nats.Msg) { m.Header.Set("ce-subject", "99") }, `body id "a b.é" differs`},
		{"no revision", func(m *nats.Msg) { m.Data = []byte(strings.Replace(string(m.Data), `"revision":3`, `"revision":0`, 1)) }, "no revision"},
		{"update without before", func(m *nats.Msg) {
			m.Data = []byte(strings.Replace(string(m.Data), `"before":{"id":"a b.é","title":"old","status":"open"}`, `"before":null`, 1))
		}, "both before and after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good()
			tt.mutate(m)
			_, _, err := events.Decode(m)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed containing %q", err, tt.wantErr)
			}
		})
	}
}
