package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety/model"
)

// A service that reacts to task updates: a durable consumer on the events
// stream, filtered to tasks.updated, decoding each event into typed tasks.
func Example() {
	ctx := context.Background()
	nc, stop := exampleNATS()
	defer stop()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	subjects := events.MustSubjects(events.DefaultPrefix)

	cons, err := js.CreateOrUpdateConsumer(ctx, subjects.EventsStream(), jetstream.ConsumerConfig{
		Durable:       "task-updates",
		FilterSubject: subjects.EventFilter("tasks", events.OpUpdated),
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	if err != nil {
		log.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	for msg := range batch.Messages() {
		e, _, err := events.DecodeStream(msg)
		if err != nil {
			// Not a change event: terminate it rather than see it again.
			_ = msg.Term()
			continue
		}
		before, _, _ := events.Before[model.Task](e)
		after, _, _ := events.After[model.Task](e)
		fmt.Printf("task %s %s: %v %q -> %q\n", e.ID, e.Op, e.Changed, before.Title, after.Title)
		_ = msg.Ack()
	}
	// Output: task 42 updated: [title] "Write docs" -> "Write the docs"
}

// exampleNATS stands in for your NATS cluster and for the bridge: an
// embedded server with the events stream and one task update in it.
func exampleNATS() (*nats.Conn, func()) {
	dir, err := os.MkdirTemp("", "events-example")
	if err != nil {
		log.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	subjects := events.MustSubjects(events.DefaultPrefix)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: subjects.EventsStream(), Subjects: []string{subjects.Events()}}); err != nil {
		log.Fatal(err)
	}
	e := events.Event{Resource: "tasks", Op: events.OpUpdated, ID: "42", Revision: 2,
		Before:  json.RawMessage(`{"id":42,"title":"Write docs"}`),
		After:   json.RawMessage(`{"id":42,"title":"Write the docs"}`),
		Changed: []string{"title"}, DetectedAt: time.Now()}
	msg, err := events.NewMsg(subjects, "https://app.rockety.io/api/v1", events.EventID("tasks", "42", events.OpUpdated, 1), e)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		log.Fatal(err)
	}
	return nc, func() {
		nc.Close()
		ns.Shutdown()
		_ = os.RemoveAll(dir)
	}
}
