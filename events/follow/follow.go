// Package follow keeps a Go service's own copy of one Rockety resource (a
// search index, a cache, a read model): it hands over the current state of
// every item, read from the bridge's mirror, and then every change after
// it, in stream order, with none missed and none given twice, across NATS
// reconnects. It imports only events and nats.go.
//
// The handover is where a copy goes wrong by hand, so here is how it
// works. The bridge records, per resource, the events-stream sequence up
// to which every event is in the mirror (the checkpoint, KV
// ROCKETY_CHECKPOINTS). Follow reads the checkpoint, then the mirror, then
// follows the events stream from a little before the checkpoint: every
// event the mirror may lack comes again, and one the mirror has already
// is recognised by its revision (an event's revision is above that of
// every mirror entry it follows), so it is skipped.
package follow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
)

// Handler receives the copy. Each function runs on Follow's goroutine, one
// call at a time; an error stops Follow and is returned by it.
type Handler struct {
	// Item receives each live item of the mirror, before any Change.
	Item func(id string, item json.RawMessage, revision uint64) error
	// Ready, when set, is called once every item is given: the copy is the
	// state the mirror had when it was read.
	Ready func() error
	// Change receives each change event published after the state it
	// was given, in stream order, once each: apply it to the copy (After
	// is the item now; nil for a delete).
	Change func(e events.Event) error
}

// Lookback is how far before the checkpoint's event Follow reads the
// stream again: a command's write-through stores its state up to this
// long after publishing its event, and so may be missing from the mirror
// though published before the checkpoint. The bridge replays as far back
// when it starts.
const Lookback = 2 * time.Minute

// Follow gives h the current state of resource and then every change after
// it, until ctx ends (it then returns nil) or h returns an error. The
// streams and buckets are those of subjects' prefix, which the bridge
// provisions; Follow only reads them. A NATS connection lost meanwhile is
// taken up where it stopped.
func Follow(ctx context.Context, js jetstream.JetStream, subjects events.Subjects, resource string, h Handler) error {
	if err := events.ValidResource(resource); err != nil {
		return err
	}
	if h.Item == nil || h.Change == nil {
		return errors.New("follow: Handler needs Item and Change")
	}
	fail := func(what string, err error) error {
		return fmt.Errorf("follow %s: %s: %w (is the bridge running with BRIDGE_SUBJECT_PREFIX=%s?)", resource, what, err, subjects.Prefix())
	}
	checkpoint, err := readCheckpoint(ctx, js, subjects, resource)
	if err != nil {
		return fail("reading the checkpoint", err)
	}
	revisions, err := readMirror(ctx, js, subjects, resource, h.Item)
	if err != nil {
		return err
	}
	if h.Ready != nil {
		if err := h.Ready(); err != nil {
			return err
		}
	}
	stream, err := js.Stream(ctx, subjects.EventsStream())
	if err != nil {
		return fail("opening the events stream", err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects.EventFilter(resource, "")}}
	cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = startAt(ctx, stream, checkpoint)
	// Ordered: after a reconnect it goes on from the last message it gave.
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fail("following the events stream", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fail("following the events stream", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fail("reading the events stream", err)
		}
		e, _, err := events.DecodeStream(msg)
		if err != nil {
			meta, _ := msg.Metadata()
			seq := uint64(0)
			if meta != nil {
				seq = meta.Sequence.Stream
			}
			return fmt.Errorf("follow %s: the event at stream sequence %d breaks the contract: %w", resource, seq, err)
		}
		if e.Revision <= revisions[e.ID] {
			continue // in the state given already, or given before
		}
		revisions[e.ID] = e.Revision
		if err := h.Change(e); err != nil {
			return err
		}
	}
}

// readCheckpoint is the resource's events-stream checkpoint; 0 when the
// bridge has not synchronised it yet.
func readCheckpoint(ctx context.Context, js jetstream.JetStream, subjects events.Subjects, resource string) (uint64, error) {
	kv, err := js.KeyValue(ctx, subjects.CheckpointsBucket())
	if err != nil {
		return 0, err
	}
	entry, err := kv.Get(ctx, resource)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var b struct {
		Checkpoint uint64 `json:"checkpoint"`
	}
	if err := json.Unmarshal(entry.Value(), &b); err != nil {
		return 0, fmt.Errorf("the checkpoint %q is not the bridge's: %w", entry.Value(), err)
	}
	return b.Checkpoint, nil
}

// readMirror gives item each live entry of resource in the mirror and
// returns every entry's revision, deleted ones included: a delete marker's
// revision keeps a replayed delete from being given again.
func readMirror(ctx context.Context, js jetstream.JetStream, subjects events.Subjects, resource string, item func(string, json.RawMessage, uint64) error) (map[string]uint64, error) {
	kv, err := js.KeyValue(ctx, subjects.StateBucket())
	if err != nil {
		return nil, fmt.Errorf("follow %s: opening the mirror %s: %w", resource, subjects.StateBucket(), err)
	}
	w, err := kv.WatchFiltered(ctx, []string{resource + ".>"})
	if err != nil {
		return nil, fmt.Errorf("follow %s: reading the mirror: %w", resource, err)
	}
	defer func() { _ = w.Stop() }()
	revisions := map[string]uint64{}
	for {
		var entry jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case entry = <-w.Updates():
		}
		if entry == nil {
			return revisions, nil // every entry there was is given
		}
		_, id, err := events.ParseStateKey(entry.Key())
		if err != nil {
			return nil, fmt.Errorf("follow %s: mirror key %q: %w", resource, entry.Key(), err)
		}
		revisions[id] = entry.Revision()
		if entry.Operation() != jetstream.KeyValuePut {
			continue
		}
		if err := item(id, entry.Value(), entry.Revision()); err != nil {
			return nil, err
		}
	}
}

// startAt is where following begins: Lookback before the checkpoint's
// event, or the whole stream when there is no checkpoint yet; the start
// of what is left when the checkpoint's event is gone (the stream's
// retention removed it).
func startAt(ctx context.Context, stream jetstream.Stream, checkpoint uint64) (jetstream.DeliverPolicy, uint64, *time.Time) {
	if checkpoint == 0 {
		return jetstream.DeliverAllPolicy, 0, nil
	}
	msg, err := stream.GetMsg(ctx, checkpoint)
	if err != nil {
		return jetstream.DeliverByStartSequencePolicy, checkpoint, nil
	}
	from := msg.Time.Add(-Lookback)
	return jetstream.DeliverByStartTimePolicy, 0, &from
}
