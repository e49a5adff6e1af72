package sim

import (
	"encoding/json"
	"testing"
	"time"
)

// TestSoftDeleteChurnIsSeeded runs churn's steps directly, without its
// timer, on two servers of one seed: with soft deletes, which item churn
// restores, and when, must come from the seed alone.
func TestSoftDeleteChurnIsSeeded(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	run := func(seed int64) ([]byte, map[string]int) {
		s, err := New(Options{Seed: seed, SeedItems: 30, Churn: 1, Clock: func() time.Time { return at },
			Faults: Faults{SoftDelete: true}})
		if err != nil {
			t.Fatal(err)
		}
		for range 40 {
			s.churn(100)
		}
		ops := map[string]int{}
		gone := map[string]bool{}
		for _, m := range s.Mutations() {
			key := m.Resource + "/" + m.ID
			if m.Op == OpCreated && gone[key] {
				ops["restored"]++
			}
			gone[key] = m.Op == OpDeleted
			ops[m.Op]++
		}
		b, err := json.Marshal(s.Mutations())
		if err != nil {
			t.Fatal(err)
		}
		return b, ops
	}
	a, ops := run(11)
	b, _ := run(11)
	if string(a) != string(b) {
		t.Error("one seed churned two ways")
	}
	if c, _ := run(12); string(a) == string(c) {
		t.Error("two seeds churned alike")
	}
	// 4,000 steps: about 800 soft deletes and 80 restores; rare, not absent.
	if ops["restored"] < 20 || ops["restored"] > 200 || ops[OpDeleted] < 500 {
		t.Errorf("ops %v", ops)
	}
}
