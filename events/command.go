package events

import (
	"encoding/json"

	"github.com/rockety-io/rockety-bridge/rockety/model"
)

// Action is what a command asks the API to do.
type Action string

// The command actions.
const (
	ActionCreate Action = "create"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
)

// Valid reports whether a is a known action.
func (a Action) Valid() bool {
	return a == ActionCreate || a == ActionUpdate || a == ActionDelete
}

// Command is the body of a message on P.commands.<resource>.<action>. ID is
// required for update and delete, Data (a JSON object, sent to the API as
// it is) for create and update. The optional Nats-Msg-Id header is the
// command id, its idempotency key.
type Command struct {
	ID   model.ID        `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Status is the outcome of a command.
type Status string

// The command outcomes.
const (
	// StatusSucceeded: the API accepted the write (2xx).
	StatusSucceeded Status = "succeeded"
	// StatusFailed: the API refused it (4xx), or kept failing (5xx,
	// timeouts) until the retries ran out.
	StatusFailed Status = "failed"
	// StatusRejected: never sent — bad JSON, unknown resource or action,
	// missing fields, or not allowed by BRIDGE_COMMAND_ALLOW.
	StatusRejected Status = "rejected"
)

// Result is the body of a message on P.results.<resource>.<action>.<command id>.
type Result struct {
	CommandID string `json:"command_id" jsonschema:"minLength=1"`
	Resource  string `json:"resource"`
	Action    string `json:"action"`
	Status    Status `json:"status" jsonschema:"enum=succeeded,enum=failed,enum=rejected"`
	// HTTPStatus is the API's status, when the command reached it.
	HTTPStatus int `json:"http_status,omitempty"`
	// Data is the API's response body for a succeeded command.
	Data json.RawMessage `json:"data,omitempty"`
	// Error says why a command failed or was rejected, in words a person
	// can act on.
	Error string `json:"error,omitempty"`
	// Command is the original command of a failed or rejected one: as JSON
	// when it parsed, else as a JSON string. The results stream doubles as
	// the dead-letter record.
	Command json.RawMessage `json:"command,omitempty"`
}
