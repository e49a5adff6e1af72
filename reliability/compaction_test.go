//go:build reliability

package reliability

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/plan"
)

// flagDeleteRetention is every rig bridge's: short, so that the kill
// loop and the soaks drop delete markers while they run.
var flagDeleteRetention = flag.Duration("delete-retention", 10*time.Second, "BRIDGE_DELETE_RETENTION of the bridges; 0 leaves the default (24h)")

var (
	flagCompactDuration  = flag.Duration("compact.duration", 4*time.Minute, "how long create/delete churn goes on")
	flagCompactItems     = flag.Int("compact.items", 20000, "tasks the simulator starts with")
	flagCompactChurn     = flag.Float64("compact.churn", 200, "mutations per second (about 30% creates, 20% deletes)")
	flagCompactRetention = flag.Duration("compact.retention", 20*time.Second, "BRIDGE_DELETE_RETENTION")
	flagCompactSample    = flag.Duration("compact.sample", 15*time.Second, "time between samples")
	flagCompactSoft      = flag.Bool("compact.soft-delete", false, "the simulator soft-deletes (deleted_at) and restores about one mutation in 50 under its old id; the bridge reads ROCKETY_DELETED_FIELD=deleted_at. Soft-deleted items stay listed, so only the mirror's markers are held flat")
)

// compactSample is one row of the compaction soak's time series.
type compactSample struct {
	at        time.Duration
	live      float64 // rockety_bridge_items_tracked
	ids       float64 // rockety_bridge_ids_tracked
	entries   uint64  // messages in the mirror's stream
	compacted float64 // rockety_bridge_delete_markers_compacted_total
	deletes   uint64  // delete events published so far
	rss       float64
}

// deadIDs are the ids the bridge keeps beyond the live items.
func (s compactSample) deadIDs() float64 { return s.ids - s.live }

// markers are the mirror's entries beyond the live items.
func (s compactSample) markers() float64 { return float64(s.entries) - s.live }

// TestCompactionSoak churns creates and deletes for -compact.duration
// with BRIDGE_DELETE_RETENTION short, samples the ids the bridge tracks
// and the mirror's entries, and holds every event to the mutation log.
// Without compaction the deleted ids, and the mirror's delete markers,
// grow by every delete; with it they stay near what the retention keeps
// (deletes/s × (retention + a traversal + the compaction period)).
func TestCompactionSoak(t *testing.T) {
	l := newRig(t, "compact")
	resources := []string{"tasks"}
	l.build()
	l.startNATS()
	simArgs := []string{"-seed-items", strconv.Itoa(*flagCompactItems), "-resources", "tasks"}
	env := []string{"ROCKETY_RESOURCES=tasks", "ROCKETY_PAGE_SIZE=100", "ROCKETY_POLL_INTERVAL=1s",
		"BRIDGE_DELETE_RETENTION=" + flagCompactRetention.String()} // overrides -delete-retention
	if *flagCompactSoft {
		simArgs = append(simArgs, "-soft-delete")
		env = append(env, "ROCKETY_DELETED_FIELD=deleted_at")
	}
	l.startSim(simArgs...)
	ctx := context.Background()

	b := l.startBridge(env...)
	l.waitCycles(b, resources, 1, 10*time.Minute)
	baseline, baseSeq := l.snapshotItems(resources)
	baseline = liveOnly(baseline)
	if n, err := l.eventMsgs(); err != nil || n != 0 {
		t.Fatalf("the silent baseline published %d events (%v)", n, err)
	}
	if _, err := l.sim.SetChurn(ctx, *flagCompactChurn); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	take := func() compactSample {
		t.Helper()
		m := l.scrapeRunning(t, b)
		s := compactSample{at: time.Since(start), live: m.sum("rockety_bridge_items_tracked"), ids: m.sum("rockety_bridge_ids_tracked"),
			compacted: m.sum("rockety_bridge_delete_markers_compacted_total"),
			deletes:   uint64(m.sum("rockety_bridge_events_published_total", "op", "deleted")), rss: m.sum("process_resident_memory_bytes")}
		st, err := l.streamState(stateStream)
		if err != nil {
			t.Fatal(err)
		}
		s.entries = st.Msgs
		return s
	}
	samples := []compactSample{take()}
	for time.Since(start) < *flagCompactDuration {
		time.Sleep(min(*flagCompactSample, *flagCompactDuration-time.Since(start)))
		samples = append(samples, take())
		t.Logf("%s", compactRow(samples[len(samples)-1]))
	}
	stopped, err := l.sim.SetChurn(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	final, finalSeq := l.settled(b, resources, 2, 10*time.Minute)
	final = liveOnly(final)
	end := take()
	if code := b.Stop(30 * time.Second); code != 0 {
		t.Errorf("the bridge exited %d after SIGTERM:\n%s", code, b.Tail(30))
	}
	l.finishCompaction(t, resources, baseline, baseSeq, final, finalSeq, stopped, samples, end)
}

func compactRow(s compactSample) string {
	return fmt.Sprintf("| %s | %.0f | %.0f | %.0f | %.0f | %d | %.0f |", s.at.Round(time.Second), s.live, s.deadIDs(),
		s.markers(), s.compacted, s.deletes, s.rss/(1<<20))
}

// stateStream is the mirror bucket's stream.
const stateStream = "KV_ROCKETY_STATE"

func (l *rig) finishCompaction(t *testing.T, resources []string, baseline map[judge.Key]json.RawMessage, baseSeq uint64,
	final map[judge.Key]json.RawMessage, finalSeq, churnStopped uint64, samples []compactSample, end compactSample) {
	t.Helper()
	v := l.judge(t, resources, baseline, baseSeq, final, finalSeq)
	var series strings.Builder
	series.WriteString("| time | live items | deleted ids kept | delete markers in the mirror | markers dropped (total) | deletes published (total: the ids kept without compaction) | RSS MiB |\n")
	series.WriteString("|---|---|---|---|---|---|---|\n")
	for _, s := range samples {
		series.WriteString(compactRow(s) + "\n")
	}
	// Flat: after the first retention and compaction period, the dead ids
	// and markers of the second half stay within what the first half
	// reached, with a margin for churn's randomness.
	var early, late []float64
	var earlyM, lateM []float64
	settled := *flagCompactRetention + 30*time.Second
	for _, s := range samples {
		switch {
		case s.at < settled:
		case s.at < settled+(samples[len(samples)-1].at-settled)/2:
			early, earlyM = append(early, s.deadIDs()), append(earlyM, s.markers())
		default:
			late, lateM = append(late, s.deadIDs()), append(lateM, s.markers())
		}
	}
	if len(early) == 0 || len(late) == 0 {
		t.Fatalf("too few samples after %s to tell whether the footprint is flat: raise -compact.duration", settled)
	}
	first, last := samples[0], samples[len(samples)-1]
	rows := [][2]string{
		{"seed; source", strconv.FormatInt(l.seed, 10) + "; " + l.source},
		{"tasks at the baseline", strconv.Itoa(len(baseline))},
		{"churn", fmt.Sprintf("%s at %g mutations/s (about 30%% creates, 50%% updates, 20%% deletes%s), BRIDGE_DELETE_RETENTION=%s, ROCKETY_POLL_INTERVAL=1s",
			last.at.Round(time.Second), *flagCompactChurn, softNote(), *flagCompactRetention)},
		{"live items (first / last sample)", fmt.Sprintf("%.0f / %.0f", first.live, last.live)},
		{"deleted ids kept, max of the first half / of the second half", fmt.Sprintf("%.0f / %.0f", slices.Max(early), slices.Max(late))},
		{"delete markers in the mirror, max of the first half / of the second half", fmt.Sprintf("%.0f / %.0f", slices.Max(earlyM), slices.Max(lateM))},
		{"deletes published / markers dropped (end of churn)", fmt.Sprintf("%d / %.0f", last.deletes, last.compacted)},
		{"after settling: deleted ids kept, markers", fmt.Sprintf("%.0f, %.0f", end.deadIDs(), end.markers())},
	}
	rows = append(rows, outcomeRows(v.report, len(v.muts), len(v.evs), churnStopped, finalSeq, len(v.mirrorDiffs))...)
	table := markdownTable("compaction soak", rows)
	t.Logf("compaction time series:\n%s", series.String())
	t.Logf("compaction results:\n%s", table)
	_ = os.WriteFile(filepath.Join(l.dir, "report.md"), []byte(series.String()+"\n"+table), 0o644)

	judge.Fail(t, v.report, v.mirrorDiffs)
	if last.compacted == 0 {
		t.Errorf("no delete marker was dropped in %s with BRIDGE_DELETE_RETENTION=%s", last.at.Round(time.Second), *flagCompactRetention)
	}
	margin := func(xs []float64) float64 { return 1.5*slices.Max(xs) + 100 }
	if m := slices.Max(late); m > margin(early) && !*flagCompactSoft {
		t.Errorf("the deleted ids kept grew: %.0f in the second half against %.0f in the first", m, slices.Max(early))
	}
	if m := slices.Max(lateM); m > margin(earlyM) {
		t.Errorf("the mirror's delete markers grew: %.0f in the second half against %.0f in the first", m, slices.Max(earlyM))
	}
}

func softNote() string {
	if *flagCompactSoft {
		return "; deletes are soft, restores under the old id about 1 in 50"
	}
	return ""
}

// liveOnly leaves out the items the API lists soft-deleted: for
// subscribers they are gone (ROCKETY_DELETED_FIELD).
func liveOnly(items map[judge.Key]json.RawMessage) map[judge.Key]json.RawMessage {
	if !*flagCompactSoft {
		return items
	}
	maps.DeleteFunc(items, func(_ judge.Key, raw json.RawMessage) bool { return plan.MarkedDeleted(raw, "deleted_at") })
	return items
}
