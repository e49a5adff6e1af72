package command_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/model"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// A service marks task 3 done through the bridge and reads the outcome.
func Example() {
	nc, stop := exampleBridge()
	defer stop()

	c, err := command.New(nc, events.MustSubjects("rockety"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Do(ctx, command.Request{
		Resource:  "tasks",
		Action:    events.ActionUpdate,
		CommandID: "mark-3-done", // the idempotency key: sending it again writes nothing more
		Command:   events.Command{ID: "3", Data: json.RawMessage(`{"status":"done"}`)},
	})
	if err != nil {
		log.Fatal(err)
	}
	task, _ := model.DecodeItem[model.Task](model.Item{Raw: res.Data})
	fmt.Println(res.Status, res.HTTPStatus, task.Status)
	// Output: succeeded 200 done
}

// exampleBridge stands in for NATS and a running rockety-bridge: an
// embedded server, a simulated Rockety API and the command consumer.
func exampleBridge() (*nats.Conn, func()) {
	dir, _ := os.MkdirTemp("", "command-example")
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	ns.Start()
	ns.ReadyForConnections(10 * time.Second)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	s, _ := sim.New(sim.Options{Token: "tok", Seed: 1, SeedItems: 5, Resources: []string{"tasks"}})
	api := httptest.NewServer(s)
	client, _ := rockety.New(api.URL+sim.BasePath, rockety.WithToken("tok"), rockety.WithAllowInsecure(true))
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	subjects := events.MustSubjects("rockety")
	res, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects})
	if err != nil {
		log.Fatal(err)
	}
	cons, err := consumer.New(ctx, js, res.CommandResults, client, nil, consumer.Config{Subjects: subjects, Allow: consumer.Allow{"*"}})
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cons.Run(ctx); close(done) }()
	return nc, func() {
		cancel()
		<-done
		nc.Close()
		api.Close()
		ns.Shutdown()
		_ = os.RemoveAll(dir)
	}
}
