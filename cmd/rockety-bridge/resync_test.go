package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/schemas"
)

// rockety-bridge resync tasks --snapshot against a running bridge, as
// processes: one snapshot event per current task, all with one resync_id,
// no other event, and the command prints the cycle's report. Without a
// lease holder it fails, saying so.
func TestResyncCommandAgainstARunningBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three binaries; skipped with -short")
	}
	bin, start, natsURL := processes(t)
	simAddr, httpAddr := lab.FreeAddr(t), lab.FreeAddr(t)
	start("rockety-sim", nil, lab.SimBin, "-addr", simAddr, "-token", "resync-token",
		"-seed-items", "230", "-churn", "0", "-resources", "tasks")
	bridge := start("bridge", []string{
		"ROCKETY_API_URL=http://" + simAddr + "/api/v1", "ROCKETY_API_TOKEN=resync-token", "ROCKETY_ALLOW_INSECURE=true",
		"ROCKETY_RESOURCES=tasks", "ROCKETY_POLL_INTERVAL=1m", "ROCKETY_PAGE_SIZE=50",
		"NATS_URL=" + natsURL, "BRIDGE_HTTP_ADDR=" + httpAddr, "BRIDGE_INSTANCE_ID=bridge-r", "LOG_FORMAT=console",
	}, lab.BridgeBin, "run")
	defer bridge.Stop(30 * time.Second)
	lab.WaitFor(t, "the bridge's first cycle", 30*time.Second, func() bool {
		_, body := get(t, "http://"+httpAddr+"/metrics")
		return strings.Contains(body, `rockety_bridge_last_successful_cycle_timestamp_seconds{resource="tasks"}`)
	})

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	st, err := js.Stream(ctx, "ROCKETY_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from := info.State.LastSeq + 1

	resync := func(args ...string) (code int, stdout, stderr string) {
		cmd := exec.Command(filepath.Join(bin, lab.BridgeBin), append([]string{"resync"}, args...)...)
		cmd.Env = []string{"NATS_URL=" + natsURL}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), out.String(), errb.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String(), errb.String()
	}
	code, stdout, stderr := resync("tasks", "--snapshot")
	if code != 0 {
		t.Fatalf("resync exit %d:\n%s%s\nbridge:\n%s", code, stdout, stderr, bridge.Tail(20))
	}
	if err := schemas.ValidateCycleReport([]byte(stdout)); err != nil {
		t.Errorf("the printed report: %v\n%s", err, stdout)
	}
	var rep events.CycleReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not a cycle report: %v\n%s", err, stdout)
	}
	if rep.Kind != events.CycleSnapshot || rep.Outcome != events.CycleComplete || rep.Snapshot != 230 || rep.Items != 230 ||
		rep.Instance != "bridge-r" || rep.ResyncID == "" || rep.Created+rep.Updated+rep.Deleted != 0 {
		t.Errorf("report %+v; want a complete snapshot of 230 tasks by bridge-r", rep)
	}
	if !strings.Contains(stderr, "accepted by bridge-r") || !strings.Contains(stderr, "complete snapshot cycle") {
		t.Errorf("stderr %q; want the acceptance and a summary", stderr)
	}

	// The stream: exactly one snapshot per task with that id, nothing else,
	// and the report itself.
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from})
	if err != nil {
		t.Fatal(err)
	}
	snapshots := map[string]int{}
	reports := 0
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			break
		}
		if strings.HasPrefix(msg.Subject(), "rockety.cycles.") {
			if err := schemas.ValidateCycleReport(msg.Data()); err != nil {
				t.Errorf("report in the stream: %v", err)
			}
			reports++
			continue
		}
		e, _, err := events.DecodeStream(msg)
		if err != nil {
			t.Fatalf("%s: %v", msg.Subject(), err)
		}
		if err := schemas.ValidateEvent(msg.Data()); err != nil {
			t.Errorf("%s: %v", msg.Subject(), err)
		}
		if e.Op != events.OpSnapshot || e.ResyncID != rep.ResyncID {
			t.Errorf("event %s %s with resync id %q; want only snapshots of %s", e.Op, e.ID, e.ResyncID, rep.ResyncID)
		}
		snapshots[e.ID]++
	}
	if len(snapshots) != 230 || reports == 0 {
		t.Errorf("%d distinct snapshots and %d reports after the resync, want 230 and at least 1", len(snapshots), reports)
	}
	for id, n := range snapshots {
		if n != 1 {
			t.Errorf("task %s: %d snapshots", id, n)
		}
	}

	// Published rather than requested: the holder runs it all the same.
	sub, err := nc.SubscribeSync("rockety.cycles.tasks")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("rockety.control.resync.tasks", []byte(`{"mode":"full"}`)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("no report of a published resync: %v", err)
		}
		var r events.CycleReport
		if json.Unmarshal(m.Data, &r) == nil && r.ResyncID != "" && r.ResyncID != rep.ResyncID {
			if r.Kind != events.CycleFull || r.Outcome != events.CycleComplete {
				t.Errorf("the published resync's report %+v; want a complete full cycle", r)
			}
			break
		}
	}

	// A resource nobody polls: no lease holder, a clear message, exit 1.
	code, _, stderr = resync("users", "--answer-timeout", "500ms")
	if code != 1 || !strings.Contains(stderr, "no bridge holds the lease of users") {
		t.Errorf("resync of a resource nobody polls: exit %d, %q", code, stderr)
	}
	// Bad arguments: exit 2.
	if code, _, stderr := resync(); code != 2 || !strings.Contains(stderr, "want one resource") {
		t.Errorf("resync without a resource: exit %d, %q", code, stderr)
	}
}
