package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// waitFor waits for cond: churn runs on wall-clock time, so this is the
// one place the tests wait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	lab.WaitFor(t, what, 10*time.Second, cond)
}

func TestChurn(t *testing.T) {
	s, err := sim.New(sim.Options{Seed: 3, SeedItems: 50, Churn: 2000})
	if err != nil {
		t.Fatal(err)
	}
	initial := snapshot(s, sim.DefaultResources)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	waitFor(t, "300 mutations", func() bool { return s.LastSeq() >= 300 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	stopped := s.LastSeq()
	time.Sleep(50 * time.Millisecond)
	if s.LastSeq() != stopped {
		t.Errorf("churn went on after Close: %d -> %d", stopped, s.LastSeq())
	}
	if err := s.Start(context.Background()); !errors.Is(err, sim.ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}

	muts := s.Mutations()
	ops := map[string]int{}
	perResource := map[string]int{}
	for i, m := range muts {
		if m.Seq != uint64(i+1) {
			t.Fatalf("mutation %d has seq %d", i, m.Seq)
		}
		if m.Time.IsZero() || len(m.Item) == 0 || idOf(t, m.Item) != m.ID {
			t.Errorf("mutation %+v", m)
		}
		ops[m.Op]++
		perResource[m.Resource]++
	}
	n := float64(len(muts))
	for op, share := range map[string]float64{sim.OpCreated: .3, sim.OpUpdated: .5, sim.OpDeleted: .2} {
		if got := float64(ops[op]) / n; got < share-.1 || got > share+.1 {
			t.Errorf("%s share %.2f, want about %.2f (%v)", op, got, share, ops)
		}
	}
	for _, r := range sim.DefaultResources {
		if perResource[r] == 0 {
			t.Errorf("no churn on %s", r)
		}
	}
	checkReplay(t, s, initial, muts, sim.DefaultResources)
}

func TestChurnStopsOnContext(t *testing.T) {
	s, err := sim.New(sim.Options{SeedItems: 5, Churn: 1000, Resources: []string{"widgets"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "churn", func() bool { return s.LastSeq() > 10 })
	cancel()
	_ = s.Close() // returns only once the goroutine has ended
	stopped := s.LastSeq()
	time.Sleep(30 * time.Millisecond)
	if s.LastSeq() != stopped {
		t.Error("churn went on after the context ended")
	}
}

func TestSetChurn(t *testing.T) {
	s, err := sim.New(sim.Options{SeedItems: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if s.LastSeq() != 0 {
		t.Error("churn with rate 0")
	}
	if err := s.SetChurn(500); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "churn after SetChurn", func() bool { return s.LastSeq() > 5 })
	if err := s.SetChurn(-1); !errors.Is(err, sim.ErrInvalid) {
		t.Errorf("SetChurn(-1): %v", err)
	}
	if s.Churn() != 500 {
		t.Errorf("Churn() = %g", s.Churn())
	}
}

func TestLogLimit(t *testing.T) {
	s, err := sim.New(sim.Options{LogLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for range 35 {
		if _, err := s.Create("widgets", map[string]any{"n": 1}); err != nil {
			t.Fatal(err)
		}
	}
	muts := s.Mutations()
	if len(muts) != 10 || muts[0].Seq != 26 || muts[9].Seq != 35 {
		t.Errorf("kept %d mutations, %d..%d", len(muts), muts[0].Seq, muts[len(muts)-1].Seq)
	}
	if got := s.MutationsSince(33); len(got) != 2 || got[0].Seq != 34 {
		t.Errorf("MutationsSince(33) = %v", got)
	}
	if got := s.MutationsSince(35); len(got) != 0 {
		t.Errorf("MutationsSince(last) = %v", got)
	}
}

// snapshot is every item of the resources, by resource and id.
func snapshot(s *sim.Server, resources []string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, r := range resources {
		out[r] = map[string]string{}
		for _, id := range s.IDs(r) {
			raw, ok := s.Get(r, id)
			if ok {
				out[r][id] = string(raw)
			}
		}
	}
	return out
}

// checkReplay applies the log to the initial state and expects the final
// state: the log is complete ground truth only if this holds. Items compare
// by canonical JSON because SetRaw re-encodings are deliberately not logged.
// A delete whose item has a deleted_at is a soft delete: the item stays, as
// the log shows it, until a create restores it.
func checkReplay(t *testing.T, s *sim.Server, state map[string]map[string]string, muts []sim.Mutation, resources []string) {
	t.Helper()
	soft := map[string]bool{} // resource/id
	for _, m := range muts {
		items := state[m.Resource]
		if items == nil {
			items = map[string]string{}
			state[m.Resource] = items
		}
		key := m.Resource + "/" + m.ID
		_, exists := items[m.ID]
		switch m.Op {
		case sim.OpCreated:
			if exists && !soft[key] {
				t.Fatalf("seq %d: created %s twice", m.Seq, key)
			}
			if deletedAt(t, m.Item) != nil {
				t.Fatalf("seq %d: created %s with deleted_at set: %s", m.Seq, key, m.Item)
			}
			delete(soft, key)
			items[m.ID] = string(m.Item)
		case sim.OpUpdated:
			if !exists || soft[key] {
				t.Fatalf("seq %d: updated missing %s", m.Seq, key)
			}
			if canon(t, items[m.ID]) == canon(t, string(m.Item)) {
				t.Errorf("seq %d: update of %s changed nothing", m.Seq, key)
			}
			items[m.ID] = string(m.Item)
		case sim.OpDeleted:
			if !exists || soft[key] {
				t.Fatalf("seq %d: deleted missing %s", m.Seq, key)
			}
			if deletedAt(t, m.Item) != nil {
				soft[key] = true
				items[m.ID] = string(m.Item)
				continue
			}
			if canon(t, items[m.ID]) != canon(t, string(m.Item)) {
				t.Fatalf("seq %d: delete of %s does not carry its last state", m.Seq, key)
			}
			delete(items, m.ID)
		default:
			t.Fatalf("seq %d: op %q", m.Seq, m.Op)
		}
	}
	final := snapshot(s, resources)
	for _, r := range resources {
		if len(final[r]) != len(state[r]) {
			t.Errorf("%s: replay has %d items, server %d", r, len(state[r]), len(final[r]))
		}
		for id, raw := range final[r] {
			if canon(t, state[r][id]) != canon(t, raw) {
				t.Errorf("%s/%s: replay %s, server %s", r, id, state[r][id], raw)
			}
		}
	}
}

// deletedAt is an item's deleted_at, nil when absent or null.
func deletedAt(t *testing.T, item []byte) any {
	t.Helper()
	return fields(t, item)["deleted_at"]
}

func canon(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("item %s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
