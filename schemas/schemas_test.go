package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety/model"
	"github.com/rockety-io/rockety-bridge/schemas"
)

// updatedEvent is the example of DESIGN.md.
const updatedEvent = `{
  "resource": "tasks",
  "op": "updated",
  "id": "42",
  "revision": 3,
  "before": {"id": 42, "title": "old", "status": "open"},
  "after":  {"id": 42, "title": "new", "status": "open"},
  "changed": ["title"],
  "detected_at": "2026-11-26T21:00:00.123456Z"
}`

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		doc    string
		// fields are the JSON Pointers the error must name; none means the
		// document is valid.
		fields []string
	}{
		// Events.
		{name: "updated event from DESIGN.md", schema: "event", doc: updatedEvent},
		{name: "created event, before null", schema: "event",
			doc: `{"resource":"tasks","op":"created","id":"7","revision":1,"before":null,"after":{"id":7,"title":"new"},"detected_at":"2026-11-26T21:00:00Z"}`},
		{name: "deleted event, after null", schema: "event",
			doc: `{"resource":"tasks","op":"deleted","id":"7","revision":4,"before":{"id":7,"title":"last"},"after":null,"detected_at":"2026-11-26T21:00:00+01:00"}`},
		{name: "snapshot event", schema: "event",
			doc: `{"resource":"users","op":"snapshot","id":"u-1","revision":1,"before":null,"after":{"id":"u-1"},"detected_at":"2026-11-26T21:00:00Z"}`},
		{name: "unknown op", schema: "event", doc: strings.Replace(updatedEvent, `"updated"`, `"renamed"`, 1),
			fields: []string{"/op"}},
		{name: "missing revision", schema: "event", doc: strings.Replace(updatedEvent, `"revision": 3,`, ``, 1),
			fields: []string{"/revision"}},
		{name: "revision 0", schema: "event", doc: strings.Replace(updatedEvent, `"revision": 3`, `"revision": 0`, 1),
			fields: []string{"/revision"}},
		{name: "revision not an integer", schema: "event", doc: strings.Replace(updatedEvent, `"revision": 3`, `"revision": 3.5`, 1),
			fields: []string{"/revision"}},
		{name: "before a string", schema: "event", doc: strings.Replace(updatedEvent, `"before": {"id": 42, "title": "old", "status": "open"}`, `"before": "old"`, 1),
			fields: []string{"/before"}},
		{name: "updated event, before null", schema: "event", doc: strings.Replace(updatedEvent, `"before": {"id": 42, "title": "old", "status": "open"}`, `"before": null`, 1),
			fields: []string{"/before"}},
		{name: "created event with a before state", schema: "event",
			doc:    `{"resource":"tasks","op":"created","id":"7","revision":1,"before":{"id":7},"after":{"id":7},"detected_at":"2026-11-26T21:00:00Z"}`,
			fields: []string{"/before"}},
		{name: "deleted event with an after state", schema: "event",
			doc:    `{"resource":"tasks","op":"deleted","id":"7","revision":2,"before":{"id":7},"after":{"id":7},"detected_at":"2026-11-26T21:00:00Z"}`,
			fields: []string{"/after"}},
		{name: "changed on a created event", schema: "event",
			doc:    `{"resource":"tasks","op":"created","id":"7","revision":1,"before":null,"after":{"id":7},"changed":["title"],"detected_at":"2026-11-26T21:00:00Z"}`,
			fields: []string{"/changed"}},
		{name: "changed not strings", schema: "event", doc: strings.Replace(updatedEvent, `["title"]`, `[1]`, 1),
			fields: []string{"/changed/0"}},
		{name: "detected_at not a date-time", schema: "event", doc: strings.Replace(updatedEvent, `"2026-11-26T21:00:00.123456Z"`, `"yesterday"`, 1),
			fields: []string{"/detected_at"}},
		{name: "empty id", schema: "event", doc: strings.Replace(updatedEvent, `"id": "42"`, `"id": ""`, 1),
			fields: []string{"/id"}},
		{name: "numeric event id", schema: "event", doc: strings.Replace(updatedEvent, `"id": "42"`, `"id": 42`, 1),
			fields: []string{"/id"}},
		{name: "unknown event field", schema: "event", doc: strings.Replace(updatedEvent, `"op"`, `"extra": 1, "op"`, 1),
			fields: []string{"/extra"}},
		{name: "two problems, both named", schema: "event", doc: strings.Replace(strings.Replace(updatedEvent, `"revision": 3`, `"revision": 0`, 1), `"tasks"`, `""`, 1),
			fields: []string{"/resource", "/revision"}},

		// Commands.
		{name: "update command from DESIGN.md", schema: "command", doc: `{"id": "42", "data": {"status": "done"}}`},
		{name: "command with a numeric id", schema: "command", doc: `{"id": 42, "data": {"status": "done"}}`},
		{name: "create command", schema: "command", doc: `{"data": {"title": "new"}}`},
		{name: "delete command", schema: "command", doc: `{"id": "42"}`},
		{name: "command data an array", schema: "command", doc: `{"id": "42", "data": [{"status": "done"}]}`,
			fields: []string{"/data"}},
		{name: "command id a boolean", schema: "command", doc: `{"id": true}`,
			fields: []string{"/id"}},
		{name: "command id empty", schema: "command", doc: `{"id": ""}`,
			fields: []string{"/id"}},
		{name: "command with a misspelt field", schema: "command", doc: `{"id": "42", "dat": {}}`,
			fields: []string{"/dat"}},
		{name: "command not an object", schema: "command", doc: `"update 42"`,
			fields: []string{""}},

		// Results.
		{name: "succeeded result from DESIGN.md", schema: "result",
			doc: `{"command_id": "c-1", "resource": "tasks", "action": "update", "status": "succeeded", "http_status": 200, "data": {"id": 42, "status": "done"}}`},
		{name: "succeeded delete, no body", schema: "result",
			doc: `{"command_id": "c-2", "resource": "tasks", "action": "delete", "status": "succeeded", "http_status": 204}`},
		{name: "failed result", schema: "result",
			doc: `{"command_id": "c-3", "resource": "tasks", "action": "update", "status": "failed", "http_status": 404, "error": "task 9 does not exist", "command": {"id": "9", "data": {}}}`},
		{name: "failed after retries, no status", schema: "result",
			doc: `{"command_id": "c-4", "resource": "tasks", "action": "create", "status": "failed", "error": "API kept answering 503", "command": {"data": {}}}`},
		{name: "rejected result, command as a string", schema: "result",
			doc: `{"command_id": "17", "resource": "tasks", "action": "frobnicate", "status": "rejected", "error": "unknown action", "command": "{not json"}`},
		{name: "result status ok", schema: "result",
			doc:    `{"command_id": "c-1", "resource": "tasks", "action": "update", "status": "ok"}`,
			fields: []string{"/status"}},
		{name: "rejected without error and command", schema: "result",
			doc:    `{"command_id": "c-1", "resource": "tasks", "action": "update", "status": "rejected"}`,
			fields: []string{"/error", "/command"}},
		{name: "succeeded with a 404", schema: "result",
			doc:    `{"command_id": "c-1", "resource": "tasks", "action": "update", "status": "succeeded", "http_status": 404}`,
			fields: []string{"/http_status"}},
		{name: "result without command id", schema: "result",
			doc:    `{"resource": "tasks", "action": "update", "status": "succeeded", "http_status": 200}`,
			fields: []string{"/command_id"}},

		// Resources.
		{name: "task as the simulator sends it", schema: "task",
			doc: `{"id":1,"project_id":3,"title":"Ship it","description":null,"status":"todo","priority":"high","assignee_id":null,"due_date":null,"tags":["a","b"],"meta":{"x":[1,{"y":null}]},"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-02T00:00:00Z"}`},
		{name: "project with a string id and unknown fields", schema: "project",
			doc: `{"id":"p-1","name":"Apollo","owner_id":"u-1","budget":{"amount":3}}`},
		{name: "user", schema: "user",
			doc: `{"id":5,"name":"Ada Lovelace","email":"ada@example.com","role":"admin","active":true}`},
		{name: "task without id", schema: "task", doc: `{"title":"no id"}`,
			fields: []string{"/id"}},
		{name: "task with a numeric title", schema: "task", doc: `{"id":1,"title":5}`,
			fields: []string{"/title"}},
		{name: "user id null", schema: "user", doc: `{"id":null,"name":"x"}`,
			fields: []string{"/id"}},
		{name: "project created_at not a date-time", schema: "project", doc: `{"id":1,"created_at":"last week"}`,
			fields: []string{"/created_at"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := schemas.Validate(tt.schema, []byte(tt.doc))
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var verr *schemas.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want a *ValidationError, got %v", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("message is not one line: %q", msg)
			}
			if verr.Schema != tt.schema || !strings.Contains(msg, tt.schema) {
				t.Errorf("error does not name schema %q: %v", tt.schema, err)
			}
			for _, f := range tt.fields {
				if !slices.Contains(verr.Fields, f) {
					t.Errorf("Fields = %q, want it to hold %q (%v)", verr.Fields, f, err)
				}
				if f != "" && !strings.Contains(msg, strings.TrimPrefix(f, "/")) {
					t.Errorf("message does not name %s: %v", f, err)
				}
			}
		})
	}
}

func TestValidateByKind(t *testing.T) {
	tests := []struct {
		name     string
		validate func([]byte) error
		doc      string
		wantErr  bool
	}{
		{name: "event", validate: schemas.ValidateEvent, doc: updatedEvent},
		{name: "event given a command", validate: schemas.ValidateEvent, doc: `{"id": "42", "data": {}}`, wantErr: true},
		{name: "command", validate: schemas.ValidateCommand, doc: `{"id": 42, "data": {}}`},
		{name: "command given an event", validate: schemas.ValidateCommand, doc: updatedEvent, wantErr: true},
		{name: "result", validate: schemas.ValidateResult, doc: `{"command_id": "c", "resource": "tasks", "action": "delete", "status": "succeeded", "http_status": 204}`},
		{name: "result given a command", validate: schemas.ValidateResult, doc: `{"id": 42}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.validate([]byte(tt.doc)); (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestValidateOtherErrors(t *testing.T) {
	tests := []struct {
		name    string
		schema  string
		doc     string
		wantMsg string
	}{
		{name: "unknown schema", schema: "comment", doc: `{}`, wantMsg: `no schema named "comment"`},
		{name: "not JSON", schema: "event", doc: `{"op":`, wantMsg: "event: not JSON"},
		{name: "trailing data", schema: "command", doc: `{"id":"1"} {}`, wantMsg: "command: not JSON"},
		{name: "empty", schema: "command", doc: ``, wantMsg: "command: not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := schemas.Validate(tt.schema, []byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want it to say %q", err, tt.wantMsg)
			}
			var verr *schemas.ValidationError
			if errors.As(err, &verr) {
				t.Errorf("got a *ValidationError for a document that is not JSON or a schema that does not exist")
			}
		})
	}
}

// TestGoValuesValidate checks the schemas against what the Go types
// actually encode, not only against hand-written JSON: a field rename or a
// changed omitempty in events shows up here.
func TestGoValuesValidate(t *testing.T) {
	at := time.Date(2026, 11, 26, 21, 0, 0, 123456000, time.UTC)
	tests := []struct {
		name   string
		schema string
		value  any
	}{
		{name: "updated event", schema: "event", value: events.Event{
			Resource: "tasks", Op: events.OpUpdated, ID: "42", Revision: 3,
			Before: json.RawMessage(`{"id":42,"title":"old"}`), After: json.RawMessage(`{"id":42,"title":"new"}`),
			Changed: []string{"title"}, DetectedAt: at,
		}},
		{name: "created event, nil before", schema: "event", value: events.Event{
			Resource: "tasks", Op: events.OpCreated, ID: "7", Revision: events.ChangeRevision(0),
			After: json.RawMessage(`{"id":7}`), DetectedAt: at,
		}},
		{name: "deleted event, nil after, empty changed", schema: "event", value: events.Event{
			Resource: "tasks", Op: events.OpDeleted, ID: "7", Revision: 5,
			Before: json.RawMessage(`{"id":7}`), Changed: []string{}, DetectedAt: at,
		}},
		{name: "command", schema: "command", value: events.Command{ID: "42", Data: json.RawMessage(`{"status":"done"}`)}},
		{name: "create command", schema: "command", value: events.Command{Data: json.RawMessage(`{"title":"x"}`)}},
		{name: "succeeded result", schema: "result", value: events.Result{
			CommandID: "c-1", Resource: "tasks", Action: string(events.ActionUpdate), Status: events.StatusSucceeded,
			HTTPStatus: 200, Data: json.RawMessage(`{"id":42}`),
		}},
		{name: "rejected result", schema: "result", value: events.Result{
			CommandID: "c-2", Resource: "tasks", Action: "frobnicate", Status: events.StatusRejected,
			Error: "unknown action", Command: json.RawMessage(`"{not json"`),
		}},
		{name: "project", schema: "project", value: model.Project{ID: "1", Name: "Apollo", CreatedAt: at}},
		{name: "task", schema: "task", value: model.Task{ID: "1", Title: "x", Tags: []string{"a"}}},
		{name: "user", schema: "user", value: model.User{ID: "1", Name: "Ada", Email: "ada@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemas.Validate(tt.schema, b); err != nil {
				t.Errorf("%s: %v", b, err)
			}
		})
	}
}

func TestNames(t *testing.T) {
	want := []string{"command", "cycle", "event", "project", "result", "resync-reply", "resync-request", "task", "user"}
	if got := schemas.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	for _, n := range schemas.Names() {
		if err := schemas.Validate(n, []byte(`{"id": "1"}`)); err != nil {
			var verr *schemas.ValidationError
			if !errors.As(err, &verr) {
				t.Errorf("Validate(%q) does not know its own name: %v", n, err)
			}
		}
	}
}

// TestFilesAreSchemas checks every checked-in file against the 2020-12
// meta-schema and its identity, since other languages read the files
// without going through this package.
func TestFilesAreSchemas(t *testing.T) {
	c := jsonschema.NewCompiler()
	meta, err := c.Compile(schemas.Draft)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range schemas.Names() {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(name + ".json")
			if err != nil {
				t.Fatal(err)
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if err := meta.Validate(doc); err != nil {
				t.Errorf("not a valid 2020-12 schema: %v", err)
			}
			s, _ := doc.(map[string]any)
			if got := s["$schema"]; got != schemas.Draft {
				t.Errorf("$schema = %v, want %s", got, schemas.Draft)
			}
			if got, want := s["$id"], schemas.BaseID+name+".json"; got != want {
				t.Errorf("$id = %v, want %s", got, want)
			}
			for _, k := range []string{"title", "description"} {
				if v, _ := s[k].(string); v == "" {
					t.Errorf("no %s", k)
				}
			}
		})
	}
}

func FuzzValidateEvent(f *testing.F) {
	f.Add([]byte(updatedEvent))
	f.Add([]byte(`{"op":"created","before":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := schemas.ValidateEvent(data)
		var verr *schemas.ValidationError
		if errors.As(err, &verr) && (verr.Schema != "event" || strings.Contains(err.Error(), "\n")) {
			t.Errorf("bad error for %q: %v", data, err)
		}
	})
}
