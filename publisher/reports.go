package publisher

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
)

// Reports publishes cycle reports on P.cycles.<resource>, which the events
// stream captures: a subscriber reads when a resource was last seen whole
// from the stream, a resync's caller from a plain subscription.
type Reports struct {
	js       jetstream.JetStream
	subjects events.Subjects
}

// NewReports publishes cycle reports through js.
func NewReports(js jetstream.JetStream, subjects events.Subjects) *Reports {
	return &Reports{js: js, subjects: subjects}
}

// Publish stores one report in the events stream.
func (r *Reports) Publish(ctx context.Context, rep events.CycleReport) error {
	if err := events.ValidResource(rep.Resource); err != nil {
		return err
	}
	body, err := events.EncodeJSON(rep)
	if err != nil {
		return err
	}
	if _, err := r.js.Publish(ctx, r.subjects.Cycle(rep.Resource), body); err != nil {
		return fmt.Errorf("publisher: publishing the %s cycle report: %w", rep.Resource, err)
	}
	return nil
}
