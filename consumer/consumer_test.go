package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
	"github.com/rockety-io/rockety-bridge/schemas"
)

var subjects = events.MustSubjects("rockety")

// faulty answers the first n writes of a method with status, then lets
// requests through to the simulator: a fault in front of the real thing.
type faulty struct {
	next   http.Handler
	method string
	status int
	left   atomic.Int32
	// before, when set, runs once before the next request is served.
	before atomic.Pointer[func(*http.Request)]
}

func (f *faulty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if fn := f.before.Swap(nil); fn != nil {
		(*fn)(r)
	}
	if r.Method == f.method && f.left.Add(-1) >= 0 {
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"injected"}}`))
		return
	}
	f.next.ServeHTTP(w, r)
}

type harness struct {
	t      testing.TB
	sim    *sim.Server
	fault  *faulty
	client *rockety.Client
	nats   *natstest.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	res    publisher.Resources
	store  *publisher.StateStore
	sink   publisher.EventSink
	cmd    *command.Client
	cancel context.CancelFunc
	done   chan error
}

// seedItems is how many items per resource the harness's simulator starts
// with.
var seedItems = 20

func newHarness(t testing.TB, allow consumer.Allow) *harness {
	t.Helper()
	s := lab.NewSim(t, sim.Options{Seed: 3, SeedItems: seedItems, Resources: []string{"tasks", "users"}})
	h := &harness{t: t, sim: s, fault: &faulty{next: s}}
	h.client = lab.Serve(t, h.fault, rockety.WithRetry(time.Millisecond, 5*time.Millisecond, time.Second))
	h.nats = natstest.Start(t)
	h.nc = h.nats.Connect(t)
	h.js, _ = jetstream.New(h.nc)
	ctx := context.Background()
	var err error
	if h.res, err = publisher.Provision(ctx, h.js, publisher.Config{Subjects: subjects}); err != nil {
		t.Fatal(err)
	}
	h.store = publisher.NewStateStore(h.js, h.res.State)
	pub, _ := publisher.NewPublisher(h.nc)
	h.sink = publisher.EventSink{Publisher: pub, Subjects: subjects, APIBaseURL: h.client.BaseURL()}
	h.cmd, _ = command.New(h.nats.Connect(t), subjects)
	h.start(allow)
	return h
}

// start runs a consumer, as one bridge process does.
func (h *harness) start(allow consumer.Allow) {
	h.t.Helper()
	h.startWith(consumer.Config{Subjects: subjects, Resources: []string{"tasks", "users"}, Allow: allow, AckWait: 2 * time.Second,
		Concurrency: 16, APIBaseURL: h.client.BaseURL(), Reprovision: func(ctx context.Context) error {
			_, err := publisher.Provision(ctx, h.js, publisher.Config{Subjects: subjects})
			return err
		}})
}

// startWith runs a consumer configured by cfg.
func (h *harness) startWith(cfg consumer.Config) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := consumer.New(ctx, h.js, h.res.CommandResults, h.client, app.WriteThrough{Store: h.store, Sink: h.sink}, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- c.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		if err := <-h.done; err != nil {
			h.t.Errorf("consumer: %v", err)
		}
		h.cancel = nil
	}
}

func (h *harness) do(req command.Request) events.Result {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := h.cmd.Do(ctx, req)
	if err != nil {
		h.t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	if err := schemas.ValidateResult(b); err != nil {
		h.t.Errorf("result %s: %v", b, err)
	}
	return res
}

func (h *harness) writes() int {
	st := h.sim.Stats()
	return st.ByMethod["POST"] + st.ByMethod["PUT"] + st.ByMethod["DELETE"]
}

// settled checks that no command is pending or waiting for an ack.
func (h *harness) settled() {
	h.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := h.js.Consumer(ctx, subjects.CommandsStream(), "rockety-bridge-commands")
		if err != nil {
			h.t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			h.t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("commands still pending: %d pending, %d awaiting ack, %d redelivered",
				info.NumPending, info.NumAckPending, info.NumRedelivered)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCreateUpdateDeleteSucceed(t *testing.T) {
	h := newHarness(t, consumer.Allow{"*"})
	created := h.do(command.Request{Resource: "tasks", Action: events.ActionCreate,
		Command: events.Command{Data: json.RawMessage(`{"title":"From a command","project_id":1}`)}})
	if created.Status != events.StatusSucceeded || created.HTTPStatus != 201 || !strings.Contains(string(created.Data), `"From a command"`) {
		t.Fatalf("create = %+v", created)
	}
	id, _ := rockety.ItemID(created.Data)
	updated := h.do(command.Request{Resource: "tasks", Action: events.ActionUpdate,
		Command: events.Command{ID: id, Data: json.RawMessage(`{"status":"done"}`)}})
	if updated.Status != events.StatusSucceeded || updated.HTTPStatus != 200 || !strings.Contains(string(updated.Data), `"status":"done"`) {
		t.Fatalf("update = %+v", updated)
	}
	deleted := h.do(command.Request{Resource: "tasks", Action: events.ActionDelete, Command: events.Command{ID: id}})
	if deleted.Status != events.StatusSucceeded || deleted.HTTPStatus != 204 || deleted.CommandID == "" {
		t.Fatalf("delete = %+v", deleted)
	}
	var ops []string
	for _, m := range h.sim.Mutations() {
		ops = append(ops, m.Op+" "+m.ID)
	}
	want := fmt.Sprintf("[created %s updated %s deleted %s]", id, id, id)
	if fmt.Sprint(ops) != want {
		t.Errorf("simulator writes %v, want %s", ops, want)
	}
	h.settled()
}

func TestBadCommandsAreRejectedWithoutAnAPICall(t *testing.T) {
	h := newHarness(t, consumer.Allow{"tasks.update", "tasks.create", "users.*"})
	ctx := context.Background()
	tests := []struct {
		name    string
		subject string
		body    string
		wantErr string
	}{
		{"malformed JSON", "rockety.commands.tasks.update", `{"id": 1, "data": `, "the body is not a command"},
		{"unknown action", "rockety.commands.tasks.frobnicate", `{"id": 1}`, `unknown action "frobnicate"`},
		{"update without id", "rockety.commands.tasks.update", `{"data":{"status":"done"}}`, `update needs "id"`},
		{"disallowed action", "rockety.commands.tasks.delete", `{"id": 1}`, "not allowed by BRIDGE_COMMAND_ALLOW"},
		// Its result still needs a subject: the missing token becomes "_".
		{"no action token", "rockety.commands.tasks", `{"id": 1}`, `unknown action "_"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resource, action, _ := strings.Cut(strings.TrimPrefix(tt.subject, "rockety.commands."), ".")
			if action == "" {
				action = "_"
			}
			cid := fmt.Sprintf("bad-%d", i)
			sub, err := h.nc.SubscribeSync(subjects.Result(resource, action, cid))
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			msg := nats.NewMsg(tt.subject)
			msg.Data = []byte(tt.body)
			msg.Header.Set(nats.MsgIdHdr, cid)
			if _, err := h.js.PublishMsg(ctx, msg); err != nil {
				t.Fatal(err)
			}
			got, err := sub.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var res events.Result
			_ = json.Unmarshal(got.Data, &res)
			if err := schemas.ValidateResult(got.Data); err != nil {
				t.Error(err)
			}
			if res.Status != events.StatusRejected || !strings.Contains(res.Error, tt.wantErr) || res.Action != action ||
				len(res.Command) == 0 || res.CommandID != cid {
				t.Errorf("result = %+v", res)
			}
			checkResultCloudEvent(t, got, resource, action, cid)
		})
	}
	if n := h.writes(); n != 0 {
		t.Errorf("%d API writes for rejected commands", n)
	}
	h.settled()
}

func TestAPIRefusalFailsOnceAndServerErrorsAreRetried(t *testing.T) {
	h := newHarness(t, consumer.Allow{"*"})
	missing := h.do(command.Request{Resource: "tasks", Action: events.ActionUpdate,
		Command: events.Command{ID: "999999", Data: json.RawMessage(`{"status":"done"}`)}})
	if missing.Status != events.StatusFailed || missing.HTTPStatus != 404 || !strings.Contains(missing.Error, "404") ||
		!strings.Contains(string(missing.Command), "999999") {
		t.Fatalf("404 result = %+v", missing)
	}
	if n := h.sim.Stats().ByMethod["PUT"]; n != 1 {
		t.Errorf("%d PUTs for a 404: a refusal is not retried", n)
	}

	h.sim.ResetStats()
	h.fault.method, h.fault.status = "PUT", 500
	h.fault.left.Store(2)
	ok := h.do(command.Request{Resource: "tasks", Action: events.ActionUpdate,
		Command: events.Command{ID: "3", Data: json.RawMessage(`{"status":"done"}`)}})
	if ok.Status != events.StatusSucceeded || ok.HTTPStatus != 200 {
		t.Fatalf("after two 500s = %+v", ok)
	}
	if n := h.sim.Stats().ByMethod["PUT"]; n != 1 {
		t.Errorf("%d writes reached the API, want exactly 1", n)
	}
	h.settled()
}

func TestSameCommandIDTwiceWritesOnce(t *testing.T) {
	h := newHarness(t, consumer.Allow{"*"})
	req := command.Request{Resource: "tasks", Action: events.ActionCreate, CommandID: "create-once",
		Command: events.Command{Data: json.RawMessage(`{"title":"only once"}`)}}
	first := h.do(req)
	second := h.do(req)
	if first.Status != events.StatusSucceeded || fmt.Sprint(first) != fmt.Sprint(second) {
		t.Fatalf("results differ:\n%+v\n%+v", first, second)
	}
	if n := h.sim.Stats().ByMethod["POST"]; n != 1 {
		t.Errorf("%d POSTs for one command id", n)
	}
	h.settled()
}

// TestRestartAfterTheWriteBeforeTheAck stands for a bridge killed after the
// API write and before the command's outcome was recorded: the intent
// record is there, the write happened, and the command is delivered again.
func TestRestartAfterTheWriteBeforeTheAck(t *testing.T) {
	h := newHarness(t, consumer.Allow{"*"})
	h.stop()
	ctx := context.Background()
	kv, err := h.js.KeyValue(ctx, subjects.CommandResultsBucket())
	if err != nil {
		t.Fatal(err)
	}
	pending := func(id, action string) {
		if _, err := kv.Create(ctx, events.Escape(id), []byte(`{"state":"pending","action":"`+action+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	// The writes the killed bridge made.
	newID, _ := h.sim.Create("tasks", map[string]any{"title": "created before the kill"})
	_ = h.sim.Update("tasks", "4", map[string]any{"status": "done"})
	_ = h.sim.Delete("tasks", "5")
	pending("c-create", "create")
	pending("c-update", "update")
	pending("c-delete", "delete")
	h.sim.ResetStats()
	writesBefore := len(h.sim.Mutations())

	h.start(consumer.Allow{"*"})
	create := h.do(command.Request{Resource: "tasks", Action: events.ActionCreate, CommandID: "c-create",
		Command: events.Command{Data: json.RawMessage(`{"title":"created before the kill"}`)}})
	update := h.do(command.Request{Resource: "tasks", Action: events.ActionUpdate, CommandID: "c-update",
		Command: events.Command{ID: "4", Data: json.RawMessage(`{"status":"done"}`)}})
	del := h.do(command.Request{Resource: "tasks", Action: events.ActionDelete, CommandID: "c-delete",
		Command: events.Command{ID: "5"}})

	if create.Status != events.StatusFailed || !strings.Contains(create.Error, "the outcome is unknown") {
		t.Errorf("create = %+v", create)
	}
	if n := h.sim.Stats().ByMethod["POST"]; n != 0 {
		t.Errorf("the create was sent again (%d POSTs); %s may now exist twice", n, newID)
	}
	if update.Status != events.StatusSucceeded || del.Status != events.StatusSucceeded {
		t.Errorf("update = %+v, delete = %+v; both are safe to repeat", update, del)
	}
	if got := len(h.sim.Mutations()) - writesBefore; got > 1 {
		t.Errorf("%d new mutations; only the repeated update may write", got)
	}
	h.settled()
}

func TestWriteThroughEventAppearsOnceAndThePollAddsNothing(t *testing.T) {
	h := newHarness(t, consumer.Allow{"*"})
	ctx := context.Background()
	store := h.store
	p, err := poller.New(poller.Config{Resource: "tasks"}, poller.Deps{Lister: h.client, Mirror: store, Checkpoints: publisher.NewCheckpoints(h.res.Checkpoints, h.res.State),
		Sink: h.sink, Journal: publisher.NewJournal(h.js, subjects)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.RunOnce(ctx); err != nil { // baseline
		t.Fatal(err)
	}
	res := h.do(command.Request{Resource: "tasks", Action: events.ActionUpdate,
		Command: events.Command{ID: "7", Data: json.RawMessage(`{"title":"written through"}`)}})
	if res.Status != events.StatusSucceeded {
		t.Fatal(res)
	}
	created := h.do(command.Request{Resource: "tasks", Action: events.ActionCreate,
		Command: events.Command{Data: json.RawMessage(`{"title":"new through a command"}`)}})
	newID, _ := rockety.ItemID(created.Data)
	stats, err := p.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Created+stats.Updated+stats.Deleted != 0 {
		t.Errorf("the poll after the write-through published %+v", stats)
	}
	st, _ := h.js.Stream(ctx, subjects.EventsStream())
	var got []string
	for seq := uint64(1); ; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			break
		}
		if strings.HasPrefix(raw.Subject, "rockety.events.") {
			if err := schemas.ValidateEvent(raw.Data); err != nil {
				t.Error(err)
			}
			got = append(got, raw.Subject)
		}
	}
	want := []string{"rockety.events.tasks.updated.7", "rockety.events.tasks.created." + string(newID)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestCommandsForOneItemRunInOrder(t *testing.T) {
	h := newHarness(t, consumer.Allow{"*"})
	var wg sync.WaitGroup
	ctx := context.Background()
	for i := range 20 {
		msg := nats.NewMsg(subjects.Command("tasks", events.ActionUpdate))
		msg.Data = []byte(fmt.Sprintf(`{"id":"2","data":{"description":"step %02d"}}`, i))
		msg.Header.Set(nats.MsgIdHdr, fmt.Sprintf("order-%d", i))
		if _, err := h.js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	h.settled()
	var steps []string
	for _, m := range h.sim.Mutations() {
		if m.ID == "2" {
			var item struct{ Description string }
			_ = json.Unmarshal(m.Item, &item)
			steps = append(steps, item.Description)
		}
	}
	for i, s := range steps {
		if s != fmt.Sprintf("step %02d", i) {
			t.Fatalf("writes out of order: %v", steps)
		}
	}
	if len(steps) != 20 {
		t.Errorf("%d writes, want 20", len(steps))
	}
}

func TestCommandsStreamDeletedUnderTheConsumer(t *testing.T) {
	h := newHarness(t, consumer.Allow{"*"})
	if res := h.do(command.Request{Resource: "tasks", Action: events.ActionUpdate,
		Command: events.Command{ID: "2", Data: json.RawMessage(`{"status":"done"}`)}}); res.Status != events.StatusSucceeded {
		t.Fatal(res)
	}
	ctx := context.Background()
	if err := h.js.DeleteStream(ctx, subjects.CommandsStream()); err != nil {
		t.Fatal(err)
	}
	// Until the stream is back a command cannot even be published; keep
	// trying, as a service would.
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		res, err := h.cmd.Do(cctx, command.Request{Resource: "tasks", Action: events.ActionUpdate,
			Command: events.Command{ID: "3", Data: json.RawMessage(`{"status":"done"}`)}})
		cancel()
		if err == nil && res.Status == events.StatusSucceeded {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no command served 30s after the stream was deleted: %+v %v", res, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCreateAcrossNATSOutage: NATS goes away while a create is being
// written to the API and comes back two seconds later, after the bridge's
// NATS requests have timed out. The bridge holds on to the outcome it
// knows and records it once NATS is back, so the create is reported
// succeeded — not "outcome unknown" — and made once.
func TestCreateAcrossNATSOutage(t *testing.T) {
	h := newHarness(t, consumer.Allow{"*"})
	h.stop()
	// Nothing is buffered for the reconnect and requests give up after
	// 300ms: the outage outlasts them.
	nc := h.nats.Connect(t, nats.ReconnectBufSize(-1))
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	records, err := js.KeyValue(ctx, subjects.CommandResultsBucket())
	if err != nil {
		t.Fatal(err)
	}
	c, err := consumer.New(ctx, js, records, h.client, app.WriteThrough{Store: h.store, Sink: h.sink},
		consumer.Config{Subjects: subjects, Resources: []string{"tasks"}, Allow: consumer.Allow{"*"}, AckWait: 10 * time.Second,
			Observer: logObserver{t}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	back := make(chan struct{})
	stop := func(*http.Request) {
		h.nats.Stop()
		go func() {
			time.Sleep(2 * time.Second)
			h.nats.Restart()
			close(back)
		}()
	}
	h.fault.before.Store(&stop)
	res := h.do(command.Request{Resource: "tasks", Action: events.ActionCreate,
		Command: events.Command{Data: json.RawMessage(`{"title":"across an outage","project_id":1}`)}})
	<-back
	if res.Status != events.StatusSucceeded || res.HTTPStatus != 201 {
		t.Errorf("result %+v, want succeeded 201", res)
	}
	if n := len(h.sim.Mutations()); n != 1 {
		t.Errorf("%d writes, want 1", n)
	}
}

type logObserver struct{ t *testing.T }

func (o logObserver) CommandDone(resource, action string, status events.Status, took time.Duration) {
	o.t.Logf("%s %s: %s in %s", resource, action, status, took.Round(time.Millisecond))
}
func (o logObserver) Problem(msg, commandID string, err error) {
	o.t.Logf("%s (%s): %v", msg, commandID, err)
}

// checkResultCloudEvent holds a result message to the contract: a
// CloudEvent like a change event, and JSON without HTML escapes.
func checkResultCloudEvent(t *testing.T, m *nats.Msg, resource, action, commandID string) {
	t.Helper()
	want := map[string]string{
		events.HeaderSpecVersion:     "1.0",
		events.HeaderID:              "result:" + commandID,
		events.HeaderMsgID:           "result:" + commandID,
		events.HeaderType:            "io.rockety." + resource + "." + action + ".result",
		events.HeaderSubject:         commandID,
		events.HeaderDataContentType: "application/json",
		events.HeaderCommandID:       commandID,
	}
	for h, v := range want {
		if got := m.Header.Get(h); got != v {
			t.Errorf("header %s = %q, want %q", h, got, v)
		}
	}
	if src := m.Header.Get(events.HeaderSource); !strings.HasSuffix(src, "/"+resource) || !strings.HasPrefix(src, "http") {
		t.Errorf("header %s = %q, want <api base url>/%s", events.HeaderSource, src, resource)
	}
	if _, err := time.Parse(time.RFC3339Nano, m.Header.Get(events.HeaderTime)); err != nil {
		t.Errorf("header %s: %v", events.HeaderTime, err)
	}
	if strings.Contains(string(m.Data), `\u003c`) || strings.Contains(string(m.Data), `\u003e`) || strings.Contains(string(m.Data), `\u0026`) {
		t.Errorf("result body is HTML-escaped: %s", m.Data)
	}
}

func TestExpiredCommandIsRejectedNotExecuted(t *testing.T) {
	h := newHarness(t, consumer.Allow{"*"})
	h.stop()
	ctx := context.Background()
	// Queued while no bridge ran: by the time one reads them, they are
	// older than the bridge's BRIDGE_COMMAND_MAX_AGE.
	sub, err := h.nc.SubscribeSync(subjects.Results())
	if err != nil {
		t.Fatal(err)
	}
	for _, cid := range []string{"stale-update", "stale-create"} {
		msg := nats.NewMsg(subjects.Command("tasks", events.ActionUpdate))
		msg.Data = []byte(`{"id": "1", "data": {"status": "done"}}`)
		if cid == "stale-create" {
			msg = nats.NewMsg(subjects.Command("tasks", events.ActionCreate))
			msg.Data = []byte(`{"data": {"title": "late"}}`)
		}
		msg.Header.Set(nats.MsgIdHdr, cid)
		if _, err := h.js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	h.startWith(consumer.Config{Subjects: subjects, Resources: []string{"tasks", "users"}, Allow: consumer.Allow{"*"},
		AckWait: 2 * time.Second, MaxAge: 200 * time.Millisecond, APIBaseURL: "http://rockety.test/api/v1"})
	for range 2 {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var res events.Result
		if err := json.Unmarshal(m.Data, &res); err != nil {
			t.Fatal(err)
		}
		if res.Status != events.StatusRejected || !strings.Contains(res.Error, "expired") ||
			!strings.Contains(res.Error, "BRIDGE_COMMAND_MAX_AGE") || len(res.Command) == 0 {
			t.Errorf("result of a stale command = %+v", res)
		}
		checkResultCloudEvent(t, m, "tasks", res.Action, res.CommandID)
		if m.Header.Get(events.HeaderSource) != "http://rockety.test/api/v1/tasks" {
			t.Errorf("ce-source = %q", m.Header.Get(events.HeaderSource))
		}
	}
	if n := h.writes(); n != 0 {
		t.Errorf("%d API writes for expired commands", n)
	}
	h.settled()
	// A fresh command still runs.
	res := h.do(command.Request{Resource: "tasks", Action: events.ActionUpdate,
		Command: events.Command{ID: "1", Data: json.RawMessage(`{"status":"open"}`)}})
	if res.Status != events.StatusSucceeded {
		t.Errorf("fresh command after expired ones = %+v", res)
	}
}
