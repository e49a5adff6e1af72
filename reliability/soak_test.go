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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

var (
	flagSoakDuration   = flag.Duration("soak.duration", 5*time.Minute, "how long churn and API faults go on")
	flagSoakItems      = flag.Int("soak.items", 100000, "tasks the simulator starts with")
	flagSoakChurn      = flag.Float64("soak.churn", 50, "mutations per second")
	flagSoakSample     = flag.Duration("soak.sample", 15*time.Second, "time between samples")
	flagSoakInterval   = flag.Duration("soak.interval", 5*time.Second, "ROCKETY_POLL_INTERVAL")
	flagSoakPageSize   = flag.Int("soak.page-size", 100, "ROCKETY_PAGE_SIZE")
	flagSoakErrorRate  = flag.Float64("soak.error-rate", 0.02, "fraction of API requests answered 500")
	flagSoakRateLimit  = flag.Float64("soak.rate-limit-rate", 0.002, "fraction of API requests answered 429")
	flagSoakRetryAfter = flag.Duration("soak.retry-after", time.Second, "Retry-After of the 429s")
	flagSoakLatency    = flag.Duration("soak.latency", 5*time.Millisecond, "latency added to every API request")
	// Broken answers: a truncated page fails its traversal (no deletes
	// that cycle), an HTML 502 is retried, and a repeated page either fails
	// the traversal (the same ids twice) or, when churn shifted the page,
	// hides the page's items, whose suspected deletes must be confirmed
	// away. A traversal is 1,000 pages at the defaults: the rates leave
	// most traversals whole, so deletes still flow during the soak.
	flagSoakTruncate = flag.Float64("soak.truncate-rate", 0.0002, "fraction of list answers whose JSON is cut in half")
	flagSoakHTML     = flag.Float64("soak.html-rate", 0.01, "fraction of list requests answered 502 with an HTML page")
	flagSoakRepeat   = flag.Float64("soak.repeat-page-rate", 0.0002, "fraction of list requests for a page N > 1 answered with page N-1")
)

// soakSample is one row of the soak's time series.
type soakSample struct {
	at          time.Duration
	events      uint64 // messages in the events stream
	mutations   uint64 // the simulator's log position
	rss         float64
	heap        float64
	goroutines  float64
	okCycles    float64
	badCycles   float64
	cycleSum    float64 // seconds, all cycles
	retries     float64
	lastSuccess float64 // unix seconds
}

// TestSoak runs one bridge for -soak.duration against -soak.items tasks
// while the API churns and fails now and then (500s, 429s with
// Retry-After, latency), samples its event rate, memory and goroutines,
// then holds every event to the simulator's mutation log.
func TestSoak(t *testing.T) {
	l := newRig(t, "soak")
	resources := []string{"tasks"}
	l.build()
	l.startNATS()
	l.startSim("-seed-items", strconv.Itoa(*flagSoakItems), "-resources", "tasks")
	ctx := context.Background()

	b := l.startBridge("ROCKETY_RESOURCES=tasks", "ROCKETY_PAGE_SIZE="+strconv.Itoa(*flagSoakPageSize),
		"ROCKETY_POLL_INTERVAL="+flagSoakInterval.String())
	start := time.Now()
	l.waitCycles(b, resources, 1, 15*time.Minute)
	baseline, baseSeq := l.snapshotItems(resources)
	if n, err := l.eventMsgs(); err != nil || n != 0 {
		t.Fatalf("the silent baseline published %d events (%v)", n, err)
	}
	if diffs := judge.Mirror(l.readMirror(resources), baseline); len(diffs) > 0 {
		t.Fatalf("after the baseline the mirror differs from the API for %d items, e.g. %s", len(diffs), diffs[0])
	}
	t.Logf("baseline: %d tasks recorded in %s", len(baseline), time.Since(start).Round(time.Second))

	faults := sim.Faults{ErrorRate: *flagSoakErrorRate, RateLimitRate: *flagSoakRateLimit,
		RetryAfter: *flagSoakRetryAfter, Latency: *flagSoakLatency,
		TruncateRate: *flagSoakTruncate, HTMLRate: *flagSoakHTML, RepeatPageRate: *flagSoakRepeat}
	if err := l.sim.SetFaults(ctx, faults); err != nil {
		t.Fatal(err)
	}
	if _, err := l.sim.SetChurn(ctx, *flagSoakChurn); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	var samples []soakSample
	take := func() soakSample {
		t.Helper()
		m := l.scrapeRunning(t, b)
		s := soakSample{at: time.Since(start),
			rss: m.sum("process_resident_memory_bytes"), heap: m.sum("go_memstats_heap_inuse_bytes"),
			goroutines: m.sum("go_goroutines"),
			okCycles:   m.sum("rockety_bridge_poll_cycles_total", "outcome", "ok"),
			badCycles:  m.sum("rockety_bridge_poll_cycles_total") - m.sum("rockety_bridge_poll_cycles_total", "outcome", "ok"),
			cycleSum:   m.sum("rockety_bridge_poll_cycle_duration_seconds_sum"),
			retries:    m.sum("rockety_bridge_api_retries_total"), lastSuccess: m.sum("rockety_bridge_last_successful_cycle_timestamp_seconds")}
		var err error
		if s.events, err = l.eventMsgs(); err != nil {
			t.Fatal(err)
		}
		if s.mutations, err = l.sim.LastSeq(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}
	samples = append(samples, take())
	for time.Since(start) < *flagSoakDuration {
		time.Sleep(min(*flagSoakSample, *flagSoakDuration-time.Since(start)))
		s := take()
		prev := samples[len(samples)-1]
		samples = append(samples, s)
		t.Logf("%s", soakRow(prev, s))
	}
	apiStats, err := l.sim.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Settle: no faults, no churn; two more complete cycles.
	if err := l.sim.SetFaults(ctx, sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	stopped, err := l.sim.SetChurn(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	final, finalSeq := l.settled(b, resources, 2, 15*time.Minute+2**flagIncrementalFull)
	end := take()
	cycles := cycleCounts(b)
	causes := failureCauses(b)
	if code := b.Stop(30 * time.Second); code != 0 {
		t.Errorf("the bridge exited %d after SIGTERM:\n%s", code, b.Tail(30))
	}
	l.finishSoak(t, resources, baseline, baseSeq, final, finalSeq, stopped, samples, end, apiStats, cycles, causes)
}

// soakRow is one line of the time series, for the log.
func soakRow(prev, s soakSample) string {
	dt := (s.at - prev.at).Seconds()
	meanCycle := "-"
	if n := s.okCycles + s.badCycles - prev.okCycles - prev.badCycles; n > 0 {
		meanCycle = fmt.Sprintf("%.1f", (s.cycleSum-prev.cycleSum)/n)
	}
	return fmt.Sprintf("| %s | %.1f | %.1f | %.0f | %.0f | %.0f | %.0f / %.0f | %s | %.0f |",
		s.at.Round(time.Second), float64(s.events-prev.events)/dt, float64(s.mutations-prev.mutations)/dt,
		s.rss/(1<<20), s.heap/(1<<20), s.goroutines, s.okCycles-prev.okCycles, s.badCycles-prev.badCycles,
		meanCycle, s.retries-prev.retries)
}

func (l *rig) finishSoak(t *testing.T, resources []string, baseline map[judge.Key]json.RawMessage, baseSeq uint64,
	final map[judge.Key]json.RawMessage, finalSeq, churnStopped uint64, samples []soakSample, end soakSample,
	apiStats sim.StatsInfo, cycles, causes map[string]int) {
	t.Helper()
	v := l.judge(t, resources, baseline, baseSeq, final, finalSeq)
	r, evs, muts, mirrorDiffs := v.report, v.evs, v.muts, v.mirrorDiffs

	var series strings.Builder
	series.WriteString("| time | events/s | mutations/s | RSS MiB | heap in use MiB | goroutines | cycles ok / failed | mean cycle s | API retries |\n")
	series.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for i := 1; i < len(samples); i++ {
		series.WriteString(soakRow(samples[i-1], samples[i]) + "\n")
	}
	first, last := samples[0], samples[len(samples)-1]
	var rss, gor []float64
	for _, s := range samples[1:] {
		rss = append(rss, s.rss)
		gor = append(gor, s.goroutines)
	}
	dur := (last.at - first.at).Seconds()
	var statuses []string
	for _, code := range slices.Sorted(maps.Keys(apiStats.ByStatus)) {
		statuses = append(statuses, fmt.Sprintf("%s: %d", code, apiStats.ByStatus[code]))
	}
	rows := [][2]string{
		{"seed; source", strconv.FormatInt(l.seed, 10) + "; " + l.source},
		{"tasks at the baseline", strconv.Itoa(len(baseline))},
		{"churn and faults", fmt.Sprintf("%s at %g mutations/s; 500s %g, 429s %g (Retry-After %s), latency %s; of list requests: truncated %g, HTML 502 %g, page N-1 for N %g",
			last.at.Round(time.Second), *flagSoakChurn, *flagSoakErrorRate, *flagSoakRateLimit, *flagSoakRetryAfter, *flagSoakLatency,
			*flagSoakTruncate, *flagSoakHTML, *flagSoakRepeat)},
		{"API requests answered during the soak", fmt.Sprintf("%d (%s; the HTML pages are the 502s, truncated and repeated pages are 200s)", apiStats.Total, strings.Join(statuses, ", "))},
		{"poll cycles (whole run)", opCounts(cycles, "ok", "failed", "cut short", "mass-delete guard")},
		{"failed cycles by cause (the bridge's log)", causeCounts(causes)},
		{"complete cycles by kind", opCounts(cycles, "ok full", "ok incremental") + pollingMode()},
		{"events/s (mean over the soak)", fmt.Sprintf("%.1f (mutations/s %.1f)", float64(last.events-first.events)/dur, float64(last.mutations-first.mutations)/dur)},
		{"RSS MiB (first / max / last sample)", fmt.Sprintf("%.0f / %.0f / %.0f", rss[0]/(1<<20), slices.Max(rss)/(1<<20), rss[len(rss)-1]/(1<<20))},
		{"goroutines (first / max / last sample)", fmt.Sprintf("%.0f / %.0f / %.0f", gor[0], slices.Max(gor), gor[len(gor)-1])},
		{"after settling: RSS MiB, goroutines", fmt.Sprintf("%.0f, %.0f", end.rss/(1<<20), end.goroutines)},
	}
	rows = append(rows, outcomeRows(r, len(muts), len(evs), churnStopped, finalSeq, len(mirrorDiffs))...)
	table := markdownTable("soak", rows)
	t.Logf("soak time series:\n%s", series.String())
	t.Logf("soak results:\n%s", table)
	_ = os.WriteFile(filepath.Join(l.dir, "report.md"), []byte(series.String()+"\n"+table), 0o644)

	judge.Fail(t, r, mirrorDiffs)
	// Goroutines that pile up are a leak whatever the events say; the
	// margin covers the pages and publishes in flight at a sample.
	if g := gor[len(gor)-1]; g > 2*gor[0]+100 {
		t.Errorf("goroutines grew from %.0f to %.0f during the soak", gor[0], g)
	}
}

// The causes failureCauses sorts failed cycles into.
const (
	causeTruncated = "malformed page (truncated JSON)"
	causeRepeated  = "repeated page (the same ids as the page before)"
	causeAPI       = "API error after retries"
	causeOther     = "other"
)

// failureCauses sorts the failed cycles a bridge's JSON log reports by
// the error that ended them. A traversal ends at its first bad page, so
// the simulator's faults past it are not counted here.
func failureCauses(p *lab.Process) map[string]int {
	out := map[string]int{}
	for raw := range logLines(p) {
		var line struct {
			Msg   string `json:"msg"`
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &line) != nil || !strings.HasPrefix(line.Msg, "poll cycle failed") {
			continue
		}
		switch {
		case strings.Contains(line.Error, rockety.ErrDecode.Error()):
			out[causeTruncated]++
		case strings.Contains(line.Error, "repeats page"):
			out[causeRepeated]++
		case apiStatus.MatchString(line.Error):
			out[causeAPI]++
		default:
			out[causeOther]++
		}
	}
	return out
}

// apiStatus finds a retried status in an *rockety.APIError's text.
var apiStatus = regexp.MustCompile(`: (429|5\d\d) [A-Z]`)

func causeCounts(causes map[string]int) string {
	if len(causes) == 0 {
		return "none"
	}
	return opCounts(causes, causeTruncated, causeRepeated, causeAPI, causeOther)
}
