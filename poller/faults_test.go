package poller_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// TestChurnUnderAPIFaults polls through bursts of 500s, 429 storms with
// Retry-After, slow responses, a failing page, truncated JSON, HTML error
// pages, metadata that hides a page and pages that repeat the one before, while
// the simulator churns, then checks
// the events against the simulator's log once the faults stop: failed
// cycles may delay a change, never lose, repeat or invent one.
func TestChurnUnderAPIFaults(t *testing.T) {
	h := newHarness(t, sim.Options{Seed: 12, SeedItems: 300, Resources: []string{"tasks"}, Churn: 40},
		rockety.WithRequestTimeout(50*time.Millisecond))
	run := startChurn(t, h)
	for _, f := range []sim.Faults{
		{ErrorRate: 0.3}, // 500 bursts
		{RateLimitRate: 0.5, RetryAfter: time.Second},        // a 429 storm
		{Latency: 80 * time.Millisecond, ErrorRate: 0.1},     // slower than the timeout
		{FailPage: sim.FailPage{Resource: "tasks", Page: 2}}, // one page down
		{TruncateRate: 0.2, HTMLRate: 0.2},                   // broken JSON, a proxy's HTML page
		{PagesUnderreport: 1},                                // metadata hides the last page
		{RepeatPageRate: 0.3},                                // a stale proxy cache serves page N-1 for page N, now and then: fetched again
		{RepeatPageRate: 1},                                  // ... or every time: the traversal fails
	} {
		// Each fault holds for a few cycles, then one clean cycle ends the
		// poller's backoff, so the next fault meets cycles at full pace.
		if err := h.sim.SetFaults(f); err != nil {
			t.Fatal(err)
		}
		run.rec.waitCycles(t, 4, 1500*time.Millisecond, 10*time.Second)
		if err := h.sim.SetFaults(sim.Faults{}); err != nil {
			t.Fatal(err)
		}
		run.rec.waitSuccess(t, 30*time.Second)
	}
	run.settle(t)
	rec := run.rec
	rec.mu.Lock()
	failed, repeated := 0, 0
	for _, err := range rec.errs {
		if err != nil {
			failed++
		}
		if errors.Is(err, rockety.ErrPagination) && strings.Contains(err.Error(), "repeats page") {
			repeated++
		}
	}
	rec.mu.Unlock()
	if failed == 0 {
		t.Error("no cycle failed: the faults did not bite, the test proves nothing")
	}
	if repeated == 0 {
		t.Error("no cycle met a repeated page: the repeat fault did not bite")
	}
	got := run.judge(t)
	t.Logf("%d cycles failed under the faults, %d of them on a repeated page; %d events checked", failed, repeated, len(got))
}

// waitCycles waits until n more cycles have ended and minWait has passed,
// or until maxWait has passed.
func (r *recorder) waitCycles(t *testing.T, n int, minWait, maxWait time.Duration) {
	t.Helper()
	start, from := time.Now(), r.count()
	for time.Since(start) < maxWait && (r.count() < from+n || time.Since(start) < minWait) {
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSuccess waits for the next cycle that succeeds.
func (r *recorder) waitSuccess(t *testing.T, timeout time.Duration) {
	t.Helper()
	from := r.count()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, err := range r.errs[from:] {
			if err == nil {
				r.mu.Unlock()
				return
			}
		}
		r.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no cycle succeeded within %s once the faults stopped", timeout)
}
