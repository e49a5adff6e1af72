package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Checkpoints is the bridge's bookkeeping per resource, in KV
// ROCKETY_CHECKPOINTS under the resource's name, as JSON a person can
// read: the events-stream sequence up to which every event is reflected in
// the mirror. The mirror (ROCKETY_STATE) then holds Rockety items only.
type Checkpoints struct {
	kv    jetstream.KeyValue
	state jetstream.KeyValue
}

// NewCheckpoints wraps the checkpoints bucket; state is the mirror, where
// older bridges kept checkpoints under "=checkpoint.<resource>".
func NewCheckpoints(kv, state jetstream.KeyValue) *Checkpoints {
	return &Checkpoints{kv: kv, state: state}
}

// checkpoint is one resource's record. Fields are added, never renamed:
// a bridge that reads a newer record keeps what it does not know.
type checkpoint struct {
	// Seq is the events-stream checkpoint.
	Seq uint64 `json:"checkpoint"`
	// Rest keeps the fields of newer bridges (a cursor, the last full
	// traversal) across a write by this one.
	Rest map[string]json.RawMessage `json:"-"`
}

func (c checkpoint) MarshalJSON() ([]byte, error) {
	out := make(map[string]json.RawMessage, len(c.Rest)+1)
	for k, v := range c.Rest {
		out[k] = v
	}
	out["checkpoint"] = json.RawMessage(strconv.FormatUint(c.Seq, 10))
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
	delete(c.Rest, "checkpoint")
	return json.Unmarshal(raw, &c.Seq)
}

// errUnreadable: a checkpoint record that is not one; the next write
// replaces it.
var errUnreadable = errors.New("publisher: unreadable checkpoint")

// legacyKey is where bridges before ROCKETY_CHECKPOINTS kept a resource's
// checkpoint in the mirror.
func legacyKey(resource string) string { return "=checkpoint." + resource }

// Checkpoint returns the events-stream sequence up to which every event of
// resource is reflected in the mirror, and whether the resource has ever
// completed a first synchronisation. A checkpoint still in the mirror
// (an older bridge's) is moved here first.
func (c *Checkpoints) Checkpoint(ctx context.Context, resource string) (seq uint64, synced bool, err error) {
	rec, found, err := c.read(ctx, resource)
	if err != nil || found {
		return rec.Seq, found, err
	}
	return c.migrate(ctx, resource)
}

func (c *Checkpoints) read(ctx context.Context, resource string) (checkpoint, bool, error) {
	kve, err := c.kv.Get(ctx, resource)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return checkpoint{}, false, nil
	}
	if err != nil {
		return checkpoint{}, false, fmt.Errorf("publisher: reading the %s checkpoint: %w", resource, err)
	}
	var rec checkpoint
	if err := json.Unmarshal(kve.Value(), &rec); err != nil {
		return checkpoint{}, false, fmt.Errorf("%w: the %s checkpoint %q in %s: %w; delete the key and the next cycle re-baselines silently",
			errUnreadable, resource, kve.Value(), c.kv.Bucket(), err)
	}
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
	if err := c.SetCheckpoint(ctx, resource, seq); err != nil {
		return 0, false, err
	}
	if err := c.state.Purge(ctx, legacyKey(resource)); err != nil {
		return 0, false, fmt.Errorf("publisher: removing the %s checkpoint from %s after moving it: %w", resource, c.state.Bucket(), err)
	}
	return seq, true, nil
}

// SetCheckpoint records seq as resource's checkpoint, and with it that the
// resource has been synchronised.
func (c *Checkpoints) SetCheckpoint(ctx context.Context, resource string, seq uint64) error {
	rec, _, err := c.read(ctx, resource)
	if err != nil && !errors.Is(err, errUnreadable) {
		return err
	}
	rec.Seq = seq
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := c.kv.Put(ctx, resource, b); err != nil {
		return fmt.Errorf("publisher: storing the %s checkpoint: %w", resource, err)
	}
	return nil
}
