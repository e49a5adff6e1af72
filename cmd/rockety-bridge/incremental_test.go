package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// TestIncrementalPollingThroughTheVariables: configured only through the
// contract's variables, the bridge polls incrementally (one request a
// cycle when nothing changed), publishes a change from an incremental
// cycle, and shows the kind of each cycle and the cursor's age.
func TestIncrementalPollingThroughTheVariables(t *testing.T) {
	b := runOnSim(t, sim.Options{Token: "tok", Seed: 3, SeedItems: 500, Resources: []string{"tasks"}}, nil, nil, map[string]string{
		"ROCKETY_POLL_INTERVAL": "100ms", "ROCKETY_RATE_LIMIT": "0", "BRIDGE_COMMANDS": "false",
		"ROCKETY_CHANGED_SINCE": "*:updated_since", "ROCKETY_CHANGED_SINCE_LOOKBACK": "1s",
	})
	incremental := `rockety_bridge_poll_cycles_total{kind="incremental",outcome="ok",resource="tasks"}`
	lab.WaitFor(t, "incremental cycles", 20*time.Second, func() bool { return metricValue(t, b.base, incremental) >= 3 })
	if n := metricValue(t, b.base, `rockety_bridge_poll_cycles_total{kind="full",outcome="ok",resource="tasks"}`); n != 1 {
		t.Errorf("%v full traversals, want the first cycle only", n)
	}
	if age := metricValue(t, b.base, `rockety_bridge_incremental_cursor_age_seconds{resource="tasks"}`); age <= 0 {
		t.Errorf("cursor age %v", age)
	}
	before, cycles := b.sim.Stats().Total, metricValue(t, b.base, incremental)
	lab.WaitFor(t, "more incremental cycles", 20*time.Second, func() bool { return metricValue(t, b.base, incremental) >= cycles+5 })
	requests, done := b.sim.Stats().Total-before, metricValue(t, b.base, incremental)-cycles
	if float64(requests) > done+1 { // one cycle may be in flight at either end
		t.Errorf("%d requests for %v idle incremental cycles, want one each", requests, done)
	}

	id := b.sim.IDs("tasks")[7]
	if err := b.sim.Update("tasks", id, map[string]any{"status": "blocked"}); err != nil {
		t.Fatal(err)
	}
	updated := `rockety_bridge_events_published_total{op="updated",resource="tasks"}`
	lab.WaitFor(t, "the update", 20*time.Second, func() bool { return metricValue(t, b.base, updated) == 1 })
	if lines := logLines(t, b.logs.String(), "info", "poll cycle"); len(lines) == 0 || !strings.Contains(strings.Join(lines, "\n"), `"kind":"incremental"`) {
		t.Errorf("no info line of an incremental cycle with changes:\n%s", strings.Join(lines, "\n"))
	}
}

// TestIgnoredFilterThroughTheVariables: an API that ignores the filter is
// one error line naming ROCKETY_CHANGED_SINCE, one count in
// incremental_fallbacks_total, and full traversals from then on.
func TestIgnoredFilterThroughTheVariables(t *testing.T) {
	b := runOnSim(t, sim.Options{Token: "tok", Seed: 4, SeedItems: 300, Resources: []string{"tasks"},
		Faults: sim.Faults{IgnoreChangedSince: true}}, nil, nil, map[string]string{
		"ROCKETY_POLL_INTERVAL": "100ms", "ROCKETY_RATE_LIMIT": "0", "BRIDGE_COMMANDS": "false",
		"ROCKETY_CHANGED_SINCE": "tasks:updated_since",
	})
	full := `rockety_bridge_poll_cycles_total{kind="full",outcome="ok",resource="tasks"}`
	lab.WaitFor(t, "full traversals after the fallback", 20*time.Second, func() bool { return metricValue(t, b.base, full) >= 4 })
	if n := metricValue(t, b.base, `rockety_bridge_incremental_fallbacks_total{resource="tasks"}`); n != 1 {
		t.Errorf("incremental_fallbacks_total = %v, want 1", n)
	}
	if n := metricValue(t, b.base, `rockety_bridge_poll_cycles_total{kind="incremental",outcome="incomplete",resource="tasks"}`); n != 1 {
		t.Errorf("%v incremental cycles counted incomplete, want the one that found the filter ignored", n)
	}
	lines := logLines(t, b.logs.String(), "error", "ROCKETY_CHANGED_SINCE")
	if len(lines) != 1 || !strings.Contains(lines[0], "updated_since") {
		t.Errorf("error lines naming ROCKETY_CHANGED_SINCE:\n%s", strings.Join(lines, "\n"))
	}
	if n := metricValue(t, b.base, `rockety_bridge_poll_cycles_total{kind="incremental",outcome="ok",resource="tasks"}`); n > 0 {
		t.Errorf("%v incremental cycles after the fallback", n)
	}
}
