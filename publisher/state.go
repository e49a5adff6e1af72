package publisher

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
)

// ErrConflict means another writer changed an item's state since the
// revision the caller expected.
var ErrConflict = errors.New("publisher: state changed by another writer")

// StateStore is the live mirror: KV ROCKETY_STATE, key <resource>.<id>,
// value the item's JSON. It is also the bridge's snapshot, so a restarted
// or moved bridge neither repeats nor loses changes.
type StateStore struct {
	kv     jetstream.KeyValue
	js     jetstream.JetStream
	bucket string
	// noBatchGet is set once the server turns out to predate batched gets.
	noBatchGet atomic.Bool
	// stream is the bucket's stream, kept once looked up: asking for it
	// costs a round trip.
	stream atomic.Pointer[jetstream.Stream]

	// AckWait bounds Commit's wait for JetStream's acknowledgements: a
	// lost ack costs a failed cycle and a retry, never a stalled one.
	// Zero is DefaultAckWait.
	AckWait time.Duration
}

// DefaultAckWait is how long a commit waits for JetStream to acknowledge
// its writes.
const DefaultAckWait = 30 * time.Second

// NewStateStore wraps the state bucket (Resources.State).
func NewStateStore(js jetstream.JetStream, kv jetstream.KeyValue) *StateStore {
	return &StateStore{kv: kv, js: js, bucket: kv.Bucket()}
}

// Load streams the state of every item of resource to fn, deleted ones
// included (as tombstones, so a re-created id continues its revisions). An
// id may come more than once, in the order it was stored: its last state
// is the one that holds.
// expect, when not nil, is told first how many entries follow, so that the
// caller can size what it fills once rather than grow it.
//
// Every entry the bridge writes carries the hashes of its value
// (plan.HashHeader), so Load reads headers only: no values cross the wire
// and none is hashed, and the states it gives have Hashed set and no
// Value. Entries written before the header existed are read again with
// their values: a mirror holding any of them is loaded as a whole a second
// time, values included, and the states of that pass overwrite the first.
func (s *StateStore) Load(ctx context.Context, resource string, expect func(n int), fn func(plan.State) error) error {
	if err := events.ValidResource(resource); err != nil {
		return err
	}
	err := s.load(ctx, resource, true, expect, fn)
	if errors.Is(err, errUnhashedEntry) {
		err = s.load(ctx, resource, false, nil, fn)
	}
	return err
}

// errUnhashedEntry stops a headers-only load at an entry without hashes.
var errUnhashedEntry = errors.New("publisher: a mirror entry without " + plan.HashHeader)

// load pulls the bucket through one consumer, at most loadBatch entries
// ahead of fn: a push watcher let the server run ahead and tens of
// megabytes of values pile up in the client at a million items.
func (s *StateStore) load(ctx context.Context, resource string, headersOnly bool, expect func(n int), fn func(plan.State) error) error {
	fail := func(err error) error { return fmt.Errorf("publisher: loading %s state: %w", resource, err) }
	stream, err := s.bucketStream(ctx)
	if err != nil {
		return fail(err)
	}
	prefix := "$KV." + s.bucket + "."
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Description:   "rockety-bridge load of " + resource,
		FilterSubject: prefix + resource + ".>",
		// The bucket keeps one revision per key (History 1), so every
		// message is the last of its key: the server streams them in order,
		// where asking for the last per subject made it search for each
		// (at a million keys, most of the load's time). A key with older
		// revisions (a bucket provisioned otherwise) still ends at its
		// latest, which comes last and overwrites the rest in fn's hands.
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckNonePolicy,
		HeadersOnly:   headersOnly,
		// Cleaned up by the server even if this process dies mid-load.
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return fail(err)
	}
	defer func() { _ = stream.DeleteConsumer(context.WithoutCancel(ctx), cons.CachedInfo().Name) }()
	pending := cons.CachedInfo().NumPending
	if expect != nil {
		expect(int(pending))
	}
	if pending == 0 {
		return nil
	}
	// The iterator asks for the next batch while the last is read, so the
	// load never waits on a round trip, and holds at most loadBatch.
	it, err := cons.Messages(jetstream.PullMaxMessages(loadBatch))
	if err != nil {
		return fail(err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return fail(context.Cause(ctx))
			}
			return fail(err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fail(err)
		}
		_, id, err := events.ParseStateKey(strings.TrimPrefix(msg.Subject(), prefix))
		if err != nil {
			return fail(err)
		}
		e := plan.State{ID: id, Revision: meta.Sequence.Stream}
		h := msg.Headers()
		switch h.Get("KV-Operation") {
		case "DEL", "PURGE":
			e.Deleted = true
		default:
			if !e.TakeHashes(h.Get(plan.HashHeader)) && headersOnly {
				return errUnhashedEntry
			}
			if !headersOnly {
				e.Value = msg.Data()
			}
		}
		if err := fn(e); err != nil {
			return err
		}
		if meta.NumPending == 0 {
			return nil
		}
	}
}

// loadBatch bounds the entries a load holds at once: about two megabytes
// of values.
const loadBatch = 2000

func (s *StateStore) writeError(verb, resource, id string, lastRevision uint64, err error) error {
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) ||
		(errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == wrongLastSequenceConstant)) {
		return fmt.Errorf("%w: %s %s %s at revision %d: %w", ErrConflict, verb, resource, id, lastRevision, err)
	}
	return fmt.Errorf("publisher: %s state of %s %s: %w", verb, resource, id, storageFull(err))
}

// Lookup reads the stored state of several items at once; an item with no
// entry (never stored, or its delete marker compacted) is Absent, with
// Revision 0. Deleted items come back with their delete
// marker's revision. It asks for a few hundred keys per request (the
// server's batched direct get, NATS 2.11 and later) and falls back to one
// request per key on older servers.
func (s *StateStore) Lookup(ctx context.Context, resource string, ids []string) ([]plan.State, error) {
	out := make([]plan.State, len(ids))
	for start := 0; start < len(ids); start += lookupBatch {
		end := min(start+lookupBatch, len(ids))
		if err := s.lookupBatch(ctx, resource, ids[start:end], out[start:end]); err != nil {
			return nil, fmt.Errorf("publisher: reading %s state: %w", resource, err)
		}
	}
	return out, nil
}

// lookupBatch is the number of keys asked for in one request.
const lookupBatch = 256

func (s *StateStore) lookupBatch(ctx context.Context, resource string, ids []string, out []plan.State) error {
	// One key is one direct get on the connection's shared inbox; a batch
	// subscribes an inbox of its own.
	if len(ids) == 1 {
		stream, err := s.bucketStream(ctx)
		if err != nil {
			return err
		}
		out[0], err = s.lookupOne(ctx, stream, resource, ids[0])
		return err
	}
	if s.noBatchGet.Load() {
		return s.lookupEach(ctx, resource, ids, out)
	}
	// An id asked for twice is answered twice (the server sends one
	// message per subject).
	at := make(map[string][]int, len(ids))
	subjects := make([]string, 0, len(ids))
	for i, id := range ids {
		subject := "$KV." + s.bucket + "." + events.StateKey(resource, id)
		if _, asked := at[subject]; !asked {
			subjects = append(subjects, subject)
		}
		at[subject] = append(at[subject], i)
		out[i] = plan.State{ID: id, Absent: true}
	}
	msgs, err := jetstreamext.GetLastMsgsFor(ctx, s.js, s.kvStream(), subjects)
	if err == nil {
		for msg, ierr := range msgs {
			if ierr != nil {
				err = ierr
				break
			}
			for _, i := range at[msg.Subject] {
				out[i] = entryOf(ids[i], msg)
			}
		}
	}
	switch {
	case err == nil, errors.Is(err, jetstreamext.ErrNoMessages):
		return nil
	case errors.Is(err, jetstreamext.ErrBatchUnsupported):
		s.noBatchGet.Store(true)
		return s.lookupEach(ctx, resource, ids, out)
	}
	return err
}

// lookupEach asks for each key on its own, a few at a time.
func (s *StateStore) lookupEach(ctx context.Context, resource string, ids []string, out []plan.State) error {
	stream, err := s.bucketStream(ctx)
	if err != nil {
		return err
	}
	errs := make([]error, len(ids))
	sem := make(chan struct{}, lookupConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = s.lookupOne(ctx, stream, resource, id)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// lookupConcurrency bounds the reads in flight: enough to hide the round
// trip, few enough not to crowd out publishing.
const lookupConcurrency = 16

func (s *StateStore) kvStream() string { return "KV_" + s.bucket }

func (s *StateStore) bucketStream(ctx context.Context) (jetstream.Stream, error) {
	if st := s.stream.Load(); st != nil {
		return *st, nil
	}
	st, err := s.js.Stream(ctx, s.kvStream())
	if err != nil {
		return nil, err
	}
	s.stream.Store(&st)
	return st, nil
}

func entryOf(id string, msg *jetstream.RawStreamMsg) plan.State {
	e := plan.State{ID: id, Revision: msg.Sequence}
	switch msg.Header.Get("KV-Operation") {
	case "DEL", "PURGE":
		e.Deleted = true
	default:
		e.Value = msg.Data
		e.TakeHashes(msg.Header.Get(plan.HashHeader))
	}
	return e
}

func (s *StateStore) lookupOne(ctx context.Context, stream jetstream.Stream, resource, id string) (plan.State, error) {
	msg, err := stream.GetLastMsgForSubject(ctx, "$KV."+s.bucket+"."+events.StateKey(resource, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return plan.State{ID: id, Absent: true}, nil
	}
	if err != nil {
		return plan.State{}, fmt.Errorf("%s: %w", id, err)
	}
	return entryOf(id, msg), nil
}

// Commit applies writes with compare-and-set, all in flight at once, and
// reports each outcome in order, with the hashes of each value written
// (stored with it, plan.HashHeader). An error other than a conflict fails the
// whole call; writes that landed before it stay landed, and are found by
// the next Lookup.
func (s *StateStore) Commit(ctx context.Context, resource string, writes []plan.Write) ([]plan.Committed, error) {
	out := make([]plan.Committed, len(writes))
	futs := make([]jetstream.PubAckFuture, len(writes))
	for i, w := range writes {
		m := nats.NewMsg("$KV." + s.bucket + "." + events.StateKey(resource, w.ID))
		if w.Value == nil {
			m.Header.Set("KV-Operation", "DEL")
		} else {
			m.Data = w.Value
			out[i].Hash, out[i].RawHash = plan.ValueHashes(w.Value)
			m.Header.Set(plan.HashHeader, plan.FormatHashes(out[i].Hash, out[i].RawHash))
		}
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(w.Expects(), 10))
		fut, err := s.js.PublishMsgAsync(m)
		if err != nil {
			return nil, fmt.Errorf("publisher: committing %s %s: %w", resource, w.ID, err)
		}
		futs[i] = fut
	}
	wait := s.AckWait
	if wait <= 0 {
		wait = DefaultAckWait
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	var errs []error
	for i, fut := range futs {
		select {
		case <-deadline.C:
			return nil, fmt.Errorf("publisher: committing %s state: %w: %d of %d writes unacknowledged after %s (NATS unreachable?); the cycle is retried",
				resource, jetstream.ErrAsyncPublishTimeout, len(futs)-i, len(futs), wait)
		case ack := <-fut.Ok():
			out[i].Revision = ack.Sequence
		case err := <-fut.Err():
			if conflict := s.writeError("committing", resource, writes[i].ID, writes[i].Expects(), err); errors.Is(conflict, ErrConflict) {
				out[i].Conflict = true
			} else {
				errs = append(errs, conflict)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("publisher: committing %s state: %w", resource, context.Cause(ctx))
		}
	}
	if len(errs) > 0 {
		// One cause fails them all, as a rule (NATS away, storage full):
		// say it once.
		return nil, fmt.Errorf("publisher: %d of %d commits of %s state failed; the first: %w", len(errs), len(writes), resource, errs[0])
	}
	return out, nil
}

// RevisionAt is the first mirror revision stored at or after t (of any
// item): every entry below it is older than t. When nothing was stored
// since t it is the revision the next write gets.
func (s *StateStore) RevisionAt(ctx context.Context, t time.Time) (uint64, error) {
	msgs, err := jetstreamext.GetBatch(ctx, s.js, s.kvStream(), 1, jetstreamext.GetBatchStartTime(t))
	if err == nil {
		for msg, ierr := range msgs {
			if ierr != nil {
				err = ierr
				break
			}
			return msg.Sequence, nil
		}
	}
	switch {
	case err == nil, errors.Is(err, jetstreamext.ErrNoMessages):
		stream, err := s.bucketStream(ctx)
		if err != nil {
			return 0, err
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("publisher: reading the %s bucket's last revision: %w", s.bucket, err)
		}
		return info.State.LastSeq + 1, nil
	case errors.Is(err, jetstreamext.ErrBatchUnsupported):
		return 0, fmt.Errorf("publisher: finding the %s revision of %s: %w; compacting delete markers needs NATS 2.11 or later",
			s.bucket, t.UTC().Format(time.RFC3339), err)
	}
	return 0, fmt.Errorf("publisher: finding the %s revision of %s: %w", s.bucket, t.UTC().Format(time.RFC3339), err)
}

// Forget drops delete markers of resource from the mirror, each only if it
// is still the item's last entry: a purge of the item's key up to the
// marker's revision leaves a newer entry (the item created again since)
// standing. It reports, in order, which markers are gone; an error leaves
// the rest for the next call.
func (s *StateStore) Forget(ctx context.Context, resource string, markers []plan.Marker) ([]bool, error) {
	stream, err := s.bucketStream(ctx)
	if err != nil {
		return nil, err
	}
	gone := make([]bool, len(markers))
	errs := make([]error, len(markers))
	sem := make(chan struct{}, lookupConcurrency)
	var wg sync.WaitGroup
	for i, m := range markers {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			subject := "$KV." + s.bucket + "." + events.StateKey(resource, m.ID)
			// The purge sequence is exclusive: entries below m.Revision+1.
			if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(m.Revision+1)); err != nil {
				errs[i] = fmt.Errorf("%s: %w", m.ID, err)
				return
			}
			gone[i] = true
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return gone, fmt.Errorf("publisher: dropping %s delete markers: %w", resource, err)
	}
	return gone, nil
}
