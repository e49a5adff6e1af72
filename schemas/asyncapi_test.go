package schemas_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rockety-io/rockety-bridge/events"
)

const asyncAPIFile = "asyncapi.yaml"

// asyncAPI builds the AsyncAPI 3.0 document of the bridge's NATS contract
// from the Go contract (events: subjects, ops, actions, header names) and
// the JSON Schemas generate makes, embedded as they are.
func asyncAPI(schemaFiles map[string][]byte) ([]byte, error) {
	s := events.MustSubjects(events.DefaultPrefix)
	p := s.Prefix()
	components := obj{}
	for _, src := range sources {
		var sch obj
		if err := json.Unmarshal(schemaFiles[src.name+".json"], &sch); err != nil {
			return nil, err
		}
		// Kept whole, but without the identifiers that make a schema a
		// document of its own: inside this one they would move the base
		// of every reference.
		delete(sch, "$id")
		delete(sch, "$schema")
		components[src.name] = sch
	}
	ref := func(kind, name string) obj { return obj{"$ref": "#/" + kind + "/" + name} }
	param := func(desc string) obj { return obj{"description": desc} }
	resourceParam := param("The resource's name as in the API's path: tasks, projects, users, or any list endpoint in ROCKETY_RESOURCES.")
	header := func(desc string) obj { return obj{"type": "string", "description": desc} }
	ceHeaders := func(typ, subject string) obj {
		return obj{
			events.HeaderSpecVersion:     obj{"type": "string", "const": "1.0", "description": "CloudEvents spec version."},
			events.HeaderID:              header("The event id, also Nats-Msg-Id."),
			events.HeaderType:            header(typ),
			events.HeaderSource:          header("The API base URL and the resource, e.g. https://app.rockety.io/api/v1/tasks."),
			events.HeaderSubject:         header(subject),
			events.HeaderTime:            header("When the bridge saw the change (RFC 3339)."),
			events.HeaderDataContentType: obj{"type": "string", "const": "application/json"},
			events.HeaderMsgID:           header("JetStream's deduplication key, equal to ce-id."),
		}
	}
	headerSchema := func(props obj, required ...string) obj {
		h := obj{"type": "object", "properties": props}
		if len(required) > 0 {
			h["required"] = required
		}
		return h
	}
	ceRequired := []string{events.HeaderSpecVersion, events.HeaderID, events.HeaderType, events.HeaderSource,
		events.HeaderSubject, events.HeaderTime, events.HeaderDataContentType, events.HeaderMsgID}

	channels, operations, messages := obj{}, obj{}, obj{}
	for _, op := range events.Ops {
		name := "event-" + string(op)
		messages[name] = obj{
			"name": name, "title": "Change event: " + string(op), "contentType": "application/json",
			"summary": "One " + string(op) + " change of one item, in the binary content mode of the CloudEvents NATS binding.",
			"headers": headerSchema(ceHeaders("io.rockety.<resource>."+string(op), "The item's id."), ceRequired...),
			"payload": ref("components/schemas", "event"),
		}
		channels["events-"+string(op)] = obj{
			"address":    p + ".events.{resource}." + string(op) + ".{id}",
			"title":      "Change events: " + string(op),
			"parameters": obj{"resource": resourceParam, "id": param("The item's id, escaped (=XX per byte outside [A-Za-z0-9_-]).")},
			"messages":   obj{name: ref("components/messages", name)},
		}
		operations["publish-"+string(op)] = obj{
			"action": "send", "channel": ref("channels", "events-"+string(op)),
			"summary": "The bridge publishes " + string(op) + " events to the events stream.",
		}
	}
	for _, a := range []events.Action{events.ActionCreate, events.ActionUpdate, events.ActionDelete} {
		name := "command-" + string(a)
		messages[name] = obj{
			"name": name, "title": "Command: " + string(a), "contentType": "application/json",
			"headers": headerSchema(obj{events.HeaderMsgID: header("The command id, its idempotency key; without it the bridge uses the stream sequence.")}),
			"payload": ref("components/schemas", "command"),
		}
		channels["commands-"+string(a)] = obj{
			"address":    p + ".commands.{resource}." + string(a),
			"title":      "Commands: " + string(a),
			"parameters": obj{"resource": resourceParam},
			"messages":   obj{name: ref("components/messages", name)},
		}
		operations["execute-"+string(a)] = obj{
			"action": "receive", "channel": ref("channels", "commands-"+string(a)),
			"summary": "The bridge executes " + string(a) + " commands from the commands stream as API writes.",
		}
	}
	resultHeaders := ceHeaders("io.rockety.<resource>.<action>.result", "The command id.")
	resultHeaders[events.HeaderCommandID] = header("The command id, as sent.")
	messages["result"] = obj{
		"name": "result", "title": "Command result", "contentType": "application/json",
		"headers": headerSchema(resultHeaders, append(slices.Clone(ceRequired), events.HeaderCommandID)...),
		"payload": ref("components/schemas", "result"),
	}
	channels["results"] = obj{
		"address": p + ".results.{resource}.{action}.{command_id}",
		"title":   "Command results",
		"parameters": obj{"resource": param("The command subject's resource token, as received."),
			"action": param("The command subject's action token, as received (even an unknown one)."), "command_id": param("The command id, escaped.")},
		"messages": obj{"result": ref("components/messages", "result")},
	}
	operations["publish-result"] = obj{"action": "send", "channel": ref("channels", "results"),
		"summary": "The bridge publishes one result per command, with Nats-Msg-Id result:<command id>."}
	messages["cycle-report"] = obj{"name": "cycle-report", "title": "Cycle report", "contentType": "application/json",
		"payload": ref("components/schemas", "cycle")}
	channels["cycles"] = obj{"address": p + ".cycles.{resource}", "title": "Cycle reports", "parameters": obj{"resource": resourceParam},
		"messages": obj{"cycle-report": ref("components/messages", "cycle-report")}}
	operations["publish-cycle-report"] = obj{"action": "send", "channel": ref("channels", "cycles"),
		"summary": "The lease holder publishes a report after every poll cycle."}
	messages["resync-request"] = obj{"name": "resync-request", "title": "Resync request", "contentType": "application/json",
		"payload": ref("components/schemas", "resync-request")}
	messages["resync-reply"] = obj{"name": "resync-reply", "title": "Resync reply", "contentType": "application/json",
		"payload": ref("components/schemas", "resync-reply")}
	channels["resync"] = obj{"address": p + ".control.resync.{resource}", "title": "Resync requests", "parameters": obj{"resource": resourceParam},
		"messages": obj{"resync-request": ref("components/messages", "resync-request")}}
	channels["resync-reply"] = obj{"address": nil, "title": "Resync replies (the requester's inbox)",
		"messages": obj{"resync-reply": ref("components/messages", "resync-reply")}}
	operations["answer-resync"] = obj{"action": "receive", "channel": ref("channels", "resync"),
		"summary": "The holder of the resource's lease answers; the others stay silent.",
		"reply":   obj{"channel": ref("channels", "resync-reply")}}

	doc := obj{
		"asyncapi": "3.0.0",
		"info": obj{
			"title":   "rockety-bridge",
			"version": "v1",
			"description": "Rockety API changes as NATS JetStream events, and NATS commands as API writes. Subjects start with the prefix " +
				"BRIDGE_SUBJECT_PREFIX (here the default, " + p + "); streams and buckets are named after it in upper case. " +
				"Generated from the Go types (go test ./schemas -update).",
		},
		"defaultContentType": "application/json",
		"servers": obj{"nats": obj{"host": "localhost:4222", "protocol": "nats",
			"description": "The NATS server with JetStream the bridge uses (NATS_URL)."}},
		"channels":   channels,
		"operations": operations,
		"components": obj{"schemas": components, "messages": messages},
		"x-jetstream": obj{
			"streams": obj{
				s.EventsStream():   obj{"subjects": []string{s.Events(), s.Results(), s.Cycles()}, "storage": "file", "retention": "limits", "duplicate_window": "10m"},
				s.CommandsStream(): obj{"subjects": []string{s.Commands()}, "storage": "file", "retention": "workqueue", "duplicate_window": "10m"},
			},
			"key_value_buckets": obj{
				s.StateBucket():          obj{"keys": "<resource>.<escaped id>", "value": "the item's JSON as the API returned it; header Rockety-Hash"},
				s.CheckpointsBucket():    obj{"keys": "<resource>", "value": `{"checkpoint": <events-stream sequence>, "cursor": "<RFC 3339>", "last_full_traversal": "<RFC 3339>"}`},
				s.LeasesBucket():         obj{"keys": "<resource>; budget.tokens; budget.replicas.<instance>", "value": "the holder's BRIDGE_INSTANCE_ID"},
				s.CommandResultsBucket(): obj{"keys": "<escaped command id>", "value": "the stored result, kept 24 h"},
			},
		},
	}
	var buf bytes.Buffer
	buf.WriteString("# Generated by go test ./schemas -update from the Go types; do not edit.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// TestAsyncAPIGenerated fails when asyncapi.yaml no longer matches the Go
// contract; with -update it rewrites it.
func TestAsyncAPIGenerated(t *testing.T) {
	files, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := asyncAPI(files)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(asyncAPIFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(asyncAPIFile)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("schemas/%s differs from what the Go types generate (%v); run go test ./schemas -update and review the diff", asyncAPIFile, err)
	}
}

// TestAsyncAPICoversTheContract reads the checked-in document and finds in
// it every subject, header and schema the code uses.
func TestAsyncAPICoversTheContract(t *testing.T) {
	raw, err := os.ReadFile(asyncAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		AsyncAPI string `yaml:"asyncapi"`
		Channels map[string]struct {
			Address *string `yaml:"address"`
		} `yaml:"channels"`
		Components struct {
			Schemas  map[string]any `yaml:"schemas"`
			Messages map[string]struct {
				Headers struct {
					Properties map[string]any `yaml:"properties"`
				} `yaml:"headers"`
			} `yaml:"messages"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AsyncAPI != "3.0.0" {
		t.Errorf("asyncapi %q, want 3.0.0", doc.AsyncAPI)
	}
	addresses := map[string]bool{}
	for _, c := range doc.Channels {
		if c.Address != nil {
			addresses[*c.Address] = true
		}
	}
	s := events.MustSubjects(events.DefaultPrefix)
	// Each subject the code builds, with the placeholders the document
	// names its parameters by.
	want := []string{s.Cycle("{resource}"), s.Resync("{resource}"), s.Result("{resource}", "{action}", "{command_id}")}
	for _, op := range events.Ops {
		want = append(want, strings.Replace(s.Event("{resource}", op, "x"), ".x", ".{id}", 1))
	}
	for _, a := range []events.Action{events.ActionCreate, events.ActionUpdate, events.ActionDelete} {
		want = append(want, s.Command("{resource}", a))
	}
	for _, w := range want {
		// Escape turns the braces of a parameter into =7B..=7D; the
		// document names them plainly.
		w = strings.NewReplacer("=7B", "{", "=7D", "}").Replace(w)
		if !addresses[w] {
			t.Errorf("no channel for %s (have %v)", w, addresses)
		}
	}
	headers := map[string]bool{}
	for _, m := range doc.Components.Messages {
		for h := range m.Headers.Properties {
			headers[h] = true
		}
	}
	for _, h := range []string{events.HeaderSpecVersion, events.HeaderID, events.HeaderType, events.HeaderSource, events.HeaderSubject,
		events.HeaderTime, events.HeaderDataContentType, events.HeaderMsgID, events.HeaderCommandID} {
		if !headers[h] {
			t.Errorf("no message names the header %s", h)
		}
	}
	files, _ := os.ReadDir(".")
	for _, f := range files {
		if name, ok := strings.CutSuffix(f.Name(), ".json"); ok {
			if _, found := doc.Components.Schemas[name]; !found {
				t.Errorf("schemas/%s is not in the document's components", f.Name())
			}
		}
	}
	if len(doc.Components.Schemas) == 0 {
		t.Fatal(fmt.Errorf("no schemas in %s", asyncAPIFile))
	}
}
