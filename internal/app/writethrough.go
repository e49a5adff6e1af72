package app

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// WriteThrough publishes the change event of a command's successful write
// and stores the new state in the mirror at once, exactly as a poll would
// have: same event id, same revision, same fields. A poll that saw the
// change first, or sees it later, then publishes nothing more (the shared
// event id makes a race between the two a JetStream duplicate).
type WriteThrough struct {
	Store   *publisher.StateStore
	Sink    publisher.EventSink
	Metrics *Metrics
	// DeletedField is ROCKETY_DELETED_FIELD: an answer that carries the
	// mark is a delete, as a poll would judge it.
	DeletedField string
	// Floors, when set, give a resource's compaction floor: an item with
	// no entry in the mirror is created over it, as a poll would. Without
	// it an absent item replaces revision 0 (no compaction ever ran).
	Floors Bookmarks
	// Journal, when set, is asked for the item's latest events: one
	// published and not yet stored (its bridge died in between) means the
	// mirror lags, and this write is left to the poll.
	Journal LatestEvents
}

// LatestEvents reads an item's last event of an op (publisher.Journal).
type LatestEvents interface {
	Latest(ctx context.Context, resource, id string, op events.Op) (events.Event, bool, error)
}

// Bookmarks read a resource's bookkeeping (publisher.Checkpoints).
type Bookmarks interface {
	Bookmark(ctx context.Context, resource string) (plan.Bookmark, bool, error)
}

// looked is a stored state read while the write was in flight.
type looked struct {
	state plan.State
	err   error
}

// Begin implements consumer.WriteThrough. An update or a delete names its
// item, so its stored state is read while the API write runs: the read is
// then off the command's path. A create learns its id from the answer.
func (w WriteThrough) Begin(ctx context.Context, req consumer.Request) func(context.Context, *rockety.Response) error {
	var before chan looked
	if req.Action != events.ActionCreate && req.ID != "" {
		before = make(chan looked, 1) // the reader never blocks, even when nobody waits
		go func() {
			stored, err := w.Store.Lookup(ctx, req.Resource, []string{string(req.ID)})
			if err != nil {
				before <- looked{err: err}
				return
			}
			before <- looked{state: stored[0]}
		}()
	}
	return func(ctx context.Context, resp *rockety.Response) error {
		var prev looked
		if before != nil {
			prev = <-before
		}
		if resp == nil {
			return nil
		}
		return w.written(ctx, req, *resp, before != nil, prev)
	}
}

// written publishes and stores one successful write. prev is the item's
// stored state when read beforehand (read says so); a create reads it now.
// What to publish is the poll's rule: the API's answer is a listed item, a
// delete is gone.
func (w WriteThrough) written(ctx context.Context, req consumer.Request, resp rockety.Response, read bool, prev looked) error {
	id := req.ID
	if req.Action == events.ActionCreate {
		id = resp.Item.ID
	}
	if id == "" || (req.Action != events.ActionDelete && (resp.Item.ID == "" || resp.Item.ID != id)) {
		return nil // the answer holds no item: the next poll reports the change
	}
	if !read {
		stored, err := w.Store.Lookup(ctx, req.Resource, []string{string(id)})
		if err != nil {
			return err
		}
		prev.state = stored[0]
	}
	if prev.err != nil {
		return prev.err
	}
	if prev.state.Absent && w.Floors != nil {
		// Read now, not cached: the lease holder raises it between cycles.
		b, _, err := w.Floors.Bookmark(ctx, req.Resource)
		if err != nil {
			return err
		}
		prev.state = prev.state.AtFloor(b.Floor)
	}
	if lags, err := w.mirrorLags(ctx, req.Resource, string(id), prev.state.Revision); err != nil || lags {
		// Decided against the older state, its event would replace the
		// revision the published one replaced: two events of one revision,
		// the second with a stale before. The poll stores the published
		// change first, then finds this write.
		return err
	}
	obs := plan.Observation{Kind: plan.Listed, Value: resp.Item.Raw, Answer: true,
		MarkedDeleted: plan.MarkedDeleted(resp.Item.Raw, w.DeletedField)}
	if req.Action == events.ActionDelete {
		obs = plan.Observation{Kind: plan.Gone, Answer: true}
	}
	d := plan.Decide(req.Resource, prev.state, obs, time.Now())
	if d.Event == nil {
		// Nothing a subscriber could see: the poll stores any new
		// formatting itself.
		return nil
	}
	var ack *plan.Ack
	if err := w.Sink.Publish(ctx, []plan.Outgoing{*d.Event}, func(_ int, a plan.Ack) { ack = &a }); err != nil || ack == nil {
		return fmt.Errorf("publishing the write-through event of %s %s: %w", req.Resource, id, err)
	}
	if ack.Duplicate {
		// An event with this id was stored before: this write-through's own
		// earlier attempt, or a poll's that is not yet in the mirror. Only
		// the poll (or its recovery) knows which state that event carried,
		// so the mirror is left to it; storing ours could skip a change.
		return nil
	}
	if w.Metrics != nil {
		w.Metrics.PublishedWriteThrough(req.Resource, d.Event.Event.Op)
	}
	// A conflict means a poll stored the state meanwhile: fine either way.
	res, err := w.Store.Commit(ctx, req.Resource, []plan.Write{*d.Write})
	if err != nil || !res[0].Conflict || d.Write.Absent {
		return err
	}
	// Or compaction dropped the delete marker this create replaced: the
	// event is out and nothing is stored, so a poll would create the item
	// again over the floor, under another event id. Stored now instead.
	now, err := w.Store.Lookup(ctx, req.Resource, []string{string(id)})
	if err != nil || !now[0].Absent {
		return err
	}
	again := *d.Write
	again.Absent = true
	_, err = w.Store.Commit(ctx, req.Resource, []plan.Write{again})
	return err
}

// mirrorLags reports whether an event of the item was published after the
// stored revision and is not stored yet: its revision is above it (a
// stored event's revision is at most the revision it was stored at).
func (w WriteThrough) mirrorLags(ctx context.Context, resource, id string, stored uint64) (bool, error) {
	if w.Journal == nil {
		return false, nil
	}
	for _, op := range events.Ops {
		e, found, err := w.Journal.Latest(ctx, resource, id, op)
		if err != nil {
			return false, fmt.Errorf("reading the latest %s event of %s %s: %w", op, resource, id, err)
		}
		if found && e.Revision > stored {
			return true, nil
		}
	}
	return false, nil
}

// CommandObserver logs and counts command outcomes.
type CommandObserver struct {
	Log     *zap.Logger
	Metrics *Metrics
	// Also, when set, is told everything as well.
	Also consumer.Observer
}

// CommandDone implements consumer.Observer.
func (o CommandObserver) CommandDone(resource, action string, status events.Status, took time.Duration) {
	if o.Also != nil {
		o.Also.CommandDone(resource, action, status, took)
	}
	if o.Metrics != nil {
		o.Metrics.CommandDone(resource, action, status, took)
	}
	if o.Log != nil && status != events.StatusSucceeded {
		o.Log.Info("command not executed", zap.String("resource", resource), zap.String("action", action),
			zap.String("status", string(status)))
	}
}

// Problem implements consumer.Observer.
func (o CommandObserver) Problem(msg, commandID string, err error) {
	if o.Also != nil {
		o.Also.Problem(msg, commandID, err)
	}
	if o.Log != nil {
		o.Log.Warn(msg, zap.String("command_id", commandID), zap.Error(err))
	}
}
