package publisher

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
)

// EventSink publishes change events as CloudEvents messages, for the
// pollers and the command write-through alike.
type EventSink struct {
	Publisher  *Publisher
	Subjects   events.Subjects
	APIBaseURL string
	// Timeout bounds one Publish; 0 means none. What was not acknowledged
	// by then is published again by the next cycle, with the same ids.
	Timeout time.Duration
	// Reprovision, when set, is called when nothing answers for the events
	// stream (it was deleted under the bridge), so the next try finds it.
	Reprovision func(ctx context.Context) error
}

// Publish calls acked(i, ack) for each event JetStream stored, or dropped
// as a duplicate of one it stored before; an error means some were not
// acknowledged.
func (s EventSink) Publish(ctx context.Context, evs []plan.Outgoing, acked func(i int, ack plan.Ack)) error {
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
	err := s.Publisher.Publish(ctx, msgs, func(i int, ack *jetstream.PubAck) {
		acked(i, plan.Ack{Seq: ack.Sequence, Duplicate: ack.Duplicate})
	})
	if err != nil && s.Reprovision != nil && (errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)) {
		if perr := s.Reprovision(context.WithoutCancel(ctx)); perr != nil {
			return errors.Join(err, perr)
		}
	}
	return err
}
