package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/publisher"
)

// apiBase has what a base URL may hold that the binding percent-encodes
// (a space, a percent sign, non-ASCII), so ce-source shows the rule.
const apiBase = "https://api.example.com/v1/ünï%20code"

// The bridge's change events and command results, read from a real
// JetStream stream by the CloudEvents Go SDK's JetStream binding: every
// attribute the SDK reads is the one the bridge meant, percent-encoded
// values included.
func TestCloudEventsSDKReadsOurEvents(t *testing.T) {
	natsURL, nc, _ := startBridgeNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, err := publisher.NewPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	sink := publisher.EventSink{Publisher: pub, Subjects: subjects, APIBaseURL: apiBase}
	at := time.Date(2026, 12, 2, 14, 0, 0, 123456000, time.UTC)
	ids := []string{"42", "a.b", "x y", "100%", "ünï/cödé", "=", "tab\there"}
	var out []plan.Outgoing
	want := map[string]events.Event{}
	for i, id := range ids {
		e := events.Event{Resource: "tasks", Op: events.OpUpdated, ID: id, Revision: uint64(i + 2),
			Before: json.RawMessage(fmt.Sprintf(`{"id":%q,"title":"a"}`, id)), After: json.RawMessage(fmt.Sprintf(`{"id":%q,"title":"b"}`, id)),
			Changed: []string{"title"}, DetectedAt: at}
		eid := events.EventID("tasks", id, events.OpUpdated, uint64(i+1))
		out = append(out, plan.Outgoing{EventID: eid, Event: e})
		want[eid] = e
	}
	if err := sink.Publish(ctx, out, func(int, plan.Ack) {}); err != nil {
		t.Fatal(err)
	}

	got := receive(t, natsURL, subjects.Events(), len(ids), func(ev cloudevents.Event) string { return ev.ID() })
	source := apiBase + "/tasks"
	for eid, e := range want {
		ev, ok := got[eid]
		if !ok {
			t.Errorf("event %s (item %q) not received under its id; received %v", eid, e.ID, keys(got))
			continue
		}
		if err := ev.Validate(); err != nil {
			t.Errorf("item %q: the SDK says the event is not valid: %v", e.ID, err)
		}
		// The bridge percent-encodes attribute values as the binding says
		// (a space, %, control and non-ASCII characters); the SDK hands the
		// header values over as they are. A user of the SDK decodes them
		// with url.PathUnescape (the README says so): that gives back
		// exactly what the bridge meant, and a value with nothing to
		// encode is the same either way.
		checks := []struct{ attr, got, want string }{
			{"specversion", ev.SpecVersion(), "1.0"},
			{"type", ev.Type(), events.Type("tasks", events.OpUpdated)},
			{"source", ev.Source(), source},
			{"subject", ev.Subject(), e.ID},
			{"datacontenttype", ev.DataContentType(), "application/json"},
			{"time", ev.Time().UTC().Format(time.RFC3339Nano), at.Format(time.RFC3339Nano)},
		}
		for _, c := range checks {
			decoded, err := url.PathUnescape(c.got)
			if err != nil || decoded != c.want {
				t.Errorf("item %q: %s is %q to the SDK, %q decoded (%v); the bridge meant %q", e.ID, c.attr, c.got, decoded, err, c.want)
			}
			if c.got != c.want && c.got != events.PercentEncode(c.want) {
				t.Errorf("item %q: %s is %q to the SDK, neither %q nor its percent-encoding", e.ID, c.attr, c.got, c.want)
			}
		}
		if ev.ID() != eid {
			t.Errorf("item %q: id %q, want %q", e.ID, ev.ID(), eid)
		}
		var body events.Event
		if err := ev.DataAs(&body); err != nil || body.ID != e.ID || body.Revision != e.Revision || string(body.After) != string(e.After) {
			t.Errorf("item %q: data %s (%v)", e.ID, ev.Data(), err)
		}
	}
}

var subjects = events.MustSubjects("rockety")

// startBridgeNATS runs a JetStream server with the bridge's streams and
// buckets, as the bridge provisions them.
func startBridgeNATS(t *testing.T) (string, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	natsURL := startNATS(t)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects, LeaseTTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	return natsURL, nc, js
}

// receive reads the events stream's messages on subject with the SDK's own
// JetStream consumer until want have come (or 30 s passed), by keyOf.
func receive(t *testing.T, natsURL, subject string, want int, keyOf func(cloudevents.Event) string) map[string]cloudevents.Event {
	t.Helper()
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	proto, err := cejs.NewConsumer(natsURL, subjects.EventsStream(), subject, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer proto.Close(context.Background())
	client, err := cloudevents.NewClient(proto)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]cloudevents.Event{}
	_ = client.StartReceiver(ctx, func(ev cloudevents.Event) {
		mu.Lock()
		defer mu.Unlock()
		got[keyOf(ev)] = ev
		if len(got) == want {
			stop()
		}
	})
	mu.Lock()
	defer mu.Unlock()
	return got
}

func keys(m map[string]cloudevents.Event) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func startNATS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}

// Command results are CloudEvents too: the SDK reads their type, id and
// subject (the command id, percent-encoded where needed).
func TestCloudEventsSDKReadsOurResults(t *testing.T) {
	natsURL, _, js := startBridgeNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	at := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	cids := []string{"c-1", "c 2/ü", "50%"}
	for _, cid := range cids {
		msg, err := events.NewResultMsg(subjects, apiBase, events.Result{CommandID: cid, Resource: "tasks", Action: "update",
			Status: events.StatusSucceeded, HTTPStatus: 200, Data: json.RawMessage(`{"id":1}`)}, at)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	got := receive(t, natsURL, subjects.Results(), len(cids), func(ev cloudevents.Event) string {
		subject, _ := url.PathUnescape(ev.Subject())
		return subject
	})
	for _, cid := range cids {
		ev, ok := got[cid]
		if !ok {
			t.Errorf("result of %q not received (got %v)", cid, keys(got))
			continue
		}
		id, _ := url.PathUnescape(ev.ID())
		if id != events.ResultMsgID(cid) || ev.Type() != events.ResultType("tasks", "update") || ev.Validate() != nil {
			t.Errorf("result of %q: id %q type %q (%v)", cid, ev.ID(), ev.Type(), ev.Validate())
		}
		var r events.Result
		if err := ev.DataAs(&r); err != nil || r.CommandID != cid || r.Status != events.StatusSucceeded {
			t.Errorf("result of %q: data %s (%v)", cid, ev.Data(), err)
		}
	}
}
