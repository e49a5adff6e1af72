package events_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
)

func TestEncodeJSONKeepsHTMLCharacters(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"angle brackets in a string", map[string]string{"error": "publish to <prefix>.commands"}, `{"error":"publish to <prefix>.commands"}`},
		{"ampersand", []string{"a&b"}, `["a&b"]`},
		{"embedded raw JSON keeps its bytes", struct {
			After json.RawMessage `json:"after"`
		}{json.RawMessage(`{"title": "<b>bold</b> & co"}`)}, `{"after":{"title":"<b>bold</b> & co"}}`},
		{"no trailing newline", 1, `1`},
		{"control characters are still escaped", "a\nb", `"a\nb"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := events.EncodeJSON(tt.in)
			if err != nil || string(got) != tt.want {
				t.Errorf("EncodeJSON = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
	if _, err := events.EncodeJSON(make(chan int)); err == nil {
		t.Error("a value JSON cannot hold was encoded")
	}
}

func TestNewResultMsg(t *testing.T) {
	subjects := events.MustSubjects("rockety")
	at := time.Date(2026, 12, 1, 10, 0, 0, 5, time.UTC)
	tests := []struct {
		name        string
		res         events.Result
		wantSubject string
		wantType    string
		wantErr     bool
	}{
		{"succeeded update", events.Result{CommandID: "c-1", Resource: "tasks", Action: "update", Status: events.StatusSucceeded},
			"rockety.results.tasks.update.c-1", "io.rockety.tasks.update.result", false},
		{"an unknown action keeps its token", events.Result{CommandID: "c-2", Resource: "tasks", Action: "frobnicate", Status: events.StatusRejected},
			"rockety.results.tasks.frobnicate.c-2", "io.rockety.tasks.frobnicate.result", false},
		{"a command id with a dot is escaped in the subject only", events.Result{CommandID: "a.b", Resource: "users", Action: "delete"},
			"rockety.results.users.delete.a=2Eb", "io.rockety.users.delete.result", false},
		{"no command id", events.Result{Resource: "tasks", Action: "update"}, "", "", true},
		{"no action", events.Result{CommandID: "c", Resource: "tasks"}, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := events.NewResultMsg(subjects, "https://app.rockety.io/api/v1/", tt.res, at)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error for %+v", tt.res)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := m.Header
			if m.Subject != tt.wantSubject || h.Get(events.HeaderType) != tt.wantType ||
				h.Get(events.HeaderID) != "result:"+tt.res.CommandID || h.Get(events.HeaderMsgID) != "result:"+tt.res.CommandID ||
				h.Get(events.HeaderSubject) != tt.res.CommandID || h.Get(events.HeaderCommandID) != tt.res.CommandID ||
				h.Get(events.HeaderSource) != "https://app.rockety.io/api/v1/"+tt.res.Resource ||
				h.Get(events.HeaderSpecVersion) != "1.0" || h.Get(events.HeaderDataContentType) != "application/json" ||
				h.Get(events.HeaderTime) != "2026-12-01T10:00:00.000000005Z" {
				t.Errorf("message %s %v", m.Subject, h)
			}
			var back events.Result
			if err := json.Unmarshal(m.Data, &back); err != nil || back.CommandID != tt.res.CommandID {
				t.Errorf("body %s: %v", m.Data, err)
			}
			if strings.Contains(string(m.Data), `\u003c`) {
				t.Errorf("body HTML-escaped: %s", m.Data)
			}
		})
	}
}
