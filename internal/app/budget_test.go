package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// requestClock counts the API requests that reach the simulator, per
// second since it began: the API's own view of the budget.
type requestClock struct {
	next  http.Handler
	start time.Time
	mu    sync.Mutex
	per   []int
}

func (c *requestClock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, sim.AdminPath) {
		sec := int(time.Since(c.start) / time.Second)
		c.mu.Lock()
		for len(c.per) <= sec {
			c.per = append(c.per, 0)
		}
		c.per[sec]++
		c.mu.Unlock()
	}
	c.next.ServeHTTP(w, r)
}

func (c *requestClock) seconds() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.per...)
}

// busyReplica is a bridge that polls three resources as fast as its
// budget lets it (small pages, short intervals) and serves commands.
func busyReplica(t *testing.T, name string, ns *natstest.Server, client *rockety.Client, ttl time.Duration) *instance {
	t.Helper()
	return startReplica(t, name, ns, client, ttl, 200*time.Millisecond, 10*time.Second)
}

// TestThreeReplicasShareOneBudget runs three replicas, each with the
// whole ROCKETY_RATE_LIMIT configured, polling three resources in pages of
// ten with commands arriving at a steady rate. The simulator's request
// count, averaged over any three seconds, stays within 1.1 × the limit;
// every command gets its result; when one replica is killed the others
// spend its share within the lease TTL; and no change is lost.
func TestThreeReplicasShareOneBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 30 s")
	}
	const (
		limit    = 20.0
		ttl      = 2 * time.Second
		run      = 30 * time.Second
		killAt   = 12 * time.Second
		cmdEvery = 250 * time.Millisecond
	)
	s := lab.NewSim(t, sim.Options{Seed: 15, SeedItems: 200, Churn: 4})
	clock := &requestClock{next: s, start: time.Now()}
	ns := natstest.Start(t)
	watcher := ns.Connect(t)
	js, _ := jetstream.New(watcher)

	var replicas []*instance
	for _, name := range []string{"pod-a", "pod-b", "pod-c"} {
		client := lab.Serve(t, clock, rockety.WithRateLimit(limit), rockety.WithPageSize(10))
		replicas = append(replicas, busyReplica(t, name, ns, client, ttl))
	}
	leases, err := js.KeyValue(context.Background(), subjects.LeasesBucket())
	if err != nil {
		t.Fatal(err)
	}
	countReplicas := func() int {
		l, err := leases.ListKeysFiltered(context.Background(), "budget.replicas.>")
		if err != nil {
			return -1
		}
		n := 0
		for range l.Keys() {
			n++
		}
		return n
	}
	lab.WaitFor(t, "three replicas share the budget", 10*time.Second, func() bool { return countReplicas() == 3 })

	// Baselines first: the judged stretch starts once every resource was
	// seen whole.
	time.Sleep(6 * time.Second)
	from := takeBaseline(t, s, js)
	churn, stopChurn := context.WithCancel(context.Background())
	if err := s.Start(churn); err != nil {
		t.Fatal(err)
	}

	cmds, err := command.New(ns.Connect(t), subjects)
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		i      int
		status events.Status
		took   time.Duration
		err    error
	}
	outcomes := make(chan outcome, 1024)
	var sent sync.WaitGroup
	measured := time.Now()
	tick := time.NewTicker(cmdEvery)
	killed := false
	var killTime time.Time
	for i := 0; time.Since(measured) < run; i++ {
		<-tick.C
		if !killed && time.Since(measured) >= killAt {
			// pod-a dies: its connection drops, it releases nothing.
			replicas[0].nc.Close()
			replicas[0].cancel()
			killed, killTime = true, time.Now()
		}
		sent.Add(1)
		go func() {
			defer sent.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			res, err := cmds.Do(ctx, command.Request{Resource: "tasks", Action: events.ActionCreate,
				Command: events.Command{Data: json.RawMessage(fmt.Sprintf(`{"title":"budget %d"}`, i))}})
			outcomes <- outcome{i: i, status: res.Status, took: time.Since(start), err: err}
		}()
	}
	tick.Stop()
	end := time.Now()
	sent.Wait()
	close(outcomes)
	var slowest time.Duration
	n := 0
	for o := range outcomes {
		n++
		if o.err != nil || o.status != events.StatusSucceeded {
			t.Errorf("command %d: status %q, error %v", o.i, o.status, o.err)
		}
		slowest = max(slowest, o.took)
	}
	t.Logf("%d commands, slowest %s", n, slowest.Round(time.Millisecond))

	// The API's count per second, over the measured stretch.
	per := clock.seconds()
	first := int(measured.Sub(clock.start) / time.Second)
	last := min(len(per), int(end.Sub(clock.start)/time.Second))
	kill := int(killTime.Sub(clock.start) / time.Second)
	t.Logf("requests per second from second %d (kill at %d): %v", first, kill, per[first:last])
	for i := first; i+3 <= last; i++ {
		avg := float64(per[i]+per[i+1]+per[i+2]) / 3
		if avg > 1.1*limit {
			t.Errorf("seconds %d-%d: %.1f requests per second on average, more than 1.1 × %v", i, i+2, avg, limit)
		}
	}
	// After the lease TTL the two left spend the whole budget between them.
	after := kill + int(ttl/time.Second) + 1
	if after+3 > last {
		t.Fatalf("the run ended too soon after the kill to judge the share: seconds %d to %d", after, last)
	}
	total := 0
	for _, c := range per[after:last] {
		total += c
	}
	if got := float64(total) / float64(last-after); got < 0.7*limit {
		t.Errorf("after the kill the two replicas left spent %.1f requests per second, want most of the %v", got, limit)
	}
	if c := countReplicas(); c != 2 {
		t.Errorf("the budget counts %d replicas after one died, want 2", c)
	}

	stopChurn()
	_ = s.Close()
	judgeEventually(t, s, js, from, 30*time.Second)
}

// judgeEventually judges like judgeSince once the bridge has caught up
// with the last changes, or at the deadline: a delete waits for a full
// traversal, which takes seconds at this budget.
func judgeEventually(t *testing.T, s *sim.Server, js jetstream.JetStream, from baseline, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	muts := s.MutationsSince(from.logSeq)
	for {
		evs := lab.Events(t, js, subjects, from.streamSeq)
		final, _ := judge.Items(s, sim.DefaultResources...)
		r := judge.Compare(judge.Truth{Baseline: from.items, Mutations: muts, Final: final}, evs)
		if len(r.Problems) == 0 || time.Now().After(deadline) {
			judge.Fail(t, r, nil)
			t.Logf("%d mutations, %d events checked", len(muts), len(evs))
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// statusClock counts the API's answers by status, and when the first
// request came.
type statusClock struct {
	next  http.Handler
	mu    sync.Mutex
	first time.Time
	late  []time.Time // 429s, when they were sent
	total int
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (c *statusClock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, sim.AdminPath) {
		c.next.ServeHTTP(w, r)
		return
	}
	c.mu.Lock()
	if c.first.IsZero() {
		c.first = time.Now()
	}
	c.mu.Unlock()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	c.next.ServeHTTP(rec, r)
	c.mu.Lock()
	c.total++
	if rec.status == http.StatusTooManyRequests {
		c.late = append(c.late, time.Now())
	}
	c.mu.Unlock()
}

// TestQuotaWithEachHeaderStyle polls against a real quota of 20 requests
// per 2 s, with ROCKETY_RATE_LIMIT well above it, in each style of
// rate-limit headers: the bridge spends the quota and waits for the reset
// (the headers), or learns the quota from the first 429 (no headers), so
// no request is refused after the first window; and no change is lost.
func TestQuotaWithEachHeaderStyle(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 20 s per style")
	}
	const window = 2 * time.Second
	for _, style := range []sim.QuotaHeaders{sim.QuotaHeadersIETF, sim.QuotaHeadersX, sim.QuotaHeadersNone} {
		t.Run(string(style), func(t *testing.T) {
			s := lab.NewSim(t, sim.Options{Seed: 8, SeedItems: 60, Churn: 3,
				Faults: sim.Faults{Quota: sim.Quota{Limit: 20, Window: window, Headers: style}}})
			clock := &statusClock{next: s}
			client := lab.Serve(t, clock, rockety.WithRateLimit(30), rockety.WithPageSize(10))
			ns := natstest.Start(t)
			js, _ := jetstream.New(ns.Connect(t))
			busyReplica(t, "pod-a", ns, client, 2*time.Second)

			lab.WaitFor(t, "the first window", 10*time.Second, func() bool {
				clock.mu.Lock()
				defer clock.mu.Unlock()
				return !clock.first.IsZero() && time.Since(clock.first) > window
			})
			time.Sleep(4 * time.Second) // the baselines, at 10 requests a second
			from := takeBaseline(t, s, js)
			churn, stop := context.WithCancel(context.Background())
			if err := s.Start(churn); err != nil {
				t.Fatal(err)
			}
			time.Sleep(12 * time.Second)
			stop()
			judgeEventually(t, s, js, from, 30*time.Second)

			clock.mu.Lock()
			defer clock.mu.Unlock()
			var refused []string
			for _, at := range clock.late {
				if at.Sub(clock.first) > window {
					refused = append(refused, at.Sub(clock.first).Round(10*time.Millisecond).String())
				}
			}
			t.Logf("%d requests, %d refused, %d after the first window", clock.total, len(clock.late), len(refused))
			if len(refused) > 0 {
				t.Errorf("refused with 429 after the first window, at %v from the first request", refused)
			}
		})
	}
}
