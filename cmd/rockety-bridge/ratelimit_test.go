package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// TestLongRetryAfterIsCapped: an API that answers 429 with a Retry-After
// of an hour holds the bridge for ROCKETY_MAX_RETRY_AFTER only, with a
// warning and a count, and the polls go on.
func TestLongRetryAfterIsCapped(t *testing.T) {
	b := runOnSim(t, sim.Options{Token: "tok", Seed: 5, SeedItems: 50, Resources: []string{"tasks"},
		Faults: sim.Faults{RateLimitRate: 0.3, RetryAfter: time.Hour}}, nil, nil, map[string]string{
		"ROCKETY_POLL_INTERVAL": "100ms", "ROCKETY_RATE_LIMIT": "0", "BRIDGE_COMMANDS": "false",
		"ROCKETY_MAX_RETRY_AFTER": "1s",
	})
	capped := `rockety_bridge_api_pauses_total{capped="true"}`
	ok := `rockety_bridge_poll_cycles_total{kind="full",outcome="ok",resource="tasks"}`
	lab.WaitFor(t, "capped pauses and cycles that still complete", 30*time.Second, func() bool {
		return metricValue(t, b.base, capped) >= 1 && metricValue(t, b.base, ok) >= 2
	})
	lines := logLines(t, b.logs.String(), "warn", "ROCKETY_MAX_RETRY_AFTER")
	if len(lines) == 0 || !strings.Contains(lines[0], `"asked":3600,"waiting":1`) {
		t.Errorf("warnings:\n%s", strings.Join(lines, "\n"))
	}
}
