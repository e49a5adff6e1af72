package publisher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/schemas"
)

var subjects = events.MustSubjects("rockety")

func setup(t *testing.T) (*natstest.Server, *nats.Conn, jetstream.JetStream, publisher.Resources) {
	t.Helper()
	srv := natstest.Start(t)
	nc := srv.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := publisher.Provision(context.Background(), js, publisher.Config{Subjects: subjects, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return srv, nc, js, res
}

func TestProvisionIsIdempotentAndKeepsMessages(t *testing.T) {
	ctx := context.Background()
	_, nc, js, res := setup(t)
	for i := range 5 {
		if _, err := js.Publish(ctx, subjects.Event("tasks", events.OpCreated, fmt.Sprint(i)), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	before, err := res.Events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects, LeaseTTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	again, _ := res.Events.Info(ctx)
	if again.Config.MaxAge != before.Config.MaxAge || again.State.Msgs != 5 || !again.Created.Equal(before.Created) {
		t.Errorf("second provisioning changed the stream: %+v -> %+v", before.Config, again.Config)
	}
	if before.Config.Duplicates < 10*time.Minute || before.Config.Storage != jetstream.FileStorage ||
		before.Config.MaxAge != 7*24*time.Hour {
		t.Errorf("events stream config = %+v", before.Config)
	}
	if got := before.Config.Subjects; !slices.Equal(got, []string{"rockety.events.>", "rockety.results.>", "rockety.cycles.>"}) {
		t.Errorf("events stream subjects = %v", got)
	}

	// A changed setting updates the stream in place.
	if _, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects, LeaseTTL: time.Second, MaxAge: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	changed, _ := res.Events.Info(ctx)
	if changed.Config.MaxAge != 30*24*time.Hour || changed.State.Msgs != 5 {
		t.Errorf("after changing max age: max age %s, %d messages; want 720h and 5", changed.Config.MaxAge, changed.State.Msgs)
	}

	cmds, _ := res.Commands.Info(ctx)
	if cmds.Config.Retention != jetstream.WorkQueuePolicy || cmds.Config.Discard != jetstream.DiscardNew {
		t.Errorf("commands stream config = %+v", cmds.Config)
	}
	leases, _ := res.Leases.Status(ctx)
	if leases.TTL() != time.Second || leases.History() != 1 {
		t.Errorf("leases bucket TTL %s history %d", leases.TTL(), leases.History())
	}
	_ = nc
}

// A stream made by a bridge that published no cycle reports gains their
// subjects in place, keeping what it holds.
func TestProvisionAddsTheCycleSubjectsToAnOlderStream(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	js, _ := jetstream.New(srv.Connect(t))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ROCKETY_EVENTS", Subjects: []string{"rockety.events.>", "rockety.results.>"},
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute, MaxAge: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, subjects.Event("tasks", events.OpCreated, fmt.Sprint(i)), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	res, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, subjects.Cycle("tasks"), []byte(`{}`)); err != nil {
		t.Fatalf("a cycle report after provisioning: %v", err)
	}
	info, _ := res.Events.Info(ctx)
	if info.State.Msgs != 4 || !slices.Contains(info.Config.Subjects, "rockety.cycles.>") {
		t.Errorf("after provisioning: %d messages, subjects %v; want the 3 events, the report and rockety.cycles.>", info.State.Msgs, info.Config.Subjects)
	}
}

func TestProvisionRefusals(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	js, _ := jetstream.New(srv.Connect(t))
	for _, tt := range []struct {
		cfg     publisher.Config
		wantErr string
	}{
		{publisher.Config{}, "without subjects"},
		{publisher.Config{Subjects: subjects, DuplicateWindow: time.Minute}, "at least 10m0s"},
		{publisher.Config{Subjects: subjects, Replicas: 7}, "replicas 7"},
		{publisher.Config{Subjects: subjects, LeaseTTL: time.Millisecond}, "BRIDGE_LEASE_TTL"},
	} {
		if _, err := publisher.Provision(ctx, js, tt.cfg); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Provision(%+v) err = %v, want %q", tt.cfg, err, tt.wantErr)
		}
	}

	// An existing stream the server cannot turn into ours is left alone.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ROCKETY_EVENTS", Subjects: []string{"rockety.events.>"},
		Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	_, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects})
	if err == nil || !strings.Contains(err.Error(), "provisioning stream ROCKETY_EVENTS") || !strings.Contains(err.Error(), "never deletes data") {
		t.Fatalf("err = %v, want a refusal naming the stream", err)
	}
	if _, err := js.Stream(ctx, "ROCKETY_EVENTS"); err != nil {
		t.Errorf("the existing stream is gone: %v", err)
	}
}

// eventMsgs builds n change events of about 1 KiB with distinct ids.
func eventMsgs(t testing.TB, n int, tag string) []*nats.Msg {
	t.Helper()
	pad := strings.Repeat("x", 900)
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		id := fmt.Sprintf("%s-%d", tag, i)
		e := events.Event{Resource: "tasks", Op: events.OpCreated, ID: id, Revision: 1,
			After:      json.RawMessage(fmt.Sprintf(`{"id":%q,"title":"task","description":%q}`, id, pad)),
			DetectedAt: time.Now()}
		m, err := events.NewMsg(subjects, "https://app.rockety.io/api/v1", events.EventID("tasks", id, events.OpCreated, 0), e)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := schemas.ValidateEvent(m.Data); err != nil {
				t.Fatal(err)
			}
		}
		msgs[i] = m
	}
	return msgs
}

// ackRecorder records which messages were reported acknowledged.
type ackRecorder struct {
	mu    sync.Mutex
	acked map[int]int
}

func (r *ackRecorder) record(i int, _ *jetstream.PubAck) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acked == nil {
		r.acked = map[int]int{}
	}
	r.acked[i]++
}

func (r *ackRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acked)
}

func streamMsgIDs(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, "ROCKETY_EVENTS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := js.Stream(ctx, "ROCKETY_EVENTS")
	info, _ := st.Info(ctx)
	ids := map[string]int{}
	for range info.State.Msgs {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ids[m.Headers().Get(nats.MsgIdHdr)]++
	}
	return ids
}

func TestPublishStoresOnceAndReportsEveryAck(t *testing.T) {
	_, nc, js, _ := setup(t)
	p, err := publisher.NewPublisher(nc, publisher.WithWindow(16))
	if err != nil {
		t.Fatal(err)
	}
	msgs := eventMsgs(t, 200, "a")
	var rec ackRecorder
	if err := p.Publish(context.Background(), msgs, rec.record); err != nil {
		t.Fatal(err)
	}
	// The same events again: acknowledged as duplicates, stored once.
	var again ackRecorder
	if err := p.Publish(context.Background(), msgs, again.record); err != nil {
		t.Fatal(err)
	}
	if rec.count() != 200 || again.count() != 200 {
		t.Fatalf("acked %d and %d, want 200 each", rec.count(), again.count())
	}
	for i, n := range rec.acked {
		if n != 1 {
			t.Errorf("message %d reported %d times", i, n)
		}
	}
	ids := streamMsgIDs(t, js)
	if len(ids) != 200 {
		t.Errorf("stream holds %d distinct ids, want 200", len(ids))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("id %s stored %d times", id, n)
		}
	}
}

func TestPublishRefusesMessagesWithoutID(t *testing.T) {
	_, nc, _, _ := setup(t)
	p, _ := publisher.NewPublisher(nc)
	err := p.Publish(context.Background(), []*nats.Msg{{Subject: "rockety.events.tasks.created.1", Data: []byte("{}")}},
		func(int, *jetstream.PubAck) { t.Error("acked a message without an id") })
	if err == nil || !strings.Contains(err.Error(), "has no Nats-Msg-Id") {
		t.Fatalf("err = %v", err)
	}
}

func TestPublishAcrossServerRestartLosesAndDuplicatesNothing(t *testing.T) {
	srv, nc, js, _ := setup(t)
	p, err := publisher.NewPublisher(nc, publisher.WithWindow(64), publisher.WithAckTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	msgs := eventMsgs(t, n, "r")
	var rec ackRecorder
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() { done <- p.Publish(ctx, msgs, rec.record) }()

	// Stop the server in the middle of the batch, then bring it back.
	for rec.count() < n/4 {
		time.Sleep(time.Millisecond)
	}
	srv.Stop()
	stoppedAt := rec.count()
	time.Sleep(700 * time.Millisecond)
	srv.Restart()

	if err := <-done; err != nil {
		t.Fatalf("publish across a restart: %v", err)
	}
	if stoppedAt >= n {
		t.Fatalf("the batch finished before the server stopped (%d acked); the test proves nothing", stoppedAt)
	}
	if rec.count() != n {
		t.Fatalf("acked %d of %d", rec.count(), n)
	}
	ids := streamMsgIDs(t, js)
	if len(ids) != n {
		t.Errorf("stream holds %d distinct ids, want %d", len(ids), n)
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("id %s stored %d times", id, c)
		}
	}
	t.Logf("server stopped after %d of %d acks", stoppedAt, n)
}

func TestPublishReportsWhatWasNotAcknowledged(t *testing.T) {
	srv, nc, _, _ := setup(t)
	p, _ := publisher.NewPublisher(nc, publisher.WithAckTimeout(100*time.Millisecond))
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var rec ackRecorder
	err := p.Publish(ctx, eventMsgs(t, 10, "x"), rec.record)
	if !errors.Is(err, publisher.ErrNotAcknowledged) || !strings.Contains(err.Error(), "10 of 10 messages") {
		t.Fatalf("err = %v, want ErrNotAcknowledged for 10 of 10", err)
	}
	if rec.count() != 0 {
		t.Errorf("%d messages reported acknowledged with the server down", rec.count())
	}
}

// TestReplayOthers: the events at the caller's own sequences are left
// out, and with none other in the range nothing is read at all.
func TestReplayOthers(t *testing.T) {
	ctx := context.Background()
	_, _, js, _ := setup(t)
	var seqs []uint64
	for _, m := range eventMsgs(t, 6, "r") {
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	j := publisher.NewJournal(js, subjects)
	replay := func(after uint64, own []uint64) []string {
		var got []string
		if err := j.ReplayOthers(ctx, "tasks", after, own, func(_ uint64, e events.Event) error {
			got = append(got, e.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	tests := []struct {
		name  string
		after uint64
		own   []uint64
		want  []string
	}{
		{"nothing own: every event after the start", seqs[1], nil, []string{"r-2", "r-3", "r-4", "r-5"}},
		{"some own: the others", seqs[1], []uint64{seqs[2], seqs[4]}, []string{"r-3", "r-5"}},
		{"all own: none", seqs[1], seqs[2:], nil},
		{"own before the start do not count", seqs[3], seqs, nil},
		{"own that are not in the stream do not hide others", seqs[3], []uint64{seqs[4], seqs[5] + 100}, []string{"r-5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replay(tt.after, tt.own); !slices.Equal(got, tt.want) {
				t.Errorf("replayed %v, want %v", got, tt.want)
			}
		})
	}
}
