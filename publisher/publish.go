package publisher

import (
	"context"
	"errors"
	"fmt"
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
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(p.window*2))
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

// round sends the messages in todo once and returns those that failed.
func (p *Publisher) round(ctx context.Context, msgs []*nats.Msg, todo []int, acked func(int, *jetstream.PubAck)) (failed []int, lastErr error) {
	type pending struct {
		i    int
		fut  jetstream.PubAckFuture
		sent time.Time
	}
	inflight := make([]pending, 0, min(p.window, len(todo)))
	timeout := time.NewTimer(p.ackTimeout)
	defer timeout.Stop()
	settle := func(pd pending) {
		// Acks come in order, so waiting for the oldest first costs nothing.
		timeout.Reset(max(time.Until(pd.sent.Add(p.ackTimeout)), 0))
		select {
		case ack := <-pd.fut.Ok():
			acked(pd.i, ack)
		case err := <-pd.fut.Err():
			failed, lastErr = append(failed, pd.i), err
		case <-timeout.C:
			failed, lastErr = append(failed, pd.i), jetstream.ErrAsyncPublishTimeout
		case <-ctx.Done():
			failed, lastErr = append(failed, pd.i), context.Cause(ctx)
		}
	}
	for n, i := range todo {
		if ctx.Err() != nil {
			failed = append(failed, todo[n:]...)
			lastErr = context.Cause(ctx)
			break
		}
		if len(inflight) == p.window {
			settle(inflight[0])
			inflight = inflight[1:]
		}
		m := msgs[i]
		// A fresh message each time: the client keeps a reference to what it
		// is given until the ack arrives.
		fut, err := p.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		if err != nil {
			failed, lastErr = append(failed, i), err
			if isPermanent(err) {
				failed = append(failed, todo[n+1:]...)
				break
			}
			continue
		}
		inflight = append(inflight, pending{i, fut, time.Now()})
	}
	for _, pd := range inflight {
		settle(pd)
	}
	return failed, lastErr
}

func isPermanent(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) ||
		errors.Is(err, nats.ErrConnectionClosed)
}
