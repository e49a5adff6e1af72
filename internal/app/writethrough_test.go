package app_test

import (
	"context"
	"encoding/json"
	"iter"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// TestWriteThrough drives the write-through as the consumer does — Begin
// as the write starts, then the answer — against a real mirror and events
// stream, and checks what it publishes and what it stores.
func TestWriteThrough(t *testing.T) {
	const (
		before = `{"id":7,"title":"old"}`
		after  = `{"id":7,"title":"new"}`
	)
	item := func(raw string) *rockety.Response {
		return &rockety.Response{StatusCode: 200, Body: json.RawMessage(raw), Item: rockety.Item{ID: "7", Raw: json.RawMessage(raw)}}
	}
	cases := []struct {
		name   string
		stored string // the mirror's state of item 7 before the write; "" for none
		// pollPublished: a poll published the same change (same event id)
		// and stopped before storing it in the mirror.
		pollPublished bool
		action        events.Action
		answer        *rockety.Response
		wantOp        events.Op // "" for no event
		wantMirror    string    // the mirror's state afterwards; "" for none
	}{
		{name: "update", stored: before, action: events.ActionUpdate, answer: item(after),
			wantOp: events.OpUpdated, wantMirror: after},
		{name: "update to the same state", stored: before, action: events.ActionUpdate, answer: item(before),
			wantMirror: before},
		{name: "create", action: events.ActionCreate, answer: item(after), wantOp: events.OpCreated, wantMirror: after},
		{name: "delete", stored: before, action: events.ActionDelete,
			answer: &rockety.Response{StatusCode: 204}, wantOp: events.OpDeleted},
		{name: "delete of an item the mirror does not have", action: events.ActionDelete,
			answer: &rockety.Response{StatusCode: 204}},
		{name: "the write failed", stored: before, action: events.ActionUpdate, wantMirror: before},
		{name: "an answer without the item", stored: before, action: events.ActionUpdate,
			answer: &rockety.Response{StatusCode: 200, Body: json.RawMessage(`{"ok":true}`)}, wantMirror: before},
		// The stored event may carry another state than ours (the poll saw
		// one in between), so the mirror is left for the poll's recovery:
		// storing ours would skip that change.
		{name: "a poll published the same event id and did not store it", stored: before, pollPublished: true,
			action: events.ActionUpdate, answer: item(after), wantOp: events.OpUpdated, wantMirror: before},
	}
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = js.DeleteStream(ctx, subjects.EventsStream())
				_ = js.DeleteKeyValue(ctx, subjects.StateBucket())
			}()
			store := publisher.NewStateStore(js, res.State)
			pub, _ := publisher.NewPublisher(nc)
			sink := publisher.EventSink{Publisher: pub, Subjects: subjects, APIBaseURL: "https://api.example/v1"}
			var rev uint64
			if tc.stored != "" {
				done, err := store.Commit(ctx, "tasks", []plan.Write{{ID: "7", Value: []byte(tc.stored)}})
				if err != nil || done[0].Conflict {
					t.Fatal(err)
				}
				rev = done[0].Revision
			}
			if tc.pollPublished {
				e := events.Event{Resource: "tasks", ID: "7", Op: events.OpUpdated, Revision: events.ChangeRevision(rev),
					Before: json.RawMessage(tc.stored), After: json.RawMessage(`{"id":7,"title":"seen by the poll"}`),
					Changed: []string{"title"}, DetectedAt: time.Now().UTC()}
				out := []plan.Outgoing{{EventID: events.EventID("tasks", "7", events.OpUpdated, rev), Event: e}}
				if err := sink.Publish(ctx, out, func(int, plan.Ack) {}); err != nil {
					t.Fatal(err)
				}
			}
			wt := app.WriteThrough{Store: store, Sink: sink}
			req := consumer.Request{Resource: "tasks", Action: tc.action}
			if tc.action != events.ActionCreate {
				req.ID = "7"
			}
			if err := wt.Begin(ctx, req)(ctx, tc.answer); err != nil {
				t.Fatal(err)
			}

			var got []events.Event
			info, _ := res.Events.Info(ctx)
			for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
				m, err := res.Events.GetMsg(ctx, seq)
				if err != nil {
					t.Fatal(err)
				}
				e, _, err := events.Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e)
			}
			if tc.pollPublished {
				got = got[1:]
				if len(got) != 0 {
					t.Errorf("the write-through's event was stored beside the poll's with the same id: %+v", got)
				}
			} else if tc.wantOp == "" && len(got) != 0 {
				t.Errorf("published %+v, want nothing", got)
			} else if tc.wantOp != "" {
				if len(got) != 1 || got[0].Op != tc.wantOp || got[0].Revision != events.ChangeRevision(rev) {
					t.Fatalf("published %+v, want one %s event with revision %d", got, tc.wantOp, events.ChangeRevision(rev))
				}
			}
			stored, err := store.Lookup(ctx, "tasks", []string{"7"})
			if err != nil {
				t.Fatal(err)
			}
			entry := stored[0]
			mirror := string(entry.Value)
			if mirror != tc.wantMirror {
				t.Errorf("mirror holds %q, want %q", mirror, tc.wantMirror)
			}
		})
	}
}

// TestCommandCreatedItemDeletedBeforeAnyPoll creates an item through a
// command's write-through and deletes it in the API before any traversal
// lists it: the next full traversal, which never saw it, still publishes
// its delete, learned from the write-through's event.
func TestCommandCreatedItemDeletedBeforeAnyPoll(t *testing.T) {
	r := newPollRig(t, nil)
	ctx, client, store, sink, js, p := context.Background(), r.client, r.store, r.sink, r.js, r.poller

	wt := app.WriteThrough{Store: store, Sink: sink}
	req := consumer.Request{Resource: "tasks", Action: events.ActionCreate}
	done := wt.Begin(ctx, req)
	resp, err := client.Create(ctx, "tasks", json.RawMessage(`{"title":"short-lived"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := done(ctx, &resp); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Delete(ctx, "tasks", resp.Item.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	var ops []events.Op
	for _, o := range lab.Events(t, js, subjects, 0) {
		if o.Event.ID == string(resp.Item.ID) {
			ops = append(ops, o.Event.Op)
		}
	}
	if len(ops) != 2 || ops[0] != events.OpCreated || ops[1] != events.OpDeleted {
		t.Fatalf("events of the command's item %s: %v, want [created deleted]", resp.Item.ID, ops)
	}
}

// TestWriteThroughCreatesOverTheFloor: once compaction raised the floor,
// a command's create of an item the mirror has no entry for replaces the
// floor, as the lease holder's poll would decide it: same revision, same
// event id.
func TestWriteThroughCreatesOverTheFloor(t *testing.T) {
	r := newPollRig(t, nil)
	ctx := context.Background()
	b, _, err := r.checkpoints.Bookmark(ctx, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	const floor = 500
	b.Floor, b.FloorFrom = floor, 1
	if err := r.checkpoints.SetBookmark(ctx, "tasks", b); err != nil {
		t.Fatal(err)
	}
	wt := app.WriteThrough{Store: r.store, Sink: r.sink, Floors: r.checkpoints}
	done := wt.Begin(ctx, consumer.Request{Resource: "tasks", Action: events.ActionCreate})
	resp, err := r.client.Create(ctx, "tasks", json.RawMessage(`{"title":"after a compaction"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := done(ctx, &resp); err != nil {
		t.Fatal(err)
	}
	var got []judge.Observed
	for _, o := range lab.Events(t, r.js, subjects, 0) {
		if o.Event.ID == string(resp.Item.ID) {
			got = append(got, o)
		}
	}
	want := events.EventID("tasks", string(resp.Item.ID), events.OpCreated, floor)
	if len(got) != 1 || got[0].Event.Op != events.OpCreated || got[0].Event.Revision != floor+1 || got[0].MsgID != want {
		t.Fatalf("events of the command's item %s: %+v; want one create of revision %d, id %s", resp.Item.ID, got, floor+1, want)
	}
}

// pollRig is a poller of five tasks, after its baseline cycle, with the
// mirror and sink a command's write-through uses: a simulator over HTTP and
// an embedded NATS server.
type pollRig struct {
	client *rockety.Client
	store  *publisher.StateStore
	sink   publisher.EventSink
	js     jetstream.JetStream
	poller *poller.Poller
	// checkpoints are the poller's bookkeeping (its floor among them).
	checkpoints *publisher.Checkpoints
}

// newPollRig builds the rig; a non-nil wrap lists through the client it
// is given.
func newPollRig(t *testing.T, wrap *deleteAfterFirstPage) pollRig {
	t.Helper()
	s := lab.NewSim(t, sim.Options{Seed: 3, SeedItems: 5, Resources: []string{"tasks"}})
	r := pollRig{client: lab.Serve(t, s, rockety.WithRateLimit(0))}
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	r.js, _ = jetstream.New(nc)
	ctx := context.Background()
	res, err := publisher.Provision(ctx, r.js, publisher.Config{Subjects: subjects, LeaseTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r.store = publisher.NewStateStore(r.js, res.State)
	pub, _ := publisher.NewPublisher(nc)
	r.sink = publisher.EventSink{Publisher: pub, Subjects: subjects, APIBaseURL: r.client.BaseURL()}
	var lister poller.Lister = r.client
	if wrap != nil {
		wrap.Client = r.client
		lister = wrap
	}
	r.checkpoints = publisher.NewCheckpoints(res.Checkpoints, res.State)
	r.poller, err = poller.New(poller.Config{Resource: "tasks", Interval: time.Second, InitialSync: poller.SyncBaseline, MaxDeleteRatio: 0.5},
		poller.Deps{Lister: lister, Mirror: r.store, Checkpoints: r.checkpoints,
			Sink: r.sink, Journal: publisher.NewJournal(r.js, subjects)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.poller.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

// deleteAfterFirstPage lists like its client, and once, right after the
// first page was read, runs hook: a command that lands between a page and
// the publish of what it held.
type deleteAfterFirstPage struct {
	*rockety.Client
	hook func()
}

func (d *deleteAfterFirstPage) Pages(ctx context.Context, resource string, filters ...rockety.Filter) iter.Seq2[*rockety.Page, error] {
	return func(yield func(*rockety.Page, error) bool) {
		for page, err := range d.Client.Pages(ctx, resource, filters...) {
			if !yield(page, err) {
				return
			}
			if d.hook != nil {
				d.hook()
				d.hook = nil
			}
		}
	}
}

// TestCommandDeleteBetweenPageAndPublish deletes an item through a
// command after a poll read it changed and before the poll publishes it:
// the poll's listing is older than the delete and must not bring the item
// back (a created event after the write-through's deleted).
func TestCommandDeleteBetweenPageAndPublish(t *testing.T) {
	lister := &deleteAfterFirstPage{}
	r := newPollRig(t, lister)
	ctx, client, store, sink, js, p := context.Background(), r.client, r.store, r.sink, r.js, r.poller
	if _, err := client.Update(ctx, "tasks", "3", json.RawMessage(`{"title":"changed before the delete"}`)); err != nil {
		t.Fatal(err)
	}
	wt := app.WriteThrough{Store: store, Sink: sink}
	lister.hook = func() {
		req := consumer.Request{Resource: "tasks", Action: events.ActionDelete, ID: "3"}
		done := wt.Begin(ctx, req)
		resp, err := client.Delete(ctx, "tasks", "3")
		if err != nil {
			t.Error(err)
			return
		}
		if err := done(ctx, &resp); err != nil {
			t.Error(err)
		}
	}
	for range 3 {
		if _, err := p.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var ops []events.Op
	for _, o := range lab.Events(t, js, subjects, 0) {
		if o.Event.ID == "3" {
			ops = append(ops, o.Event.Op)
		}
	}
	if len(ops) != 1 || ops[0] != events.OpDeleted {
		t.Fatalf("events of task 3: %v, want [deleted] (the command's)", ops)
	}
}

// TestWriteThroughLeavesALaggingMirrorToThePoll: a poll published an
// update of an item and its bridge died before storing it; a delete
// command on another replica then reads the older state. Its write-through
// publishes nothing (a delete replacing the revision the update replaced
// would be a second event of that revision, with a stale before), and the
// poll stores the update, then publishes the delete after it.
func TestWriteThroughLeavesALaggingMirrorToThePoll(t *testing.T) {
	r := newPollRig(t, nil)
	ctx := context.Background()
	stored, err := r.store.Lookup(ctx, "tasks", []string{"1"})
	if err != nil || !stored[0].Live() {
		t.Fatalf("task 1: %+v, %v", stored, err)
	}
	s := stored[0]
	update := events.Event{Resource: "tasks", Op: events.OpUpdated, ID: "1", Revision: events.ChangeRevision(s.Revision),
		Before: s.Value, After: json.RawMessage(`{"id":1,"title":"published, not stored"}`), Changed: []string{"title"}, DetectedAt: time.Now().UTC()}
	if err := r.sink.Publish(ctx, []plan.Outgoing{{EventID: events.EventID("tasks", "1", events.OpUpdated, s.Revision), Event: update}},
		func(int, plan.Ack) {}); err != nil {
		t.Fatal(err)
	}
	wt := app.WriteThrough{Store: r.store, Sink: r.sink, Journal: publisher.NewJournal(r.js, subjects)}
	done := wt.Begin(ctx, consumer.Request{Resource: "tasks", Action: events.ActionDelete, ID: "1"})
	resp, err := r.client.Delete(ctx, "tasks", "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := done(ctx, &resp); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.poller.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var got []events.Event
	for _, o := range lab.Events(t, r.js, subjects, 0) {
		if o.Event.ID == "1" {
			got = append(got, o.Event)
		}
	}
	if len(got) != 2 || got[0].Op != events.OpUpdated || got[1].Op != events.OpDeleted || got[1].Revision <= got[0].Revision ||
		string(got[1].Before) != string(update.After) {
		t.Fatalf("events of task 1: %+v; want the update, then a delete of a higher revision whose before is the update's after", got)
	}
}
