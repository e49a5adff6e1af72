package publisher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of a Publisher.
const (
	DefaultWindow     = 256
	DefaultAckTimeout = 5 * time.Second
)

// ErrStorageFull reports that JetStream refused to store a message for
// lack of storage. Nothing is lost: what was not stored is sent again.
var ErrStorageFull = errors.New("JetStream storage is full: free disk space, or raise the server's " +
	"max_file_store (jetstream { max_file_store }) or the account's JetStream storage limit; " +
	"what was not stored is published again once there is room")

// storageFull marks err with ErrStorageFull when JetStream refused for lack
// of storage (insufficient resources, 10023 and 10047), and returns any
// other err unchanged.
func storageFull(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == insufficientResources || apiErr.ErrorCode == storageResourcesExceeded) && !errors.Is(err, ErrStorageFull) {
		return fmt.Errorf("%w (%w)", ErrStorageFull, err)
	}
	return err
}

// ErrNotAcknowledged reports messages that JetStream did not acknowledge
// before the context ended or a permanent error stopped the batch. None of
// them was reported as published.
var ErrNotAcknowledged = errors.New("publisher: not acknowledged")

// Publisher sends messages to JetStream asynchronously, with at most Window
// acknowledgements pending, and reports each message once JetStream has
// acknowledged it. A message that fails or times out is sent again with the
// same Nats-Msg-Id until it is acknowledged or the context ends; JetStream
// drops the copy if the first one had landed after all.
type Publisher struct {
	js         jetstream.JetStream
	window     int
	ackTimeout time.Duration
	retryMax   time.Duration

	mu     sync.Mutex
	routes map[*nats.Msg]route // messages in flight, by the pointer the client hands back
}

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher) error

// WithWindow sets how many acknowledgements may be pending at once.
func WithWindow(n int) PublisherOption {
	return func(p *Publisher) error {
		if n < 1 {
			return fmt.Errorf("publisher: window %d: must be at least 1", n)
		}
		p.window = n
		return nil
	}
}

// WithAckTimeout sets how long to wait for one acknowledgement before the
// message is sent again.
func WithAckTimeout(d time.Duration) PublisherOption {
	return func(p *Publisher) error {
		if d <= 0 {
			return fmt.Errorf("publisher: ack timeout %s: must be positive", d)
		}
		p.ackTimeout = d
		return nil
	}
}

// NewPublisher returns a Publisher on nc.
func NewPublisher(nc *nats.Conn, opts ...PublisherOption) (*Publisher, error) {
	p := &Publisher{window: DefaultWindow, ackTimeout: DefaultAckTimeout, retryMax: 5 * time.Second}
	for _, opt := range opts {
		if err := opt(p); err != nil {
			return nil, err
		}
	}
	// Our own window keeps pending acks below the client's maximum, so its
	// stall (which fails a publish after a short wait) never triggers. The
	// ack timeout is ours too: the client's arms a timer per message.
	p.routes = make(map[*nats.Msg]route)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(p.window*2),
		// Answers arrive through callbacks rather than each message's future,
		// which would cost two channels per message.
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) { p.deliver(m, ack, nil) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { p.deliver(m, nil, err) }))
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	p.js = js
	return p, nil
}

// Publish sends msgs, each of which must carry a Nats-Msg-Id header, and
// calls acked(i, ack) for msgs[i] once JetStream has stored it (or dropped
// it as a duplicate of one it stored before). acked runs on the caller's
// goroutine, once per message, in no fixed order.
//
// Publish returns nil when every message was acknowledged. Otherwise the
// error matches ErrNotAcknowledged and says how many were not; those were
// not passed to acked. Failures are retried with backoff until ctx ends,
// except a message the server can never take (larger than its max payload),
// which stops the batch at once.
func (p *Publisher) Publish(ctx context.Context, msgs []*nats.Msg, acked func(i int, ack *jetstream.PubAck)) error {
	for i, m := range msgs {
		if m.Header.Get(nats.MsgIdHdr) == "" {
			return fmt.Errorf("publisher: message %d on %s has no Nats-Msg-Id: without it a retry could duplicate it", i, m.Subject)
		}
	}
	todo := make([]int, len(msgs))
	for i := range todo {
		todo[i] = i
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = p.retryMax
	b.MaxElapsedTime = 0 // until ctx ends: the caller owns the deadline
	b.Reset()
	for {
		failed, lastErr := p.round(ctx, msgs, todo, acked)
		if len(failed) == 0 {
			return nil
		}
		lastErr = storageFull(lastErr)
		if ctx.Err() != nil || isPermanent(lastErr) {
			return fmt.Errorf("%w: %d of %d messages (first %s): %w", ErrNotAcknowledged, len(failed), len(msgs),
				msgs[failed[0]].Subject, errors.Join(lastErr, context.Cause(ctx)))
		}
		t := time.NewTimer(b.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %d of %d messages (first %s): %w", ErrNotAcknowledged, len(failed), len(msgs),
				msgs[failed[0]].Subject, errors.Join(lastErr, context.Cause(ctx)))
		case <-t.C:
		}
		todo = failed
	}
}

// outcome is JetStream's answer to one message of a round.
type outcome struct {
	slot int
	ack  *jetstream.PubAck
	err  error
}

// route says where the answer to a message in flight goes.
type route struct {
	ch   chan<- outcome
	slot int
}

// deliver is the JetStream context's ack and error callback: it hands the
// answer to the round that sent the message. Answers for messages a round
// has given up on (timed out) are dropped.
func (p *Publisher) deliver(m *nats.Msg, ack *jetstream.PubAck, err error) {
	p.mu.Lock()
	r, ok := p.routes[m]
	delete(p.routes, m)
	p.mu.Unlock()
	if ok {
		r.ch <- outcome{r.slot, ack, err} // buffered for the whole round: never blocks the client
	}
}

// unroute forgets a message; it reports false when its answer was already
// delivered.
func (p *Publisher) unroute(m *nats.Msg) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.routes[m]
	delete(p.routes, m)
	return ok
}

// round sends the messages in todo once, at most window in flight, and
// returns those that failed.
func (p *Publisher) round(ctx context.Context, msgs []*nats.Msg, todo []int, acked func(int, *jetstream.PubAck)) (failed []int, lastErr error) {
	results := make(chan outcome, len(todo))
	out := make([]*nats.Msg, len(todo))
	sent := make([]time.Time, len(todo))
	done := make([]bool, len(todo))
	outstanding, oldest, count := 0, 0, 0
	settle := func(slot int, ack *jetstream.PubAck, err error) {
		if done[slot] {
			return
		}
		done[slot] = true
		outstanding--
		if err == nil {
			acked(todo[slot], ack)
			return
		}
		failed, lastErr = append(failed, todo[slot]), err
	}
	giveUp := func(slot int, err error) {
		if p.unroute(out[slot]) {
			settle(slot, nil, err)
		} // else its answer is in results already
	}
	timeout := time.NewTimer(p.ackTimeout)
	defer timeout.Stop()
	// wait takes one answer, or times out the messages that waited too long.
	wait := func() {
		for oldest < count && done[oldest] {
			oldest++
		}
		timeout.Reset(max(time.Until(sent[oldest].Add(p.ackTimeout)), 0))
		select {
		case o := <-results:
			settle(o.slot, o.ack, o.err)
		case <-timeout.C:
			for k := oldest; k < count; k++ {
				if !done[k] && time.Since(sent[k]) >= p.ackTimeout {
					giveUp(k, jetstream.ErrAsyncPublishTimeout)
				}
			}
		case <-ctx.Done():
			for k := oldest; k < count; k++ {
				if !done[k] {
					giveUp(k, context.Cause(ctx))
				}
			}
		}
	}
	for n, i := range todo {
		if ctx.Err() != nil {
			failed, lastErr = append(failed, todo[n:]...), context.Cause(ctx)
			break
		}
		for outstanding >= p.window {
			wait()
		}
		m := msgs[i]
		// A fresh message each attempt: the client keeps it until the
		// answer, and it is the key of the answer's route.
		out[n] = &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
		sent[n] = time.Now()
		count, outstanding = n+1, outstanding+1
		p.mu.Lock()
		p.routes[out[n]] = route{ch: results, slot: n}
		p.mu.Unlock()
		if _, err := p.js.PublishMsgAsync(out[n]); err != nil {
			giveUp(n, err)
			if isPermanent(err) {
				failed = append(failed, todo[n+1:]...)
				break
			}
		}
	}
	for outstanding > 0 {
		wait()
	}
	return failed, lastErr
}

// isPermanent reports failures that retrying cannot mend: the message can
// never be taken, the connection is closed for good, or no stream takes the
// subject (the caller may recreate it; retrying alone would wait for ever).
func isPermanent(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		// Room is made by a person, not by the next try a moment later; the
		// caller's next attempt (the next cycle) finds it.
		errors.Is(err, ErrStorageFull)
}
