// Package events is rockety-bridge's public contract as Go types: the change
// events it publishes, the commands it accepts and the results it reports,
// the NATS subjects they travel on, and the CloudEvents headers of each
// event. Services that subscribe to Rockety changes import this package and,
// for typed items, rockety/model; nothing else of the bridge, so they
// compile neither the API client nor its retries and rate limiter.
//
// A change event travels on P.events.<resource>.<op>.<id> (P is the subject
// prefix, "rockety" by default) in the binary content mode of the
// CloudEvents NATS binding: the attributes as ce- headers, the Event as the
// JSON body. Decode turns such a message back into an Event and checks it.
package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Op is what happened to an item.
type Op string

// The operations of change events.
const (
	OpCreated Op = "created"
	OpUpdated Op = "updated"
	OpDeleted Op = "deleted"
	// OpSnapshot reports an item as it is: one per existing item when the
	// bridge first synchronised with BRIDGE_INITIAL_SYNC=snapshot, or
	// when a resync asked for a snapshot (then with ResyncID set).
	OpSnapshot Op = "snapshot"
)

// Ops lists every Op.
var Ops = []Op{OpCreated, OpUpdated, OpDeleted, OpSnapshot}

// Valid reports whether op is one of Ops.
func (op Op) Valid() bool {
	switch op {
	case OpCreated, OpUpdated, OpDeleted, OpSnapshot:
		return true
	}
	return false
}

// Event is one change of one Rockety item: the body of a change event.
//
//	created:  before null,       after the new item
//	updated:  before and after,  changed the top-level fields that differ
//	deleted:  before the last known state, after null
//	snapshot: before null,       after the item as first seen
type Event struct {
	Resource string `json:"resource" jsonschema:"minLength=1"`
	Op       Op     `json:"op" jsonschema:"enum=created,enum=updated,enum=deleted,enum=snapshot"`
	// ID is the item's id in string form.
	ID string `json:"id" jsonschema:"minLength=1"`
	// Revision strictly increases across one item's events.
	Revision uint64 `json:"revision" jsonschema:"minimum=1"`
	// Before and After are the item's JSON exactly as the API returned it,
	// or null.
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	// Changed lists the top-level fields that differ, for updates.
	Changed    []string  `json:"changed,omitempty"`
	DetectedAt time.Time `json:"detected_at"`
	// ResyncID is set on the snapshot events of a resync (rockety-bridge
	// resync --snapshot), the same on every event of one batch and on its
	// cycle report.
	ResyncID string `json:"resync_id,omitempty"`
}

// EventID is the deterministic id of the event that changes an item from
// the state at replacedRevision (0 when there was none) by op. A republish
// after a crash gets the same id, which JetStream then drops as a duplicate
// (Nats-Msg-Id); each new change replaces a newer revision and so gets a new
// id, even when an item returns to an earlier state.
func EventID(resource, id string, op Op, replacedRevision uint64) string {
	h := sha256.New()
	for _, part := range []string{resource, id, string(op), strconv.FormatUint(replacedRevision, 10)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ChangeRevision is the revision an event carries: one more than the
// revision it replaces. Revisions of the state store only grow, so each
// event of an item carries a larger revision than the one before it.
func ChangeRevision(replacedRevision uint64) uint64 { return replacedRevision + 1 }

// Before decodes the event's before state into T (model.Task, say). It
// reports false when before is null.
func Before[T any](e Event) (T, bool, error) { return decodeState[T](e, "before", e.Before) }

// After decodes the event's after state into T. It reports false when after
// is null.
func After[T any](e Event) (T, bool, error) { return decodeState[T](e, "after", e.After) }

func decodeState[T any](e Event, field string, raw json.RawMessage) (T, bool, error) {
	var v T
	if len(raw) == 0 || string(raw) == "null" {
		return v, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, false, fmt.Errorf("events: decoding %s of %s %s as %T: %w", field, e.Resource, e.ID, v, err)
	}
	return v, true, nil
}
