package follow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"sort"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/events/follow"
)

// A service that keeps its own copy of every task: the current state from
// the bridge's mirror, then each change after it.
func Example() {
	nc, stop := exampleNATS()
	defer stop()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	tasks := map[string]json.RawMessage{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = follow.Follow(ctx, js, events.MustSubjects(events.DefaultPrefix), "tasks", follow.Handler{
		Item: func(id string, item json.RawMessage, _ uint64) error {
			tasks[id] = item
			return nil
		},
		Ready: func() error {
			fmt.Println("copy ready:", len(tasks), "tasks")
			return nil
		},
		Change: func(e events.Event) error {
			if e.Op == events.OpDeleted {
				delete(tasks, e.ID)
			} else {
				tasks[e.ID] = e.After
			}
			fmt.Printf("%s %s: %s\n", e.Op, e.ID, e.After)
			cancel() // enough for the example; a service keeps following
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ids := make([]string, 0, len(tasks))
	for id := range tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Printf("task %s: %s\n", id, tasks[id])
	}
	// Output:
	// copy ready: 2 tasks
	// updated 2: {"id":2,"title":"Ship it"}
	// task 1: {"id":1,"title":"Write docs"}
	// task 2: {"id":2,"title":"Ship it"}
}

// exampleNATS stands in for your NATS and for the bridge: the mirror holds
// two tasks, and the events stream the change that made task 1 (already in
// the mirror, so not given again) and a later update of task 2.
func exampleNATS() (*nats.Conn, func()) {
	dir, err := os.MkdirTemp("", "follow-example")
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
	s := events.MustSubjects(events.DefaultPrefix)
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: s.EventsStream(), Subjects: []string{s.Events()}})
	must(err)
	state, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: s.StateBucket()})
	must(err)
	checkpoints, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: s.CheckpointsBucket()})
	must(err)
	publish := func(e events.Event, replaced uint64) uint64 {
		e.Revision, e.DetectedAt = events.ChangeRevision(replaced), time.Now()
		msg, err := events.NewMsg(s, "https://app.rockety.io/api/v1", events.EventID(e.Resource, e.ID, e.Op, replaced), e)
		must(err)
		ack, err := js.PublishMsg(ctx, msg)
		must(err)
		return ack.Sequence
	}
	one := json.RawMessage(`{"id":1,"title":"Write docs"}`)
	seq := publish(events.Event{Resource: "tasks", Op: events.OpCreated, ID: "1", After: one}, 0)
	_, err = state.Put(ctx, "tasks.1", one)
	must(err)
	rev2, err := state.Put(ctx, "tasks.2", json.RawMessage(`{"id":2,"title":"Ship"}`))
	must(err)
	_, err = checkpoints.Put(ctx, "tasks", []byte(fmt.Sprintf(`{"checkpoint":%d}`, seq)))
	must(err)
	publish(events.Event{Resource: "tasks", Op: events.OpUpdated, ID: "2", Before: json.RawMessage(`{"id":2,"title":"Ship"}`),
		After: json.RawMessage(`{"id":2,"title":"Ship it"}`), Changed: []string{"title"}}, rev2)
	return nc, func() {
		nc.Close()
		ns.Shutdown()
		_ = os.RemoveAll(dir)
	}
}
