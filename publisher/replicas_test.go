package publisher_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/publisher"
)

// More replicas than the JetStream servers can place stop the start with
// a message that names BRIDGE_STREAM_REPLICAS and what to set; on a
// 3-node cluster 3 replicas are what every stream and bucket gets.
func TestStreamReplicasAgainstTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster; skipped with -short")
	}
	ctx := context.Background()
	single, _ := jetstream.New(natstest.Start(t).Connect(t))
	_, err := publisher.Provision(ctx, single, publisher.Config{Subjects: subjects, LeaseTTL: time.Second, Replicas: 3})
	if err == nil || !strings.Contains(err.Error(), "BRIDGE_STREAM_REPLICAS=3, but this NATS server is not part of a JetStream cluster") {
		t.Errorf("replicas 3 on one server: %v", err)
	}
	c := natstest.StartCluster(t, 3)
	js, _ := jetstream.New(c.Connect(t))
	_, err = publisher.Provision(ctx, js, publisher.Config{Subjects: subjects, LeaseTTL: time.Second, Replicas: 5})
	if err == nil || !strings.Contains(err.Error(), "BRIDGE_STREAM_REPLICAS=5 asks for more JetStream servers than the cluster has") {
		t.Errorf("replicas 5 on 3 servers: %v", err)
	}
	// An existing deployment at one replica is raised to three in place,
	// keeping what its streams and buckets hold.
	old, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects, LeaseTTL: time.Second, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := js.Publish(ctx, subjects.Event("tasks", events.OpCreated, fmt.Sprint(i)), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.State.Put(ctx, "tasks.1", []byte(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	res, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects, LeaseTTL: time.Second, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := res.Events.Info(ctx); info.State.Msgs != 20 {
		t.Errorf("the events stream holds %d messages after going to 3 replicas, want 20", info.State.Msgs)
	}
	if e, err := res.State.Get(ctx, "tasks.1"); err != nil || string(e.Value()) != `{"id":1}` {
		t.Errorf("the mirror after going to 3 replicas: %v", err)
	}
	for _, st := range []jetstream.Stream{res.Events, res.Commands} {
		info, err := st.Info(ctx)
		if err != nil || info.Config.Replicas != 3 {
			t.Errorf("stream %v at %d replicas (%v), want 3", info.Config.Name, info.Config.Replicas, err)
		}
	}
	for _, kv := range []jetstream.KeyValue{res.State, res.Checkpoints, res.Leases, res.CommandResults} {
		if status, err := kv.Status(ctx); err != nil || status.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
			t.Errorf("bucket %s: %v", kv.Bucket(), err)
		}
	}
}
