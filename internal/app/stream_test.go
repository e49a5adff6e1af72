package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// TestEventsStreamDeletedUnderTheBridge: someone deletes ROCKETY_EVENTS
// while the bridge runs; the bridge recreates it, says so, and the next
// changes arrive in the new stream.
func TestEventsStreamDeletedUnderTheBridge(t *testing.T) {
	s := lab.NewSim(t, sim.Options{Seed: 5, SeedItems: 20, Resources: []string{"tasks"}})
	client := lab.Serve(t, s)
	ns := natstest.Start(t)
	js, _ := jetstream.New(ns.Connect(t))
	runBridge(t, app.Options{Client: client, Conn: ns.Connect(t), InitialSync: poller.SyncBaseline})

	eventFor := func(id string) bool {
		st, err := js.Stream(context.Background(), subjects.EventsStream())
		if err != nil {
			return false
		}
		_, err = st.GetLastMsgForSubject(context.Background(), "rockety.events.tasks.updated."+id)
		return err == nil
	}
	// Past the baseline: the first cycle runs once the lease is taken.
	lab.WaitFor(t, "the baseline", 10*time.Second, func() bool {
		kv, err := js.KeyValue(context.Background(), subjects.CheckpointsBucket())
		if err != nil {
			return false
		}
		_, err = kv.Get(context.Background(), "tasks")
		return err == nil
	})
	_ = s.Update("tasks", "3", map[string]any{"status": "done"})
	lab.WaitFor(t, "the first update", 10*time.Second, func() bool { return eventFor("3") })

	if err := js.DeleteStream(context.Background(), subjects.EventsStream()); err != nil {
		t.Fatal(err)
	}
	_ = s.Update("tasks", "4", map[string]any{"status": "done"})
	lab.WaitFor(t, "the update after the stream was deleted", 20*time.Second, func() bool { return eventFor("4") })
}

// runBridge runs one bridge polling tasks every 200ms until the test ends.
// Options left zero get the test's subjects, instance and lease.
func runBridge(t *testing.T, opts app.Options) {
	t.Helper()
	opts.Subjects, opts.MaxDeleteRatio, opts.InstanceID, opts.LeaseTTL = subjects, 0.5, "pod", 2*time.Second
	if opts.Resources == nil {
		opts.Resources = []app.Resource{{Name: "tasks", Interval: 200 * time.Millisecond}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b, err := app.New(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}
