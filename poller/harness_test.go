package poller_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
	"github.com/rockety-io/rockety-bridge/schemas"
)

var subjects = events.MustSubjects("rockety")

// harness is one simulator over HTTP and one embedded NATS server with the
// bridge's streams and buckets: the real parts, nothing mocked.
type harness struct {
	t      *testing.T
	sim    *sim.Server
	url    string
	client *rockety.Client
	nats   *natstest.Server
	js     jetstream.JetStream
	res    publisher.Resources
}

func newHarness(t *testing.T, opts sim.Options, clientOpts ...rockety.Option) *harness {
	t.Helper()
	s := lab.NewSim(t, opts)
	client := lab.Serve(t, s, append([]rockety.Option{rockety.WithRetry(time.Millisecond, 10*time.Millisecond, 100*time.Millisecond)},
		clientOpts...)...)
	url := client.BaseURL()
	var err error
	ns := natstest.Start(t)
	h := &harness{t: t, sim: s, url: url, client: client, nats: ns}
	h.js, err = jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	h.res, err = publisher.Provision(context.Background(), h.js, publisher.Config{Subjects: subjects, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// deps builds a poller's collaborators on a fresh NATS connection, as a
// freshly started bridge process would.
func (h *harness) deps() poller.Deps {
	h.t.Helper()
	nc := h.nats.Connect(h.t)
	js, err := jetstream.New(nc)
	if err != nil {
		h.t.Fatal(err)
	}
	pub, err := publisher.NewPublisher(nc)
	if err != nil {
		h.t.Fatal(err)
	}
	store := publisher.NewStateStore(js, h.res.State)
	return poller.Deps{
		Lister:      h.client,
		Mirror:      store,
		Checkpoints: publisher.NewCheckpoints(h.res.Checkpoints, h.res.State),
		Sink:        publisher.EventSink{Publisher: pub, Subjects: subjects, APIBaseURL: h.url},
		Journal:     publisher.NewJournal(js, subjects),
	}
}

func (h *harness) poller(cfg poller.Config, deps poller.Deps) *poller.Poller {
	h.t.Helper()
	if cfg.Resource == "" {
		cfg.Resource = "tasks"
	}
	p, err := poller.New(cfg, deps)
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

// cycle runs one cycle and fails the test on error.
func cycle(t *testing.T, p *poller.Poller) poller.CycleStats {
	t.Helper()
	stats, err := p.RunOnce(context.Background())
	if err != nil {
		t.Fatalf("cycle: %v", err)
	}
	return stats
}

// stream reads every change event on the stream, checking each against the
// schema and Decode.
type stream struct {
	h    *harness
	seen uint64
}

func (h *harness) stream() *stream { return &stream{h: h} }

// next returns the events stored since the last call.
func (s *stream) next() []events.Event {
	t := s.h.t
	t.Helper()
	ctx := context.Background()
	st, err := s.h.js.Stream(ctx, subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for seq := max(s.seen+1, info.State.FirstSeq); seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := schemas.ValidateEvent(raw.Data); err != nil {
			t.Errorf("event %d: %v", seq, err)
		}
		e, _, err := events.Decode(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
		if err != nil {
			t.Fatalf("event %d: %v", seq, err)
		}
		out = append(out, e)
	}
	s.seen = info.State.LastSeq
	return out
}

// recorder is an Observer that keeps every cycle's outcome.
type recorder struct {
	mu     sync.Mutex
	cycles []poller.CycleStats
	errs   []error
	leases []bool
}

func (r *recorder) CycleStarted(string) {}

func (r *recorder) CycleDone(_ string, s poller.CycleStats, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cycles = append(r.cycles, s)
	r.errs = append(r.errs, err)
}

func (r *recorder) LeaseHeld(_ string, held bool, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leases = append(r.leases, held)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cycles)
}

// churnRun is a poller running on its own schedule, after a baseline
// cycle, against a churning simulator.
type churnRun struct {
	h         *harness
	rec       *recorder
	baseline  map[judge.Key]json.RawMessage // tasks as the baseline saw them
	base      uint64                        // the simulator's log position at the baseline
	streamSeq uint64                        // the events stream's last sequence at the baseline
	cancel    context.CancelFunc
	done      chan struct{}
}

func startChurn(t *testing.T, h *harness) *churnRun {
	t.Helper()
	return startChurnWith(t, h, poller.Config{Interval: 30 * time.Millisecond})
}

func startChurnWith(t *testing.T, h *harness, cfg poller.Config) *churnRun {
	t.Helper()
	c := &churnRun{h: h, rec: &recorder{}, done: make(chan struct{})}
	deps := h.deps()
	deps.Observer = c.rec
	p := h.poller(cfg, deps)
	cycle(t, p)
	c.baseline, c.base = judge.Items(h.sim, "tasks")
	c.streamSeq = lab.LastSeq(t, h.js, subjects)
	var ctx context.Context
	ctx, c.cancel = context.WithCancel(context.Background())
	go func() {
		defer close(c.done)
		_ = p.Run(ctx, time.Second)
	}()
	if err := h.sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// settle stops the churn, lets three more cycles run, and stops the poller.
func (c *churnRun) settle(t *testing.T) {
	t.Helper()
	if err := c.h.sim.SetChurn(0); err != nil {
		t.Fatal(err)
	}
	settled := c.rec.count()
	for c.rec.count() < settled+3 {
		time.Sleep(10 * time.Millisecond)
	}
	c.cancel()
	<-c.done
}

// judge holds every event since the baseline to the simulator's log and
// its tasks now, and returns the events.
func (c *churnRun) judge(t *testing.T) []judge.Observed {
	t.Helper()
	evs, r := c.report(t, "")
	judge.Fail(t, r, nil)
	return evs
}

// report judges the events since the baseline; items marked soft-deleted
// by deletedField (when set) count as gone.
func (c *churnRun) report(t *testing.T, deletedField string) ([]judge.Observed, judge.Report) {
	t.Helper()
	evs := lab.Events(t, c.h.js, subjects, c.streamSeq)
	final, _ := judge.Items(c.h.sim, "tasks")
	truth := judge.Truth{Baseline: withoutMarked(c.baseline, deletedField), Mutations: c.h.sim.MutationsSince(c.base),
		Final: withoutMarked(final, deletedField)}
	return evs, judge.Compare(truth, evs)
}

// withoutMarked drops the items soft-deleted by field: the API lists
// them, but they are gone.
func withoutMarked(items map[judge.Key]json.RawMessage, field string) map[judge.Key]json.RawMessage {
	if field == "" {
		return items
	}
	out := map[judge.Key]json.RawMessage{}
	for k, raw := range items {
		if !plan.MarkedDeleted(raw, field) {
			out[k] = raw
		}
	}
	return out
}

// kinds counts the recorded cycles by kind.
func (r *recorder) kinds() map[poller.Kind]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[poller.Kind]int{}
	for _, s := range r.cycles {
		out[s.Kind]++
	}
	return out
}

// sum adds up a field over the recorded cycles, and fails on any error.
func (r *recorder) sum(t *testing.T, field func(poller.CycleStats) int) int {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i, s := range r.cycles {
		if r.errs[i] != nil {
			t.Errorf("cycle %d (%s): %v", i, s.Kind, r.errs[i])
		}
		n += field(s)
	}
	return n
}
