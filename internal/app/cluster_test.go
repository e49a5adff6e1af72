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
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/internal/judge"
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
// lost, nothing twice, no false delete), the mirror to the API's items,
// and every command gets its result; each fault logs how long until
// every resource had a complete cycle again, and the cycles that did not
// complete meanwhile. TestClusterAimedFaults aims faults at chosen
// moments.
func TestClusterLeadersStopped(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster and two leader failovers; skipped with -short")
	}
	c := natstest.StartCluster(t, 3)
	s := lab.NewSim(t, sim.Options{Seed: 31, SeedItems: 200, Churn: 30})
	client := lab.Serve(t, s, rockety.WithRateLimit(0))
	r := startClusterBridge(t, c, s, client)
	js := r.js

	faults := newFaultLog(t, r)
	for _, stream := range []string{subjects.EventsStream(), "KV_" + subjects.StateBucket()} {
		time.Sleep(1500 * time.Millisecond)
		leader := c.StreamLeader(js, stream)
		f := faults.begin(stream + " leader " + leader + " stopped")
		c.Server(leader).Stop()
		f.newLeader(c, js, stream, leader)
		f.recovered()
		time.Sleep(time.Second)
		c.Server(leader).Restart()
		f.end("")
	}
	// One node away for longer than a poll cycle: at least 3 s (ten
	// intervals) and until every resource has completed three cycles
	// without it, then back behind the others.
	time.Sleep(time.Second)
	f := faults.begin("node n3 away")
	c.Servers[2].Stop()
	f.recovered()
	away := f.awayFor(3*time.Second, 3)
	c.Servers[2].Restart()
	f.note = fmt.Sprintf("away %s, %d or more complete cycles of each resource (interval %s)",
		away.Round(10*time.Millisecond), 3, clusterInterval)
	f.end("")
	// A rolling restart of all three.
	f = faults.begin("rolling restart")
	for _, srv := range c.Servers {
		srv.Stop()
		time.Sleep(500 * time.Millisecond)
		srv.Restart()
		c.WaitForJetStream(30 * time.Second)
		time.Sleep(time.Second)
	}
	f.recovered()
	f.end("")
	faults.summary()
	r.finish()
}

// clusterInterval is the poll interval of every resource in the cluster
// tests.
const clusterInterval = 300 * time.Millisecond

// clusterRig is the bridge on a cluster under churn and commands, with
// the baseline its events are judged from.
type clusterRig struct {
	t        *testing.T
	c        *natstest.Cluster
	s        *sim.Server
	js       jetstream.JetStream
	metrics  *app.Metrics
	logs     *observer.ObservedLogs
	from     baseline
	stop     func() // the churn and the commands
	done     chan struct{}
	statuses chan events.Status
}

// startClusterBridge runs the bridge on c at 3 replicas with every
// resource at clusterInterval, waits for the baselines, starts the churn
// and a client that sends a command every 100 ms, each until it has its
// result.
func startClusterBridge(t *testing.T, c *natstest.Cluster, s *sim.Server, client *rockety.Client) *clusterRig {
	t.Helper()
	js, _ := jetstream.New(c.Connect(t))
	ctx, cancel := context.WithCancel(context.Background())
	var resources []app.Resource
	for _, r := range sim.DefaultResources {
		resources = append(resources, app.Resource{Name: r, Interval: clusterInterval})
	}
	metrics := app.NewMetrics("test")
	core, logs := observer.New(zap.InfoLevel)
	b, err := app.New(ctx, app.Options{
		Client: client, Conn: c.Connect(t), Subjects: subjects, InitialSync: poller.SyncBaseline, MaxDeleteRatio: 0.5,
		InstanceID: "pod-a", LeaseTTL: 2 * time.Second, ShutdownGrace: time.Second, Metrics: metrics, Logger: zap.New(core),
		Replicas: 3, Resources: resources,
		Commands: &app.Commands{Writer: client, Allow: consumer.Allow{"*"}, AckWait: 5 * time.Second},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	lab.WaitFor(t, "the baselines", 20*time.Second, func() bool { return checkpointed(js) })
	time.Sleep(time.Second) // every resource's baseline
	if info := streamInfo(t, js, subjects.EventsStream()); info.Config.Replicas != 3 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("events stream at %d replicas (%+v), want 3", info.Config.Replicas, info.Cluster)
	}
	r := &clusterRig{t: t, c: c, s: s, js: js, metrics: metrics, logs: logs, from: takeBaseline(t, s, js),
		done: make(chan struct{}), statuses: make(chan events.Status, 1000)}

	churn, stopChurn := context.WithCancel(context.Background())
	r.stop = stopChurn
	if err := s.Start(churn); err != nil {
		t.Fatal(err)
	}
	cmds, _ := command.New(c.Connect(t), subjects)
	go func() {
		defer close(r.done)
		for i := 0; churn.Err() == nil; i++ {
			req := command.Request{Resource: "tasks", Action: events.ActionUpdate, CommandID: fmt.Sprintf("cluster-%d", i),
				Command: events.Command{ID: model.ID(fmt.Sprint(1 + i%40)), Data: json.RawMessage(fmt.Sprintf(`{"title":"command %d"}`, i))}}
			r.statuses <- doCommand(t, cmds, req)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return r
}

// doCommand sends req until it has a result, as a client does: a command
// whose publish NATS did not acknowledge, or whose result did not come in
// time (a restart in the way), is sent again under the same id, which
// runs it at most once and finds its stored result. It returns the
// result's status, empty when none came within 90 s.
func doCommand(t *testing.T, cmds *command.Client, req command.Request) events.Status {
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
		cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
		res, err := cmds.Do(cctx, req)
		ccancel()
		switch {
		case err == nil:
			return res.Status
		case strings.Contains(err.Error(), "publishing"), errors.Is(err, command.ErrNoResult):
			time.Sleep(500 * time.Millisecond)
		default:
			t.Logf("command %s: %v", req.CommandID, err)
			return ""
		}
	}
	return ""
}

// finish stops the churn and the commands, lets the last changes reach
// the stream, and judges: every event against the mutation log, the
// mirror against the API, every command's result.
func (r *clusterRig) finish() {
	t := r.t
	t.Helper()
	time.Sleep(time.Second)
	r.stop()
	<-r.done
	// After a rolling restart a dozen cycles in a row may have failed, and
	// the poller's backoff doubles per failure: the last changes can take
	// tens of seconds to be published. A change still missing after two
	// minutes is lost, not late.
	judgeCluster(t, r.s, r.js, r.from, 2*time.Minute)
	close(r.statuses)
	answered, lost := 0, 0
	for st := range r.statuses {
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

// judgeCluster holds every event after from to the simulator's log and
// the mirror to the API's items, once the bridge has caught up with the
// last changes (no problem left) or at the deadline.
func judgeCluster(t *testing.T, s *sim.Server, js jetstream.JetStream, from baseline, within time.Duration) {
	t.Helper()
	time.Sleep(3 * time.Second) // the last changes reach the stream
	start := time.Now()
	deadline := start.Add(within)
	muts := s.MutationsSince(from.logSeq)
	for {
		evs := lab.Events(t, js, subjects, from.streamSeq)
		final, _ := judge.Items(s, sim.DefaultResources...)
		r := judge.Compare(judge.Truth{Baseline: from.items, Mutations: muts, Final: final}, evs)
		diffs := judge.Mirror(mirrorItems(t, js), final)
		if len(r.Problems) == 0 && len(diffs) == 0 || time.Now().After(deadline) {
			judge.Fail(t, r, diffs)
			t.Logf("%d mutations, %d events checked, the mirror's %d items equal the API's (caught up %s after the end)",
				len(muts), len(evs), len(final), time.Since(start).Round(100*time.Millisecond))
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// mirrorItems reads every item of the mirror (KV ROCKETY_STATE).
func mirrorItems(t *testing.T, js jetstream.JetStream) map[judge.Key]json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, subjects.StateBucket())
	if err != nil {
		t.Fatal(err)
	}
	out := map[judge.Key]json.RawMessage{}
	for _, r := range sim.DefaultResources {
		w, err := kv.Watch(ctx, r+".>", jetstream.IgnoreDeletes())
		if err != nil {
			t.Fatal(err)
		}
		for e := range w.Updates() {
			if e == nil {
				break
			}
			res, id, err := events.ParseStateKey(e.Key())
			if err != nil {
				t.Errorf("mirror key %q: %v", e.Key(), err)
				continue
			}
			out[judge.Key{Resource: res, ID: id}] = e.Value()
		}
		_ = w.Stop()
	}
	return out
}

// faultLog records, fault by fault, whether it hit the moment it aimed
// at, how long until every resource had a complete cycle again, and the
// cycles that did not complete meanwhile.
type faultLog struct {
	t       *testing.T
	metrics *app.Metrics
	logs    *observer.ObservedLogs
	faults  []*fault
}

func newFaultLog(t *testing.T, r *clusterRig) *faultLog {
	return &faultLog{t: t, metrics: r.metrics, logs: r.logs}
}

// slowRecovery is the recovery time past which a fault's end logs the
// bridge's warnings and errors since the fault began.
const slowRecovery = 4 * time.Second

// fault is one fault in progress, from just before it is injected.
type fault struct {
	l        *faultLog
	name     string
	since    time.Time
	okBefore map[string]int
	failedAt int
	election time.Duration // until another node led the stream, if one was stopped
	recovery time.Duration // -1: not within the deadline
	current  time.Duration // until the stopped server was back and every stream current, if it was waited for
	failed   int
	aim      string
	note     string // what the fault was, when it aimed at no moment
}

// begin marks the start of a fault, to be injected right after.
func (l *faultLog) begin(name string) *fault {
	failed, _ := cycleOutcomes(l.metrics)
	f := &fault{l: l, name: name, okBefore: okCycles(l.metrics), failedAt: failed, recovery: -1}
	f.since = time.Now() // last: the fault follows at once
	return f
}

// start restarts the fault's clock, for a fault prepared with begin
// ahead of the moment it waits for: the fault follows at once.
func (f *fault) start() { f.since = time.Now() }

// newLeader waits until a server other than old leads stream.
func (f *fault) newLeader(c *natstest.Cluster, js jetstream.JetStream, stream, old string) {
	f.l.t.Helper()
	lab.WaitFor(f.l.t, "a new leader of "+stream, 20*time.Second, func() bool {
		l, err := natstest.Leader(js, stream)
		return err == nil && l != "" && l != old
	})
	f.election = time.Since(f.since)
}

// recovered waits until every resource has had a complete cycle that
// ended after the fault began, and notes how long after that was.
func (f *fault) recovered() {
	t := f.l.t
	t.Helper()
	if _, err := lab.Within(60*time.Second, func() (bool, error) { return everyResourceCycledSince(f.l.metrics, f.since), nil }); err != nil {
		t.Errorf("%s: no complete cycle of every resource within 60s", f.name)
		return
	}
	f.recovery = time.Since(f.since)
}

// awayFor waits until least has passed since the fault began and every
// resource has completed cycles more cycles, and returns how long since
// the fault began that was.
func (f *fault) awayFor(least time.Duration, cycles int) time.Duration {
	t := f.l.t
	t.Helper()
	lab.WaitFor(t, fmt.Sprintf("%d complete cycles of every resource", cycles), 60*time.Second, func() bool {
		now := okCycles(f.l.metrics)
		for _, r := range sim.DefaultResources {
			if now[r]-f.okBefore[r] < cycles {
				return false
			}
		}
		return true
	})
	if d := least - time.Since(f.since); d > 0 {
		time.Sleep(d)
	}
	return time.Since(f.since)
}

// end closes the fault once the cluster is whole again: aim says whether
// it hit its moment (empty for a fault not aimed at one).
func (f *fault) end(aim string) {
	t := f.l.t
	t.Helper()
	failed, _ := cycleOutcomes(f.l.metrics)
	f.failed, f.aim = failed-f.failedAt, aim
	f.l.faults = append(f.l.faults, f)
	var b strings.Builder
	fmt.Fprintf(&b, "%s:", f.name)
	if f.election > 0 {
		fmt.Fprintf(&b, " a new leader after %s,", f.election.Round(10*time.Millisecond))
	}
	if f.recovery >= 0 {
		fmt.Fprintf(&b, " every resource had a complete cycle %s after the fault began,", f.recovery.Round(10*time.Millisecond))
	}
	if f.current > 0 {
		fmt.Fprintf(&b, " back and every stream current %s after,", f.current.Round(10*time.Millisecond))
	}
	fmt.Fprintf(&b, " %d cycles did not complete", f.failed)
	if aim != "" {
		fmt.Fprintf(&b, "; %s", aim)
	}
	if f.note != "" {
		fmt.Fprintf(&b, "; %s", f.note)
	}
	if f.recovery < 0 || f.recovery > slowRecovery {
		for _, e := range f.l.logs.Filter(func(e observer.LoggedEntry) bool {
			return e.Level >= zap.WarnLevel && !e.Time.Before(f.since)
		}).All() {
			fmt.Fprintf(&b, "\n    %s %s %s %v", e.Time.Format("15:04:05.000"), e.Level, e.Message, e.ContextMap())
		}
	}
	t.Log(b.String())
}

// summary logs every kind of fault: how many, how often the aimed
// moment was hit, the range of recovery times and the cycles that did
// not complete.
func (l *faultLog) summary() {
	l.t.Helper()
	var kinds []string
	byKind := map[string][]*fault{}
	for _, f := range l.faults {
		k := kindOf(f.name)
		if _, ok := byKind[k]; !ok {
			kinds = append(kinds, k)
		}
		byKind[k] = append(byKind[k], f)
	}
	failed, ok := cycleOutcomes(l.metrics)
	l.t.Logf("poll cycles: %d complete, %d not", ok, failed)
	for _, k := range kinds {
		fs := byKind[k]
		lo, hi, failed, hits, aimed := time.Duration(-1), time.Duration(0), 0, 0, 0
		for _, f := range fs {
			if f.recovery >= 0 && (lo < 0 || f.recovery < lo) {
				lo = f.recovery
			}
			hi = max(hi, f.recovery)
			failed += f.failed
			if f.aim != "" {
				aimed++
				if strings.HasPrefix(f.aim, "hit") {
					hits++
				}
			}
		}
		line := fmt.Sprintf("%s: %d runs, recovered in %s–%s, %d cycles did not complete", k, len(fs),
			lo.Round(10*time.Millisecond), hi.Round(10*time.Millisecond), failed)
		if aimed > 0 {
			line += fmt.Sprintf(", aimed moment hit %d of %d", hits, aimed)
		}
		l.t.Log(line)
	}
}

// kindOf is a fault's name up to " #", which numbers the runs of one kind.
func kindOf(name string) string {
	k, _, _ := strings.Cut(name, " #")
	return k
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

// okCycles counts each resource's complete cycles.
func okCycles(m *app.Metrics) map[string]int {
	out := map[string]int{}
	families, _ := m.Registry.Gather()
	for _, f := range families {
		if f.GetName() != "rockety_bridge_poll_cycles_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			var resource, outcome string
			for _, l := range s.GetLabel() {
				switch l.GetName() {
				case "resource":
					resource = l.GetValue()
				case "outcome":
					outcome = l.GetValue()
				}
			}
			if outcome == "ok" {
				out[resource] += int(s.GetCounter().GetValue())
			}
		}
	}
	return out
}
