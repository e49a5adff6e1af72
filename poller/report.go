package poller

import (
	"context"
	"errors"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
)

// Reporter publishes the report of each finished cycle
// (P.cycles.<resource>). A report that cannot be published is the
// reporter's to log: the cycle's work is done either way.
type Reporter interface {
	Report(ctx context.Context, r events.CycleReport)
}

// reportOf is the report of one cycle of resource, run by instance from
// start to finish, that ended with stats and err.
func reportOf(resource, instance string, stats CycleStats, start, finish time.Time, err error) events.CycleReport {
	kind := events.CycleKind(stats.Kind)
	if kind == "" {
		// It failed before it could pick: the first cycle of a start,
		// whose load failed, is a full traversal.
		kind = events.CycleFull
	}
	r := events.CycleReport{
		Resource: resource, Kind: kind, Instance: instance, ResyncID: stats.ResyncID,
		StartedAt: start.UTC(), FinishedAt: finish.UTC(),
		Pages: stats.Pages, Requests: stats.Requests, Items: stats.Seen,
		Created: stats.Created, Updated: stats.Updated, Deleted: stats.Deleted, Snapshot: stats.Snapshot,
		GuardTripped: stats.GuardTripped,
	}
	switch {
	case err == nil && stats.Complete:
		r.Outcome = events.CycleComplete
	case err == nil:
		r.Outcome = events.CyclePartial
		r.Error = stats.Distrusted
	case errors.Is(err, ErrIncomplete):
		r.Outcome, r.Error = events.CyclePartial, err.Error()
	default:
		r.Outcome, r.Error = events.CycleFailed, err.Error()
	}
	return r
}
