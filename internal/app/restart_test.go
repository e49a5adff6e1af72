package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// outage stops the NATS server when the API receives a chosen request —
// so the stop lands exactly in the middle of a poll cycle or of a
// command's write — and starts it again a second later.
type outage struct {
	ns   *natstest.Server
	next http.Handler

	mu    sync.Mutex
	match func(*http.Request) bool
	back  chan struct{} // closed once the server is up again
}

// arm makes the next request that matches stop the server; the returned
// channel is closed when it is back.
func (o *outage) arm(match func(*http.Request) bool) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.match, o.back = match, make(chan struct{})
	return o.back
}

func (o *outage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	fire := o.match != nil && o.match(r)
	var back chan struct{}
	if fire {
		o.match, back = nil, o.back
	}
	o.mu.Unlock()
	if fire {
		o.ns.Stop()
		go func() {
			time.Sleep(time.Second)
			o.ns.Restart()
			close(back)
		}()
	}
	o.next.ServeHTTP(w, r)
}

// TestNATSRestarted stops NATS in the middle of a poll cycle (while page 5
// of 30 is fetched), then while a command's update and, later, a create
// are being written to the API; each time it comes back a second later.
// The bridge reconnects on its own: each command gets its result
// (succeeded — the create is not reported unknown, and made once), and
// every change of the churning API arrives once, with nothing repeated and
// no false delete.
func TestNATSRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts NATS three times; skipped with -short")
	}
	const ttl = 2 * time.Second
	s := lab.NewSim(t, sim.Options{Seed: 17, SeedItems: 300, Churn: 20})
	// Pages answer after 10ms, so a cycle of 30 pages is well under way
	// when page 5 is asked for.
	if err := s.SetFaults(sim.Faults{Latency: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t)
	out := &outage{ns: ns, next: s}
	client := lab.Serve(t, out, rockety.WithRateLimit(0), rockety.WithPageSize(10))
	js, _ := jetstream.New(ns.Connect(t))
	startInstance(t, "pod-a", ns, client, ttl)

	// Baselines first, then the churn the check covers.
	time.Sleep(2 * time.Second)
	from := takeBaseline(t, s, js)
	ctx, stopChurn := context.WithCancel(context.Background())
	defer stopChurn()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitBack := func(what string, back <-chan struct{}) {
		t.Helper()
		select {
		case <-back:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the outage never happened", what)
		}
	}

	back := out.arm(func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/tasks") && r.URL.Query().Get("page") == "5"
	})
	waitBack("mid-cycle", back)
	time.Sleep(2 * time.Second) // cycles go on after the outage

	cmds, _ := command.New(ns.Connect(t), subjects)
	do := func(req command.Request) events.Result {
		t.Helper()
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := cmds.Do(cctx, req)
		if err != nil {
			// Where the command got stuck: never delivered, never
			// acknowledged, or its result lost on the way back.
			if c, cerr := js.Consumer(context.Background(), subjects.CommandsStream(), "rockety-bridge-commands"); cerr == nil {
				info, _ := c.Info(context.Background())
				t.Logf("commands consumer: delivered %d, acknowledged %d, %d pending, %d awaiting ack",
					info.Delivered.Stream, info.AckFloor.Stream, info.NumPending, info.NumAckPending)
			}
			t.Logf("API writes: %d POST, %d PUT", s.Stats().ByMethod["POST"], s.Stats().ByMethod["PUT"])
			t.Fatalf("%s: %v", req.Action, err)
		}
		return res
	}
	target := s.IDs("tasks")[0]
	back = out.arm(func(r *http.Request) bool { return r.Method == http.MethodPut })
	res := do(command.Request{Resource: "tasks", Action: events.ActionUpdate,
		Command: events.Command{ID: rockety.ID(target), Data: json.RawMessage(`{"title":"written while NATS was down"}`)}})
	waitBack("mid-update", back)
	if res.Status != events.StatusSucceeded {
		t.Errorf("update across the outage: %+v", res)
	}

	back = out.arm(func(r *http.Request) bool { return r.Method == http.MethodPost })
	res = do(command.Request{Resource: "tasks", Action: events.ActionCreate,
		Command: events.Command{Data: json.RawMessage(`{"title":"created while NATS was down"}`)}})
	waitBack("mid-create", back)
	if res.Status != events.StatusSucceeded {
		t.Errorf("create across the outage: %+v (its outcome was known: the bridge only lost NATS)", res)
	}
	made := 0
	for _, id := range s.IDs("tasks") {
		raw, _ := s.Get("tasks", id)
		if strings.Contains(string(raw), "created while NATS was down") {
			made++
		}
	}
	if made != 1 {
		t.Errorf("the create made %d items, want 1", made)
	}

	time.Sleep(2 * time.Second)
	stopChurn()
	_ = s.Close()
	time.Sleep(3 * time.Second) // the last changes are polled
	judgeSince(t, s, js, from)
}
