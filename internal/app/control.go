package app

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"go.uber.org/zap"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/publisher"
)

// reporter publishes each cycle's report and logs one that could not be:
// the cycle's work is done, and the next report says how things stand.
type reporter struct {
	reports *publisher.Reports
	log     *zap.Logger
}

func (r reporter) Report(ctx context.Context, rep events.CycleReport) {
	// Bounded: NATS away must not hold up the next cycle.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	if err := r.reports.Publish(ctx, rep); err != nil {
		r.log.Warn("cycle report not published", zap.String("resource", rep.Resource), zap.Error(err))
	}
}

const reportTimeout = 5 * time.Second

// serveResync answers resync requests (P.control.resync.<resource>) for
// the resources this replica polls, while it holds their lease; a plain
// publish on the subject (no reply subject) runs a resync too. A replica
// that does not hold it stays silent, so the holder's answer is the one
// the caller gets; with no holder the caller's request times out.
func (b *Bridge) serveResync() (*nats.Subscription, error) {
	pollers := map[string]*poller.Poller{}
	for _, p := range b.pollers {
		pollers[p.Resource()] = p
	}
	prefix := b.opts.Subjects.Resync("")
	return b.opts.Conn.Subscribe(b.opts.Subjects.Resync("*"), func(m *nats.Msg) {
		p, ok := pollers[strings.TrimPrefix(m.Subject, prefix)]
		if !ok {
			return
		}
		reply := events.ResyncReply{Instance: b.opts.InstanceID}
		mode, err := events.ParseResyncRequest(m.Data)
		if err == nil {
			reply.ResyncID, err = p.Resync(nuid.Next(), mode == events.ResyncSnapshot)
		}
		switch {
		case errors.Is(err, poller.ErrNotHolder):
			return
		case err != nil:
			reply.Error = err.Error()
		default:
			reply.Accepted = true
			b.log.Info("resync asked for", zap.String("resource", p.Resource()), zap.String("mode", string(mode)),
				zap.String("resync_id", reply.ResyncID))
		}
		if m.Reply == "" {
			// Published, not requested (nats pub): run, but nobody to tell.
			if reply.Error != "" {
				b.log.Warn("resync request refused", zap.String("resource", p.Resource()), zap.String("error", reply.Error))
			}
			return
		}
		body, _ := events.EncodeJSON(reply)
		if err := m.Respond(body); err != nil {
			b.log.Warn("resync answer not sent", zap.String("resource", p.Resource()), zap.Error(err))
		}
	})
}
