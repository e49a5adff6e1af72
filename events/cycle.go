package events

import "time"

// CycleKind is what a cycle did.
type CycleKind string

// The kinds of cycle.
const (
	// CycleFull is a traversal of every page, the only cycle that finds
	// deletes by absence.
	CycleFull CycleKind = "full"
	// CycleIncremental lists only the items changed since the cursor
	// (ROCKETY_CHANGED_SINCE).
	CycleIncremental CycleKind = "incremental"
	// CycleSnapshot is a full traversal that publishes one snapshot event
	// per current item: the first sync with BRIDGE_INITIAL_SYNC=snapshot,
	// or a resync asked for with mode snapshot.
	CycleSnapshot CycleKind = "snapshot"
)

// CycleOutcome says how a cycle ended.
type CycleOutcome string

// The outcomes of a cycle.
const (
	// CycleComplete: every page was read and every change it found is
	// published and stored.
	CycleComplete CycleOutcome = "complete"
	// CyclePartial: a page could not be read (or an incremental cycle
	// found the filter ignored); what was seen is published, no delete.
	CyclePartial CycleOutcome = "partial"
	// CycleFailed: the cycle stopped before it could finish what it saw
	// (NATS away, the lease lost); the next cycle takes it up.
	CycleFailed CycleOutcome = "failed"
)

// CycleReport is published on P.cycles.<resource> after every cycle, so a
// subscriber knows when a resource was last seen whole.
type CycleReport struct {
	Resource string       `json:"resource" jsonschema:"minLength=1"`
	Kind     CycleKind    `json:"kind" jsonschema:"enum=full,enum=incremental,enum=snapshot"`
	Outcome  CycleOutcome `json:"outcome" jsonschema:"enum=complete,enum=partial,enum=failed"`
	// Instance is the BRIDGE_INSTANCE_ID of the replica that ran it.
	Instance   string    `json:"instance"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// Pages read, API requests made (pages, catch-ups, delete
	// confirmations) and distinct items seen.
	Pages    int `json:"pages" jsonschema:"minimum=0"`
	Requests int `json:"requests" jsonschema:"minimum=0"`
	Items    int `json:"items" jsonschema:"minimum=0"`
	// The events the cycle published, by op.
	Created  int `json:"created" jsonschema:"minimum=0"`
	Updated  int `json:"updated" jsonschema:"minimum=0"`
	Deleted  int `json:"deleted" jsonschema:"minimum=0"`
	Snapshot int `json:"snapshot" jsonschema:"minimum=0"`
	// GuardTripped: more than BRIDGE_MAX_DELETE_RATIO of the items
	// vanished, and no delete was published.
	GuardTripped bool `json:"guard_tripped"`
	// ResyncID is set on the cycle run for a resync, as on its snapshot
	// events.
	ResyncID string `json:"resync_id"`
	// Error says why a cycle that is not complete is not.
	Error string `json:"error"`
}
