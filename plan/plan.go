// Package plan decides every change event the bridge publishes. It holds
// the state types that the poller, the publisher and the command consumer
// share (what the mirror stores for an item, what is written to it, what a
// write committed, an event with its id) and one pure rule, Decide: from an
// item's stored state and one observation of it, the event to publish and
// the write that follows it. No I/O, no logging, no metrics: callers fetch
// and store, and move data to and from Decide.
//
// The rule, one row per outcome (r is the stored revision, A the stored
// state, "same" means equal canonical JSON, rule 2 of DESIGN.md):
//
//	stored     observation              outcome       event                           write
//	---------  -----------------------  ------------  ------------------------------  ---------
//	none/gone  listed B                 Created       created, after B, rev r+1       B at r
//	absent at  listed B                 Created       created, after B, rev f+1       B, no entry
//	floor f
//	live A     listed B, not same       Updated       updated, A → B, changed fields  B at r
//	live A     listed A, same bytes     Unchanged     —                               —
//	live A     listed A', same, new     Reformatted   — (nothing a subscriber sees)   A' at r
//	           bytes (key order only)
//	none/gone  listed B, first sync     Baseline      — (BRIDGE_INITIAL_SYNC=baseline) B at r
//	any        listed B, first sync,    Snapshot      snapshot, after B, rev r+1      B at r
//	           not the stored state     (snapshot)
//	any        listed B, resync         Snapshot      snapshot, after B, rev r+1,     B at r
//	           snapshot (Resnapshot)                  its resync id
//	live A     gone (a confirmed 404)   Deleted       deleted, before A, rev r+1      delete at r
//	live A     listed B, marked deleted Deleted       deleted, before A, rev r+1      delete at r
//	           (ROCKETY_DELETED_FIELD)
//	none/gone  listed B, marked deleted Unchanged     — (gone already, or never live) —
//	live A     listed, marked deleted,  Baseline      — (BRIDGE_INITIAL_SYNC=baseline) delete at r
//	           first sync
//	none/gone  gone                     Unchanged     —                               —
//	rev ≠ r    listed or gone, last     Stale         — (judged again next cycle)     —
//	           known at r (a poll)
//	rev r      replayed event of rev    Recovered     — (published before a stop)     its state at r
//	           r+1 that fits the state
//	           (a snapshot fits any)
//	absent at  replayed create or       Recovered     — (decided against an earlier   its state, no
//	floor f    snapshot of rev ≤ f+1,                 floor, before a stop)           entry
//	           OlderFloor
//	other      replayed event           Unchanged     — (committed already, or        —
//	                                                  superseded)
//
// A poll's observation may be older than the stored state: a command's
// write-through can store a newer one between the page read and its
// publish. Replaces says which revision the poll knew, and a stored
// revision that moved on since makes the observation Stale: the next
// cycle looks again, after the write, instead of undoing it (a delete
// brought back, an update reverted).
//
// A command's successful write is an observation like a poll's: its
// answer is a listed item, a delete is gone, both newer than anything
// stored (Answer), so no revision is checked. After publishing, an event
// that JetStream drops as a duplicate may carry another state than ours
// (a command's write-through raced a cycle): Adopt turns the write into
// the state of the stored event, so the item's events stay one chain.
//
// Compaction drops the delete markers of items deleted long ago, so that
// the mirror and the poller's index do not grow with every id a resource
// ever had. An item with no entry at all is Absent, and an absent item is
// as if deleted at the resource's floor (Bookmark.Floor): the highest
// revision of any marker dropped. Its next event replaces the floor, so
// an id created again after its marker was dropped gets a revision above
// all its earlier events' and an event id none of them had. The floor
// only grows; an event decided against an earlier floor (published after
// the floor was raised, by a write-through that read it before) is still
// recognised when replayed (Observation.OlderFloor).
package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
)

// State is what the mirror (KV ROCKETY_STATE) holds for one item.
type State struct {
	ID string
	// Value is the item's JSON as the API returned it; nil when deleted or
	// never stored.
	Value []byte
	// Revision is the mirror revision: of the delete marker for a deleted
	// item, 0 for an item never stored. It only grows, across deletes too.
	Revision uint64
	Deleted  bool
	// Absent: the mirror has no entry for the item at all (never stored,
	// or its delete marker was compacted). Revision is then the
	// resource's floor once AtFloor applied it, and 0 before.
	Absent bool
	// Hash and RawHash are Value's (ValueHashes), and Hashed says they are
	// known: a load from the mirror reads them from HashHeader instead of
	// the value, and leaves Value nil.
	Hash, RawHash uint64
	Hashed        bool
}

// Hashes are the state's value's: as the mirror gave them (Hashed), or
// computed (ValueHashes).
func (s State) Hashes() (canonical, raw uint64) {
	if s.Hashed {
		return s.Hash, s.RawHash
	}
	return ValueHashes(s.Value)
}

// Live reports whether the item exists as far as the mirror knows.
func (s State) Live() bool { return !s.Absent && s.Revision != 0 && !s.Deleted }

// AtFloor is s with the resource's floor applied: an absent item is as if
// deleted at floor.
func (s State) AtFloor(floor uint64) State {
	if s.Absent {
		s.Revision = floor
	}
	return s
}

// EntryRevision is the revision of the mirror's entry: 0 for an absent
// item, whatever its floor.
func (s State) EntryRevision() uint64 {
	if s.Absent {
		return 0
	}
	return s.Revision
}

// Write is one compare-and-set change of the mirror: Value nil deletes.
// Replaces is the revision it replaces, the one an event id is made of;
// Absent says there is no entry to replace (Replaces is then the floor),
// so the write creates one.
type Write struct {
	ID       string
	Value    []byte
	Replaces uint64
	Absent   bool
}

// Expects is the entry revision the compare-and-set expects: 0 for none.
func (w Write) Expects() uint64 {
	if w.Absent {
		return 0
	}
	return w.Replaces
}

// Marker is an item's delete marker in the mirror, at Revision.
type Marker struct {
	ID       string
	Revision uint64
}

// Committed is the outcome of one Write.
type Committed struct {
	Revision uint64
	// Hash and RawHash are of the value written (ValueHashes); zero for a
	// delete.
	Hash, RawHash uint64
	// Conflict: another writer got there first; nothing was written.
	Conflict bool
}

// Outgoing is an event to publish with its id (Nats-Msg-Id).
type Outgoing struct {
	EventID string
	Event   events.Event
}

// Ack is JetStream's acknowledgement of one published event.
type Ack struct {
	Seq uint64 // where the event is stored
	// Duplicate: an event with the same id was stored before, at Seq, and
	// this one was dropped. The stored one may carry another state (Adopt).
	Duplicate bool
}

// Kind says what an observation is.
type Kind int

// The observations.
const (
	// Listed: the item as the API returns it now (a page of a traversal,
	// a confirmation GET that found it, or a command's answer).
	Listed Kind = iota + 1
	// Gone: the API confirmed the item does not exist (404), or a command
	// deleted it.
	Gone
	// Replayed: an event the bridge published before it stopped, read back
	// from the events stream.
	Replayed
)

// Sync says how a listed item is recorded.
type Sync int

// The ways to record a listed item.
const (
	// Live is every cycle after the first: changes are events.
	Live Sync = iota
	// FirstBaseline records the current state silently
	// (BRIDGE_INITIAL_SYNC=baseline).
	FirstBaseline
	// FirstSnapshot publishes one snapshot event per item
	// (BRIDGE_INITIAL_SYNC=snapshot).
	FirstSnapshot
	// Resnapshot publishes one snapshot event per listed item, unchanged
	// ones too: a resync asked for a snapshot (Observation.ResyncID).
	Resnapshot
)

// Observation is one look at an item.
type Observation struct {
	Kind Kind
	// Value is the listed item's JSON (Listed).
	Value []byte
	// Sync is how a listed item is recorded (Listed).
	Sync Sync
	// MarkedDeleted: the listed item is soft-deleted (its
	// ROCKETY_DELETED_FIELD is set, see MarkedDeleted). It is a delete of
	// the last live state, from any kind of cycle.
	MarkedDeleted bool
	// Replaces is the revision the observer last knew the item at (the
	// poller's index; 0 when it never knew the item): a stored revision
	// that moved on since then means someone else stored a newer state,
	// which this observation may predate, so it is judged again rather
	// than published. Not checked for an Answer.
	Replaces uint64
	// Answer: the observation is the API's answer to a write of the
	// bridge's own (a command), newer than anything stored.
	Answer bool
	// Event is the replayed event (Replayed).
	Event events.Event
	// OlderFloor: the replayed event was published after the floor was
	// last raised (Bookmark.FloorFrom), so it may have been decided
	// against the floor before; a create or snapshot of an absent item
	// whose revision is not above the floor's next is then this one's.
	OlderFloor bool
	// ResyncID marks the snapshot events of a resync (Resnapshot).
	ResyncID string
}

// Outcome names a row of the rule.
type Outcome string

// The outcomes, one per row of the package comment's table.
const (
	Unchanged   Outcome = "unchanged"
	Created     Outcome = "created"
	Updated     Outcome = "updated"
	Reformatted Outcome = "reformatted"
	Baseline    Outcome = "baseline"
	Snapshot    Outcome = "snapshot"
	Deleted     Outcome = "deleted"
	Stale       Outcome = "stale"
	Recovered   Outcome = "recovered"
)

// Decision is what to do about one observation: publish Event (when set),
// then, once JetStream acknowledged it, apply Write (when set). A Write
// without an Event is stored at once.
type Decision struct {
	Outcome Outcome
	Event   *Outgoing
	Write   *Write
}

// Decide applies the rule to one item of resource: stored is what the
// mirror holds for it (State{ID: id} when nothing), obs what was seen now.
// now stamps the event's detected_at.
func Decide(resource string, stored State, obs Observation, now time.Time) Decision {
	switch obs.Kind {
	case Listed:
		return listed(resource, stored, obs, now)
	case Gone:
		return gone(resource, stored, obs, now)
	case Replayed:
		return replayed(stored, obs)
	}
	return Decision{Outcome: Unchanged}
}

func listed(resource string, s State, obs Observation, now time.Time) Decision {
	if stale(s, obs) {
		return Decision{Outcome: Stale}
	}
	if obs.MarkedDeleted {
		// The API keeps listing it, but for subscribers it is gone, like a
		// confirmed 404; a later listing without the mark is a create.
		if obs.Sync == FirstBaseline && s.Live() {
			return Decision{Outcome: Baseline, Write: &Write{ID: s.ID, Replaces: s.Revision}}
		}
		return gone(resource, s, Observation{Kind: Gone, Replaces: s.Revision}, now)
	}
	write := &Write{ID: s.ID, Value: obs.Value, Replaces: s.Revision, Absent: s.Absent}
	if obs.Sync == Resnapshot {
		// Stored afresh even when unchanged: the event's revision must be
		// the item's, or the next change would repeat it.
		return snapshot(resource, s, obs, write, now)
	}
	live := s.Live()
	var changed []string
	if live && s.Value != nil {
		if bytes.Equal(s.Value, obs.Value) {
			return Decision{Outcome: Unchanged}
		}
		var err error
		changed, err = ChangedFields(s.Value, obs.Value)
		if err == nil && len(changed) == 0 {
			return Decision{Outcome: Reformatted, Write: write}
		}
		// A stored state that is not JSON (the bridge never writes one)
		// is overwritten silently rather than reported.
		if err != nil {
			return Decision{Outcome: Reformatted, Write: write}
		}
	}
	switch {
	case obs.Sync == FirstBaseline:
		return Decision{Outcome: Baseline, Write: write}
	case obs.Sync == FirstSnapshot:
		return snapshot(resource, s, obs, write, now)
	case !live:
		return Decision{Outcome: Created, Event: event(resource, events.OpCreated, s, nil, obs.Value, nil, now), Write: write}
	case s.Value == nil:
		// Live without a stored state to compare (the caller did not read
		// it): no update can say what changed, so the state is stored.
		return Decision{Outcome: Reformatted, Write: write}
	}
	return Decision{Outcome: Updated, Event: event(resource, events.OpUpdated, s, s.Value, obs.Value, changed, now), Write: write}
}

// snapshot publishes the listed item as it is, with the resync it is for.
func snapshot(resource string, s State, obs Observation, write *Write, now time.Time) Decision {
	d := Decision{Outcome: Snapshot, Event: event(resource, events.OpSnapshot, s, nil, obs.Value, nil, now), Write: write}
	d.Event.Event.ResyncID = obs.ResyncID
	return d
}

func gone(resource string, s State, obs Observation, now time.Time) Decision {
	if stale(s, obs) {
		return Decision{Outcome: Stale}
	}
	if !s.Live() {
		return Decision{Outcome: Unchanged}
	}
	return Decision{Outcome: Deleted, Event: event(resource, events.OpDeleted, s, s.Value, nil, nil, now),
		Write: &Write{ID: s.ID, Replaces: s.Revision}}
}

// stale reports whether someone else stored a state of the item after
// the observer last knew it, so that the observation may predate it.
func stale(s State, obs Observation) bool {
	return !obs.Answer && s.Revision != obs.Replaces
}

// replayed finishes the commit of an event published before a stop: it is
// the next change of its item exactly when it replaces the stored revision
// and fits the stored state (a create or snapshot of an item that is not
// live, an update or delete of one that is).
func replayed(s State, obs Observation) Decision {
	e := obs.Event
	next := events.ChangeRevision(s.Revision)
	if e.ID != s.ID {
		return Decision{Outcome: Unchanged}
	}
	if e.Revision != next && !(s.Absent && obs.OlderFloor && e.Revision < next &&
		(e.Op == events.OpCreated || e.Op == events.OpSnapshot)) {
		return Decision{Outcome: Unchanged}
	}
	live := s.Live()
	switch e.Op {
	case events.OpSnapshot:
		// Of an item not live (the first sync) or live (a resync): the
		// revision says it is the next change.
	case events.OpCreated:
		if live {
			return Decision{Outcome: Unchanged}
		}
	case events.OpUpdated, events.OpDeleted:
		if !live {
			return Decision{Outcome: Unchanged}
		}
	default:
		return Decision{Outcome: Unchanged}
	}
	return Decision{Outcome: Recovered, Write: &Write{ID: s.ID, Value: e.After, Replaces: s.Revision, Absent: s.Absent}}
}

// event builds the event that replaces the stored revision: its revision
// is that plus one, and its id is a function of (resource, id, op, the
// replaced revision), so a republish repeats it and A→B→A→B does not.
func event(resource string, op events.Op, s State, before, after json.RawMessage, changed []string, now time.Time) *Outgoing {
	e := events.Event{Resource: resource, Op: op, ID: s.ID, Revision: events.ChangeRevision(s.Revision),
		Before: before, After: after, Changed: changed, DetectedAt: now.UTC()}
	return &Outgoing{EventID: events.EventID(resource, s.ID, op, s.Revision), Event: e}
}

// Adopt turns w, whose event JetStream dropped as a duplicate, into the
// state of the event it stored before (stored): subscribers saw that one,
// not ours. It is this bridge's own from before a crash (the same state,
// perhaps formatted otherwise) or a command's write-through that raced a
// cycle (another state). Storing its state keeps the item's events a
// chain; the next cycle reports whatever differs from it now.
func Adopt(resource string, w Write, stored events.Event) (Write, error) {
	if stored.Resource != resource || stored.ID != w.ID {
		return w, fmt.Errorf("plan: the stored event is of %s %s, not of %s %s, yet has the same id",
			stored.Resource, stored.ID, resource, w.ID)
	}
	w.Value = stored.After // nil for a delete
	return w, nil
}

// MarkedDeleted reports whether item (a JSON object) is soft-deleted by
// field: its value is true, or a non-empty string (a deletion time), or
// any other value but false, null, "" and 0. A missing field, or a value
// that is not an object, is not a mark.
func MarkedDeleted(item []byte, field string) bool {
	if field == "" {
		return false
	}
	v, ok := Field(item, field)
	if !ok {
		return false
	}
	switch string(v) {
	case "", "null", "false", `""`, "0":
		return false
	}
	return true
}

// Bookmark is the bridge's bookkeeping for one resource (KV
// ROCKETY_CHECKPOINTS), apart from the items: how far the events stream is
// reflected in the mirror, and where incremental polling stands.
type Bookmark struct {
	// Checkpoint is the events-stream sequence up to which every event of
	// the resource is reflected in the mirror.
	Checkpoint uint64
	// Cursor is the largest changed-at value (ROCKETY_CHANGED_AT_FIELD,
	// the API's clock) among items of committed cycles; zero when none.
	Cursor time.Time
	// LastFull is when the last complete full traversal finished (the
	// bridge's clock, for scheduling the next); zero when never.
	LastFull time.Time
	// Floor is the highest revision of a delete marker that compaction
	// dropped: an absent item is as if deleted at it (State.AtFloor).
	Floor uint64
	// FloorFrom is the events-stream sequence when Floor was raised: an
	// event stored after it may have been decided against the floor
	// before (Observation.OlderFloor).
	FloorFrom uint64
}
