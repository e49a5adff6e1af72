//go:build reliability

package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
	"github.com/rockety-io/rockety-bridge/schemas"
)

var (
	flagSeed = flag.Int64("seed", 0, "seed of the simulator's data and churn and of the test's random choices; 0 picks one from the clock")
	flagKeep = flag.Bool("keep", false, "keep the work directory (logs, NATS store, events, mutations) even when the test passes")
	// Incremental mode: every bridge polls with ROCKETY_CHANGED_SINCE, so
	// its cycles are incremental ones (one request when nothing changed)
	// with a full traversal, the only source of deletes, now and then.
	flagIncremental     = flag.Bool("incremental", false, "poll incrementally: ROCKETY_CHANGED_SINCE=*:updated_since, with a full traversal every -incremental.full")
	flagRateLimit       = flag.Float64("ratelimit", 0, "ROCKETY_RATE_LIMIT of the bridges (0: unlimited); above 0 every request is taken from the budget shared through NATS, so kills land in the middle of its takes too")
	flagIncrementalFull = flag.Duration("incremental.full", 20*time.Second, "ROCKETY_FULL_SYNC_INTERVAL with -incremental")
)

const (
	token        = "reliability-token"
	instanceID   = "reliability"
	eventsStream = "ROCKETY_EVENTS"
	stateBucket  = "ROCKETY_STATE"
)

var subjects = events.MustSubjects("rockety")

// rig is one test's work directory, binaries and processes: nats-server,
// rockety-sim and, one at a time, rockety-bridge. The directory is kept when
// the test fails (or with -keep): it holds every process's log, the NATS
// store, the events and the mutation log.
type rig struct {
	t        *testing.T
	dir      string
	bin      string
	seed     int64
	rnd      *rand.Rand
	natsURL  string
	simRoot  string // the simulator's URL without the API path
	api      string // the API base URL the bridge uses
	sim      *sim.Remote
	httpAddr string // the bridge's /metrics
	nc       *nats.Conn
	js       jetstream.JetStream
	bridges  int    // bridge processes started
	source   string // the commit the binaries were built from
}

func newRig(t *testing.T, name string) *rig {
	t.Helper()
	seed := *flagSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000
	}
	dir, err := os.MkdirTemp("", "rockety-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	l := &rig{t: t, dir: dir, bin: filepath.Join(dir, "bin"), seed: seed, rnd: rand.New(rand.NewPCG(uint64(seed), 7))}
	t.Logf("seed %d (rerun with -seed %d); work directory %s", seed, seed, dir)
	t.Cleanup(func() {
		if l.nc != nil {
			l.nc.Close()
		}
		l.scanForToken()
		if t.Failed() || *flagKeep {
			t.Logf("the evidence is kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return l
}

// build compiles the binaries into the work directory.
func (l *rig) build() {
	l.t.Helper()
	start := time.Now()
	lab.Build(l.t, l.bin)
	l.source = sourceVersion()
	l.t.Logf("built rockety-bridge, rockety-sim and nats-server from %s in %s", l.source, time.Since(start).Round(time.Second))
}

// sourceVersion names the commit the working tree is at, and whether Go
// files differ from it, so a report says what code it measured.
func sourceVersion() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "an unknown commit"
	}
	v := "commit " + strings.TrimSpace(string(out))
	changed, err := exec.Command("git", "status", "--porcelain", "--", ":/*.go").Output()
	if err == nil && len(bytes.TrimSpace(changed)) > 0 {
		v += fmt.Sprintf(" with %d Go files changed", len(bytes.Split(bytes.TrimSpace(changed), []byte("\n"))))
	}
	return v
}

// startNATS starts nats-server with JetStream and a store in the work
// directory, and connects to it.
func (l *rig) startNATS() {
	l.t.Helper()
	addr := lab.FreeAddr(l.t)
	host, port, _ := net.SplitHostPort(addr)
	l.natsURL = "nats://" + addr
	l.start("nats-server", nil, "nats-server", "-js", "-a", host, "-p", port, "-sd", filepath.Join(l.dir, "nats"))
	lab.Wait(l.t, "nats-server", 30*time.Second, func() (bool, error) {
		nc, err := nats.Connect(l.natsURL, nats.Timeout(time.Second))
		if err != nil {
			return false, nil
		}
		l.nc = nc
		return true, nil
	})
	var err error
	if l.js, err = jetstream.New(l.nc); err != nil {
		l.t.Fatal(err)
	}
}

// startSim starts rockety-sim with churn off, the whole log kept, and args.
func (l *rig) startSim(args ...string) {
	l.t.Helper()
	addr := lab.FreeAddr(l.t)
	l.simRoot = "http://" + addr
	l.api = l.simRoot + sim.BasePath
	l.sim = sim.NewRemote(l.simRoot, token)
	l.start("rockety-sim", nil, "rockety-sim", append([]string{"-addr", addr, "-token", token,
		"-seed", strconv.FormatInt(l.seed, 10), "-churn", "0", "-log-limit", "0"}, args...)...)
	lab.Wait(l.t, "rockety-sim", 60*time.Second, func() (bool, error) {
		_, err := l.sim.LastSeq(context.Background())
		return err == nil, nil
	})
	l.httpAddr = lab.FreeAddr(l.t)
}

// startBridge starts `rockety-bridge run` against the lab's NATS and
// simulator, with a fixed instance id so a restarted process takes its own
// lease over at once. env adds to or overrides the defaults.
func (l *rig) startBridge(env ...string) *lab.Process {
	l.t.Helper()
	return l.startBridgeAs("", env...)
}

// startBridgeAs is startBridge with the replica's name in the log's name
// (bridge-007-pod-a.log), so each log says whose process it was.
func (l *rig) startBridgeAs(replica string, env ...string) *lab.Process {
	l.t.Helper()
	l.bridges++
	base := []string{
		"ROCKETY_API_URL=" + l.api, "ROCKETY_API_TOKEN=" + token, "ROCKETY_ALLOW_INSECURE=true",
		"ROCKETY_POLL_INTERVAL=1s", "ROCKETY_RATE_LIMIT=" + strconv.FormatFloat(*flagRateLimit, 'f', -1, 64),
		"NATS_URL=" + l.natsURL, "BRIDGE_HTTP_ADDR=" + l.httpAddr, "BRIDGE_INSTANCE_ID=" + instanceID,
		"BRIDGE_INITIAL_SYNC=baseline", "LOG_LEVEL=debug", "LOG_FORMAT=json",
	}
	if *flagDeleteRetention > 0 {
		base = append(base, "BRIDGE_DELETE_RETENTION="+flagDeleteRetention.String())
	}
	if *flagIncremental {
		base = append(base, "ROCKETY_CHANGED_SINCE=*:updated_since", "ROCKETY_CHANGED_SINCE_LOOKBACK=2s",
			"ROCKETY_FULL_SYNC_INTERVAL="+flagIncrementalFull.String())
	}
	name := fmt.Sprintf("bridge-%03d", l.bridges)
	if replica != "" {
		name += "-" + replica
	}
	return l.start(name, append(base, env...), "rockety-bridge", "run")
}

// start runs one of the built binaries, its log in the work directory.
func (l *rig) start(name string, env []string, bin string, args ...string) *lab.Process {
	l.t.Helper()
	return lab.Start(l.t, l.dir, name, env, filepath.Join(l.bin, bin), args...)
}

// logLines yields the lines of a bridge's log; none when it cannot be
// read.
func logLines(p *lab.Process) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		f, err := os.Open(p.LogPath)
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			if !yield(sc.Bytes()) {
				return
			}
		}
	}
}

// cycleCounts counts the poll cycles a bridge's JSON log reports, by
// outcome: ok, failed, cut short (by shutdown); and the complete ones by
// kind ("ok full", "ok incremental").
func cycleCounts(p *lab.Process) map[string]int {
	out := map[string]int{}
	for raw := range logLines(p) {
		var line struct {
			Msg  string `json:"msg"`
			Kind string `json:"kind"`
		}
		if json.Unmarshal(raw, &line) != nil {
			continue
		}
		switch {
		case line.Msg == "poll cycle":
			out["ok"]++
			out["ok "+line.Kind]++
		case strings.HasPrefix(line.Msg, "poll cycle failed"):
			out["failed"]++
		case strings.HasPrefix(line.Msg, "poll cycle cut short"):
			out["cut short"]++
		case strings.HasPrefix(line.Msg, "mass-delete guard"):
			out["mass-delete guard"]++
		}
	}
	return out
}

// metrics are the samples of one /metrics scrape.
type metrics []sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads the bridge's /metrics (Prometheus text format).
// scrapeRunning scrapes b, which must still be running.
func (l *rig) scrapeRunning(t *testing.T, b *lab.Process) metrics {
	t.Helper()
	if b.Exited() {
		t.Fatalf("the bridge exited:\n%s", b.Tail(40))
	}
	m, err := l.scrape()
	if err != nil {
		t.Fatalf("scraping the bridge: %v", err)
	}
	return m
}

func (l *rig) scrape() (metrics, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + l.httpAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(body, []byte(token)) {
		l.t.Errorf("the API token appears in the bridge's /metrics")
	}
	var out metrics
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		s := sample{name: line[:i], labels: map[string]string{}, value: v}
		if name, rest, ok := strings.Cut(s.name, "{"); ok {
			s.name = name
			for pair := range strings.SplitSeq(strings.TrimSuffix(rest, "}"), ",") {
				if k, v, ok := strings.Cut(pair, "="); ok {
					s.labels[k] = strings.Trim(v, `"`)
				}
			}
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// matches reports whether s is a series of name whose labels include
// match, given as label, value, label, value...
func (s sample) matches(name string, match ...string) bool {
	if s.name != name {
		return false
	}
	for i := 0; i+1 < len(match); i += 2 {
		if s.labels[match[i]] != match[i+1] {
			return false
		}
	}
	return true
}

// sum adds the samples of name whose labels include match.
func (m metrics) sum(name string, match ...string) float64 {
	total := 0.0
	for _, s := range m {
		if s.matches(name, match...) {
			total += s.value
		}
	}
	return total
}

// has reports whether a series of name with labels match exists.
func (m metrics) has(name string, match ...string) bool {
	for _, s := range m {
		if s.matches(name, match...) {
			return true
		}
	}
	return false
}

// okCycles returns each resource's count of complete cycles of the running
// bridge (of one kind, unless kind is empty), -1 where the bridge has not
// reported the resource yet.
func (l *rig) okCycles(resources []string, kind string) ([]float64, error) {
	m, err := l.scrape()
	if err != nil {
		return nil, err
	}
	match := []string{"outcome", "ok"}
	if kind != "" {
		match = append(match, "kind", kind)
	}
	out := make([]float64, len(resources))
	for i, r := range resources {
		out[i] = -1
		if m.has("rockety_bridge_poll_cycles_total", append([]string{"resource", r}, match...)...) {
			out[i] = m.sum("rockety_bridge_poll_cycles_total", append([]string{"resource", r}, match...)...)
		}
	}
	return out, nil
}

// settleCycles waits for n more complete cycles that can publish deletes:
// full traversals in incremental mode, any cycle otherwise.
func (l *rig) settleCycles(bridge *lab.Process, resources []string, n int, timeout time.Duration) {
	l.t.Helper()
	kind := ""
	if *flagIncremental {
		kind = "full"
	}
	l.waitCyclesOf(bridge, resources, kind, n, timeout)
}

// waitCycles waits until the running bridge has completed n more cycles of
// every resource than it had when called (counting from 0 when it had not
// reported a resource yet). A cycle counted here started after the call
// settled lets bridge complete n more cycles of every resource during
// which the API did not change, and returns the API's items and its log
// position then.
func (l *rig) settled(bridge *lab.Process, resources []string, n int, timeout time.Duration) (map[judge.Key]json.RawMessage, uint64) {
	l.t.Helper()
	for {
		before, err := l.sim.LastSeq(context.Background())
		if err != nil {
			l.t.Fatal(err)
		}
		l.settleCycles(bridge, resources, n, timeout)
		final, seq := l.snapshotItems(resources)
		if seq == before {
			return final, seq
		}
		l.t.Logf("the API changed while settling (log %d, then %d); settling again", before, seq)
	}
}

// when n >= 2.
func (l *rig) waitCycles(bridge *lab.Process, resources []string, n int, timeout time.Duration) {
	l.t.Helper()
	l.waitCyclesOf(bridge, resources, "", n, timeout)
}

func (l *rig) waitCyclesOf(bridge *lab.Process, resources []string, kind string, n int, timeout time.Duration) {
	l.t.Helper()
	var from []float64
	lab.Wait(l.t, "the bridge's metrics", timeout, func() (bool, error) {
		if bridge.Exited() {
			return false, fmt.Errorf("the bridge exited:\n%s", bridge.Tail(30))
		}
		c, err := l.okCycles(resources, kind)
		from = c
		return err == nil, nil
	})
	what := fmt.Sprintf("%d complete cycles of %v", n, resources)
	if kind != "" {
		what = fmt.Sprintf("%d complete %s cycles of %v", n, kind, resources)
	}
	lab.Wait(l.t, what, timeout, func() (bool, error) {
		if bridge.Exited() {
			return false, fmt.Errorf("the bridge exited:\n%s", bridge.Tail(30))
		}
		c, err := l.okCycles(resources, kind)
		if err != nil {
			return false, nil
		}
		for i := range c {
			if c[i] < max(from[i], 0)+float64(n) {
				return false, nil
			}
		}
		return true, nil
	})
}

// snapshotItems reads every resource's items from the simulator, at one log
// position, which it returns.
func (l *rig) snapshotItems(resources []string) (map[judge.Key]json.RawMessage, uint64) {
	l.t.Helper()
	out := map[judge.Key]json.RawMessage{}
	var seq uint64
	for i, r := range resources {
		items, s, err := l.sim.Items(context.Background(), r)
		if err != nil {
			l.t.Fatal(err)
		}
		if i > 0 && s != seq {
			l.t.Fatalf("the simulator changed while its items were read (log at %d, then %d): stop churn first", seq, s)
		}
		seq = s
		for _, it := range items {
			var v struct {
				ID json.Number `json:"id"`
			}
			if err := json.Unmarshal(it, &v); err != nil {
				l.t.Fatalf("%s item %s: %v", r, it, err)
			}
			out[judge.Key{Resource: r, ID: v.ID.String()}] = it
		}
	}
	return out, seq
}

// streamLastSeq returns a stream's last sequence.
func (l *rig) streamLastSeq(name string) (uint64, error) {
	st, err := l.streamState(name)
	return st.LastSeq, err
}

// streamMsgs returns how many messages a stream holds.
func (l *rig) streamMsgs(name string) (uint64, error) {
	st, err := l.streamState(name)
	return st.Msgs, err
}

// eventMsgs returns how many change events the events stream holds: its
// results and cycle reports left out.
func (l *rig) eventMsgs() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := l.js.Stream(ctx, eventsStream)
	if err != nil {
		return 0, err
	}
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{FilterSubject: subjects.Events(), AckPolicy: jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second})
	if err != nil {
		return 0, err
	}
	defer func() { _ = st.DeleteConsumer(context.WithoutCancel(ctx), cons.CachedInfo().Name) }()
	return cons.CachedInfo().NumPending, nil
}

func (l *rig) streamState(name string) (jetstream.StreamState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := l.js.Stream(ctx, name)
	if err != nil {
		return jetstream.StreamState{}, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return jetstream.StreamState{}, err
	}
	return info.State, nil
}

// readStream reads every change event and command result in the events
// stream, checks each event against the contract (headers, body, JSON
// Schema) and writes them all to events.jsonl in the work directory.
func (l *rig) readStream() (evs []judge.Observed, results map[string][]events.Result) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	results = map[string][]events.Result{}
	f, err := os.Create(filepath.Join(l.dir, "events.jsonl"))
	if err != nil {
		l.t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	defer w.Flush()
	total, err := l.streamMsgs(eventsStream)
	if err != nil {
		l.t.Fatal(err)
	}
	if total == 0 {
		return nil, results
	}
	cons, err := l.js.OrderedConsumer(ctx, eventsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		l.t.Fatal(err)
	}
	var read uint64
	for read < total {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			l.t.Fatal(err)
		}
		n := 0
		pending := uint64(1)
		for msg := range batch.Messages() {
			n++
			read++
			md, err := msg.Metadata()
			if err != nil {
				l.t.Fatal(err)
			}
			pending = md.NumPending
			subj := msg.Subject()
			fmt.Fprintf(w, "{\"seq\":%d,\"subject\":%q,\"msg_id\":%q,\"data\":%s}\n", md.Sequence.Stream, subj,
				msg.Headers().Get(jetstream.MsgIDHeader), msg.Data())
			switch {
			case strings.HasPrefix(subj, subjects.Prefix()+".cycles."):
				if err := schemas.ValidateCycleReport(msg.Data()); err != nil {
					l.t.Errorf("cycle report at stream seq %d breaks the schema: %v", md.Sequence.Stream, err)
				}
			case strings.HasPrefix(subj, subjects.Prefix()+".results."):
				var res events.Result
				if err := json.Unmarshal(msg.Data(), &res); err != nil {
					l.t.Errorf("result at stream seq %d: %v", md.Sequence.Stream, err)
					continue
				}
				results[res.CommandID] = append(results[res.CommandID], res)
			default:
				if err := schemas.ValidateEvent(msg.Data()); err != nil {
					l.t.Errorf("event at stream seq %d breaks the schema: %v", md.Sequence.Stream, err)
				}
				e, _, err := events.DecodeStream(msg)
				if err != nil {
					l.t.Errorf("event at stream seq %d: %v", md.Sequence.Stream, err)
					continue
				}
				evs = append(evs, judge.Observed{Seq: md.Sequence.Stream, MsgID: msg.Headers().Get(jetstream.MsgIDHeader), Event: e})
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			l.t.Fatal(err)
		}
		if n == 0 || pending == 0 {
			break
		}
	}
	if read != total {
		l.t.Fatalf("read %d messages of the %d in %s", read, total, eventsStream)
	}
	return evs, results
}

// readMirror reads the live items of the bridge's mirror (KV ROCKETY_STATE).
func (l *rig) readMirror(resources []string) map[judge.Key]json.RawMessage {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kv, err := l.js.KeyValue(ctx, stateBucket)
	if err != nil {
		l.t.Fatal(err)
	}
	out := map[judge.Key]json.RawMessage{}
	for _, r := range resources {
		w, err := kv.Watch(ctx, r+".>", jetstream.IgnoreDeletes())
		if err != nil {
			l.t.Fatal(err)
		}
		for e := range w.Updates() {
			if e == nil {
				break
			}
			res, id, err := events.ParseStateKey(e.Key())
			if err != nil {
				l.t.Errorf("mirror key %q: %v", e.Key(), err)
				continue
			}
			out[judge.Key{Resource: res, ID: id}] = e.Value()
		}
		_ = w.Stop()
	}
	return out
}

// mutations reads the simulator's log after seq and writes it to
// mutations.jsonl in the work directory.
func (l *rig) mutations(since uint64) []sim.Mutation {
	l.t.Helper()
	f, err := os.Create(filepath.Join(l.dir, "mutations.jsonl"))
	if err != nil {
		l.t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	defer w.Flush()
	enc := json.NewEncoder(w)
	var out []sim.Mutation
	if _, err := l.sim.EachMutation(context.Background(), since, func(m sim.Mutation) error {
		out = append(out, m)
		return enc.Encode(m)
	}); err != nil {
		l.t.Fatal(err)
	}
	return out
}

// opCounts formats counts by op in a fixed order.
func opCounts[K ~string](m map[K]int, ops ...K) string {
	parts := make([]string, 0, len(ops))
	for _, op := range ops {
		parts = append(parts, fmt.Sprintf("%s %d", op, m[op]))
	}
	return strings.Join(parts, ", ")
}

// scanForToken fails the test if the API token appears in anything a
// bridge process wrote: every log line of every bridge, across every kill,
// fault and restart of the run.
func (l *rig) scanForToken() {
	logs, _ := filepath.Glob(filepath.Join(l.dir, "bridge-*.log"))
	for _, name := range logs {
		data, err := os.ReadFile(name)
		if err != nil {
			l.t.Errorf("reading %s for the token scan: %v", name, err)
			continue
		}
		if bytes.Contains(data, []byte(token)) {
			l.t.Errorf("the API token appears in %s", filepath.Base(name))
		}
	}
	l.t.Logf("token scan: %d bridge logs, the token in none unless said above", len(logs))
}

// outcomeRows are the report rows both long runs share: what happened, and
// every way the events could be wrong.
func outcomeRows(r judge.Report, mutations, evs int, churnStopped, finalSeq uint64, mirrorDiffs int) [][2]string {
	dupIDs := 0
	for _, p := range r.Problems {
		if p.Kind == judge.Duplicate && strings.HasPrefix(p.What, "event id") {
			dupIDs++
		}
	}
	return [][2]string{
		{"mutations after the baseline", fmt.Sprintf("%d: %s (churn stopped at %d, last %d)", mutations,
			opCounts(r.Mutations, sim.OpCreated, sim.OpUpdated, sim.OpDeleted), churnStopped, finalSeq)},
		{"change events", fmt.Sprintf("%d: %s", evs, opCounts(r.Events, events.OpCreated, events.OpUpdated, events.OpDeleted, events.OpSnapshot))},
		{"items compared / changed in net", fmt.Sprintf("%d / %d", r.Items, r.Changed)},
		{"delay from a mutation to the event reporting it: median / p99 / max", fmt.Sprintf("%s / %s / %s",
			r.Delay(0.5).Round(time.Millisecond), r.Delay(0.99).Round(time.Millisecond), r.Delay(1).Round(time.Millisecond))},
		{"duplicates (event id twice / change twice)", fmt.Sprintf("%d / %d", dupIDs, r.Count(judge.Duplicate)-dupIDs)},
		{"lost changes", strconv.Itoa(r.Count(judge.Lost))},
		{"false deletes", strconv.Itoa(r.Count(judge.FalseDelete))},
		{"invented or out-of-step events", strconv.Itoa(r.Count(judge.Invented) + r.Count(judge.OutOfStep))},
		{"mirror items differing from the API", strconv.Itoa(mirrorDiffs)},
	}
}

// verdict is what a run's events, mirror and mutation log came to.
type verdict struct {
	report      judge.Report
	evs         []judge.Observed
	results     map[string][]events.Result // command results by command id
	muts        []sim.Mutation
	mirrorDiffs []string
}

// judge reads the events stream, the mutation log after baseSeq and the
// mirror, and holds them to the truth.
func (l *rig) judge(t *testing.T, resources []string, baseline map[judge.Key]json.RawMessage, baseSeq uint64,
	final map[judge.Key]json.RawMessage, finalSeq uint64) verdict {
	t.Helper()
	evs, results := l.readStream()
	muts := l.mutations(baseSeq)
	if len(muts) == 0 || muts[len(muts)-1].Seq != finalSeq {
		t.Fatalf("the mutation log after %d does not end at the final position %d", baseSeq, finalSeq)
	}
	return verdict{
		report:      judge.Compare(judge.Truth{Baseline: baseline, Mutations: muts, Final: final}, evs),
		evs:         evs,
		results:     results,
		muts:        muts,
		mirrorDiffs: judge.Mirror(l.readMirror(resources), final),
	}
}

// pollingMode says how the bridges polled, for the reports.
func pollingMode() string {
	if *flagIncremental {
		return fmt.Sprintf(" (incremental polling, a full traversal every %s)", *flagIncrementalFull)
	}
	return " (full traversals only)"
}
