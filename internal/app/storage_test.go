package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// TestJetStreamStorageFull: JetStream runs out of storage while the first
// cycle publishes a snapshot of 2,000 items. The bridge says so in words
// that name the cause and the fix, keeps running, and advances the
// mirror of no item whose event was not stored. Once storage is raised,
// every item arrives exactly once.
func TestJetStreamStorageFull(t *testing.T) {
	const items = 2000
	s := lab.NewSim(t, sim.Options{Seed: 23, SeedItems: items, Resources: []string{"tasks"}})
	client := lab.Serve(t, s, rockety.WithRateLimit(0))
	ns := natstest.Start(t, func(o *server.Options) { o.JetStreamMaxStore = 512 << 10 })
	js, _ := jetstream.New(ns.Connect(t))
	core, logs := observer.New(zap.InfoLevel)
	runBridge(t, app.Options{Client: client, Conn: ns.Connect(t), InitialSync: poller.SyncSnapshot, Logger: zap.New(core)})

	// The complaint, in words that name the cause and the fix.
	deadline := time.Now().Add(20 * time.Second)
	var complaint string
	for complaint == "" {
		for _, e := range logs.All() {
			for _, f := range e.Context {
				if f.Key == "error" && strings.Contains(f.Interface.(error).Error(), "storage") {
					complaint = e.Message + ": " + f.Interface.(error).Error()
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line names full storage within 20s; the logs:\n%s", dump(logs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the bridge says: %s", complaint)
	for _, want := range []string{"JetStream", "storage", "max_file_store"} {
		if !strings.Contains(complaint, want) {
			t.Errorf("the complaint does not say %q: %s", want, complaint)
		}
	}

	// No item's mirror moved ahead of its event.
	published, _ := snapshotEvents(t, js)
	mirrored := mirrorIDs(t, js)
	for id := range mirrored {
		if published[id] == 0 {
			t.Errorf("item %s is in the mirror without its event", id)
		}
	}
	if len(mirrored) == items {
		t.Fatalf("all %d items stored: the storage never ran full", items)
	}
	t.Logf("while full: %d events stored, %d items mirrored", len(published), len(mirrored))

	// More storage, and the bridge catches up by itself.
	ns.Stop()
	ns.Restart(func(o *server.Options) { o.JetStreamMaxStore = 1 << 30 })
	deadline = time.Now().Add(30 * time.Second)
	for len(mirrorIDs(t, js)) < items {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d items mirrored 30s after storage was raised", len(mirrorIDs(t, js)), items)
		}
		time.Sleep(200 * time.Millisecond)
	}
	published, dups := snapshotEvents(t, js)
	if len(published) != items || dups != 0 {
		t.Errorf("%d items have a snapshot event, %d event ids stored twice; want %d and 0", len(published), dups, items)
	}
	for id, n := range published {
		if n != 1 {
			t.Errorf("item %s: %d snapshot events", id, n)
		}
	}
}

// snapshotEvents counts the snapshot events per item, and the event ids
// stored more than once.
func snapshotEvents(t *testing.T, js jetstream.JetStream) (map[string]int, int) {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	count, ids, dups := map[string]int{}, map[string]bool{}, 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if !strings.HasPrefix(raw.Subject, "rockety.events.") {
			continue // results and cycle reports
		}
		e, _, err := events.Decode(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
		if err != nil {
			t.Fatalf("event %d: %v", seq, err)
		}
		if id := raw.Header.Get(events.HeaderID); ids[id] {
			dups++
		} else {
			ids[id] = true
		}
		if e.Op == events.OpSnapshot {
			count[e.ID]++
		}
	}
	return count, dups
}

// mirrorIDs lists the tasks held in the mirror.
func mirrorIDs(t *testing.T, js jetstream.JetStream) map[string]bool {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, subjects.StateBucket())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		if escaped, ok := strings.CutPrefix(k, "tasks."); ok {
			id, err := events.Unescape(escaped)
			if err != nil {
				t.Fatalf("key %s: %v", k, err)
			}
			out[id] = true
		}
	}
	return out
}

func dump(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		b.WriteString(e.Message)
		for _, f := range e.Context {
			if err, ok := f.Interface.(error); ok {
				b.WriteString(" " + err.Error())
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
