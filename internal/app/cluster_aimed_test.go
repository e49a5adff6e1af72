package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/model"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// On a 3-node JetStream cluster at 3 replicas, under churn and commands,
// with pages of 10 items answered after 5 ms so that a traversal reads
// about 20 pages, leaders are stopped at chosen moments:
//
//   - the events stream's leader while a full traversal reads its pages
//     (once page 5 of a resource is asked for);
//   - the events stream's leader, and then the mirror bucket's, between
//     publish and commit: after a burst of 150 changes, once the events
//     stream holds one of them and the mirror does not;
//   - the leader of the command results bucket, and then the mirror's,
//     0–10 ms after a command is published, while it is executed and its
//     result recorded.
//
// Each fault runs -cluster.runs times (once by default).
//
// After each fault the stopped server comes back and every stream is
// current again before the next. Each fault logs whether it hit its
// moment, judged afterwards from the sequences and times the servers
// stored and the API's log, how long until every resource had a complete
// cycle again, and the cycles that did not complete. At the end every
// event is held to the mutation log (nothing lost, nothing twice, no
// false delete), the mirror to the API's items, and every command has its
// result.
func TestClusterAimedFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster and five or more aimed leader failovers; skipped with -short")
	}
	c := natstest.StartCluster(t, 3)
	s := lab.NewSim(t, sim.Options{Seed: 37, SeedItems: 200, Churn: 20})
	if err := s.SetFaults(sim.Faults{Latency: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	api := &apiWatch{next: s, puts: map[string]int{}, asked: map[string]time.Time{}}
	client := lab.Serve(t, api, rockety.WithRateLimit(0), rockety.WithPageSize(pageSize))
	r := startClusterBridge(t, c, s, client)
	ctx := context.Background()
	evStream, err := r.js.Stream(ctx, subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	state, err := r.js.KeyValue(ctx, subjects.StateBucket())
	if err != nil {
		t.Fatal(err)
	}
	results, err := r.js.KeyValue(ctx, subjects.CommandResultsBucket())
	if err != nil {
		t.Fatal(err)
	}
	cmds, _ := command.New(c.Connect(t), subjects)
	a := &aimer{t: t, c: c, s: s, js: r.js, nc: c.Connect(t), api: api, faults: newFaultLog(t, r),
		events: evStream, state: state, results: results, cmds: cmds, used: map[string]bool{}}

	runs := *flagClusterRuns
	for i := range runs {
		a.midTraversal(sim.DefaultResources[i%len(sim.DefaultResources)], i+1)
	}
	for _, stream := range []string{subjects.EventsStream(), "KV_" + subjects.StateBucket()} {
		for i := range runs {
			a.betweenPublishAndCommit(stream, i+1)
		}
	}
	for _, stream := range []string{"KV_" + subjects.CommandResultsBucket(), "KV_" + subjects.StateBucket()} {
		for i := range runs {
			a.midCommand(stream, i+1)
		}
	}
	a.faults.summary()
	r.finish()
	for id, st := range a.commands {
		if st == "" {
			t.Errorf("aimed command %s got no result", id)
		}
	}
	t.Logf("%d aimed commands, each with a result", len(a.commands))
}

// flagClusterRuns is how often TestClusterAimedFaults runs each aimed
// fault: one keeps the suite lean (under a minute); more count how often
// each moment is hit (go test ./internal/app -run ClusterAimed -args
// -cluster.runs=4).
var flagClusterRuns = flag.Int("cluster.runs", 1, "runs of each aimed fault in TestClusterAimedFaults")

// burstSize is how many users a burst changes: more than the 100 changes
// a cycle publishes at once, so that one batch's events are published
// while the one before is being stored.
const burstSize = 150

// pageSize is the per_page of the aimed faults' client: 200 items are 20
// pages.
const pageSize = 10

// aimer injects the aimed faults and tells whether each hit its moment.
type aimer struct {
	t       *testing.T
	c       *natstest.Cluster
	s       *sim.Server
	js      jetstream.JetStream
	nc      *nats.Conn
	api     *apiWatch
	faults  *faultLog
	events  jetstream.Stream
	state   jetstream.KeyValue
	results jetstream.KeyValue
	cmds    *command.Client
	// used are the tasks the aimed commands wrote, one each.
	used     map[string]bool
	commands map[string]events.Status
	mu       sync.Mutex
}

// heal waits for a new leader of stream and for every resource to
// complete a cycle, then starts the stopped server again and waits until
// every stream is current.
func (a *aimer) heal(f *fault, stream, leader string) {
	a.t.Helper()
	f.newLeader(a.c, a.js, stream, leader)
	f.recovered()
	a.c.Server(leader).Restart()
	a.c.WaitCurrent(a.js, 60*time.Second)
	f.current = time.Since(f.since)
}

// midTraversal stops the events stream's leader once a full traversal of
// resource asks for page 5. It hit when the same traversal asked for
// further pages after the stop began.
func (a *aimer) midTraversal(resource string, n int) {
	t := a.t
	t.Helper()
	stream := subjects.EventsStream()
	f := a.faults.begin(fmt.Sprintf("events leader stopped mid-traversal #%d", n))
	fired := a.api.arm(resource, 5)
	var asked time.Time
	select {
	case asked = <-fired:
	case <-time.After(30 * time.Second):
		t.Fatalf("no traversal of %s asked for page 5 within 30s", resource)
	}
	leader := a.c.StreamLeader(a.js, stream)
	f.start()
	a.c.Server(leader).Stop()
	a.heal(f, stream, leader)
	more, last := a.api.disarm(resource, asked, f.since)
	aim := fmt.Sprintf("missed: the traversal of %s had asked for its last page (%d) when the stop began", resource, last)
	if more > 0 {
		aim = fmt.Sprintf("hit: the traversal of %s asked for %d more pages (up to %d) after the stop began, %s after page 5",
			resource, more, last, f.since.Sub(asked).Round(time.Millisecond))
	}
	f.end(aim)
}

// betweenPublishAndCommit changes burstSize users at once and stops the leader
// of stream as soon as the events stream holds one of their events
// while the mirror still holds that user's previous revision: the event
// is acknowledged, its mirror write not stored. It hit when some event
// of the burst was stored before the stop began and its mirror write
// after.
func (a *aimer) betweenPublishAndCommit(stream string, n int) {
	t := a.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := a.s.IDs("users")
	before := map[string]uint64{} // the mirror revision of each user of the burst
	for i := range min(burstSize, len(ids)) {
		id := ids[(n*7+i)%len(ids)]
		if e, err := a.state.Get(ctx, stateKey("users", id)); err == nil {
			before[id] = e.Revision()
		}
	}
	e0 := lab.LastSeq(t, a.js, subjects)
	leader := a.c.StreamLeader(a.js, stream)
	burst := map[string]bool{}
	for id := range before {
		if err := a.s.Update("users", id, map[string]any{"name": fmt.Sprintf("Burst %s %d", id, n)}); err == nil {
			burst[id] = true
		}
	}
	burstAt, burstEnd := time.Now(), a.s.LastSeq()
	name := "events leader stopped between publish and commit"
	if stream != subjects.EventsStream() {
		name = "mirror leader stopped between publish and commit"
	}
	f := a.faults.begin(fmt.Sprintf("%s #%d", name, n))

	// Watch the last users event and that user's mirror entry, read from
	// the leaders (a direct get may be answered by a replica that lags),
	// about once a millisecond.
	var storedUpTo uint64 // the events stream's sequence when the moment was seen
	filter := subjects.Prefix() + ".events.users.>"
	for deadline := time.Now().Add(5 * time.Second); storedUpTo == 0 && time.Now().Before(deadline); {
		subject, seq, err := lastStored(ctx, a.nc, subjects.EventsStream(), filter)
		if err == nil && seq > e0 {
			id, _ := events.Unescape(subject[strings.LastIndexByte(subject, '.')+1:])
			if burst[id] {
				_, rev, err := lastStored(ctx, a.nc, "KV_"+subjects.StateBucket(), "$KV."+subjects.StateBucket()+"."+stateKey("users", id))
				if err == nil && rev == before[id] {
					storedUpTo = seq
					break
				}
			}
		}
		time.Sleep(500 * time.Microsecond)
	}
	f.start()
	a.c.Server(leader).Stop()
	seenAfter := f.since.Sub(burstAt)
	a.heal(f, stream, leader)

	// Judged from what the servers stored: the burst's events at or
	// before storedUpTo were stored before the stop; a mirror entry made
	// after it was not. Users changed again since the burst are left out.
	changedAgain := map[string]bool{}
	for _, m := range a.s.MutationsSince(burstEnd) {
		if m.Resource == "users" {
			changedAgain[m.ID] = true
		}
	}
	open, judged := 0, 0
	for id := range burst {
		if changedAgain[id] {
			continue
		}
		raw, err := a.events.GetLastMsgForSubject(ctx, subjects.Event("users", events.OpUpdated, id))
		if err != nil || raw.Sequence <= e0 {
			t.Errorf("users/%s: no event of the burst: %v", id, err)
			continue
		}
		judged++
		e, err := a.state.Get(ctx, stateKey("users", id))
		if err != nil {
			t.Errorf("users/%s: no mirror entry: %v", id, err)
			continue
		}
		if raw.Sequence <= storedUpTo && e.Created().After(f.since) {
			open++
		}
	}
	var aim string
	switch {
	case open > 0:
		aim = fmt.Sprintf("hit: %d of %d events of the burst stored, their mirror writes not, when the stop began (seen %s after the burst)",
			open, judged, seenAfter.Round(time.Millisecond))
	case storedUpTo == 0:
		aim = "missed: no event was seen ahead of its mirror write within 5s of the burst"
	default:
		aim = fmt.Sprintf("missed: seen %s after the burst, but the mirror writes were stored before the stop began", seenAfter.Round(time.Millisecond))
	}
	f.end(aim)
}

// midCommand publishes a command that updates a task, and stops the
// leader of stream 0–10 ms after JetStream acknowledged it (times are
// logged from the publish). It hit when
// the stop began before the command's result was recorded; the log says
// whether before the API write or after it.
func (a *aimer) midCommand(stream string, n int) {
	t := a.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	task := a.freeTask()
	kind := "results"
	if stream != "KV_"+subjects.CommandResultsBucket() {
		kind = "mirror"
	}
	id := fmt.Sprintf("aimed-%s-%d", kind, n)
	title := "aimed command " + id
	req := command.Request{Resource: "tasks", Action: events.ActionUpdate, CommandID: id,
		Command: events.Command{ID: model.ID(task), Data: json.RawMessage(fmt.Sprintf(`{"title":%q}`, title))}}
	body, err := events.EncodeJSON(req.Command)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(subjects.Command("tasks", events.ActionUpdate))
	msg.Data = body
	msg.Header.Set(nats.MsgIdHdr, id)
	leader := a.c.StreamLeader(a.js, stream)
	logSeq := a.s.LastSeq()
	f := a.faults.begin(fmt.Sprintf("%s leader stopped mid-command #%d", kind, n))
	published := time.Now()
	if _, err := a.js.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("publishing command %s: %v", id, err)
	}
	// Spread over the command's execution: its claim in the results
	// bucket, the API write (5 ms or more), then the result recorded
	// while the write-through stores the mirror entry.
	delay := commandDelays[kind][(n-1)%len(commandDelays[kind])]
	time.Sleep(delay)
	f.start()
	a.c.Server(leader).Stop()
	status := make(chan events.Status, 1)
	// The client asks again under the same id until it has the result.
	go func() { status <- doCommand(t, a.cmds, req) }()
	a.heal(f, stream, leader)
	st := <-status
	a.mu.Lock()
	if a.commands == nil {
		a.commands = map[string]events.Status{}
	}
	a.commands[id] = st
	a.mu.Unlock()

	var wrote time.Time
	for _, m := range a.s.MutationsSince(logSeq) {
		if m.Resource == "tasks" && m.ID == task && bytes.Contains(m.Item, []byte(`"`+title+`"`)) {
			wrote = m.Time
			break
		}
	}
	var recorded time.Time
	if e, err := a.results.Get(ctx, events.Escape(id)); err == nil {
		recorded = e.Created()
	} else {
		t.Errorf("command %s: no record: %v", id, err)
	}
	asked, puts := a.api.putsOf(title)
	rel := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return "+" + at.Sub(published).Round(100*time.Microsecond).String()
	}
	after := fmt.Sprintf("the stop at %s (pause %s), the API request at %s, written at %s, the result recorded at %s; %s, %d API writes",
		rel(f.since), delay, rel(asked), rel(wrote), rel(recorded), st, puts)
	var aim string
	switch {
	case !recorded.IsZero() && recorded.Before(f.since):
		aim = "missed: its result was recorded before the stop began, " + after
	case asked.IsZero() || asked.After(f.since):
		aim = "hit: stopped before its API request, " + after
	case wrote.IsZero() || wrote.After(f.since):
		aim = "hit: stopped during its API request, " + after
	default:
		aim = "hit: stopped between its API write and its recorded result, " + after
	}
	f.end(aim)
}

// commandDelays are the pauses between a command's publish and the stop,
// by the bucket whose leader is stopped, run after run. A command is
// claimed in the results bucket within about 1 ms of its publish, its API
// write answers after 6–8 ms (5 ms of latency), and its result is
// recorded while the write-through stores its mirror entry, a
// millisecond or two later.
var commandDelays = map[string][]time.Duration{
	"results": {time.Millisecond, 6 * time.Millisecond, 4 * time.Millisecond, 7 * time.Millisecond, 0, 10 * time.Millisecond},
	"mirror":  {6 * time.Millisecond, 3 * time.Millisecond, 7 * time.Millisecond, 5 * time.Millisecond, 0, 10 * time.Millisecond},
}

// freeTask picks a live task that neither the background commands (tasks
// 1–40) nor an earlier aimed command wrote.
func (a *aimer) freeTask() string {
	for _, id := range a.s.IDs("tasks") {
		if n, err := strconv.Atoi(id); err == nil && n > 40 && !a.used[id] {
			a.used[id] = true
			return id
		}
	}
	a.t.Fatal("no task left for an aimed command")
	return ""
}

// lastStored reads the subject and sequence of the last message on
// subject (wildcards allowed) from the leader of stream.
func lastStored(ctx context.Context, nc *nats.Conn, stream, subject string) (string, uint64, error) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": subject})
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return "", 0, err
	}
	var resp struct {
		Message *struct {
			Subject string `json:"subject"`
			Seq     uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return "", 0, err
	}
	if resp.Error != nil {
		return "", 0, resp.Error
	}
	if resp.Message == nil {
		return "", 0, fmt.Errorf("no message in %s", msg.Data)
	}
	return resp.Message.Subject, resp.Message.Seq, nil
}

func stateKey(resource, id string) string { return resource + "." + events.Escape(id) }

// apiWatch stands in front of the simulator and notes what the aimed
// faults look at: while armed, every list request with the time it came,
// and the successful updates by the title they set.
type apiWatch struct {
	next http.Handler

	mu    sync.Mutex
	aim   *pageAim
	lists []listRequest
	puts  map[string]int       // successful updates by title
	asked map[string]time.Time // when the first update of a title came
}

type pageAim struct {
	resource string
	page     int
	fired    chan time.Time
}

type listRequest struct {
	at       time.Time
	resource string
	page     int
}

// arm returns a channel that receives the time the next request for
// page of resource comes, and notes every list request from now on.
func (w *apiWatch) arm(resource string, page int) <-chan time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	fired := make(chan time.Time, 1)
	w.aim, w.lists = &pageAim{resource: resource, page: page, fired: fired}, nil
	return fired
}

// disarm stops noting list requests, and counts the pages of the
// traversal of resource that asked for a page at asked that were asked
// for after since, before a new traversal began; last is the last page
// it asked for.
func (w *apiWatch) disarm(resource string, asked, since time.Time) (more, last int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lists := w.lists
	w.aim, w.lists = nil, nil
	found := false
	for _, l := range lists {
		if l.resource != resource {
			continue
		}
		if !found {
			found = l.at.Equal(asked)
			last = l.page
			continue
		}
		if l.page == 1 {
			break
		}
		last = l.page
		if l.at.After(since) {
			more++
		}
	}
	return more, last
}

// putsOf says when the first update that set title came, and counts
// those that succeeded.
func (w *apiWatch) putsOf(title string) (asked time.Time, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.asked[title], w.puts[title]
}

func (w *apiWatch) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		w.noteList(r)
	case http.MethodPut:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var v struct {
			Title string `json:"title"`
		}
		_ = json.Unmarshal(body, &v)
		w.mu.Lock()
		if _, ok := w.asked[v.Title]; !ok {
			w.asked[v.Title] = time.Now()
		}
		w.mu.Unlock()
		rec := &statusRecorder{ResponseWriter: rw, status: http.StatusOK}
		w.next.ServeHTTP(rec, r)
		if rec.status == http.StatusOK {
			w.mu.Lock()
			w.puts[v.Title]++
			w.mu.Unlock()
		}
		return
	}
	w.next.ServeHTTP(rw, r)
}

func (w *apiWatch) noteList(r *http.Request) {
	resource, ok := strings.CutPrefix(r.URL.Path, sim.BasePath+"/")
	if !ok || resource == "" || strings.Contains(resource, "/") {
		return
	}
	page, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aim == nil {
		return
	}
	w.lists = append(w.lists, listRequest{at: now, resource: resource, page: page})
	if w.aim.fired != nil && resource == w.aim.resource && page == w.aim.page {
		w.aim.fired <- now
		w.aim.fired = nil
	}
}
