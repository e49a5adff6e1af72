package publisher_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/publisher"
)

func TestCheckpointsLiveApartFromTheMirror(t *testing.T) {
	ctx := context.Background()
	_, _, js, res := setup(t)
	cps := publisher.NewCheckpoints(res.Checkpoints, res.State)
	b, synced, err := cps.Bookmark(ctx, "tasks")
	if err != nil || synced || b != (plan.Bookmark{}) {
		t.Fatalf("checkpoint before any = %+v %v %v", b, synced, err)
	}
	if err := cps.SetBookmark(ctx, "tasks", plan.Bookmark{Checkpoint: 42}); err != nil {
		t.Fatal(err)
	}
	if b, synced, err := cps.Bookmark(ctx, "tasks"); err != nil || !synced || b.Checkpoint != 42 {
		t.Fatalf("checkpoint = %+v %v %v", b, synced, err)
	}
	// A person reading the bucket sees JSON under the resource's name.
	kve, err := res.Checkpoints.Get(ctx, "tasks")
	if err != nil || string(kve.Value()) != `{"checkpoint":42}` {
		t.Errorf("stored record %q, %v", kve.Value(), err)
	}
	// Fields a newer bridge added survive this one's write.
	if _, err := res.Checkpoints.Put(ctx, "users", []byte(`{"checkpoint":7,"lanes":{"x":1}}`)); err != nil {
		t.Fatal(err)
	}
	if err := cps.SetBookmark(ctx, "users", plan.Bookmark{Checkpoint: 9}); err != nil {
		t.Fatal(err)
	}
	kve, _ = res.Checkpoints.Get(ctx, "users")
	var rec map[string]any
	if json.Unmarshal(kve.Value(), &rec) != nil || rec["checkpoint"] != 9.0 || rec["lanes"] == nil {
		t.Errorf("record after a write = %s", kve.Value())
	}
	// An unreadable record is an error that says what to do, and the next
	// write replaces it.
	if _, err := res.Checkpoints.Put(ctx, "projects", []byte(`garbage`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cps.Bookmark(ctx, "projects"); err == nil {
		t.Error("an unreadable checkpoint was read")
	}
	if err := cps.SetBookmark(ctx, "projects", plan.Bookmark{Checkpoint: 3}); err != nil {
		t.Fatal(err)
	}
	if b, _, err := cps.Bookmark(ctx, "projects"); err != nil || b.Checkpoint != 3 {
		t.Errorf("after replacing an unreadable record: %+v, %v", b, err)
	}
	// The mirror holds items only.
	store := publisher.NewStateStore(js, res.State)
	n := 0
	if err := store.Load(ctx, "tasks", nil, func(plan.State) error { n++; return nil }); err != nil || n != 0 {
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
	b, synced, err := cps.Bookmark(ctx, "tasks")
	if err != nil || !synced || b.Checkpoint != 1234 {
		t.Fatalf("moved checkpoint = %+v %v %v", b, synced, err)
	}
	if _, err := res.State.Get(ctx, "=checkpoint.tasks"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the old key is still in the mirror: %v", err)
	}
	if b, synced, err := publisher.NewCheckpoints(res.Checkpoints, res.State).Bookmark(ctx, "tasks"); err != nil || !synced || b.Checkpoint != 1234 {
		t.Errorf("after the move = %+v %v %v", b, synced, err)
	}
	if kve, err := res.State.Get(ctx, "tasks.1"); err != nil || string(kve.Value()) != `{"id":1}` {
		t.Errorf("an item was touched: %v", err)
	}
	// A resource without any checkpoint anywhere is not synced.
	if _, synced, err := cps.Bookmark(ctx, "users"); err != nil || synced {
		t.Errorf("users: synced %v, %v", synced, err)
	}
}

// TestBookmarkKeepsTheCursorAndTheLastFullTraversal: incremental polling's
// bookkeeping round-trips through the record, readable as RFC 3339, and a
// record without it (an older bridge's) reads as zero times.
func TestBookmarkKeepsTheCursorAndTheLastFullTraversal(t *testing.T) {
	ctx := context.Background()
	_, _, _, res := setup(t)
	cps := publisher.NewCheckpoints(res.Checkpoints, res.State)
	want := plan.Bookmark{Checkpoint: 5,
		Cursor:   time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC),
		LastFull: time.Date(2026, 12, 1, 10, 5, 0, 0, time.UTC)}
	if err := cps.SetBookmark(ctx, "tasks", want); err != nil {
		t.Fatal(err)
	}
	got, synced, err := publisher.NewCheckpoints(res.Checkpoints, res.State).Bookmark(ctx, "tasks")
	if err != nil || !synced || got.Checkpoint != 5 || !got.Cursor.Equal(want.Cursor) || !got.LastFull.Equal(want.LastFull) {
		t.Fatalf("read back %+v %v %v, want %+v", got, synced, err, want)
	}
	kve, _ := res.Checkpoints.Get(ctx, "tasks")
	if string(kve.Value()) != `{"checkpoint":5,"cursor":"2026-12-01T10:00:00.123456Z","last_full_traversal":"2026-12-01T10:05:00Z"}` {
		t.Errorf("stored %s", kve.Value())
	}
	if _, err := res.Checkpoints.Put(ctx, "users", []byte(`{"checkpoint":7}`)); err != nil {
		t.Fatal(err)
	}
	if got, _, err := cps.Bookmark(ctx, "users"); err != nil || !got.Cursor.IsZero() || !got.LastFull.IsZero() || got.Checkpoint != 7 {
		t.Errorf("an older record reads as %+v, %v", got, err)
	}
	if _, err := res.Checkpoints.Put(ctx, "projects", []byte(`{"checkpoint":7,"cursor":"yesterday"}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cps.Bookmark(ctx, "projects"); err == nil || !strings.Contains(err.Error(), "cursor") {
		t.Errorf("a bad cursor reads as %v", err)
	}
}

// The floor of compaction is kept with the rest, and absent until one ran.
func TestBookmarkKeepsTheFloor(t *testing.T) {
	ctx := context.Background()
	_, _, _, res := setup(t)
	cps := publisher.NewCheckpoints(res.Checkpoints, res.State)
	want := plan.Bookmark{Checkpoint: 9, Floor: 1234, FloorFrom: 88}
	if err := cps.SetBookmark(ctx, "tasks", want); err != nil {
		t.Fatal(err)
	}
	got, _, err := publisher.NewCheckpoints(res.Checkpoints, res.State).Bookmark(ctx, "tasks")
	if err != nil || got != want {
		t.Fatalf("read back %+v (%v), want %+v", got, err, want)
	}
	kve, _ := res.Checkpoints.Get(ctx, "tasks")
	if string(kve.Value()) != `{"checkpoint":9,"floor_from_event":88,"floor_revision":1234}` {
		t.Errorf("stored %s", kve.Value())
	}
	if _, err := res.Checkpoints.Put(ctx, "users", []byte(`{"checkpoint":7,"floor_revision":"high"}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cps.Bookmark(ctx, "users"); err == nil || !strings.Contains(err.Error(), "floor_revision") {
		t.Errorf("a bad floor reads as %v", err)
	}
}
