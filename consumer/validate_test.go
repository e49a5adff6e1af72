package consumer

import (
	"strings"
	"testing"

	"github.com/rockety-io/rockety-bridge/events"
)

func TestValidate(t *testing.T) {
	all := Allow{"*"}
	tests := []struct {
		name, resource, action, body string
		resources                    []string
		allow                        Allow
		wantErr                      string
		wantID                       string
	}{
		{name: "malformed JSON", resource: "tasks", action: "update", body: `{"id":`, wantErr: "the body is not a command"},
		{name: "not an object", resource: "tasks", action: "update", body: `[1]`, wantErr: "the body is not a command"},
		{name: "empty body", resource: "tasks", action: "create", body: ``, wantErr: "empty body"},
		{name: "two values", resource: "tasks", action: "delete", body: `{"id":1} {"id":2}`, wantErr: "more than one JSON value"},
		{name: "unknown field", resource: "tasks", action: "update", body: `{"id":1,"dat":{}}`, wantErr: `unknown field "dat"`},
		{name: "unknown action", resource: "tasks", action: "frobnicate", body: `{"id":1}`, wantErr: `unknown action "frobnicate"`},
		{name: "action with extra tokens", resource: "tasks", action: "update.now", body: `{"id":1}`, wantErr: `unknown action "update.now"`},
		{name: "bad resource", resource: "ta*ks", action: "update", body: `{"id":1}`, wantErr: "not a resource name"},
		{name: "resource not served", resource: "widgets", action: "create", body: `{"data":{}}`, resources: []string{"tasks", "users"},
			wantErr: "unknown resource \"widgets\": this bridge serves tasks, users"},
		{name: "not allowed", resource: "tasks", action: "delete", body: `{"id":1}`, allow: Allow{"tasks.update", "users.*"},
			wantErr: "tasks.delete is not allowed by BRIDGE_COMMAND_ALLOW (tasks.update,users.*)"},
		{name: "nothing allowed", resource: "tasks", action: "delete", body: `{"id":1}`, allow: Allow{}, wantErr: "not allowed"},
		{name: "update without id", resource: "tasks", action: "update", body: `{"data":{"a":1}}`, wantErr: `update needs "id"`},
		{name: "update with null id", resource: "tasks", action: "update", body: `{"id":null,"data":{"a":1}}`, wantErr: `update needs "id"`},
		{name: "update without data", resource: "tasks", action: "update", body: `{"id":1}`, wantErr: `update needs "data"`},
		{name: "create with an id", resource: "tasks", action: "create", body: `{"id":1,"data":{}}`, wantErr: `create takes no "id"`},
		{name: "data not an object", resource: "tasks", action: "create", body: `{"data":[1]}`, wantErr: `"data" must be a JSON object`},
		{name: "delete with data", resource: "tasks", action: "delete", body: `{"id":1,"data":{}}`, wantErr: `delete takes no "data"`},

		{name: "create", resource: "tasks", action: "create", body: `{"data":{"title":"x"}}`},
		{name: "update with numeric id", resource: "tasks", action: "update", body: `{"id":42,"data":{"status":"done"}}`, wantID: "42"},
		{name: "delete with string id", resource: "tasks", action: "delete", body: ` {"id":"a.b"} `, wantID: "a.b"},
		{name: "allowed by pattern", resource: "users", action: "delete", body: `{"id":1}`, allow: Allow{"tasks.update", "users.*"}, wantID: "1"},
		{name: "allowed by action pattern", resource: "users", action: "update", body: `{"id":1,"data":{}}`, allow: Allow{"*.update"}, wantID: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allow := tt.allow
			if allow == nil {
				allow = all
			}
			req, err := Validate(tt.resource, tt.action, []byte(tt.body), tt.resources, allow)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(req.ID) != tt.wantID || req.Resource != tt.resource || string(req.Action) != tt.action {
				t.Errorf("request = %+v", req)
			}
		})
	}
}

func TestOriginalCommand(t *testing.T) {
	if got := string(originalCommand([]byte(` {"id":1} `))); got != `{"id":1}` {
		t.Errorf("JSON body kept as %s", got)
	}
	if got := string(originalCommand([]byte(`{"id":`))); got != `"{\"id\":"` {
		t.Errorf("broken body kept as %s", got)
	}
	if got := string(originalCommand([]byte(`<b>x</b> & {`))); got != `"<b>x</b> & {"` {
		t.Errorf("a body that is not JSON is kept as %s, want it as written, not HTML-escaped", got)
	}
	if !events.ActionCreate.Valid() || events.Action("x").Valid() {
		t.Error("Action.Valid")
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{`{"id":1,"data":{"a":1}}`, `{"data":{}}`, `{"id":"x"}`, `[`, `{"id":null}`, `{"id":1e400}`} {
		f.Add("update", []byte(s))
	}
	f.Fuzz(func(t *testing.T, action string, body []byte) {
		req, err := Validate("tasks", action, body, nil, Allow{"*"})
		if err != nil {
			return
		}
		if !req.Action.Valid() || (req.Action != events.ActionCreate && req.ID == "") {
			t.Fatalf("accepted %q %q as %+v", action, body, req)
		}
	})
}
