package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/app"
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
	in := &instance{name: name, nc: ns.Connect(t), done: make(chan error, 1), cycles: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	metrics := app.NewMetrics("test")
	b, err := app.New(ctx, app.Options{
		Client: client, Conn: in.nc, Subjects: subjects, InitialSync: poller.SyncBaseline, MaxDeleteRatio: 0.5,
		InstanceID: name, LeaseTTL: ttl, ShutdownGrace: time.Second, Metrics: metrics,
		Resources: []app.Resource{{Name: "projects", Interval: time.Second}, {Name: "tasks", Interval: time.Second}, {Name: "users", Interval: time.Second}},
		Commands:  &app.Commands{Writer: client, Allow: consumer.Allow{"*"}, Observer: countingObserver{t, in}, AckWait: 5 * time.Second},
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
	s, err := sim.New(sim.Options{Token: "tok", Seed: 11, SeedItems: 100, Churn: 20})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(s)
	defer api.Close()
	client, err := rockety.New(api.URL+sim.BasePath, rockety.WithToken("tok"), rockety.WithAllowInsecure(true), rockety.WithRateLimit(0))
	if err != nil {
		t.Fatal(err)
	}
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
		start := time.Now()
		for !ok() {
			if time.Since(start) > timeout {
				t.Fatalf("%s: not within %s (leases %v)", what, timeout, leases())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitUntil("a holds all three leases", 5*time.Second, func() bool {
		l := leases()
		return l["projects"] == "pod-a" && l["tasks"] == "pod-a" && l["users"] == "pod-a"
	})
	// Baselines done before the churn that the test checks.
	time.Sleep(1500 * time.Millisecond)
	base, baseline := takeBaseline(s)
	firstSeq := streamLastSeq(t, js)
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

	checkAgainstLog(t, js, s, baseline, base, firstSeq)
}

// takeBaseline records every item of the simulator and the position of
// its mutation log, from which checkAgainstLog starts.
func takeBaseline(s *sim.Server) (uint64, map[string]map[string][]byte) {
	base := s.LastSeq()
	baseline := map[string]map[string][]byte{}
	for _, r := range sim.DefaultResources {
		baseline[r] = map[string][]byte{}
		for _, id := range s.IDs(r) {
			raw, _ := s.Get(r, id)
			baseline[r][id] = raw
		}
	}
	return base, baseline
}

func streamLastSeq(t *testing.T, js jetstream.JetStream) uint64 {
	st, err := js.Stream(context.Background(), subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(context.Background())
	return info.State.LastSeq
}

// checkAgainstLog holds every event after afterSeq to the simulator's log:
// per item, each event follows the previous state, uses a state the item
// really had, creates and deletes match the log, and the last event leaves
// the item as the API has it now. Nothing may be repeated.
func checkAgainstLog(t *testing.T, js jetstream.JetStream, s *sim.Server, baseline map[string]map[string][]byte, base, afterSeq uint64) {
	t.Helper()
	ctx := context.Background()
	st, _ := js.Stream(ctx, subjects.EventsStream())
	info, _ := st.Info(ctx)
	type key struct{ resource, id string }
	byItem := map[key][]events.Event{}
	ids := map[string]bool{}
	total := 0
	for seq := afterSeq + 1; seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil || strings.HasPrefix(raw.Subject, subjects.Prefix()+".results.") {
			continue // results share the stream
		}
		e, _, err := events.Decode(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
		if err != nil {
			t.Fatalf("event %d: %v", seq, err)
		}
		if id := raw.Header.Get(events.HeaderID); ids[id] {
			t.Errorf("event id %s stored twice", id)
		} else {
			ids[id] = true
		}
		byItem[key{e.Resource, e.ID}] = append(byItem[key{e.Resource, e.ID}], e)
		total++
	}
	states := map[key]map[string]bool{}
	created, deleted := map[key]bool{}, map[key]bool{}
	for _, m := range s.MutationsSince(base) {
		k := key{m.Resource, m.ID}
		if states[k] == nil {
			states[k] = map[string]bool{}
		}
		states[k][string(m.Item)] = true
		switch m.Op {
		case sim.OpCreated:
			created[k] = true
		case sim.OpDeleted:
			deleted[k] = true
		}
	}
	for k, list := range byItem {
		prev := baseline[k.resource][k.id]
		existed := prev != nil
		for _, e := range list {
			switch e.Op {
			case events.OpCreated:
				if existed || !created[k] {
					t.Errorf("%v: created twice or never created", k)
				}
				existed = true
			case events.OpUpdated:
				if !existed || string(e.Before) != string(prev) {
					t.Errorf("%v: an update that does not follow the previous state (lost or repeated change)", k)
				}
			case events.OpDeleted:
				if !existed || !deleted[k] {
					t.Errorf("%v: deleted twice or never deleted", k)
				}
				existed = false
			}
			if e.After != nil {
				if !states[k][string(e.After)] {
					t.Errorf("%v: a state the item never had", k)
				}
				prev = e.After
			}
		}
		final, ok := s.Get(k.resource, k.id)
		if ok != existed || (ok && string(final) != string(prev)) {
			t.Errorf("%v: the events do not end where the API is", k)
		}
	}
	for _, r := range sim.DefaultResources {
		for _, id := range s.IDs(r) {
			final, _ := s.Get(r, id)
			if string(baseline[r][id]) != string(final) && len(byItem[key{r, id}]) == 0 {
				t.Errorf("%s %s changed and no event says so", r, id)
			}
		}
	}
	t.Logf("%d mutations, %d events checked", len(s.MutationsSince(base)), total)
}
