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
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/rockety"
)

var (
	flagProcessItems    = flag.String("process.items", "100000", "comma-separated numbers of tasks the process benchmark measures, each in a rig of its own after a reference run at 1,000")
	flagProcessCycles   = flag.Int("process.cycles", 3, "steady bridge cycles and bare traversals measured at each size (medians are reported)")
	flagProcessInterval = flag.Duration("process.interval", 0, "ROCKETY_POLL_INTERVAL of the measured bridge; 0: max(1s, 4 × the first bare traversal), so a bare traversal fits between two cycles")
	flagProcessUpdate   = flag.String("process.update", "block", "which 10% of the items the mass update changes: block (the first tenth in list order, ids 1..N/10) or spread (every tenth id)")
	flagProcessPutConc  = flag.Int("process.put-concurrency", 64, "PUTs in flight while the mass update is driven")
)

const (
	processPageSize    = 100
	processConcurrency = 4
	referenceItems     = 1000
)

// processResult is what one size measured.
type processResult struct {
	items int
	// cycle vs bare traversal
	interval      time.Duration
	cycles, bares []time.Duration
	clients       []time.Duration // the bridge's own client (rockety.Client.Pages) from the test process
	overlaps      int             // bare traversals that ran into the next bridge cycle
	baseline      time.Duration
	steadyRSS     int64 // median VmRSS through the steady cycles
	steadyRSSMax  int64
	steadyHWM     int64
	rssSamples    int
	gomaxprocs    string
	updateChanged int
	updatePuts    time.Duration
	updateEvents  int
	updateSpan    time.Duration
	updateCycles  []string      // the cycles that published them
	eventSize     int           // mean data bytes of those events
	mirrorWrites  int           // KV writes to the mirror the update made
	mirrorSpan    time.Duration // the first event stored to the last of those writes
	rawEvents     int
	rawSpan       time.Duration // first to last stored
	rawWall       time.Duration // first publish to the last ack
	// resume is a restart in the steady state (no event in the 2 minutes
	// a start replays); resumeAfter, one right after the mass update, its
	// events in that window.
	resume, resumeAfter resumeResult
}

type resumeResult struct {
	lease         time.Duration // process start to the "poll lease" held line
	firstReq      time.Duration // process start to the first API request (the first cycle's traversal begins)
	done          time.Duration // process start to the first cycle's log line
	took          time.Duration // that cycle's took (load included)
	hwmAtFirstReq int64
	hwmAfterCycle int64
	rssAfterCycle int64
}

// TestProcessBench is issue 16's process-level benchmark: the bridge,
// the simulator and nats-server as processes, one rig per size, a
// reference run at 1,000 items first. At each size it measures
//
//   - the bridge's steady full cycles (the took of its "poll cycle" log
//     lines) against a bare traversal of the same pages at the same
//     concurrency from the test process (net/http, the body split into
//     []json.RawMessage), alternated: a bare traversal right after each
//     cycle, in the gap before the next;
//   - the bridge's VmRSS through those cycles (median of samples every
//     250 ms), and its growth per item against the 1,000-item run;
//   - a 10% mass update driven by PUTs to the simulator (it has no bulk
//     update), timed from the first to the last resulting event stored
//     in ROCKETY_EVENTS (message timestamps), against PublishMsgAsync of
//     as many messages of the same mean size to a scratch stream;
//   - the cycle against the bridge's own client alone (rockety.Client.Pages
//     at the same page size and concurrency), run right after each bare
//     traversal: what the diff, the publish and the rest add to the fetch;
//   - a resume, twice: SIGTERM, a new process, the time to its first API
//     request (the first cycle's traversal begins, the state loaded) and
//     its VmHWM on the way; once in the steady state, once right after the
//     mass update, whose events are then in the 2 minutes a start replays.
//
// Run it with
//
//	go test -tags reliability -run ProcessBench -v -timeout 30m ./reliability
//	go test -tags reliability -run ProcessBench -v -timeout 90m ./reliability -process.items 100000,1000000
func TestProcessBench(t *testing.T) {
	var sizes []int
	for s := range strings.SplitSeq(*flagProcessItems, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= referenceItems {
			t.Fatalf("-process.items %q: want whole numbers above %d", *flagProcessItems, referenceItems)
		}
		sizes = append(sizes, n)
	}
	if *flagProcessUpdate != "block" && *flagProcessUpdate != "spread" {
		t.Fatalf("-process.update %q: want block or spread", *flagProcessUpdate)
	}
	l := newRig(t, "process")
	l.build()
	t.Logf("test process: GOMAXPROCS %d, NumCPU %d; the bridge's environment sets no GOMAXPROCS or GOMEMLIMIT; page size %d, page concurrency %d, no rate limit, no API latency, no churn",
		runtime.GOMAXPROCS(0), runtime.NumCPU(), processPageSize, processConcurrency)
	var results []processResult
	for _, n := range append([]int{referenceItems}, sizes...) {
		var r processResult
		ok := t.Run(fmt.Sprintf("items=%d", n), func(t *testing.T) { r = processRun(t, l, n) })
		if !ok {
			break
		}
		results = append(results, r)
	}
	if len(results) == 0 {
		return
	}
	report := processReport(l, results)
	t.Logf("process benchmark:\n%s", report)
	_ = os.WriteFile(filepath.Join(l.dir, "report.md"), []byte(report), 0o644)
}

func processRun(t *testing.T, parent *rig, n int) processResult {
	res := processResult{items: n}
	ctx := context.Background()
	l := subRig(t, parent, fmt.Sprintf("process-%d", n))
	l.startNATS()
	l.startSim("-seed-items", strconv.Itoa(n), "-resources", "tasks", "-latency", "0")

	bare := newBareTraverser(l.api, n)
	first, err := bare.run()
	if err != nil {
		t.Fatal(err)
	}
	res.interval = *flagProcessInterval
	if res.interval == 0 {
		res.interval = max(time.Second, (4 * first).Round(100*time.Millisecond))
	}
	t.Logf("first bare traversal of %d tasks: %s; ROCKETY_POLL_INTERVAL=%s", n, first.Round(time.Millisecond), res.interval)

	env := []string{"ROCKETY_RESOURCES=tasks", "ROCKETY_PAGE_SIZE=" + strconv.Itoa(processPageSize),
		"ROCKETY_PAGE_CONCURRENCY=" + strconv.Itoa(processConcurrency), "ROCKETY_RATE_LIMIT=0",
		"BRIDGE_INITIAL_SYNC=baseline", "ROCKETY_POLL_INTERVAL=" + res.interval.String(), "LOG_LEVEL=debug"}
	b := l.startBridge(env...)
	pid := bridgePid(t, l)
	log := &bridgeLog{path: b.LogPath}
	waitLines := func(what string, k int, timeout time.Duration) {
		t.Helper()
		lab.Wait(t, what, timeout, func() (bool, error) {
			if b.Exited() {
				return false, fmt.Errorf("the bridge exited:\n%s", b.Tail(30))
			}
			log.poll()
			return len(log.cycles) >= k, nil
		})
	}
	waitLines("the baseline cycle", 1, 60*time.Minute)
	res.baseline = log.cycles[0].took
	t.Logf("baseline cycle: took %s, %d pages, %d seen", res.baseline.Round(time.Millisecond), log.cycles[0].pages, log.cycles[0].seen)
	if m, err := l.scrape(); err == nil && m.has("go_sched_gomaxprocs_threads") {
		res.gomaxprocs = strconv.FormatFloat(m.sum("go_sched_gomaxprocs_threads"), 'f', -1, 64)
	}

	// RSS samples through the steady cycles.
	var rssMu sync.Mutex
	var rss []int64
	stopRSS := make(chan struct{})
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-tick.C:
			}
			if v, err := procStatus(pid, "VmRSS"); err == nil {
				rssMu.Lock()
				rss = append(rss, v)
				rssMu.Unlock()
			}
		}
	}()

	// The first cycle after the baseline may start at once (the baseline
	// took longer than the interval): from the second on, a bare
	// traversal runs right after each cycle ends, in the gap before the
	// next.
	cycles := *flagProcessCycles
	waitLines("the first cycle after the baseline", 2, 30*time.Minute)
	type span struct{ from, to time.Time }
	var bareSpans []span
	for i := range cycles {
		from := time.Now()
		d, err := bare.run()
		if err != nil {
			t.Fatal(err)
		}
		res.bares = append(res.bares, d)
		d, err = clientTraversal(l.api, n)
		if err != nil {
			t.Fatal(err)
		}
		res.clients = append(res.clients, d)
		bareSpans = append(bareSpans, span{from, time.Now()})
		waitLines(fmt.Sprintf("steady cycle %d", i+1), 3+i, 30*time.Minute)
	}
	close(stopRSS)
	<-rssDone
	steady := log.cycles[2 : 2+cycles]
	for i, c := range steady {
		res.cycles = append(res.cycles, c.took)
		if c.created+c.updated+c.deleted+c.snapshot != 0 || c.seen != n {
			t.Errorf("steady cycle %d is not a quiet full traversal of %d: %+v", i+1, n, c)
		}
		// The cycle after bare traversal i starts at its end minus took.
		if started := c.ts.Add(-c.took); started.Before(bareSpans[i].to) {
			res.overlaps++
		}
	}
	t.Logf("steady cycles took %v; bare traversals took %v; the bridge's client (rockety.Client.Pages) took %v; %d of these pairs ran into the next cycle",
		res.cycles, res.bares, res.clients, res.overlaps)
	res.rssSamples = len(rss)
	if len(rss) == 0 {
		t.Fatal("no VmRSS sample")
	}
	slices.Sort(rss)
	res.steadyRSS, res.steadyRSSMax = rss[len(rss)/2], rss[len(rss)-1]
	res.steadyHWM, _ = procStatus(pid, "VmHWM")
	t.Logf("VmRSS through the steady cycles: median %s, max %s (%d samples); VmHWM %s",
		mib(res.steadyRSS), mib(res.steadyRSSMax), len(rss), mib(res.steadyHWM))

	// doResume stops the bridge (SIGTERM), starts a new process and times
	// it to its first API request and its first cycle.
	doResume := func(what string) resumeResult {
		t.Helper()
		var rr resumeResult
		if code := b.Stop(time.Minute); code != 0 {
			t.Fatalf("the bridge exited %d after SIGTERM:\n%s", code, b.Tail(30))
		}
		st, err := l.sim.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		requestsBefore := st.Total
		b = l.startBridge(env...)
		started := b.Started
		pid = bridgePid(t, l)
		// Polled every 5 ms (lab.Wait slows to 50 ms): the time is known
		// to about that.
		var hwm int64
		for deadline := time.Now().Add(30 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
			if b.Exited() {
				t.Fatalf("the resumed bridge exited:\n%s", b.Tail(30))
			}
			if time.Now().After(deadline) {
				t.Fatal("the resumed bridge sent no API request in 30 minutes")
			}
			if v, err := procStatus(pid, "VmHWM"); err == nil {
				hwm = v
			}
			if st, err := l.sim.Stats(ctx); err == nil && st.Total > requestsBefore {
				break
			}
		}
		rr.firstReq = time.Since(started)
		if v, err := procStatus(pid, "VmHWM"); err == nil {
			hwm = v
		}
		rr.hwmAtFirstReq = hwm
		log = &bridgeLog{path: b.LogPath}
		waitLines("the resumed bridge's first cycle", 1, 30*time.Minute)
		rr.done = log.cycles[0].ts.Sub(started)
		rr.took = log.cycles[0].took
		if len(log.leases) > 0 {
			rr.lease = log.leases[0].Sub(started)
		}
		rr.hwmAfterCycle, _ = procStatus(pid, "VmHWM")
		rr.rssAfterCycle, _ = procStatus(pid, "VmRSS")
		t.Logf("%s: process start to the poll lease held %s, to the first API request %s, to the first cycle's line %s (its took %s, load included); VmHWM %s at the first request, %s after the first cycle; VmRSS after it %s",
			what, rr.lease.Round(time.Millisecond), rr.firstReq.Round(time.Millisecond), rr.done.Round(time.Millisecond),
			rr.took.Round(time.Millisecond), mib(rr.hwmAtFirstReq), mib(rr.hwmAfterCycle), mib(rr.rssAfterCycle))
		levels, notes := logNotes(b)
		t.Logf("%s: the new bridge's log lines by level %v; warnings and errors: %s", what, levels, formatNotes(notes))
		return rr
	}
	res.resume = doResume("resume")

	// Mass update: 10% of the items by PUT, right after a cycle ends.
	before, err := l.streamLastSeq(eventsStream)
	if err != nil {
		t.Fatal(err)
	}
	kvBefore, err := l.streamLastSeq("KV_" + stateBucket)
	if err != nil {
		t.Fatal(err)
	}
	count := n / 10
	ids := make([]int, count)
	for i := range ids {
		if *flagProcessUpdate == "spread" {
			ids[i] = 10 * (i + 1)
		} else {
			ids[i] = i + 1
		}
	}
	linesBefore := len(log.cycles)
	waitLines("a cycle to end before the mass update", linesBefore+1, 30*time.Minute)
	putStart := time.Now()
	failed := massUpdate(l.api, ids, *flagProcessPutConc)
	res.updatePuts = time.Since(putStart)
	res.updateChanged = count - failed
	if failed > 0 {
		t.Errorf("%d of %d PUTs failed", failed, count)
	}
	t.Logf("mass update: %d PUTs (%s, %d in flight) in %s", count, *flagProcessUpdate, *flagProcessPutConc, res.updatePuts.Round(time.Millisecond))
	lab.Wait(t, "the mass update's events", 30*time.Minute, func() (bool, error) {
		if b.Exited() {
			return false, fmt.Errorf("the bridge exited:\n%s", b.Tail(30))
		}
		last, err := l.streamLastSeq(eventsStream)
		return err == nil && last >= before+uint64(res.updateChanged), nil
	})
	// The cycle that published the last of them, for the record.
	waitLines("the cycle after the mass update", len(log.cycles)+1, 30*time.Minute)
	for _, c := range log.cycles[linesBefore+1:] {
		if c.updated > 0 || c.created > 0 {
			res.updateCycles = append(res.updateCycles, fmt.Sprintf("%d updated in a cycle of %s", c.updated, c.took.Round(time.Millisecond)))
		}
	}
	ev, err := streamSpan(l.js, eventsStream, before+1)
	if err != nil {
		t.Fatal(err)
	}
	res.updateEvents, res.updateSpan = ev.msgs, ev.last.Sub(ev.first)
	res.eventSize = ev.bytes / max(1, ev.msgs)
	kv, err := streamSpan(l.js, "KV_"+stateBucket, kvBefore+1)
	if err != nil {
		t.Fatal(err)
	}
	res.mirrorWrites, res.mirrorSpan = kv.msgs, kv.last.Sub(ev.first)
	t.Logf("mirror writes of the mass update: %d, the last %s after the first event", kv.msgs, res.mirrorSpan.Round(time.Millisecond))
	t.Logf("mass update events: %d stored in %s (first to last), mean data %d B, mean headers %d B; published by: %v",
		ev.msgs, res.updateSpan.Round(time.Millisecond), res.eventSize, ev.headerBytes/max(1, ev.msgs), res.updateCycles)

	// The raw async publish loop, as many messages of the same size.
	res.rawEvents = res.updateEvents
	res.rawSpan, res.rawWall, err = rawPublish(l.js, res.rawEvents, res.eventSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("raw PublishMsgAsync: %d messages of %d B stored in %s (first to last), %s from the first publish to the last ack",
		res.rawEvents, res.eventSize, res.rawSpan.Round(time.Millisecond), res.rawWall.Round(time.Millisecond))

	// Let the bridge settle on the new state (one quiet cycle), then
	// restart it with the update's events in the window a start replays.
	waitLines("a cycle after the raw publish", len(log.cycles)+1, 30*time.Minute)
	res.resumeAfter = doResume("resume after the mass update")
	return res
}

// bareTraverser fetches every page of tasks as the bridge does, and no
// more: a GET with the bearer token, the body read whole and its items
// split into []json.RawMessage, processConcurrency pages in flight.
type bareTraverser struct {
	api    string
	items  int
	client *http.Client
}

func newBareTraverser(api string, items int) *bareTraverser {
	return &bareTraverser{api: api, items: items, client: &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: processConcurrency},
	}}
}

func (b *bareTraverser) run() (time.Duration, error) {
	pages := int64((b.items + processPageSize - 1) / processPageSize)
	var next, seen atomic.Int64
	errs := make([]error, processConcurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range processConcurrency {
		wg.Go(func() {
			for {
				p := next.Add(1)
				if p > pages {
					return
				}
				n, err := b.page(p)
				if err != nil {
					errs[w] = err
					return
				}
				seen.Add(int64(n))
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return took, err
	}
	if int(seen.Load()) != b.items {
		return took, fmt.Errorf("bare traversal saw %d items, want %d", seen.Load(), b.items)
	}
	return took, nil
}

func (b *bareTraverser) page(p int64) (int, error) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/tasks?page=%d&per_page=%d", b.api, p, processPageSize), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("page %d: %s", p, resp.Status)
	}
	var env struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return 0, fmt.Errorf("page %d: %w", p, err)
	}
	return len(env.Data), nil
}

// clientTraversal reads every page of tasks with the bridge's own API
// client, at the bridge's page size and concurrency, and nothing else:
// what the cycle's traversal costs before the diff and the publish.
func clientTraversal(api string, items int) (time.Duration, error) {
	c, err := rockety.New(api, rockety.WithToken(token), rockety.WithAllowInsecure(true),
		rockety.WithPageSize(processPageSize), rockety.WithPageConcurrency(processConcurrency))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	seen := 0
	for p, err := range c.Pages(context.Background(), "tasks") {
		if err != nil {
			return 0, err
		}
		seen += len(p.Items)
	}
	took := time.Since(start)
	if seen != items {
		return took, fmt.Errorf("the client's traversal saw %d items, want %d", seen, items)
	}
	return took, nil
}

// massUpdate PUTs a new title to each task of ids, conc at a time, and
// returns how many failed.
func massUpdate(api string, ids []int, conc int) int {
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(ids)) {
					return
				}
				body := fmt.Sprintf(`{"title":"Mass update %d"}`, ids[i])
				req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/tasks/%d", api, ids[i]), strings.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// spanOf is what streamSpan read: the messages from a sequence on, the
// first and last stored timestamps, and their sizes.
type spanOf struct {
	msgs               int
	first, last        time.Time
	bytes, headerBytes int
}

// streamSpan reads a stream's messages from seq on.
func streamSpan(js jetstream.JetStream, stream string, seq uint64) (spanOf, error) {
	var out spanOf
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return out, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return out, err
	}
	if info.State.LastSeq < seq {
		return out, nil
	}
	total := int(info.State.LastSeq - seq + 1)
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq})
	if err != nil {
		return out, err
	}
	read := 0
	for read < total {
		// Only what was there at the start: cycle reports keep coming.
		batch, err := cons.Fetch(min(1000, total-read), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return out, err
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			read++
			// The stream holds the cycle reports too: they are not the
			// events measured.
			if strings.Contains(msg.Subject(), ".cycles.") {
				continue
			}
			md, err := msg.Metadata()
			if err != nil {
				return out, err
			}
			if out.msgs == 0 || md.Timestamp.Before(out.first) {
				out.first = md.Timestamp
			}
			if md.Timestamp.After(out.last) {
				out.last = md.Timestamp
			}
			out.msgs++
			out.bytes += len(msg.Data())
			for k, vs := range msg.Headers() {
				for _, v := range vs {
					out.headerBytes += len(k) + len(v) + 4
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return out, err
		}
		if n == 0 {
			break
		}
	}
	if read != total {
		return out, fmt.Errorf("read %d of the %d messages of %s from %d", read, total, stream, seq)
	}
	return out, nil
}

// rawPublish publishes n messages of size bytes, each with a Nats-Msg-Id
// as the bridge's events have, with PublishMsgAsync to a scratch stream
// stored as the events stream is (file storage, the default duplicate
// window), and returns the time from the first to the last stored and
// from the first publish to the last ack.
func rawPublish(js jetstream.JetStream, n, size int) (stored, wall time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const name = "BENCH_RAW_PUBLISH"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"benchraw.>"},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Duplicates: 2 * time.Minute}); err != nil {
		return 0, 0, err
	}
	defer func() { _ = js.DeleteStream(context.Background(), name) }()
	payload := bytes.Repeat([]byte("x"), size)
	start := time.Now()
	for i := range n {
		msg := nats.NewMsg("benchraw.tasks.updated")
		msg.Data = payload
		msg.Header.Set(jetstream.MsgIDHeader, "raw-"+strconv.Itoa(i))
		if _, err := js.PublishMsgAsync(msg); err != nil {
			return 0, 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	wall = time.Since(start)
	sp, err := streamSpan(js, name, 1)
	if err != nil {
		return 0, 0, err
	}
	if sp.msgs != n {
		return 0, 0, fmt.Errorf("the scratch stream holds %d messages, want %d", sp.msgs, n)
	}
	return sp.last.Sub(sp.first), wall, nil
}

// cycleLine is one "poll cycle" line of a bridge's JSON log.
type cycleLine struct {
	ts                                               time.Time
	took                                             time.Duration
	kind                                             string
	pages, seen, created, updated, deleted, snapshot int
}

// bridgeLog follows a bridge's JSON log: its "poll cycle" lines and the
// times it logged its poll lease held.
type bridgeLog struct {
	path   string
	off    int64
	cycles []cycleLine
	leases []time.Time
}

func (g *bridgeLog) poll() {
	f, err := os.Open(g.path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(g.off, io.SeekStart); err != nil {
		return
	}
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return // a partial line is read again next time
		}
		g.off += int64(len(line))
		var v struct {
			TS       string  `json:"time"`
			Msg      string  `json:"msg"`
			Took     float64 `json:"took"`
			Kind     string  `json:"kind"`
			Held     bool    `json:"held"`
			Pages    int     `json:"pages"`
			Seen     int     `json:"seen"`
			Created  int     `json:"created"`
			Updated  int     `json:"updated"`
			Deleted  int     `json:"deleted"`
			Snapshot int     `json:"snapshot"`
		}
		if json.Unmarshal(line, &v) != nil {
			continue
		}
		ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", v.TS)
		if err != nil {
			continue
		}
		switch {
		case v.Msg == "poll cycle":
			g.cycles = append(g.cycles, cycleLine{ts: ts, took: time.Duration(v.Took * float64(time.Second)), kind: v.Kind,
				pages: v.Pages, seen: v.Seen, created: v.Created, updated: v.Updated, deleted: v.Deleted, snapshot: v.Snapshot})
		case v.Msg == "poll lease" && v.Held:
			g.leases = append(g.leases, ts)
		}
	}
}

// bridgePid finds the running rockety-bridge child of this test process
// (lab.Process does not expose its pid): the child whose executable is
// the rig's bridge binary and that is not a zombie.
func bridgePid(t *testing.T, l *rig) int {
	t.Helper()
	want := filepath.Join(l.bin, lab.BridgeBin)
	var pid int
	lab.WaitFor(t, "the bridge's pid", 10*time.Second, func() bool {
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			exe, err := os.Readlink(d + "/exe")
			if err != nil || exe != want {
				continue
			}
			stat, err := os.ReadFile(d + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...
			rest := stat[bytes.LastIndexByte(stat, ')')+2:]
			f := strings.Fields(string(rest))
			if len(f) < 2 || f[0] == "Z" || f[1] != strconv.Itoa(os.Getpid()) {
				continue
			}
			pid, _ = strconv.Atoi(filepath.Base(d))
			return true
		}
		return false
	})
	return pid
}

// procStatus reads a kB field of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func processReport(l *rig, rs []processResult) string {
	var b strings.Builder
	ref := rs[0]
	fmt.Fprintf(&b, "source %s; seed %d; test GOMAXPROCS %d (NumCPU %d); bridge GOMAXPROCS %s; page size %d, page concurrency %d, no rate limit, no API latency; mass update: %s\n\n",
		l.source, l.seed, runtime.GOMAXPROCS(0), runtime.NumCPU(), orUnknown(ref.gomaxprocs), processPageSize, processConcurrency, *flagProcessUpdate)
	b.WriteString("| items | interval | bridge cycle (median) | bare traversal (median) | cycle / bare | the bridge's client alone (median) | cycle / client | steady VmRSS (median; max) | RSS growth per item vs 1,000 | mass update events/s | raw async publish events/s | ratio |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		c, bt, ct := median(r.cycles), median(r.bares), median(r.clients)
		growth := "(reference)"
		if r.items != ref.items {
			growth = fmt.Sprintf("%.0f B", float64(r.steadyRSS-ref.steadyRSS)/float64(r.items-ref.items))
		}
		upd := float64(r.updateEvents) / max(r.updateSpan.Seconds(), 1e-3)
		raw := float64(r.rawEvents) / max(r.rawSpan.Seconds(), 1e-3)
		fmt.Fprintf(&b, "| %d | %s | %s %v | %s %v | %.2f× | %s %v | %.2f× | %s; %s | %s | %.0f (%d in %s) | %.0f (%d in %s; wall %s) | %.2f× |\n",
			r.items, r.interval, c.Round(time.Millisecond), roundAll(r.cycles), bt.Round(time.Millisecond), roundAll(r.bares),
			c.Seconds()/bt.Seconds(), ct.Round(time.Millisecond), roundAll(r.clients), c.Seconds()/ct.Seconds(), mib(r.steadyRSS), mib(r.steadyRSSMax), growth,
			upd, r.updateEvents, r.updateSpan.Round(time.Millisecond), raw, r.rawEvents, r.rawSpan.Round(time.Millisecond), r.rawWall.Round(time.Millisecond), upd/raw)
	}
	b.WriteString("\n| items | resume | start to poll lease held | start to first API request (first cycle begins) | start to first cycle done (its took) | VmHWM at first request | VmHWM after first cycle | steady VmRSS | peak / steady |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		for _, x := range []struct {
			what string
			rr   resumeResult
		}{{"steady", r.resume}, {"after the mass update", r.resumeAfter}} {
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s (%s) | %s | %s | %s | %.2f× |\n", r.items, x.what, x.rr.lease.Round(time.Millisecond),
				x.rr.firstReq.Round(time.Millisecond), x.rr.done.Round(time.Millisecond), x.rr.took.Round(time.Millisecond),
				mib(x.rr.hwmAtFirstReq), mib(x.rr.hwmAfterCycle), mib(r.steadyRSS), float64(x.rr.hwmAfterCycle)/float64(r.steadyRSS))
		}
	}
	b.WriteString("\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "- %d items: baseline cycle %s; %d bare traversals ran into the next cycle; %d VmRSS samples; VmHWM after the steady cycles %s; mass update %d PUTs in %s, published by %v, mean event data %d B; %d mirror writes, the last %s after the first event (%.0f changes/s end to end)\n",
			r.items, r.baseline.Round(time.Millisecond), r.overlaps, r.rssSamples, mib(r.steadyHWM), r.updateChanged,
			r.updatePuts.Round(time.Millisecond), r.updateCycles, r.eventSize, r.mirrorWrites, r.mirrorSpan.Round(time.Millisecond),
			float64(r.mirrorWrites)/max(r.mirrorSpan.Seconds(), 1e-3))
	}
	return b.String()
}

func roundAll(d []time.Duration) []time.Duration {
	out := make([]time.Duration, len(d))
	for i, x := range d {
		out[i] = x.Round(time.Millisecond)
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "(not in /metrics)"
	}
	return s
}
