package main

import (
	"strings"
	"testing"
	"time"
)

// TestConfigRanges holds every bounded variable to the range README and
// DESIGN.md state: both ends accepted, one step beyond refused with a line
// that names the variable.
func TestConfigRanges(t *testing.T) {
	tests := []struct {
		variable, value string
		ok              bool
		check           func(Config) bool
	}{
		{"ROCKETY_POLL_INTERVAL", "100ms", true, func(c Config) bool { return c.PollInterval == 100*time.Millisecond }},
		{"ROCKETY_POLL_INTERVAL", "150ms", true, func(c Config) bool { return c.Interval("tasks") == 150*time.Millisecond }},
		{"ROCKETY_POLL_INTERVAL", "99ms", false, nil},
		{"ROCKETY_POLL_INTERVAL", "168h", true, nil},
		{"ROCKETY_POLL_INTERVAL", "169h", false, nil},
		{"ROCKETY_POLL_INTERVALS", "tasks:100ms,users:5m", true, func(c Config) bool {
			return c.Interval("tasks") == 100*time.Millisecond && c.Interval("users") == 5*time.Minute
		}},
		{"ROCKETY_POLL_INTERVALS", "tasks:50ms", false, nil},
		{"ROCKETY_PAGE_SIZE", "1", true, nil},
		{"ROCKETY_PAGE_SIZE", "10000", true, nil},
		{"ROCKETY_PAGE_SIZE", "10001", false, nil},
		{"ROCKETY_PAGE_SIZE", "0", false, nil},
		{"ROCKETY_PAGE_SIZE", "max", true, func(c Config) bool { return c.PageSizeMax }},
		{"ROCKETY_PAGE_SIZE", "MAX", true, func(c Config) bool { return c.PageSizeMax }},
		{"ROCKETY_PAGE_CONCURRENCY", "1", true, nil},
		{"ROCKETY_PAGE_CONCURRENCY", "64", true, nil},
		{"ROCKETY_PAGE_CONCURRENCY", "65", false, nil},
		{"ROCKETY_RATE_LIMIT", "0", true, nil},
		{"ROCKETY_RATE_LIMIT", "0.5", true, func(c Config) bool { return c.RateLimit == 0.5 }},
		{"ROCKETY_RATE_LIMIT", "-0.1", false, nil},
		{"BRIDGE_MAX_DELETE_RATIO", "1", true, nil},
		{"BRIDGE_MAX_DELETE_RATIO", "0", false, nil},
		{"BRIDGE_COMMAND_CONCURRENCY", "1", true, nil},
		{"BRIDGE_COMMAND_CONCURRENCY", "256", true, nil},
		{"BRIDGE_COMMAND_CONCURRENCY", "257", false, nil},
		{"BRIDGE_LEASE_TTL", "1s", true, nil},
		{"BRIDGE_LEASE_TTL", "999ms", false, nil},
		{"BRIDGE_STREAM_REPLICAS", "5", true, nil},
		{"BRIDGE_STREAM_REPLICAS", "6", false, nil},
		{"BRIDGE_SHUTDOWN_GRACE", "0s", true, nil},
		{"BRIDGE_SHUTDOWN_GRACE", "-1s", false, nil},
		{"BRIDGE_COMMAND_MAX_AGE", "1s", true, func(c Config) bool { return c.CommandMaxAge == time.Second }},
		{"BRIDGE_COMMAND_MAX_AGE", "24h", true, nil},
		{"BRIDGE_COMMAND_MAX_AGE", "25h", false, nil},
		{"BRIDGE_COMMAND_MAX_AGE", "500ms", false, nil},
		{"BRIDGE_COMMAND_MAX_AGE", "soon", false, nil},
		{"BRIDGE_DELETE_RETENTION", "0", true, func(c Config) bool { return c.DeleteRetention == 0 }},
		{"BRIDGE_DELETE_RETENTION", "10s", true, func(c Config) bool { return c.DeleteRetention == 10*time.Second }},
		{"BRIDGE_DELETE_RETENTION", "8760h", true, nil},
		{"BRIDGE_DELETE_RETENTION", "9s", false, nil},
		{"BRIDGE_DELETE_RETENTION", "8761h", false, nil},
		{"BRIDGE_DELETE_RETENTION", "-1m", false, nil},
		{"BRIDGE_DELETE_RETENTION", "forever", false, nil},
		{"ROCKETY_CHANGED_SINCE", "", true, func(c Config) bool { return len(c.ChangedSince) == 0 }},
		{"ROCKETY_CHANGED_SINCE", "tasks:updated_since", true, func(c Config) bool {
			return c.ChangedSince["tasks"] == "updated_since" && c.ChangedSince["users"] == ""
		}},
		{"ROCKETY_CHANGED_SINCE", "*:updated_since,users:modified_after", true, func(c Config) bool {
			return c.ChangedSince["tasks"] == "updated_since" && c.ChangedSince["projects"] == "updated_since" &&
				c.ChangedSince["users"] == "modified_after"
		}},
		{"ROCKETY_CHANGED_SINCE", "tasks:filter[updated_at][gte]", true, func(c Config) bool {
			return c.ChangedSince["tasks"] == "filter[updated_at][gte]"
		}},
		{"ROCKETY_CHANGED_SINCE", "updated_since", false, nil},
		{"ROCKETY_CHANGED_SINCE", "tasks:", false, nil},
		{"ROCKETY_CHANGED_SINCE", "widgets:updated_since", false, nil},
		{"ROCKETY_CHANGED_SINCE", "tasks:a,tasks:b", false, nil},
		{"ROCKETY_CHANGED_SINCE", "*:a,*:b", false, nil},
		{"ROCKETY_CHANGED_SINCE", "tasks:updated since", false, nil},
		{"ROCKETY_CHANGED_SINCE", "tasks:a&b=c", false, nil},
		{"ROCKETY_CHANGED_SINCE", "tasks:page", false, nil},
		{"ROCKETY_CHANGED_SINCE", "*:per_page", false, nil},
		{"ROCKETY_CHANGED_AT_FIELD", "modified", true, func(c Config) bool { return c.ChangedAtField == "modified" }},
		{"ROCKETY_CHANGED_AT_FIELD", " ", false, nil},
		{"ROCKETY_CHANGED_SINCE_LOOKBACK", "0s", true, func(c Config) bool { return c.Lookback == 0 }},
		{"ROCKETY_CHANGED_SINCE_LOOKBACK", "24h", true, nil},
		{"ROCKETY_CHANGED_SINCE_LOOKBACK", "25h", false, nil},
		{"ROCKETY_CHANGED_SINCE_LOOKBACK", "-1s", false, nil},
		{"ROCKETY_FULL_SYNC_INTERVAL", "100ms", true, func(c Config) bool { return c.FullSyncInterval == 100*time.Millisecond }},
		{"ROCKETY_FULL_SYNC_INTERVAL", "99ms", false, nil},
		{"ROCKETY_FULL_SYNC_INTERVAL", "168h", true, nil},
		{"ROCKETY_FULL_SYNC_INTERVAL", "169h", false, nil},
		{"ROCKETY_DELETED_FIELD", "", true, func(c Config) bool { // the defaults of incremental polling
			return c.DeletedField == "" && c.ChangedAtField == "updated_at" && c.Lookback == time.Minute && c.FullSyncInterval == 15*time.Minute &&
				c.MaxRetryAfter == 5*time.Minute
		}},
		{"ROCKETY_MAX_RETRY_AFTER", "1s", true, nil},
		{"ROCKETY_MAX_RETRY_AFTER", "24h", true, nil},
		{"ROCKETY_MAX_RETRY_AFTER", "999ms", false, nil},
		{"ROCKETY_MAX_RETRY_AFTER", "25h", false, nil},
		{"ROCKETY_DELETED_FIELD", "deleted_at", true, func(c Config) bool { return c.DeletedField == "deleted_at" }},
	}
	for _, tt := range tests {
		t.Run(tt.variable+"="+tt.value, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("ROCKETY_API_TOKEN", "tok")
			t.Setenv(tt.variable, tt.value)
			c, err := loadConfig(true)
			if !tt.ok {
				if err == nil || !strings.HasPrefix(err.Error(), tt.variable+": ") {
					t.Fatalf("accepted, or refused without naming %s: %v", tt.variable, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("parsed as %+v", c)
			}
		})
	}
	clearEnv(t)
	t.Setenv("ROCKETY_API_TOKEN", "tok")
	if c, err := loadConfig(true); err != nil || c.CommandMaxAge != time.Hour || c.PageSizeMax {
		t.Errorf("defaults: %v, max age %s, page size max %v", err, c.CommandMaxAge, c.PageSizeMax)
	}
}
