package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/model"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// On a 3-node JetStream cluster with every stream and bucket at 3
// replicas, the events stream's leader and then the mirror bucket's leader
// are stopped while the bridge polls under churn and commands write, each
// brought back a few seconds later: every event is held to the
// simulator's mutation log (nothing lost, nothing twice, no false delete)
// and every command gets its result.
func TestClusterLeadersStopped(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster and two leader failovers; skipped with -short")
	}
	c := natstest.StartCluster(t, 3)
	s := lab.NewSim(t, sim.Options{Seed: 31, SeedItems: 200, Churn: 30})
	client := lab.Serve(t, s, rockety.WithRateLimit(0))
	js, _ := jetstream.New(c.Connect(t))

	ctx, cancel := context.WithCancel(context.Background())
	var resources []app.Resource
	for _, r := range sim.DefaultResources {
		resources = append(resources, app.Resource{Name: r, Interval: 300 * time.Millisecond})
	}
	b, err := app.New(ctx, app.Options{
		Client: client, Conn: c.Connect(t), Subjects: subjects, InitialSync: poller.SyncBaseline, MaxDeleteRatio: 0.5,
		InstanceID: "pod-a", LeaseTTL: 2 * time.Second, ShutdownGrace: time.Second, Metrics: app.NewMetrics("test"),
		Replicas: 3, Resources: resources,
		Commands: &app.Commands{Writer: client, Allow: consumer.Allow{"*"}, AckWait: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	lab.WaitFor(t, "the baselines", 20*time.Second, func() bool { return checkpointed(js) })
	time.Sleep(time.Second) // every resource's baseline
	if info := streamInfo(t, js, subjects.EventsStream()); info.Config.Replicas != 3 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("events stream at %d replicas (%+v), want 3", info.Config.Replicas, info.Cluster)
	}
	from := takeBaseline(t, s, js)

	churn, stopChurn := context.WithCancel(context.Background())
	if err := s.Start(churn); err != nil {
		t.Fatal(err)
	}
	results := make(chan events.Status, 1000)
	commandsDone := make(chan struct{})
	go func() {
		defer close(commandsDone)
		cmds, _ := command.New(c.Connect(t), subjects)
		for i := 0; churn.Err() == nil; i++ {
			cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
			res, err := cmds.Do(cctx, command.Request{Resource: "tasks", Action: events.ActionUpdate, CommandID: fmt.Sprintf("cluster-%d", i),
				Command: events.Command{ID: model.ID(fmt.Sprint(1 + i%40)), Data: json.RawMessage(fmt.Sprintf(`{"title":"command %d"}`, i))}})
			ccancel()
			if err != nil {
				results <- ""
			} else {
				results <- res.Status
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	for _, stream := range []string{subjects.EventsStream(), "KV_" + subjects.StateBucket()} {
		time.Sleep(1500 * time.Millisecond)
		leader := c.StreamLeader(js, stream)
		c.Server(leader).Stop()
		stopped := time.Now()
		lab.WaitFor(t, "a new leader of "+stream, 20*time.Second, func() bool {
			l, err := leaderOf(js, stream)
			return err == nil && l != "" && l != leader
		})
		t.Logf("%s: leader %s stopped; a new one after %s", stream, leader, time.Since(stopped).Round(10*time.Millisecond))
		time.Sleep(2 * time.Second)
		c.Server(leader).Restart()
	}
	time.Sleep(time.Second)
	stopChurn()
	<-commandsDone
	time.Sleep(3 * time.Second) // the last changes reach the stream
	judgeSince(t, s, js, from)
	close(results)
	answered, lost := 0, 0
	for st := range results {
		if st == "" {
			lost++
		} else {
			answered++
		}
	}
	if lost != 0 {
		t.Errorf("%d of %d commands got no result", lost, answered+lost)
	}
	t.Logf("%d commands, each with a result", answered)
}

func streamInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func leaderOf(js jetstream.JetStream, name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		return "", err
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil {
		return "", err
	}
	return info.Cluster.Leader, nil
}
