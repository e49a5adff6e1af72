package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/events/follow"
	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/model"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// A subscriber bootstraps its copy of tasks with follow.Follow while the
// bridge polls under churn and commands write; at the end its copy equals
// the API, every change published after its copy was complete was applied
// once, and no (item, revision) was applied twice. Then again with the
// bridge killed, and a new one started, while the subscriber reads the
// mirror.
func TestFollowBootstrapsWithoutAGap(t *testing.T) {
	for _, tc := range []struct {
		name        string
		kill        bool
		restartNATS bool
	}{
		{name: "under churn"},
		{name: "bridge killed during the bootstrap", kill: true},
		{name: "NATS restarted while following", restartNATS: true},
	} {
		t.Run(tc.name, func(t *testing.T) { testFollow(t, tc.kill, tc.restartNATS) })
	}
}

func testFollow(t *testing.T, kill, restartNATS bool) {
	const ttl = time.Second
	s := lab.NewSim(t, sim.Options{Seed: 21, SeedItems: 300, Churn: 40})
	client := lab.Serve(t, s, rockety.WithRateLimit(0))
	ns := natstest.Start(t)
	js, _ := jetstream.New(ns.Connect(t))
	bridge := startReplica(t, "pod-a", ns, client, ttl, 200*time.Millisecond, 5*time.Second)
	lab.WaitFor(t, "the baseline of tasks", 10*time.Second, func() bool { return checkpointed(js) })

	churn, stopChurn := context.WithCancel(context.Background())
	if err := s.Start(churn); err != nil {
		t.Fatal(err)
	}
	commandsDone := make(chan struct{})
	go func() {
		defer close(commandsDone)
		cmds, _ := command.New(ns.Connect(t), subjects)
		for i := 0; churn.Err() == nil; i++ {
			cctx, cancel := context.WithTimeout(churn, 10*time.Second)
			_, _ = cmds.Do(cctx, command.Request{Resource: "tasks", Action: events.ActionUpdate,
				Command: events.Command{ID: model.ID(fmt.Sprint(1 + i%50)), Data: json.RawMessage(fmt.Sprintf(`{"title":"command %d"}`, i))}})
			cancel()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second) // changes in flight when the subscriber starts

	var mu sync.Mutex
	copyOf := map[string]json.RawMessage{}
	applied := map[string]bool{} // "id revision"
	twice, stale := 0, 0
	given := map[string]uint64{} // the revision of each item as the mirror gave it
	var readyAt uint64
	killed := false
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- follow.Follow(ctx, js, subjects, "tasks", follow.Handler{
			Item: func(id string, item json.RawMessage, revision uint64) error {
				if kill && !killed {
					// Killed as a crash: the connection drops, nothing is
					// released; another replica takes the lease after its TTL.
					killed = true
					bridge.nc.Close()
					bridge.cancel()
					bridge = startReplica(t, "pod-b", ns, client, ttl, 200*time.Millisecond, 5*time.Second)
				}
				mu.Lock()
				copyOf[id] = append(json.RawMessage(nil), item...)
				given[id] = revision
				mu.Unlock()
				return nil
			},
			Ready: func() error {
				mu.Lock()
				readyAt = lab.LastSeq(t, js, subjects)
				mu.Unlock()
				return nil
			},
			Change: func(e events.Event) error {
				mu.Lock()
				defer mu.Unlock()
				key := fmt.Sprintf("%s %d", e.ID, e.Revision)
				if applied[key] {
					twice++
				}
				if e.Revision <= given[e.ID] {
					stale++ // the state given holds this change already
				}
				applied[key] = true
				if e.After == nil {
					delete(copyOf, e.ID)
				} else {
					copyOf[e.ID] = e.After
				}
				return nil
			},
		})
	}()

	time.Sleep(1500 * time.Millisecond)
	if restartNATS {
		// Everyone's connection drops and comes back: the bridge's, the
		// subscriber's, the commands'.
		ns.Stop()
		time.Sleep(500 * time.Millisecond)
		ns.Restart()
	}
	time.Sleep(1500 * time.Millisecond)
	stopChurn()
	<-commandsDone
	// The bridge catches up with the last changes, the subscriber with it.
	final, _ := judge.Items(s, "tasks")
	_, err := lab.Within(20*time.Second, func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return sameItems(copyOf, final), nil
	})
	stop()
	if ferr := <-done; ferr != nil {
		t.Fatalf("Follow: %v", ferr)
	}
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		t.Errorf("the subscriber's copy never equalled the API: %d items, the API %d; %s", len(copyOf), len(final), diffItems(copyOf, final))
	}
	after := 0
	for _, o := range lab.Events(t, js, subjects, readyAt) {
		if o.Event.Resource != "tasks" {
			continue
		}
		after++
		if !applied[fmt.Sprintf("%s %d", o.Event.ID, o.Event.Revision)] {
			t.Errorf("event %s %s rev %d (stream seq %d), published after the copy was complete, was not applied", o.Event.Op, o.Event.ID, o.Event.Revision, o.Seq)
		}
	}
	if twice != 0 || stale != 0 || after == 0 {
		t.Errorf("%d changes applied twice, %d that the state given held already; %d published after the copy was complete", twice, stale, after)
	}
	if kill && !killed {
		t.Error("the bridge was not killed during the bootstrap")
	}
	t.Logf("%d changes applied, %d of them published after the copy was complete; %d items", len(applied), after, len(copyOf))
}

func checkpointed(js jetstream.JetStream) bool {
	kv, err := js.KeyValue(context.Background(), subjects.CheckpointsBucket())
	if err != nil {
		return false
	}
	_, err = kv.Get(context.Background(), "tasks")
	return err == nil
}

// sameItems compares by canonical JSON, as the bridge does.
func sameItems(copyOf map[string]json.RawMessage, final map[judge.Key]json.RawMessage) bool {
	return diffItems(copyOf, final) == ""
}

func diffItems(copyOf map[string]json.RawMessage, final map[judge.Key]json.RawMessage) string {
	if len(copyOf) != len(final) {
		return fmt.Sprintf("%d items, want %d", len(copyOf), len(final))
	}
	for k, want := range final {
		got, ok := copyOf[k.ID]
		a, _ := plan.Hash(got)
		b, _ := plan.Hash(want)
		if !ok || a != b {
			return fmt.Sprintf("task %s is %s, the API has %s", k.ID, got, want)
		}
	}
	return ""
}
