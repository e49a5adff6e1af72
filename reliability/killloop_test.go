//go:build reliability

package reliability

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/internal/lab"
)

var (
	flagKills         = flag.Int("kills", 50, "bridge processes to SIGKILL")
	flagKillItems     = flag.Int("kill.items", 2000, "items per resource")
	flagKillResources = flag.String("kill.resources", "tasks,projects,users", "resources seeded, churned and polled")
	flagKillChurn     = flag.Float64("kill.churn", 30, "mutations per second across the resources while the kills go on")
	flagKillCommands  = flag.Float64("kill.commands", 2, "task commands per second published while the kills go on; 0 for none")
	flagKillPageSize  = flag.Int("kill.page-size", 20, "ROCKETY_PAGE_SIZE: small, so a cycle spans many pages")
	flagKillLatency   = flag.Duration("kill.latency", 2*time.Millisecond, "latency the simulator adds to every request, to stretch cycles")
	flagKillBurst     = flag.Float64("kill.burst", 1500, "churn rate of the 400ms bursts before half the publish and commit kills, so a cycle publishes and commits large batches")
	// Two replicas: the kills hit the lease holder while the other
	// replica runs on, so leases pass between live processes.
	flagKillReplicas = flag.Int("kill.replicas", 1, "bridge processes at once: 1 starts a bridge for every kill under one instance id; 2 runs pod-a and pod-b side by side and kills the lease holder, restarting it under its own id")
	flagKillLeaseTTL = flag.Duration("kill.lease-ttl", 2*time.Second, "BRIDGE_LEASE_TTL with -kill.replicas 2: short, so a dead holder's leases pass on within the loop")
	flagKillRestart  = flag.Duration("kill.restart", 4*time.Second, "with -kill.replicas 2, a killed replica starts again after a random wait up to this: a quick restart takes its leases back, a slow one finds them with the other replica")
)

// Kill modes: when, after the start, a bridge is killed.
//
// The aimed modes first let the bridge run 0.8-4s, past its start, then
// watch for the moment they aim at.
const (
	killStartup   = "startup"       // 30-700ms: connecting, provisioning, loading state, replaying the journal, taking the lease (the first cycle starts after about 1s)
	killTraversal = "mid-traversal" // once the API has answered 1-60 more requests: while pages are read and diffed
	killPublish   = "after publish" // at the 1st-40th event stored: between events' acks and their commit
	killCommit    = "after commit"  // at the 1st-40th mirror write stored: in the middle of a batch's commit
	killCommand   = "mid-command"   // 0-8ms after a command arrived: while it is checked, written to the API and its result recorded
	killRandom    = "random"        // 0.2-6s: anywhere in or between cycles
)

var killModes = []string{killStartup, killTraversal, killPublish, killCommit, killCommand, killRandom}

// kill is one SIGKILL of a bridge.
type kill struct {
	n      int
	mode   string
	alive  time.Duration
	moved  bool           // an aimed mode saw its moment before the kill
	burst  bool           // a burst of changes came before it
	cycles map[string]int // cycles the bridge's log reports, by outcome
	evSeq  uint64         // the events stream's last sequence at the kill
	// uncommitted counts the items whose last event from this bridge the
	// mirror did not have when it died: killed between publish and commit.
	uncommitted int
	mutSeq      uint64 // the simulator's log position at the kill
	lastLog     string
	at          time.Time // when the process was gone
	// With two replicas: the victim's instance id, the resources whose
	// lease the leases bucket recorded under it at the kill, and how long
	// after the kill it was started again.
	instance string
	held     []string
	restart  time.Duration
}

// TestKillLoop SIGKILLs rockety-bridge again and again while the API churns
// and task commands arrive, then lets one last bridge catch up once churn
// stops, and holds every event to the simulator's mutation log: nothing
// lost, nothing duplicated, no false delete, the mirror equal to the API,
// every command answered and no create executed twice.
//
// With -kill.replicas 2 two replicas, pod-a and pod-b, run side by side
// with a short lease TTL and both consume commands; each kill hits the
// one holding the most leases at the mode's moment, and starts it again
// under its own id after a random wait, while the other runs on and takes
// over the leases whose TTL ran out. The report says how many kills moved
// a lease to the other replica and how long the handover took.
func TestKillLoop(t *testing.T) {
	l := newRig(t, "killloop")
	resources := strings.Split(*flagKillResources, ",")
	l.build()
	l.startNATS()
	l.startSim("-seed-items", strconv.Itoa(*flagKillItems), "-resources", *flagKillResources,
		"-latency", flagKillLatency.String())
	env := []string{"ROCKETY_RESOURCES=" + *flagKillResources, "ROCKETY_PAGE_SIZE=" + strconv.Itoa(*flagKillPageSize)}
	ctx := context.Background()
	var pair *replicaPair
	baseEnv := env
	switch *flagKillReplicas {
	case 1:
	case 2:
		// Every bridge of the run shares the short TTL: the first one
		// creates the leases bucket, and the bucket keeps the TTL it was
		// made with.
		env = append(env, "BRIDGE_LEASE_TTL="+flagKillLeaseTTL.String())
		pair = newReplicaPair(l, env, resources)
		baseEnv = pair.envOf(pair.reps[0])
	default:
		t.Fatalf("-kill.replicas %d: want 1 or 2", *flagKillReplicas)
	}

	// The baseline: churn off, one complete cycle records every item
	// silently; the items and the log position are then read at once.
	b := l.startBridge(baseEnv...)
	l.waitCycles(b, resources, 1, 3*time.Minute)
	baseline, baseSeq := l.snapshotItems(resources)
	if n, err := l.eventMsgs(); err != nil || n != 0 {
		t.Fatalf("the silent baseline published %d events (%v)", n, err)
	}
	if diffs := judge.Mirror(l.readMirror(resources), baseline); len(diffs) > 0 {
		t.Fatalf("after the baseline the mirror differs from the API for %d items, e.g. %s", len(diffs), diffs[0])
	}
	b.Kill()
	t.Logf("baseline: %d items at log position %d", len(baseline), baseSeq)
	if pair != nil {
		// pod-a finds the baseline's leases under its own id and takes
		// them at once; pod-b waits for one to pass on.
		pair.start(pair.reps[0])
		pair.start(pair.reps[1])
	}

	if _, err := l.sim.SetChurn(ctx, *flagKillChurn); err != nil {
		t.Fatal(err)
	}
	var taskIDs []string
	for k := range baseline {
		if k.Resource == "tasks" {
			taskIDs = append(taskIDs, k.ID)
		}
	}
	slices.Sort(taskIDs)
	cmdCtx, stopCommands := context.WithCancel(ctx)
	cmdDone := make(chan struct{})
	// The commander draws from its own source: it runs beside the kills.
	cmdr := &commander{js: l.js, prefix: fmt.Sprintf("kl%d", l.seed), ids: taskIDs, rnd: rand.New(rand.NewPCG(uint64(l.seed), 11))}
	if !slices.Contains(resources, "tasks") {
		*flagKillCommands = 0
	}
	go func() {
		defer close(cmdDone)
		cmdr.run(cmdCtx, *flagKillCommands)
	}()

	start := time.Now()
	var kills []kill
	for i := 1; i <= *flagKills; i++ {
		k := l.killOnce(i, env, pair)
		kills = append(kills, k)
		who := ""
		if pair != nil {
			who = fmt.Sprintf(" %s holding %v, restarted after %s;", k.instance, k.held, k.restart.Round(time.Millisecond))
		}
		t.Logf("kill %2d: %-13s after %6s (aimed moment seen: %-5t, burst: %-5t)%s cycles %v, events seq %d, left uncommitted %d, log %d",
			k.n, k.mode, k.alive.Round(time.Millisecond), k.moved, k.burst, who, k.cycles, k.evSeq, k.uncommitted, k.mutSeq)
	}
	loop := time.Since(start)
	var handovers handoverReport
	replicaCycles := map[string]int{}
	if pair != nil {
		// Both replicas stop as a rollout stops a pod, releasing their
		// leases, before the last bridge settles.
		replicaCycles = pair.stop()
		handovers = pair.handovers(kills)
	}

	// Settle: churn and commands stop; one more bridge executes the
	// commands still queued and completes two cycles after that.
	stopped, err := l.sim.SetChurn(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	stopCommands()
	<-cmdDone
	// In incremental mode the last bridge runs full traversals only, so
	// that the deletes of the end of the loop arrive at once.
	b = l.startBridge(append(slices.Clone(env), "ROCKETY_FULL_SYNC_INTERVAL=100ms")...)
	lab.Wait(l.t, "the commands stream to drain", 3*time.Minute, func() (bool, error) {
		if b.Exited() {
			return false, fmt.Errorf("the bridge exited:\n%s", b.Tail(30))
		}
		n, err := l.streamMsgs("ROCKETY_COMMANDS")
		return err == nil && n == 0, nil
	})
	var finalSeq uint64
	for {
		before, err := l.sim.LastSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		l.settleCycles(b, resources, 2, 3*time.Minute)
		var final map[judge.Key]json.RawMessage
		final, finalSeq = l.snapshotItems(resources)
		if finalSeq == before {
			settled := cycleCounts(b)
			for o, n := range replicaCycles {
				settled[o] += n
			}
			if code := b.Stop(30 * time.Second); code != 0 {
				t.Errorf("the last bridge exited %d after SIGTERM:\n%s", code, b.Tail(30))
			}
			l.finishKillLoop(t, resources, baseline, baseSeq, final, finalSeq, stopped, kills, loop, cmdr, settled, handovers)
			return
		}
		t.Logf("the API changed while settling (log %d, then %d); settling again", before, finalSeq)
	}
}

// killOnce waits as the mode says and kills a bridge: with one replica a
// bridge started for this kill, with two the lease holder (see
// replicaPair), which is then started again.
func (l *rig) killOnce(n int, env []string, pair *replicaPair) kill {
	l.t.Helper()
	modes := killModes
	if *flagKillCommands <= 0 {
		modes = slices.DeleteFunc(slices.Clone(modes), func(m string) bool { return m == killCommand })
	}
	k := kill{n: n, mode: modes[l.rnd.IntN(len(modes))]}
	from, err := l.streamLastSeq(eventsStream)
	if err != nil {
		l.t.Fatal(err)
	}
	var b *lab.Process
	var victim *replica
	switch {
	case pair == nil:
		b = l.startBridge(env...)
	case k.mode == killStartup:
		// The replica restarted after the last kill is the one in its
		// start, taking back the leases still recorded under its id.
		victim = pair.last
		b = victim.proc
	}
	// watch names the resources whose events and mirror writes the
	// publish and commit kills count: the victim's, or all of them.
	watch := []string{">"}
	choose := func() {
		if pair != nil && victim == nil {
			var held []string
			victim, held = pair.holder()
			b = victim.proc
			if len(held) > 0 {
				watch = held
			}
		}
	}
	switch k.mode {
	case killStartup:
		time.Sleep(time.Until(b.Started.Add(time.Duration(30+l.rnd.IntN(670)) * time.Millisecond)))
	case killRandom:
		time.Sleep(time.Duration(200+l.rnd.IntN(5800)) * time.Millisecond)
		choose()
	case killTraversal:
		time.Sleep(time.Duration(800+l.rnd.IntN(3200)) * time.Millisecond)
		choose()
		need := 1 + l.rnd.IntN(60)
		st, err := l.sim.Stats(context.Background())
		if err != nil {
			l.t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && !b.Exited() {
			if now, err := l.sim.Stats(context.Background()); err == nil && now.Total >= st.Total+need {
				k.moved = true
				break
			}
			time.Sleep(time.Millisecond)
		}
	case killCommand:
		// The bridge's consumer and a plain subscription get a new
		// command at the same time; the kill follows 0-8ms later, while
		// the bridge checks, writes to the API (2ms of latency) and
		// records the result. With two replicas either may have it.
		time.Sleep(time.Duration(200+l.rnd.IntN(1800)) * time.Millisecond)
		choose()
		arrived := make(chan struct{}, 1)
		sub, err := l.nc.Subscribe(subjects.Commands(), func(*nats.Msg) {
			select {
			case arrived <- struct{}{}:
			default:
			}
		})
		if err != nil {
			l.t.Fatal(err)
		}
		select {
		case <-arrived:
			k.moved = true
			time.Sleep(time.Duration(l.rnd.IntN(8000)) * time.Microsecond)
		case <-time.After(20 * time.Second):
		case <-b.Done():
		}
		_ = sub.Unsubscribe()
	default:
		time.Sleep(time.Duration(800+l.rnd.IntN(3200)) * time.Millisecond)
		if l.rnd.IntN(2) == 0 {
			// A burst of changes: the next cycles publish and commit
			// hundreds at once, in batches of up to 100.
			k.burst = true
			if _, err := l.sim.SetChurn(context.Background(), *flagKillBurst); err != nil {
				l.t.Fatal(err)
			}
			time.Sleep(400 * time.Millisecond)
			if _, err := l.sim.SetChurn(context.Background(), *flagKillChurn); err != nil {
				l.t.Fatal(err)
			}
		}
		choose()
		// A plain subscription sees each event (or mirror write) as soon as
		// JetStream has stored it, so the kill lands within a batch: after
		// the need-th message, before the rest of the batch and its commit.
		var subs []string
		for _, r := range watch {
			subs = append(subs, map[string]string{killPublish: subjects.Prefix() + ".events." + r,
				killCommit: "$KV." + stateBucket + "." + r}[k.mode])
			if r != ">" {
				subs[len(subs)-1] += ".>"
			}
		}
		k.moved = l.awaitMessages(subs, 1+l.rnd.IntN(40), b)
	}
	if b.Exited() {
		l.t.Fatalf("bridge %s exited by itself before kill %d:\n%s", b.Name, n, b.Tail(40))
	}
	if pair != nil {
		pair.checkRunning()
		k.instance = victim.id
		k.held = pair.heldBy(victim.id)
	}
	k.alive = time.Since(b.Started)
	b.Kill()
	k.at = time.Now()
	if pair != nil {
		pair.killed(victim, n, k.at)
	}
	k.evSeq, _ = l.streamLastSeq(eventsStream)
	k.uncommitted = l.uncommitted(from, k.evSeq)
	k.mutSeq, _ = l.sim.LastSeq(context.Background())
	k.cycles = cycleCounts(b)
	k.lastLog = b.Tail(1)
	if log, _ := os.ReadFile(b.LogPath); strings.Contains(string(log), "panic") {
		l.t.Errorf("bridge %s panicked:\n%s", b.Name, b.Tail(40))
	}
	if pair != nil {
		// A quick restart finds its leases still recorded under its id
		// and takes them back; a slow one finds them with the other
		// replica, which took them over when the TTL passed.
		time.Sleep(time.Until(k.at.Add(time.Duration(l.rnd.Int64N(int64(*flagKillRestart) + 1)))))
		k.restart = time.Since(k.at)
		pair.start(victim)
	}
	return k
}

// awaitMessages subscribes to subjects and reports whether need messages
// arrived before 20 seconds passed or b ended.
func (l *rig) awaitMessages(subs []string, need int, b *lab.Process) bool {
	l.t.Helper()
	seen := make(chan struct{})
	var count atomic.Int64
	var once sync.Once
	for _, subject := range subs {
		sub, err := l.nc.Subscribe(subject, func(*nats.Msg) {
			if count.Add(1) == int64(need) {
				once.Do(func() { close(seen) })
			}
		})
		if err != nil {
			l.t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	select {
	case <-seen:
		return true
	case <-time.After(20 * time.Second):
	case <-b.Done():
	}
	return false
}

func (l *rig) finishKillLoop(t *testing.T, resources []string, baseline map[judge.Key]json.RawMessage, baseSeq uint64,
	final map[judge.Key]json.RawMessage, finalSeq, churnStopped uint64, kills []kill, loop time.Duration, cmdr *commander, settled map[string]int,
	handovers handoverReport) {
	t.Helper()
	v := l.judge(t, resources, baseline, baseSeq, final, finalSeq)
	r, evs, muts, mirrorDiffs := v.report, v.evs, v.muts, v.mirrorDiffs
	cr := cmdr.check(v.results, muts)

	byMode := map[string]int{}
	moved, bursts, uncommittedKills, uncommitted := 0, 0, 0, 0
	cycles := map[string]int{}
	noCycle := 0
	var alive []time.Duration
	for _, k := range kills {
		byMode[k.mode]++
		if k.moved {
			moved++
		}
		if k.burst {
			bursts++
		}
		if k.uncommitted > 0 {
			uncommittedKills++
			uncommitted += k.uncommitted
		}
		if k.cycles["ok"] == 0 {
			noCycle++
		}
		for o, n := range k.cycles {
			cycles[o] += n
		}
		alive = append(alive, k.alive)
	}
	for o, n := range settled {
		cycles[o] += n
	}
	slices.Sort(alive)
	rows := [][2]string{
		{"seed; source", strconv.FormatInt(l.seed, 10) + "; " + l.source},
		{"items at the baseline", fmt.Sprintf("%d (%s; %d per resource)", len(baseline), strings.Join(resources, ", "), *flagKillItems)},
		{"bridge processes killed (SIGKILL)", fmt.Sprintf("%d in %s: %s", len(kills), loop.Round(time.Second), opCounts(byMode, killModes...))},
		{"time alive before the kill", fmt.Sprintf("min %s, median %s, max %s", alive[0].Round(time.Millisecond),
			alive[len(alive)/2].Round(time.Millisecond), alive[len(alive)-1].Round(time.Millisecond))},
		{"aimed kills that saw their moment (requests answered, a publish, a commit, a command)", strconv.Itoa(moved)},
		{"kills after a burst of changes", fmt.Sprintf("%d (%g mutations/s for 400ms)", bursts, *flagKillBurst)},
		{"kills before the bridge completed any cycle", strconv.Itoa(noCycle)},
		{"kills between publish and commit (items whose last event the mirror lacked)", fmt.Sprintf("%d (%d items)", uncommittedKills, uncommitted)},
		{"poll cycles (all processes, all resources)", opCounts(cycles, "ok", "failed", "cut short", "mass-delete guard")},
		{"complete cycles by kind", opCounts(cycles, "ok full", "ok incremental") + pollingMode()},
		{"task commands", fmt.Sprintf("%d sent (%d not sent): %s (%d of them creates whose outcome was unknown); %d creates executed; %d with more than one result",
			cr.sent, cr.unsent, opCounts(cr.byStatus, events.StatusSucceeded, events.StatusFailed, events.StatusRejected),
			cr.unknown, cr.createdByCmds, cr.multiResults)},
	}
	if *flagKillReplicas == 2 {
		rows = append(rows, handovers.rows(kills)...)
	}
	rows = append(rows, outcomeRows(r, len(muts), len(evs), churnStopped, finalSeq, len(mirrorDiffs))...)
	rows = append(rows, [2]string{"commands without a result / creates run twice", strconv.Itoa(len(cr.problems))})
	title := "kill loop"
	if *flagKillReplicas == 2 {
		title = "kill loop, two replicas"
	}
	table := markdownTable(title, rows)
	t.Logf("kill loop results:\n%s", table)
	_ = os.WriteFile(filepath.Join(l.dir, "report.md"), []byte(table), 0o644)
	writeKills(l, kills)
	if len(handovers.takes) > 0 {
		slices.Sort(handovers.takes)
		_ = os.WriteFile(filepath.Join(l.dir, "leases.tsv"), []byte("resource\ttaken\tinstance\tprocess\tkill\tkilled\n"+
			strings.Join(handovers.takes, "\n")+"\n"), 0o644)
	}

	judge.Fail(t, r, mirrorDiffs)
	for _, p := range cr.problems[:min(20, len(cr.problems))] {
		t.Errorf("commands: %s", p)
	}
}

// writeKills keeps every kill's details in kills.tsv in the work directory.
func writeKills(l *rig, kills []kill) {
	var b strings.Builder
	b.WriteString("n\tmode\talive_ms\taimed_moment_seen\tburst\tinstance\tleases_held\trestart_ms\tcycles\tevents_seq\tuncommitted\tlog_seq\tlast_log_line\n")
	for _, k := range kills {
		fmt.Fprintf(&b, "%d\t%s\t%d\t%t\t%t\t%s\t%s\t%d\t%v\t%d\t%d\t%d\t%s\n", k.n, k.mode, k.alive.Milliseconds(), k.moved, k.burst,
			k.instance, strings.Join(k.held, ","), k.restart.Milliseconds(), k.cycles, k.evSeq, k.uncommitted, k.mutSeq, k.lastLog)
	}
	_ = os.WriteFile(filepath.Join(l.dir, "kills.tsv"), []byte(b.String()), 0o644)
}

// markdownTable renders rows of figure and value for RELIABILITY.md.
func markdownTable(title string, rows [][2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s | |\n|---|---|\n", title)
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s |\n", r[0], r[1])
	}
	return b.String()
}

// uncommitted counts the items whose last change event in the events
// stream after seq from, up to seq to, the mirror does not have: the bridge
// died after JetStream acknowledged the event and before it stored the
// item's state, which the next bridge must then store without publishing
// the change again.
func (l *rig) uncommitted(from, to uint64) int {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := l.js.Stream(ctx, eventsStream)
	if err != nil {
		l.t.Fatal(err)
	}
	kv, err := l.js.KeyValue(ctx, stateBucket)
	if err != nil {
		l.t.Fatal(err)
	}
	last := map[judge.Key]events.Event{}
	for seq := from + 1; seq <= to; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			l.t.Fatalf("events stream seq %d: %v", seq, err)
		}
		if !strings.HasPrefix(raw.Subject, subjects.Prefix()+".events.") {
			continue
		}
		e, _, err := events.Decode(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
		if err != nil {
			continue // readStream reports it
		}
		last[judge.Key{Resource: e.Resource, ID: e.ID}] = e
	}
	n := 0
	for k, e := range last {
		entry, err := kv.Get(ctx, events.StateKey(k.Resource, k.ID))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if e.Op != events.OpDeleted {
				n++
			}
		case err != nil:
			l.t.Fatalf("mirror %s: %v", k, err)
		case e.Op == events.OpDeleted || judge.Norm(entry.Value()) != judge.Norm(e.After):
			n++
		}
	}
	return n
}
