package publisher_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/publisher"
)

func TestCheckpointsLiveApartFromTheMirror(t *testing.T) {
	ctx := context.Background()
	_, _, js, res := setup(t)
	cps := publisher.NewCheckpoints(res.Checkpoints, res.State)
	seq, synced, err := cps.Checkpoint(ctx, "tasks")
	if err != nil || synced || seq != 0 {
		t.Fatalf("checkpoint before any = %d %v %v", seq, synced, err)
	}
	if err := cps.SetCheckpoint(ctx, "tasks", 42); err != nil {
		t.Fatal(err)
	}
	if seq, synced, err := cps.Checkpoint(ctx, "tasks"); err != nil || !synced || seq != 42 {
		t.Fatalf("checkpoint = %d %v %v", seq, synced, err)
	}
	// A person reading the bucket sees JSON under the resource's name.
	kve, err := res.Checkpoints.Get(ctx, "tasks")
	if err != nil || string(kve.Value()) != `{"checkpoint":42}` {
		t.Errorf("stored record %q, %v", kve.Value(), err)
	}
	// Fields a newer bridge added survive this one's write.
	if _, err := res.Checkpoints.Put(ctx, "users", []byte(`{"checkpoint":7,"cursor":"2026-12-01T10:00:00Z"}`)); err != nil {
		t.Fatal(err)
	}
	if err := cps.SetCheckpoint(ctx, "users", 9); err != nil {
		t.Fatal(err)
	}
	kve, _ = res.Checkpoints.Get(ctx, "users")
	var rec map[string]any
	if json.Unmarshal(kve.Value(), &rec) != nil || rec["checkpoint"] != 9.0 || rec["cursor"] != "2026-12-01T10:00:00Z" {
		t.Errorf("record after a write = %s", kve.Value())
	}
	// An unreadable record is an error that says what to do, and the next
	// write replaces it.
	if _, err := res.Checkpoints.Put(ctx, "projects", []byte(`garbage`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cps.Checkpoint(ctx, "projects"); err == nil {
		t.Error("an unreadable checkpoint was read")
	}
	if err := cps.SetCheckpoint(ctx, "projects", 3); err != nil {
		t.Fatal(err)
	}
	if seq, _, err := cps.Checkpoint(ctx, "projects"); err != nil || seq != 3 {
		t.Errorf("after replacing an unreadable record: %d, %v", seq, err)
	}
	// The mirror holds items only.
	store := publisher.NewStateStore(js, res.State)
	n := 0
	if err := store.Load(ctx, "tasks", func(plan.State) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("mirror: %d entries, %v", n, err)
	}
	keys, err := res.State.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		t.Errorf("mirror key %q", k)
	}
}

// TestCheckpointLeftInTheMirrorIsMovedOnce: an older bridge kept the
// checkpoint in ROCKETY_STATE under "=checkpoint.<resource>"; the first
// read moves it, and the mirror is left with items only.
func TestCheckpointLeftInTheMirrorIsMovedOnce(t *testing.T) {
	ctx := context.Background()
	_, _, _, res := setup(t)
	if _, err := res.State.Put(ctx, "=checkpoint.tasks", []byte("1234")); err != nil {
		t.Fatal(err)
	}
	if _, err := res.State.Put(ctx, "tasks.1", []byte(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	cps := publisher.NewCheckpoints(res.Checkpoints, res.State)
	seq, synced, err := cps.Checkpoint(ctx, "tasks")
	if err != nil || !synced || seq != 1234 {
		t.Fatalf("moved checkpoint = %d %v %v", seq, synced, err)
	}
	if _, err := res.State.Get(ctx, "=checkpoint.tasks"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the old key is still in the mirror: %v", err)
	}
	if seq, synced, err := publisher.NewCheckpoints(res.Checkpoints, res.State).Checkpoint(ctx, "tasks"); err != nil || !synced || seq != 1234 {
		t.Errorf("after the move = %d %v %v", seq, synced, err)
	}
	if kve, err := res.State.Get(ctx, "tasks.1"); err != nil || string(kve.Value()) != `{"id":1}` {
		t.Errorf("an item was touched: %v", err)
	}
	// A resource without any checkpoint anywhere is not synced.
	if _, synced, err := cps.Checkpoint(ctx, "users"); err != nil || synced {
		t.Errorf("users: synced %v, %v", synced, err)
	}
}
