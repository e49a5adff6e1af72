package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/lab"
)

func apiDo(t *testing.T, method, url string, body any) map[string]any {
	t.Helper()
	var r *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Authorization", "Bearer e2e-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d", method, url, resp.StatusCode)
	}
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out
}

// TestEndToEndProcesses runs rockety-sim, nats-server and rockety-bridge as
// separate processes, changes data through the simulator's API and reads
// the matching events from NATS. It then stops the bridge with SIGTERM in
// the middle of a slow cycle, restarts it, and checks that every change
// arrived exactly once across the two runs.
// processes builds the three binaries as a user runs them and starts
// nats-server with JetStream; start runs more of them, each logging to a
// file of its own.
func processes(t *testing.T) (bin string, start func(name string, env []string, binary string, args ...string) *lab.Process, natsURL string) {
	t.Helper()
	bin, logs := t.TempDir(), t.TempDir()
	lab.Build(t, bin)
	start = func(name string, env []string, binary string, args ...string) *lab.Process {
		return lab.Start(t, logs, name, env, filepath.Join(bin, binary), args...)
	}
	natsAddr := lab.FreeAddr(t)
	_, natsPort, _ := strings.Cut(natsAddr, ":")
	start("nats-server", nil, lab.NATSBin, "-js", "-a", "127.0.0.1", "-p", natsPort, "-sd", t.TempDir())
	return bin, start, "nats://" + natsAddr
}

func TestEndToEndProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three binaries; skipped with -short")
	}
	_, start, natsURL := processes(t)
	simAddr, httpAddr := lab.FreeAddr(t), lab.FreeAddr(t)
	simProc := start("rockety-sim", nil, lab.SimBin, "-addr", simAddr, "-token", "e2e-token",
		"-seed-items", "300", "-churn", "0", "-resources", "tasks")
	api := "http://" + simAddr + "/api/v1"
	bridgeEnv := []string{
		"ROCKETY_API_URL=" + api, "ROCKETY_API_TOKEN=e2e-token", "ROCKETY_ALLOW_INSECURE=true",
		"ROCKETY_RESOURCES=tasks", "ROCKETY_POLL_INTERVAL=1s", "ROCKETY_PAGE_SIZE=10", "ROCKETY_PAGE_CONCURRENCY=1",
		"NATS_URL=" + natsURL, "BRIDGE_HTTP_ADDR=" + httpAddr, "BRIDGE_INSTANCE_ID=e2e", "LOG_FORMAT=console",
	}
	bridge := start("bridge-1", bridgeEnv, lab.BridgeBin, "run")
	lab.WaitFor(t, "the bridge's first cycle", 30*time.Second, func() bool {
		_, body := get(t, "http://"+httpAddr+"/metrics")
		return strings.Contains(body, `rockety_bridge_last_successful_cycle_timestamp_seconds{resource="tasks"}`)
	})
	_ = simProc

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, "ROCKETY_EVENTS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"rockety.events.>"}})
	if err != nil {
		t.Fatal(err)
	}
	received := map[string]int{} // "op id" -> times
	total := 0
	read := func(want int, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for total < want && time.Now().Before(deadline) {
			msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				continue
			}
			e, _, err := events.DecodeStream(msg)
			if err != nil {
				t.Fatalf("event %s: %v", msg.Subject(), err)
			}
			received[string(e.Op)+" "+e.ID]++
			total++
		}
	}

	created := apiDo(t, "POST", api+"/tasks", map[string]any{"title": "made in the e2e test"})
	id := fmt.Sprint(created["id"])
	apiDo(t, "PUT", api+"/tasks/5", map[string]any{"status": "done"})
	apiDo(t, "DELETE", api+"/tasks/7", nil)
	read(3, 15*time.Second)
	for _, want := range []string{"created " + id, "updated 5", "deleted 7"} {
		if received[want] != 1 {
			t.Errorf("event %q received %d times; all: %v", want, received[want], received)
		}
	}

	// A command through NATS: one write, a result, one event.
	cmds, err := command.New(nc, events.MustSubjects("rockety"))
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 15*time.Second)
	res, err := cmds.Do(cctx, command.Request{Resource: "tasks", Action: events.ActionUpdate,
		Command: events.Command{ID: "6", Data: json.RawMessage(`{"status":"blocked"}`)}})
	ccancel()
	if err != nil || res.Status != events.StatusSucceeded {
		t.Fatalf("command: %+v, %v", res, err)
	}
	read(4, 15*time.Second)
	if received["updated 6"] != 1 {
		t.Errorf("the command's write-through event arrived %d times", received["updated 6"])
	}

	// Slow the API down so a cycle (30 pages of 10) takes a few seconds,
	// change items on every page, and stop the bridge in the middle.
	if code := bridge.Stop(30 * time.Second); code != 0 {
		t.Fatalf("bridge exit %d:\n%s", code, bridge.Output())
	}
	simProc.Stop(10 * time.Second)
	start("rockety-sim-2", nil, lab.SimBin, "-addr", simAddr, "-token", "e2e-token",
		"-seed-items", "300", "-churn", "0", "-resources", "tasks", "-latency", "100ms")
	lab.WaitFor(t, "the simulator", 10*time.Second, func() bool { c, _ := get(t, api+"/tasks/1"); return c == 401 })
	t.Log("the restarted simulator has the seed data again: the bridge sees the test's changes undone")
	// A short grace: the stop cuts the cycle short, after it published
	// some of its events (every page changed) and before it stored them.
	bridge = start("bridge-2", append(bridgeEnv, "BRIDGE_SHUTDOWN_GRACE=200ms"), lab.BridgeBin, "run")
	time.Sleep(2500 * time.Millisecond) // well into the slow first cycle
	if code := bridge.Stop(30 * time.Second); code != 0 {
		t.Fatalf("bridge exit %d after SIGTERM mid-cycle:\n%s", code, bridge.Output())
	}
	t.Logf("first run after the restart:\n%s", bridge.Output())
	bridge = start("bridge-3", bridgeEnv, lab.BridgeBin, "run")
	defer bridge.Stop(30 * time.Second)
	// The seed data is back: the created task is gone, task 5 is back to
	// its seed state, task 7 exists again. Each of those three changes
	// arrives once, however the stop cut the cycle.
	read(8, 40*time.Second)
	time.Sleep(2 * time.Second) // and nothing more arrives
	read(9, time.Second)
	want := map[string]int{"created " + id: 1, "updated 5": 2, "updated 6": 2, "deleted 7": 1, "deleted " + id: 1, "created 7": 1}
	if fmt.Sprint(received) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", received, want)
	}
}
