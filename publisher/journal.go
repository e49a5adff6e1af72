package publisher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
)

// Journal reads back the events the bridge published, so a bridge that
// stopped between publishing an event and storing its state can finish the
// job instead of publishing the change again.
type Journal struct {
	js       jetstream.JetStream
	subjects events.Subjects
	// stream is the events stream, kept once looked up: asking for it
	// costs a round trip, and Latest runs once per confirmed delete.
	stream atomic.Pointer[jetstream.Stream]
}

func (j *Journal) eventsStream(ctx context.Context) (jetstream.Stream, error) {
	if st := j.stream.Load(); st != nil {
		return *st, nil
	}
	st, err := j.js.Stream(ctx, j.subjects.EventsStream())
	if err != nil {
		return nil, err
	}
	j.stream.Store(&st)
	return st, nil
}

func decodeStored(raw *jetstream.RawStreamMsg) (events.Event, error) {
	e, _, err := events.Decode(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	return e, err
}

// NewJournal reads the events stream of subjects.
func NewJournal(js jetstream.JetStream, subjects events.Subjects) *Journal {
	return &Journal{js: js, subjects: subjects}
}

// LastSeq is the sequence of the last message in the events stream.
func (j *Journal) LastSeq(ctx context.Context) (uint64, error) {
	st, err := j.eventsStream(ctx)
	if err != nil {
		return 0, fmt.Errorf("publisher: reading the events stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("publisher: reading the events stream's last sequence: %w", err)
	}
	return info.State.LastSeq, nil
}

// Event reads the change event stored at seq.
func (j *Journal) Event(ctx context.Context, seq uint64) (events.Event, error) {
	e, err := j.event(ctx, seq)
	if err != nil {
		return events.Event{}, fmt.Errorf("publisher: reading event %d: %w", seq, err)
	}
	return e, nil
}

func (j *Journal) event(ctx context.Context, seq uint64) (events.Event, error) {
	st, err := j.eventsStream(ctx)
	if err != nil {
		return events.Event{}, err
	}
	raw, err := st.GetMsg(ctx, seq)
	if err != nil {
		return events.Event{}, err
	}
	return decodeStored(raw)
}

// Latest reads the last event of op stored for one item; found is false
// when there is none.
func (j *Journal) Latest(ctx context.Context, resource, id string, op events.Op) (e events.Event, found bool, err error) {
	e, found, err = j.latest(ctx, resource, id, op)
	if err != nil {
		return events.Event{}, false, fmt.Errorf("publisher: reading the last %s event of %s %s: %w", op, resource, id, err)
	}
	return e, found, nil
}

func (j *Journal) latest(ctx context.Context, resource, id string, op events.Op) (events.Event, bool, error) {
	st, err := j.eventsStream(ctx)
	if err != nil {
		return events.Event{}, false, err
	}
	raw, err := st.GetLastMsgForSubject(ctx, j.subjects.Event(resource, op, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return events.Event{}, false, nil
	}
	if err != nil {
		return events.Event{}, false, err
	}
	e, err := decodeStored(raw)
	return e, err == nil, err
}

// replayBatch is how many events one pull of a replay asks for.
const replayBatch = 1000

// ReplayOthers calls fn, in stream order, for every change event of
// resource stored after afterSeq but those at the sequences in own
// (sorted): the caller's own, which it knows. When the stream holds no
// other, it reads none: a full traversal after a mass update asks only
// for the few events a command's write-through published.
func (j *Journal) ReplayOthers(ctx context.Context, resource string, afterSeq uint64, own []uint64, fn func(seq uint64, e events.Event) error) error {
	_, err := j.replay(ctx, resource, afterSeq, 0, own, fn)
	return err
}

// Replay calls fn for every change event of resource stored after sequence
// afterSeq, and for those stored up to lookback before it (0: none), in
// stream order, up to the last one stored when Replay began.
// Messages that are not valid change events are skipped: the stream is
// shared, and one bad message must not stop a bridge from starting.
func (j *Journal) Replay(ctx context.Context, resource string, afterSeq uint64, lookback time.Duration, fn func(seq uint64, e events.Event) error) (skipped int, err error) {
	return j.replay(ctx, resource, afterSeq, lookback, nil, fn)
}

func (j *Journal) replay(ctx context.Context, resource string, afterSeq uint64, lookback time.Duration, own []uint64, fn func(seq uint64, e events.Event) error) (skipped int, err error) {
	st, err := j.eventsStream(ctx)
	if err != nil {
		return 0, fmt.Errorf("publisher: replaying %s events: %w", resource, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("publisher: replaying %s events: %w", resource, err)
	}
	last := info.State.LastSeq
	if (last <= afterSeq && lookback == 0) || info.State.Msgs == 0 {
		return 0, nil
	}
	cfg := jetstream.ConsumerConfig{
		Description:   "rockety-bridge replay of " + resource,
		FilterSubject: j.subjects.EventFilter(resource, ""),
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   max(afterSeq+1, info.State.FirstSeq),
		AckPolicy:     jetstream.AckNonePolicy,
		// Cleaned up by the server even if this process dies mid-replay.
		InactiveThreshold: time.Minute,
	}
	if lookback > 0 && afterSeq >= info.State.FirstSeq {
		// Start lookback before the event at afterSeq: a command's
		// write-through may have published an event a little before it
		// and died before storing its state, and the checkpoint (set by
		// a cycle of the same bridge) passed it. Replaying more is safe:
		// only an event that is the next change of an item is stored.
		if at, err := st.GetMsg(ctx, afterSeq); err == nil {
			since := at.Time.Add(-lookback)
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &since
		}
	}
	cons, err := st.CreateConsumer(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("publisher: replaying %s events: %w", resource, err)
	}
	defer func() { _ = st.DeleteConsumer(context.WithoutCancel(ctx), cons.CachedInfo().Name) }()
	ci, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("publisher: replaying %s events: %w", resource, err)
	}
	if ci.NumPending == 0 {
		return 0, nil
	}
	isOwn := func(seq uint64) bool {
		_, found := slices.BinarySearch(own, seq)
		return found
	}
	if len(own) > 0 && lookback == 0 {
		// Every event from the consumer's start up to the last one is the
		// caller's: nothing to read.
		from, _ := slices.BinarySearch(own, max(afterSeq+1, info.State.FirstSeq))
		to, found := slices.BinarySearch(own, last)
		if found {
			to++
		}
		if uint64(to-from) == ci.NumPending {
			return 0, nil
		}
	}
	// Fetched in batches: one pull per event made a replay of 100,000
	// events take 30 s (a start after a mass update, or the full
	// traversal that follows it).
	for {
		batch, err := cons.Fetch(replayBatch, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			return skipped, fmt.Errorf("publisher: replaying %s events: %w", resource, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			if err != nil {
				return skipped, fmt.Errorf("publisher: replaying %s events: %w", resource, err)
			}
			if meta.Sequence.Stream > last {
				return skipped, nil
			}
			if !isOwn(meta.Sequence.Stream) { // the caller's own are known already
				if e, _, err := events.DecodeStream(msg); err != nil || e.Resource != resource {
					skipped++
				} else if err := fn(meta.Sequence.Stream, e); err != nil {
					return skipped, err
				}
			}
			if meta.NumPending == 0 || meta.Sequence.Stream >= last {
				return skipped, nil
			}
		}
		if err := batch.Error(); err != nil {
			return skipped, fmt.Errorf("publisher: replaying %s events: %w", resource, err)
		}
		if got == 0 {
			return skipped, fmt.Errorf("publisher: replaying %s events: none arrived within 10s though %d were pending", resource, ci.NumPending)
		}
	}
}
