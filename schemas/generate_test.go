package schemas_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/invopop/jsonschema"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety/model"
	"github.com/rockety-io/rockety-bridge/schemas"
)

var update = flag.Bool("update", false, "rewrite the checked-in schemas from the Go types")

// obj is a schema, or part of one, as generic JSON: reflection gives the
// shape of the Go types, and the patches below add what the contract says
// and the types cannot (null-or-object states, conditions on op and status).
type obj = map[string]any

// source is one checked-in schema and how it is made.
type source struct {
	name  string
	typ   any
	title string
	// extra is appended to the type's doc comment to make the root
	// description.
	extra string
	patch func(s obj)
}

var sources = []source{
	{
		name:  "event",
		typ:   events.Event{},
		title: "Rockety change event",
		extra: "It travels on P.events.<resource>.<op>.<id> (P is the subject prefix, \"rockety\" by default), with CloudEvents ce- headers.",
		patch: patchEvent,
	},
	{
		name:  "command",
		typ:   events.Command{},
		title: "Rockety command",
		extra: "The action comes from the subject: id is required for update and delete, data for create and update. The optional Nats-Msg-Id header is the command id, its idempotency key.",
		patch: patchCommand,
	},
	{
		name:  "result",
		typ:   events.Result{},
		title: "Rockety command result",
		extra: "succeeded: the API accepted the write (2xx); failed: the API refused it, or kept failing until the retries ran out; rejected: never sent. A failed or rejected result carries error and the original command, so the results stream doubles as the dead-letter record.",
		patch: patchResult,
	},
	{
		name:  "cycle",
		typ:   events.CycleReport{},
		title: "Rockety cycle report",
		extra: "It travels on P.cycles.<resource> and is kept in the events stream: one per finished poll cycle.",
		patch: patchCycle,
	},
	{
		name:  "resync-request",
		typ:   events.ResyncRequest{},
		title: "Rockety resync request",
		extra: "Sent as a NATS request to P.control.resync.<resource> (rockety-bridge resync); an empty body asks for a full resync.",
		patch: func(s obj) {
			field(properties(s), "mode")["enum"] = []string{string(events.ResyncFull), string(events.ResyncSnapshot)}
			describe(s, map[string]string{"mode": "full: a full traversal at once; snapshot: also one snapshot event per current item."})
		},
	},
	{
		name:  "resync-reply",
		typ:   events.ResyncReply{},
		title: "Rockety resync reply",
		extra: "The lease holder's answer; replicas that do not hold the lease do not answer.",
		patch: func(s obj) {
			describe(s, map[string]string{"resync_id": "The id the cycle report and the snapshot events of this resync carry.",
				"error": "Why the request was refused (a bad body)."})
		},
	},
	{name: "project", typ: model.Project{}, title: "Rockety project", extra: resourceExtra, patch: patchResource},
	{name: "task", typ: model.Task{}, title: "Rockety task", extra: resourceExtra, patch: patchResource},
	{name: "user", typ: model.User{}, title: "Rockety user", extra: resourceExtra, patch: patchResource},
}

const resourceExtra = "Only id is guaranteed: any other field may be missing or null, and fields not listed here are kept as they come."

// commentFiles are the Go files whose doc comments become descriptions.
// Files rather than folders, so that a test type in the same folder cannot
// shadow a model's comment.
var commentFiles = []string{"../events/event.go", "../events/command.go", "../events/cycle.go", "../events/control.go", "../rockety/model/model.go"}

// generate returns every schema as the bytes its file should hold.
func generate() (map[string][]byte, error) {
	r := &jsonschema.Reflector{
		ExpandedStruct: true,
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			if t == reflect.TypeFor[model.ID]() {
				// The API sends ids as strings or numbers; model.ID takes both.
				return &jsonschema.Schema{Extras: map[string]any{"type": []string{"string", "number"}}}
			}
			return nil
		},
	}
	for _, f := range commentFiles {
		// invopop names a file's package by joining base with the file's
		// folder, so "schemas/../events" gives the events import path.
		if err := r.AddGoComments("github.com/rockety-io/rockety-bridge/schemas", f); err != nil {
			return nil, fmt.Errorf("reading doc comments of %s: %w", f, err)
		}
	}
	out := make(map[string][]byte, len(sources))
	for _, src := range sources {
		b, err := json.Marshal(r.Reflect(src.typ))
		if err != nil {
			return nil, fmt.Errorf("marshalling %s schema: %w", src.name, err)
		}
		var s obj
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("decoding %s schema: %w", src.name, err)
		}
		s["$schema"] = schemas.Draft
		s["$id"] = schemas.BaseID + src.name + ".json"
		s["title"] = src.title
		s["description"] = join(s["description"], src.extra)
		if defs, ok := s["$defs"].(obj); ok && len(defs) == 0 {
			delete(s, "$defs")
		}
		src.patch(s)
		tidyDescriptions(s)

		// encoding/json writes map keys sorted, which is what makes the
		// output stable; HTML escaping would turn <resource> into \u003c.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return nil, fmt.Errorf("encoding %s schema: %w", src.name, err)
		}
		out[src.name+".json"] = buf.Bytes()
	}
	return out, nil
}

func join(comment any, extra string) string {
	c, _ := comment.(string)
	switch {
	case c == "":
		return extra
	case extra == "":
		return c
	}
	return c + " " + extra
}

// tidyDescriptions joins the lines of doc comments: a schema's reader sees
// them as one string, where Go's line breaks mean nothing.
func tidyDescriptions(v any) {
	switch v := v.(type) {
	case obj:
		for k, x := range v {
			if d, ok := x.(string); ok && k == "description" {
				v[k] = strings.Join(strings.Fields(d), " ")
				continue
			}
			tidyDescriptions(x)
		}
	case []any:
		for _, x := range v {
			tidyDescriptions(x)
		}
	case []obj:
		for _, x := range v {
			tidyDescriptions(x)
		}
	}
}

func properties(s obj) obj { return s["properties"].(obj) }

// describe sets the description of fields that have no doc comment, so a
// comment added to the Go type later takes over.
func describe(s obj, descriptions map[string]string) {
	props := properties(s)
	for name, d := range descriptions {
		p := field(props, name)
		if p["description"] == nil {
			p["description"] = d
		}
	}
}

// field returns a property's schema as an object; invopop writes an
// unconstrained one (a json.RawMessage) as true.
func field(props obj, name string) obj {
	p, ok := props[name].(obj)
	if !ok {
		if props[name] == nil {
			panic("schema has no property " + name)
		}
		p = obj{}
		props[name] = p
	}
	return p
}

// when is the condition "if field is one of values, then".
func when(field string, values []string, then obj) obj {
	return obj{
		"if":   obj{"properties": obj{field: obj{"enum": values}}, "required": []string{field}},
		"then": then,
	}
}

var (
	isObject = obj{"type": "object"}
	isNull   = obj{"type": "null"}
)

func patchEvent(s obj) {
	props := properties(s)
	field(props, "before")["type"] = []string{"object", "null"}
	field(props, "before")["description"] = "The item before the change, exactly as the API returned it: null for created and snapshot; for deleted, the last known state."
	field(props, "after")["type"] = []string{"object", "null"}
	field(props, "after")["description"] = "The item after the change, exactly as the API returned it: null for deleted."
	describe(s, map[string]string{
		"resource":    "The resource's name as in the API's path, \"tasks\" say.",
		"op":          "What happened to the item.",
		"detected_at": "When the bridge saw the change (RFC 3339).",
	})
	s["allOf"] = []obj{
		when("op", []string{string(events.OpCreated), string(events.OpSnapshot)},
			obj{"properties": obj{"before": isNull, "after": isObject, "changed": false}}),
		when("op", []string{string(events.OpUpdated)},
			obj{"properties": obj{"before": isObject, "after": isObject}}),
		when("op", []string{string(events.OpDeleted)},
			obj{"properties": obj{"before": isObject, "after": isNull, "changed": false}}),
	}
}

func patchCycle(s obj) {
	describe(s, map[string]string{
		"resource":    "The resource's name as in the API's path, \"tasks\" say.",
		"kind":        "full: every page; incremental: the items changed since the cursor; snapshot: a full traversal that publishes one snapshot event per item.",
		"outcome":     "complete: every change found is published and stored; partial: a page could not be read, no delete was published; failed: the cycle stopped early, the next takes it up.",
		"started_at":  "When the cycle began (RFC 3339).",
		"finished_at": "When it ended (RFC 3339).",
	})
	s["allOf"] = []obj{
		when("outcome", []string{string(events.CycleComplete)}, obj{"properties": obj{"error": obj{"const": ""}}}),
		when("outcome", []string{string(events.CyclePartial), string(events.CycleFailed)}, obj{"properties": obj{"error": obj{"minLength": 1}}}),
	}
}

func patchCommand(s obj) {
	props := properties(s)
	field(props, "id")["minLength"] = 1
	field(props, "data")["type"] = "object"
	describe(s, map[string]string{
		"id":   "The item's id, a string or a number: required for update and delete.",
		"data": "The JSON object sent to the API as it is: required for create and update.",
	})
}

func patchResult(s obj) {
	props := properties(s)
	field(props, "http_status")["minimum"] = 100
	field(props, "http_status")["maximum"] = 599
	describe(s, map[string]string{
		"command_id": "The command's id: its Nats-Msg-Id header, else its stream sequence.",
		"resource":   "The resource token of the command's subject, as received.",
		"action":     "The action token of the command's subject, as received, even when it is not a known action.",
		"status":     "The outcome of the command.",
	})
	s["allOf"] = []obj{
		when("status", []string{string(events.StatusSucceeded)}, obj{
			"required":   []string{"http_status"},
			"properties": obj{"http_status": obj{"minimum": 200, "maximum": 299}},
		}),
		when("status", []string{string(events.StatusFailed), string(events.StatusRejected)}, obj{
			"required":   []string{"error", "command"},
			"properties": obj{"error": obj{"minLength": 1}},
		}),
	}
}

// patchResource makes a typed resource a tolerant reader: the bridge keeps
// every item as the API sends it, so validation must not fail on a field
// the Go type does not know, nor on a null the API sends for an empty one
// (the typed view decodes both without error).
func patchResource(s obj) {
	s["additionalProperties"] = true
	s["required"] = []string{"id"}
	props := properties(s)
	for name := range props {
		p := field(props, name)
		if name == "id" {
			p["minLength"] = 1
			continue
		}
		switch t := p["type"].(type) {
		case string:
			p["type"] = []any{t, "null"}
		case []any:
			p["type"] = append(t, "null")
		}
	}
	describe(s, map[string]string{"id": "The item's id, a string or a number."})
}

// TestGenerated fails when a checked-in schema no longer matches the Go
// types; with -update it rewrites the files instead.
func TestGenerated(t *testing.T) {
	got, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range sources {
		file := src.name + ".json"
		if *update {
			if err := os.WriteFile(file, got[file], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("schemas/%s: %v; run go test ./schemas -update", file, err)
			continue
		}
		if !bytes.Equal(got[file], want) {
			t.Errorf("schemas/%s differs from what the Go types generate; run go test ./schemas -update and review the diff", file)
		}
	}
	onDisk, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range onDisk {
		if _, ok := got[f]; !ok {
			t.Errorf("schemas/%s is not generated from any Go type; delete it or add it to sources", f)
		}
	}
}

// TestGeneratedIsDeterministic guards the drift test itself: two runs must
// give the same bytes, or TestGenerated would fail at random.
func TestGeneratedIsDeterministic(t *testing.T) {
	a, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b, err := generate()
		if err != nil {
			t.Fatal(err)
		}
		for f := range a {
			if !bytes.Equal(a[f], b[f]) {
				t.Fatalf("%s differs between two generations", f)
			}
		}
	}
}

// TestOpEnumMatchesOps keeps the enum in Event's struct tag in step with
// events.Ops, the list code uses.
func TestOpEnumMatchesOps(t *testing.T) {
	got, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties struct {
			Op struct {
				Enum []string `json:"enum"`
			} `json:"op"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(got["event.json"], &s); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, op := range events.Ops {
		want = append(want, string(op))
	}
	if !slices.Equal(s.Properties.Op.Enum, want) {
		t.Errorf("op enum in event.json = %v, events.Ops = %v", s.Properties.Op.Enum, want)
	}
}
