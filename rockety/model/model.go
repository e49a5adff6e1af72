// Package model holds the Rockety resource models (Project, Task, User), the
// item id type and the raw item. It imports only the standard library: a
// service that decodes events into these types must not compile the API
// client, its retries or its rate limiter. The rockety package re-exports
// every name here, so the client's callers keep writing rockety.Task.
package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// ID is an item's identifier in its string form. The API sends ids as JSON
// strings or numbers; both decode into an ID, and a number keeps its literal
// text (42 stays "42"), so the same item always has the same ID.
type ID string

// UnmarshalJSON accepts a JSON string or a JSON number.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return fmt.Errorf("rockety: empty id")
	}
	switch {
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("rockety: id: %w", err)
		}
		*id = ID(s)
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("rockety: id: %w", err)
		}
		*id = ID(n)
	case string(b) == "null":
		*id = ""
	default:
		return fmt.Errorf("rockety: id must be a string or a number, got %.20s", b)
	}
	return nil
}

// Project is a Rockety project as the API returns it. Fields the API adds later
// are not lost: the item's raw JSON is kept beside any typed view (see Item).
type Project struct {
	ID          ID        `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Status      string    `json:"status,omitempty"`
	OwnerID     ID        `json:"owner_id,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
}

// Task is a Rockety task as the API returns it.
type Task struct {
	ID          ID        `json:"id"`
	ProjectID   ID        `json:"project_id,omitempty"`
	Title       string    `json:"title"`
	Description string    `json:"description,omitempty"`
	Status      string    `json:"status,omitempty"`
	Priority    string    `json:"priority,omitempty"`
	AssigneeID  ID        `json:"assignee_id,omitempty"`
	DueDate     string    `json:"due_date,omitempty"`
	Tags        []string  `json:"tags,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`
}

// User is a Rockety user as the API returns it.
type User struct {
	ID        ID        `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	Role      string    `json:"role,omitempty"`
	Active    bool      `json:"active"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Item is one element of a resource, typed or not: its id in string form and
// the JSON object exactly as the API sent it.
type Item struct {
	ID  ID
	Raw json.RawMessage
}

// DecodeItem decodes an item's raw JSON into a typed model such as Task.
// The raw JSON stays the source of truth; the typed view drops unknown fields.
func DecodeItem[T any](it Item) (T, error) {
	var v T
	if err := json.Unmarshal(it.Raw, &v); err != nil {
		return v, fmt.Errorf("rockety: decoding item %q as %T: %w", it.ID, v, err)
	}
	return v, nil
}
