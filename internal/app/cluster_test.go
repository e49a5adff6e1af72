package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
// replicas, while the bridge polls under churn and commands write: the
// events stream's leader is stopped, then the mirror bucket's, then one
// node is away for several cycles, then all three restart one after the
// other. Every event is held to the simulator's mutation log (nothing
// lost, nothing twice, no false delete) and every command gets its
// result; each fault logs how long until every resource had a complete
// cycle again.
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
	metrics := app.NewMetrics("test")
	b, err := app.New(ctx, app.Options{
		Client: client, Conn: c.Connect(t), Subjects: subjects, InitialSync: poller.SyncBaseline, MaxDeleteRatio: 0.5,
		InstanceID: "pod-a", LeaseTTL: 2 * time.Second, ShutdownGrace: time.Second, Metrics: metrics,
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
			// As a client does: a command whose publish NATS did not
			// acknowledge, or whose result did not come in time (a
			// restart in the way), is sent again under the same id, which
			// runs it at most once and finds its stored result.
			req := command.Request{Resource: "tasks", Action: events.ActionUpdate, CommandID: fmt.Sprintf("cluster-%d", i),
				Command: events.Command{ID: model.ID(fmt.Sprint(1 + i%40)), Data: json.RawMessage(fmt.Sprintf(`{"title":"command %d"}`, i))}}
			var status events.Status
			for deadline := time.Now().Add(90 * time.Second); status == "" && time.Now().Before(deadline); {
				cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
				res, err := cmds.Do(cctx, req)
				ccancel()
				switch {
				case err == nil:
					status = res.Status
				case strings.Contains(err.Error(), "publishing"), errors.Is(err, command.ErrNoResult):
					time.Sleep(500 * time.Millisecond)
				default:
					t.Logf("command %s: %v", req.CommandID, err)
					deadline = time.Time{}
				}
			}
			results <- status
			time.Sleep(100 * time.Millisecond)
		}
	}()

	recovered := func(fault string, since time.Time) {
		t.Helper()
		took, err := lab.Within(60*time.Second, func() (bool, error) { return everyResourceCycledSince(metrics, since), nil })
		if err != nil {
			t.Errorf("%s: no complete cycle of every resource within 60s", fault)
			return
		}
		t.Logf("%s: every resource had a complete cycle %s after the fault began", fault, took.Round(10*time.Millisecond))
	}
	for _, stream := range []string{subjects.EventsStream(), "KV_" + subjects.StateBucket()} {
		time.Sleep(1500 * time.Millisecond)
		leader := c.StreamLeader(js, stream)
		since := time.Now()
		c.Server(leader).Stop()
		lab.WaitFor(t, "a new leader of "+stream, 20*time.Second, func() bool {
			l, err := natstest.Leader(js, stream)
			return err == nil && l != "" && l != leader
		})
		recovered(stream+" leader "+leader+" stopped", since)
		time.Sleep(time.Second)
		c.Server(leader).Restart()
	}
	// One node away for longer than several cycles, then back behind.
	time.Sleep(time.Second)
	since := time.Now()
	c.Servers[2].Stop()
	recovered("node n3 away", since)
	time.Sleep(3 * time.Second)
	c.Servers[2].Restart()
	// A rolling restart of all three.
	since = time.Now()
	for _, srv := range c.Servers {
		srv.Stop()
		time.Sleep(500 * time.Millisecond)
		srv.Restart()
		c.WaitForJetStream(30 * time.Second)
		time.Sleep(time.Second)
	}
	recovered("rolling restart", since)
	failed, ok := cycleOutcomes(metrics)
	t.Logf("poll cycles: %d complete, %d not", ok, failed)
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

// everyResourceCycledSince reports whether every resource's last complete
// cycle ended after since.
func everyResourceCycledSince(m *app.Metrics, since time.Time) bool {
	families, err := m.Registry.Gather()
	if err != nil {
		return false
	}
	seen := 0
	for _, f := range families {
		if f.GetName() != "rockety_bridge_last_successful_cycle_timestamp_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			if s.GetGauge().GetValue() < float64(since.UnixNano())/1e9 {
				return false
			}
			seen++
		}
	}
	return seen == len(sim.DefaultResources)
}

// cycleOutcomes counts the cycles that completed and those that did not.
func cycleOutcomes(m *app.Metrics) (failed, ok int) {
	families, _ := m.Registry.Gather()
	for _, f := range families {
		if f.GetName() != "rockety_bridge_poll_cycles_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			n := int(s.GetCounter().GetValue())
			outcome := ""
			for _, l := range s.GetLabel() {
				if l.GetName() == "outcome" {
					outcome = l.GetValue()
				}
			}
			if outcome == "ok" {
				ok += n
			} else {
				failed += n
			}
		}
	}
	return failed, ok
}
