package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/plan"
)

// Checkpoints is the bridge's bookkeeping per resource, in KV
// ROCKETY_CHECKPOINTS under the resource's name, as JSON a person can
// read: the events-stream sequence up to which every event is reflected in
// the mirror, the incremental cursor and when the last full traversal
// finished. The mirror (ROCKETY_STATE) then holds Rockety items only.
type Checkpoints struct {
	kv    jetstream.KeyValue
	state jetstream.KeyValue

	// rest holds, per resource, the fields of a newer bridge found in its
	// record, so that writing one (every cycle) needs no read first.
	mu   sync.Mutex
	rest map[string]map[string]json.RawMessage
}

// NewCheckpoints wraps the checkpoints bucket; state is the mirror, where
// older bridges kept checkpoints under "=checkpoint.<resource>".
func NewCheckpoints(kv, state jetstream.KeyValue) *Checkpoints {
	return &Checkpoints{kv: kv, state: state, rest: map[string]map[string]json.RawMessage{}}
}

// checkpoint is one resource's record. Fields are added, never renamed:
// a bridge that reads a newer record keeps what it does not know.
type checkpoint struct {
	// Seq is the events-stream checkpoint.
	Seq uint64 `json:"checkpoint"`
	// Cursor and LastFull are incremental polling's (RFC 3339, absent
	// when unset).
	Cursor   time.Time `json:"cursor"`
	LastFull time.Time `json:"last_full_traversal"`
	// Floor and FloorFrom are compaction's (plan.Bookmark), absent while
	// no delete marker was dropped.
	Floor     uint64 `json:"floor_revision"`
	FloorFrom uint64 `json:"floor_from_event"`
	// Rest keeps the fields of newer bridges across a write by this one.
	Rest map[string]json.RawMessage `json:"-"`
}

func (c checkpoint) MarshalJSON() ([]byte, error) {
	out := make(map[string]any, len(c.Rest)+3)
	for k, v := range c.Rest {
		out[k] = v
	}
	out["checkpoint"] = c.Seq
	if !c.Cursor.IsZero() {
		out["cursor"] = c.Cursor.UTC().Format(time.RFC3339Nano)
	}
	if !c.LastFull.IsZero() {
		out["last_full_traversal"] = c.LastFull.UTC().Format(time.RFC3339Nano)
	}
	if c.Floor != 0 {
		out["floor_revision"] = c.Floor
		out["floor_from_event"] = c.FloorFrom
	}
	return json.Marshal(out)
}

func (c *checkpoint) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.Rest); err != nil {
		return err
	}
	raw, ok := c.Rest["checkpoint"]
	if !ok {
		return errors.New(`no "checkpoint" field`)
	}
	if err := json.Unmarshal(raw, &c.Seq); err != nil {
		return fmt.Errorf(`"checkpoint": %w`, err)
	}
	for key, dst := range map[string]*time.Time{"cursor": &c.Cursor, "last_full_traversal": &c.LastFull} {
		raw, ok := c.Rest[key]
		if !ok || string(raw) == "null" {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("%q: want an RFC 3339 time: %w", key, err)
		}
	}
	for key, dst := range map[string]*uint64{"floor_revision": &c.Floor, "floor_from_event": &c.FloorFrom} {
		if raw, ok := c.Rest[key]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return fmt.Errorf("%q: want a revision: %w", key, err)
			}
		}
	}
	for _, known := range []string{"checkpoint", "cursor", "last_full_traversal", "floor_revision", "floor_from_event"} {
		delete(c.Rest, known)
	}
	return nil
}

func (c checkpoint) bookmark() plan.Bookmark {
	return plan.Bookmark{Checkpoint: c.Seq, Cursor: c.Cursor, LastFull: c.LastFull, Floor: c.Floor, FloorFrom: c.FloorFrom}
}

// errUnreadable: a checkpoint record that is not one; the next write
// replaces it.
var errUnreadable = errors.New("publisher: unreadable checkpoint")

// legacyKey is where bridges before ROCKETY_CHECKPOINTS kept a resource's
// checkpoint in the mirror.
func legacyKey(resource string) string { return "=checkpoint." + resource }

// Bookmark returns resource's bookkeeping, and whether the resource has
// ever completed a first synchronisation. A checkpoint still in the mirror
// (an older bridge's) is moved here first.
func (c *Checkpoints) Bookmark(ctx context.Context, resource string) (plan.Bookmark, bool, error) {
	rec, found, err := c.read(ctx, resource)
	if err != nil || found {
		return rec.bookmark(), found, err
	}
	seq, synced, err := c.migrate(ctx, resource)
	return plan.Bookmark{Checkpoint: seq}, synced, err
}

func (c *Checkpoints) read(ctx context.Context, resource string) (checkpoint, bool, error) {
	kve, err := c.kv.Get(ctx, resource)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		c.mu.Lock()
		c.rest[resource] = nil
		c.mu.Unlock()
		return checkpoint{}, false, nil
	}
	if err != nil {
		return checkpoint{}, false, fmt.Errorf("publisher: reading the %s checkpoint: %w", resource, err)
	}
	var rec checkpoint
	if err := json.Unmarshal(kve.Value(), &rec); err != nil {
		c.mu.Lock()
		c.rest[resource] = nil // replaced whole by the next write
		c.mu.Unlock()
		return checkpoint{}, false, fmt.Errorf("%w: the %s checkpoint %q in %s: %w; delete the key and the next cycle re-baselines silently",
			errUnreadable, resource, kve.Value(), c.kv.Bucket(), err)
	}
	c.mu.Lock()
	c.rest[resource] = rec.Rest
	c.mu.Unlock()
	return rec, true, nil
}

// migrate moves an older bridge's checkpoint out of the mirror: written
// here first, then removed there, so a crash in between costs nothing (the
// next start finds it here).
func (c *Checkpoints) migrate(ctx context.Context, resource string) (uint64, bool, error) {
	kve, err := c.state.Get(ctx, legacyKey(resource))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("publisher: reading the %s checkpoint left in %s: %w", resource, c.state.Bucket(), err)
	}
	seq, err := strconv.ParseUint(string(kve.Value()), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("publisher: the %s checkpoint %q left in %s is not a sequence number", resource, kve.Value(), c.state.Bucket())
	}
	if err := c.SetBookmark(ctx, resource, plan.Bookmark{Checkpoint: seq}); err != nil {
		return 0, false, err
	}
	if err := c.state.Purge(ctx, legacyKey(resource)); err != nil {
		return 0, false, fmt.Errorf("publisher: removing the %s checkpoint from %s after moving it: %w", resource, c.state.Bucket(), err)
	}
	return seq, true, nil
}

// SetBookmark records resource's bookkeeping, and with it that the
// resource has been synchronised. Fields of a newer bridge in the record
// it read last are kept.
func (c *Checkpoints) SetBookmark(ctx context.Context, resource string, b plan.Bookmark) error {
	c.mu.Lock()
	rest, known := c.rest[resource]
	c.mu.Unlock()
	if !known {
		rec, _, err := c.read(ctx, resource)
		if err != nil && !errors.Is(err, errUnreadable) {
			return err
		}
		rest = rec.Rest
	}
	rec := checkpoint{Seq: b.Checkpoint, Cursor: b.Cursor, LastFull: b.LastFull, Floor: b.Floor, FloorFrom: b.FloorFrom, Rest: rest}
	out, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := c.kv.Put(ctx, resource, out); err != nil {
		return fmt.Errorf("publisher: storing the %s checkpoint: %w", resource, err)
	}
	c.mu.Lock()
	c.rest[resource] = rest
	c.mu.Unlock()
	return nil
}
