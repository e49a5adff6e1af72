package consumer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// Request is a validated command, ready to become an API write.
type Request struct {
	Resource string
	Action   events.Action
	ID       rockety.ID      // for update and delete
	Data     json.RawMessage // for create and update: a JSON object
}

// Allow is BRIDGE_COMMAND_ALLOW: patterns resource.action, either part
// "*", or "*" alone.
type Allow []string

// Permits reports whether resource.action matches a pattern.
func (a Allow) Permits(resource string, action events.Action) bool {
	for _, p := range a {
		if p == "*" {
			return true
		}
		res, act, _ := strings.Cut(p, ".")
		if (res == "*" || res == resource) && (act == "*" || act == string(action)) {
			return true
		}
	}
	return false
}

// Validate turns a command message's subject tokens and body into a
// Request, or says why it is rejected, in words a person can act on.
// resources, when not empty, lists the resources commands may name.
// It does no I/O.
func Validate(resource, action string, body []byte, resources []string, allow Allow) (Request, error) {
	if err := events.ValidResource(resource); err != nil {
		return Request{}, fmt.Errorf("%q is not a resource name: only letters, digits, '_' and '-' are allowed", resource)
	}
	if len(resources) > 0 && !contains(resources, resource) {
		return Request{}, fmt.Errorf("unknown resource %q: this bridge serves %s (ROCKETY_RESOURCES)", resource, strings.Join(resources, ", "))
	}
	act := events.Action(action)
	if !act.Valid() {
		return Request{}, fmt.Errorf("unknown action %q: publish to <prefix>.commands.%s.create, .update or .delete", action, resource)
	}
	if !allow.Permits(resource, act) {
		return Request{}, fmt.Errorf("%s.%s is not allowed by BRIDGE_COMMAND_ALLOW (%s)", resource, act, strings.Join(allow, ","))
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return Request{}, errors.New(`empty body: send a JSON object such as {"id": "42", "data": {"status": "done"}}`)
	}
	var cmd events.Command
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cmd); err != nil {
		return Request{}, fmt.Errorf(`the body is not a command: %v; send a JSON object with "id" and/or "data"`, err)
	}
	if dec.More() {
		return Request{}, errors.New("the body has more than one JSON value; send exactly one command object")
	}
	req := Request{Resource: resource, Action: act, ID: cmd.ID, Data: bytes.TrimSpace(cmd.Data)}
	if string(req.Data) == "null" {
		req.Data = nil
	}
	switch act {
	case events.ActionCreate:
		if req.ID != "" {
			return Request{}, errors.New(`create takes no "id": the API assigns it; to change an existing item, use update`)
		}
	case events.ActionUpdate, events.ActionDelete:
		if req.ID == "" {
			return Request{}, fmt.Errorf(`%s needs "id": the id of the %s item to %s`, act, resource, act)
		}
	}
	switch act {
	case events.ActionCreate, events.ActionUpdate:
		if len(req.Data) == 0 {
			return Request{}, fmt.Errorf(`%s needs "data": a JSON object with the fields to %s`, act, map[events.Action]string{
				events.ActionCreate: "set", events.ActionUpdate: "change"}[act])
		}
		if req.Data[0] != '{' {
			return Request{}, errors.New(`"data" must be a JSON object`)
		}
	case events.ActionDelete:
		if len(req.Data) > 0 {
			return Request{}, errors.New(`delete takes no "data"; send only "id"`)
		}
	}
	return req, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// originalCommand is the command as received, for the dead-letter record:
// as JSON when it is JSON, else as a JSON string.
func originalCommand(body []byte) json.RawMessage {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && json.Valid(body) {
		return json.RawMessage(body)
	}
	b, _ := events.EncodeJSON(string(body)) // "<b>" stays "<b>", not "\u003cb\u003e"
	return b
}
