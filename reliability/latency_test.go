//go:build reliability

package reliability

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

var (
	flagLatencyItems      = flag.Int("latency.items", 100000, "tasks the simulator starts with")
	flagLatencyDuration   = flag.Duration("latency.duration", 3*time.Minute, "how long the API churns while delays are measured")
	flagLatencyChurn      = flag.Float64("latency.churn", 2, "mutations per second")
	flagLatencyInterval   = flag.Duration("latency.interval", 5*time.Second, "ROCKETY_POLL_INTERVAL")
	flagLatencyRate       = flag.Float64("latency.rate", 10, "ROCKETY_RATE_LIMIT while delays are measured")
	flagLatencyPageSize   = flag.String("latency.page-size", "100", "ROCKETY_PAGE_SIZE")
	flagLatencySoftDelete = flag.Bool("latency.soft-delete", false, "the simulator soft-deletes (deleted_at) and the bridge reads ROCKETY_DELETED_FIELD=deleted_at")
)

// TestLatency measures, with the binaries as a user runs them, how long a
// change takes from the API to the events stream, and what it costs in API
// requests: one simulator and one bridge process, the bridge held to
// -latency.rate requests a second, the API changing -latency.churn times a
// second. The baseline is recorded first without a rate limit (a bridge
// that has run before), then a bridge restarted with the limit is measured.
// With -incremental it polls incrementally. Its report is BENCHMARKS.md's.
func TestLatency(t *testing.T) {
	l := newRig(t, "latency")
	resources := []string{"tasks"}
	l.build()
	l.startNATS()
	simArgs := []string{"-seed-items", strconv.Itoa(*flagLatencyItems), "-resources", "tasks"}
	env := []string{"ROCKETY_RESOURCES=tasks", "ROCKETY_PAGE_SIZE=" + *flagLatencyPageSize,
		"ROCKETY_POLL_INTERVAL=" + flagLatencyInterval.String(), "LOG_LEVEL=info"}
	if *flagLatencySoftDelete {
		simArgs = append(simArgs, "-soft-delete")
		env = append(env, "ROCKETY_DELETED_FIELD=deleted_at")
	}
	l.startSim(simArgs...)
	ctx := context.Background()

	start := time.Now()
	b := l.startBridge(env...)
	l.waitCycles(b, resources, 1, 60*time.Minute)
	if code := b.Stop(time.Minute); code != 0 {
		t.Fatalf("the baseline bridge exited %d:\n%s", code, b.Tail(30))
	}
	baselineTook := time.Since(start)
	t.Logf("baseline of %d tasks recorded in %s", *flagLatencyItems, baselineTook.Round(time.Second))

	restarted := time.Now()
	b = l.startBridge(append(env, "ROCKETY_RATE_LIMIT="+strconv.FormatFloat(*flagLatencyRate, 'f', -1, 64))...)
	mark := func(what string) { t.Logf("%s at %s", what, time.Since(start).Round(time.Second)) }
	// Measured from the restarted bridge's first complete cycle: what a
	// start costs (loading the mirror, a full traversal in full-only
	// mode) is its own row.
	l.waitCycles(b, resources, 1, 60*time.Minute)
	firstCycle := time.Since(restarted)
	fromSeq, err := l.sim.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fromEv, err := l.streamLastSeq(eventsStream)
	if err != nil {
		t.Fatal(err)
	}
	before, err := l.sim.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.sim.SetChurn(ctx, *flagLatencyChurn); err != nil {
		t.Fatal(err)
	}
	mark("churn on")
	time.Sleep(*flagLatencyDuration)
	stopped, err := l.sim.SetChurn(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	after, err := l.sim.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mark("churn off")
	if b.Exited() {
		t.Fatalf("the bridge exited:\n%s", b.Tail(30))
	}
	// Let the changes of the last seconds arrive: two more complete
	// cycles (full traversals in full-only mode).
	l.waitCycles(b, resources, 2, 30*time.Minute)
	mark("settled")

	// Idle: what a cycle costs when nothing changes.
	idleBefore, err := l.sim.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cyclesBefore, err := l.okCycles(resources, "")
	if err != nil {
		t.Fatal(err)
	}
	idleCycles := 3
	if !*flagIncremental {
		idleCycles = 1 // a full traversal: its pages
	}
	l.waitCycles(b, resources, idleCycles, 30*time.Minute)
	idleAfter, err := l.sim.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cyclesAfter, err := l.okCycles(resources, "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := l.scrape()
	if err != nil {
		t.Fatal(err)
	}
	rss := m.sum("process_resident_memory_bytes")
	if code := b.Stop(time.Minute); code != 0 {
		t.Errorf("the bridge exited %d after SIGTERM:\n%s", code, b.Tail(30))
	}

	evs, _ := l.readStream()
	evs = slices.DeleteFunc(evs, func(o judge.Observed) bool { return o.Seq <= fromEv })
	muts := slices.DeleteFunc(l.mutations(fromSeq), func(m sim.Mutation) bool { return m.Seq > stopped })
	changes, deletes, unmatched := mutationDelays(muts, evs)
	for _, w := range slowest(muts, evs, 5) {
		t.Logf("slow: %s", w)
	}
	minutes := flagLatencyDuration.Minutes()
	mode := "full traversals only"
	if *flagIncremental {
		mode = "incremental (ROCKETY_CHANGED_SINCE=*:updated_since), a full traversal every " + flagIncrementalFull.String()
	}
	if *flagLatencySoftDelete {
		mode += "; soft deletes"
	}
	rows := [][2]string{
		{"seed; source", strconv.FormatInt(l.seed, 10) + "; " + l.source},
		{"polling", mode},
		{"tasks; page size; poll interval; rate limit", fmt.Sprintf("%d; %s; %s; %g requests/s", *flagLatencyItems, *flagLatencyPageSize, *flagLatencyInterval, *flagLatencyRate)},
		{"baseline (unlimited rate, before the measured bridge)", baselineTook.Round(time.Second).String()},
		{"measured bridge: start to its first complete cycle", firstCycle.Round(100 * time.Millisecond).String()},
		{"churn", fmt.Sprintf("%g mutations/s for %s: %d mutations", *flagLatencyChurn, *flagLatencyDuration, len(muts))},
		{"events after the churn began", fmt.Sprintf("%d (%d whose mutation is not in the window)", len(evs), unmatched)},
		{"delay of creates and updates: median / p99 / max", delayRow(changes)},
		{"delay of deletes: median / p99 / max", delayRow(deletes)},
		{"API requests per minute while churning", fmt.Sprintf("%.0f", float64(after.Total-before.Total)/minutes)},
		{"API requests per cycle when nothing changes", fmt.Sprintf("%.1f (%d requests, %.0f cycles)",
			float64(idleAfter.Total-idleBefore.Total)/max(1, cyclesAfter[0]-cyclesBefore[0]), idleAfter.Total-idleBefore.Total, cyclesAfter[0]-cyclesBefore[0])},
		{"bridge RSS at the end", fmt.Sprintf("%.0f MiB", rss/(1<<20))},
	}
	table := markdownTable("latency", rows)
	t.Logf("latency results:\n%s", table)
	_ = os.WriteFile(filepath.Join(l.dir, "report.md"), []byte(table), 0o644)
	if len(changes) == 0 {
		t.Error("no create or update was measured")
	}
}

// mutationDelays pairs each event with the mutation that made the state it
// reports (the first mutation of that item to that state; for a delete,
// the last delete of the item before it was detected) and returns the
// delays from mutation to detection, of creates and updates, and of
// deletes; unmatched counts events whose mutation is not in muts.
func mutationDelays(muts []sim.Mutation, evs []judge.Observed) (changes, deletes []time.Duration, unmatched int) {
	madeAt := map[judge.Key]map[string]time.Time{}
	deletedAt := map[judge.Key][]time.Time{}
	for _, m := range muts {
		k := judge.Key{Resource: m.Resource, ID: m.ID}
		if m.Op == sim.OpDeleted {
			deletedAt[k] = append(deletedAt[k], m.Time)
			continue
		}
		if madeAt[k] == nil {
			madeAt[k] = map[string]time.Time{}
		}
		if _, ok := madeAt[k][judge.Norm(m.Item)]; !ok {
			madeAt[k][judge.Norm(m.Item)] = m.Time
		}
	}
	for _, o := range evs {
		e := o.Event
		k := judge.Key{Resource: e.Resource, ID: e.ID}
		if e.Op == events.OpDeleted {
			var last time.Time
			for _, at := range deletedAt[k] {
				if !at.After(e.DetectedAt) {
					last = at
				}
			}
			if last.IsZero() {
				unmatched++
				continue
			}
			deletes = append(deletes, e.DetectedAt.Sub(last))
			continue
		}
		at, ok := madeAt[k][judge.Norm(e.After)]
		if !ok {
			unmatched++
			continue
		}
		changes = append(changes, e.DetectedAt.Sub(at))
	}
	return changes, deletes, unmatched
}

func delayRow(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[int(p*float64(len(d)-1)+0.5)] }
	return fmt.Sprintf("%s / %s / %s (%d events)", q(0.5).Round(10*time.Millisecond), q(0.99).Round(10*time.Millisecond),
		d[len(d)-1].Round(10*time.Millisecond), len(d))
}

// slowest describes the n events that took longest after their mutation,
// for finding out why.
func slowest(muts []sim.Mutation, evs []judge.Observed, n int) []string {
	type slow struct {
		d    time.Duration
		what string
	}
	var all []slow
	first := map[string]time.Time{}
	for _, m := range muts {
		key := m.ID + " " + judge.Norm(m.Item)
		if _, ok := first[key]; !ok && m.Op != sim.OpDeleted {
			first[key] = m.Time
		}
	}
	for _, o := range evs {
		e := o.Event
		if e.Op == events.OpDeleted {
			continue
		}
		at, ok := first[e.ID+" "+judge.Norm(e.After)]
		if !ok {
			continue
		}
		all = append(all, slow{e.DetectedAt.Sub(at), fmt.Sprintf("%s %s %s: changed %s, detected %s (seq %d)",
			e.DetectedAt.Sub(at).Round(time.Millisecond), e.Op, e.ID, at.Format("15:04:05.000"), e.DetectedAt.Format("15:04:05.000"), o.Seq)})
	}
	slices.SortFunc(all, func(a, b slow) int { return int(b.d - a.d) })
	var out []string
	for _, s := range all[:min(n, len(all))] {
		out = append(out, s.what)
	}
	return out
}
