package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

var subjects = events.MustSubjects("rockety")

// instance is one bridge replica with its own NATS connection.
type instance struct {
	name     string
	nc       *nats.Conn
	cancel   context.CancelFunc
	done     chan error
	cycles   map[string]int // resource -> completed cycles
	commands atomic.Int32
}

type countingObserver struct {
	t  *testing.T
	in *instance
}

func (o countingObserver) CommandDone(string, string, events.Status, time.Duration) {
	o.in.commands.Add(1)
}
func (o countingObserver) Problem(msg, commandID string, err error) {
	o.t.Logf("%s: %s (%s): %v", o.in.name, msg, commandID, err)
}

func startInstance(t *testing.T, name string, ns *natstest.Server, client *rockety.Client, ttl time.Duration) *instance {
	t.Helper()
	return startReplica(t, name, ns, client, ttl, time.Second, 5*time.Second)
}

// startReplica runs a bridge that polls every default resource at interval
// and serves commands, on a NATS connection of its own, until cleanup.
func startReplica(t *testing.T, name string, ns *natstest.Server, client *rockety.Client, ttl, interval, ackWait time.Duration) *instance {
	t.Helper()
	in := &instance{name: name, nc: ns.Connect(t), done: make(chan error, 1), cycles: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	var resources []app.Resource
	for _, r := range sim.DefaultResources {
		resources = append(resources, app.Resource{Name: r, Interval: interval})
	}
	b, err := app.New(ctx, app.Options{
		Client: client, Conn: in.nc, Subjects: subjects, InitialSync: poller.SyncBaseline, MaxDeleteRatio: 0.5,
		InstanceID: name, LeaseTTL: ttl, ShutdownGrace: time.Second, Metrics: app.NewMetrics("test"),
		Resources: resources,
		Commands:  &app.Commands{Writer: client, Allow: consumer.Allow{"*"}, Observer: countingObserver{t, in}, AckWait: ackWait},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { in.done <- b.Run(ctx) }()
	t.Cleanup(func() { in.cancel(); <-in.done })
	return in
}

// TestTwoReplicas runs two bridges against one NATS server and one
// simulator with churn: each resource is polled by exactly one of them;
// killing the holder hands polling over within twice the lease TTL; across
// the handover no change is lost or repeated; both serve commands.
func TestTwoReplicas(t *testing.T) {
	const ttl = 2 * time.Second
	s := lab.NewSim(t, sim.Options{Seed: 11, SeedItems: 100, Churn: 20})
	client := lab.Serve(t, s, rockety.WithRateLimit(0))
	ns := natstest.Start(t)
	watcher := ns.Connect(t)
	js, _ := jetstream.New(watcher)

	a := startInstance(t, "pod-a", ns, client, ttl)
	time.Sleep(300 * time.Millisecond) // a takes every lease first
	b := startInstance(t, "pod-b", ns, client, ttl)

	leases := func() map[string]string {
		kv, err := js.KeyValue(context.Background(), subjects.LeasesBucket())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range []string{"projects", "tasks", "users"} {
			if e, err := kv.Get(context.Background(), r); err == nil {
				out[r] = string(e.Value())
			}
		}
		return out
	}
	waitUntil := func(what string, timeout time.Duration, ok func() bool) time.Duration {
		t.Helper()
		took, err := lab.Within(timeout, func() (bool, error) { return ok(), nil })
		if err != nil {
			t.Fatalf("%s: %v (leases %v)", what, err, leases())
		}
		return took
	}
	waitUntil("a holds all three leases", 5*time.Second, func() bool {
		l := leases()
		return l["projects"] == "pod-a" && l["tasks"] == "pod-a" && l["users"] == "pod-a"
	})
	// Baselines done before the churn that the test checks.
	time.Sleep(1500 * time.Millisecond)
	from := takeBaseline(t, s, js)
	ctx, stopChurn := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// Commands go to both replicas.
	cmds, _ := command.New(ns.Connect(t), subjects)
	for i := range 24 {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := cmds.Do(cctx, command.Request{Resource: "tasks", Action: events.ActionCreate,
			Command: events.Command{Data: json.RawMessage(fmt.Sprintf(`{"title":"command %d"}`, i))}})
		cancel()
		if err != nil || res.Status != events.StatusSucceeded {
			t.Fatalf("command %d: %+v, %v", i, res, err)
		}
	}
	if a.commands.Load() == 0 || b.commands.Load() == 0 {
		t.Errorf("commands served: a %d, b %d; want both", a.commands.Load(), b.commands.Load())
	}

	// Kill a: its connection drops at once, it releases nothing.
	time.Sleep(time.Second)
	a.nc.Close()
	a.cancel()
	killed := time.Now()
	took := waitUntil("b takes every lease", 2*ttl+time.Second, func() bool {
		l := leases()
		return l["projects"] == "pod-b" && l["tasks"] == "pod-b" && l["users"] == "pod-b"
	})
	t.Logf("handover %s after the kill (TTL %s)", took.Round(10*time.Millisecond), ttl)
	if took > 2*ttl {
		t.Errorf("handover took %s, more than twice the TTL", took)
	}
	time.Sleep(2 * time.Second) // b polls for a while with churn going on
	stopChurn()
	_ = s.Close()
	time.Sleep(3 * time.Second) // b catches up with the last changes
	_ = killed

	judgeSince(t, s, js, from)
}

// baseline is where the stretch a test judges starts: the simulator's
// items and its log position, and the events stream's last sequence.
type baseline struct {
	items     map[judge.Key]json.RawMessage
	logSeq    uint64
	streamSeq uint64
}

// takeBaseline records the simulator's items once the bridge's baseline
// cycles are done and before the churn the test judges.
func takeBaseline(t *testing.T, s *sim.Server, js jetstream.JetStream) baseline {
	t.Helper()
	items, seq := judge.Items(s, sim.DefaultResources...)
	return baseline{items: items, logSeq: seq, streamSeq: lab.LastSeq(t, js, subjects)}
}

// judgeSince holds every event after the baseline to the simulator's log
// and its items now.
func judgeSince(t *testing.T, s *sim.Server, js jetstream.JetStream, from baseline) {
	t.Helper()
	evs := lab.Events(t, js, subjects, from.streamSeq)
	muts := s.MutationsSince(from.logSeq)
	final, _ := judge.Items(s, sim.DefaultResources...)
	judge.Fail(t, judge.Compare(judge.Truth{Baseline: from.items, Mutations: muts, Final: final}, evs), nil)
	t.Logf("%d mutations, %d events checked", len(muts), len(evs))
}
