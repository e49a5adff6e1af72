package command_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/publisher"
)

// TestResultMissedByTheSubscription: the result is already in the stream
// but never reaches the live subscription (it was sent while the
// service's connection was reconnecting). Do finds it in the stream.
func TestResultMissedByTheSubscription(t *testing.T) {
	subjects := events.MustSubjects("rockety")
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects}); err != nil {
		t.Fatal(err)
	}
	// No consumer runs: the only result is the one stored beforehand.
	want := events.Result{CommandID: "c-7", Resource: "tasks", Action: "update", Status: events.StatusSucceeded, HTTPStatus: 200,
		Data: json.RawMessage(`{"id":7}`)}
	body, _ := json.Marshal(want)
	m := nats.NewMsg(subjects.Result("tasks", "update", "c-7"))
	m.Data = body
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}

	c, _ := command.New(nc, subjects)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := c.Do(dctx, command.Request{Resource: "tasks", Action: events.ActionUpdate, CommandID: "c-7",
		Command: events.Command{ID: "7", Data: json.RawMessage(`{"title":"x"}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if got.CommandID != want.CommandID || got.Status != want.Status || string(got.Data) != string(want.Data) {
		t.Errorf("Do = %+v, want the stored %+v", got, want)
	}
}
