// Package app wires the bridge's parts together for the binary's run and
// demo commands: it adapts the publisher's JetStream types to the small
// interfaces the poller and the consumer declare.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/publisher"
)

// Sink publishes poller events as CloudEvents messages.
type Sink struct {
	Publisher  *publisher.Publisher
	Subjects   events.Subjects
	APIBaseURL string
	// Timeout bounds one Publish; 0 means none. What was not acknowledged
	// by then is published again by the next cycle, with the same ids.
	Timeout time.Duration
	// Reprovision, when set, is called when nothing answers for the events
	// stream (it was deleted under the bridge), so the next try finds it.
	Reprovision func(ctx context.Context) error
}

// Publish implements poller.Sink.
func (s Sink) Publish(ctx context.Context, evs []plan.Outgoing, acked func(i int, ack poller.Ack)) error {
	return s.publish(ctx, evs, func(i int, ack *jetstream.PubAck) {
		acked(i, poller.Ack{Seq: ack.Sequence, Duplicate: ack.Duplicate})
	})
}

// publish is Publish with JetStream's whole acknowledgement, which says
// whether the event was a duplicate of one stored before.
func (s Sink) publish(ctx context.Context, evs []plan.Outgoing, acked func(i int, ack *jetstream.PubAck)) error {
	msgs := make([]*nats.Msg, len(evs))
	for i, o := range evs {
		m, err := events.NewMsg(s.Subjects, s.APIBaseURL, o.EventID, o.Event)
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	err := s.Publisher.Publish(ctx, msgs, acked)
	if err != nil && s.Reprovision != nil && (errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)) {
		if perr := s.Reprovision(context.WithoutCancel(ctx)); perr != nil {
			return errors.Join(err, perr)
		}
	}
	return err
}

// Lease holds one resource's lease for one poller. Its methods are called
// from one goroutine.
type Lease struct {
	Leases   *publisher.Leases
	Resource string
	cur      *publisher.Lease
}

// Hold implements poller.Lease: renew the lease if held, else try to take it.
func (l *Lease) Hold(ctx context.Context) (time.Time, bool, error) {
	if l.cur != nil {
		renewed, err := l.Leases.Renew(ctx, *l.cur)
		switch {
		case err == nil:
			l.cur = &renewed
			return renewed.Until, true, nil
		case !errors.Is(err, publisher.ErrLeaseLost):
			// NATS is unreachable: the lease holds until it runs out.
			return l.cur.Until, l.cur.Valid(time.Now()), err
		}
		l.cur = nil
	}
	taken, held, _, err := l.Leases.Acquire(ctx, l.Resource)
	if err != nil || !held {
		return time.Time{}, false, err
	}
	l.cur = &taken
	return taken.Until, true, nil
}

// Release implements poller.Lease.
func (l *Lease) Release(ctx context.Context) error {
	if l.cur == nil {
		return nil
	}
	err := l.Leases.Release(ctx, *l.cur)
	l.cur = nil
	if err != nil {
		return fmt.Errorf("releasing the %s lease: %w", l.Resource, err)
	}
	return nil
}

// Compile-time checks that the adapters fit.
var (
	_ poller.Sink        = Sink{}
	_ poller.Mirror      = (*publisher.StateStore)(nil)
	_ poller.Checkpoints = (*publisher.Checkpoints)(nil)
	_ poller.Journal     = (*publisher.Journal)(nil)
	_ poller.Lease       = (*Lease)(nil)
)
