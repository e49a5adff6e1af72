package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// metricValue reads one series from /metrics, or -1 when it is absent.
func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	_, body := get(t, base+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// logLines are the bridge's JSON log lines whose message contains msg.
func logLines(t *testing.T, logs string, level, msg string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Level == level && strings.Contains(entry.Msg, msg) {
			out = append(out, line)
		}
	}
	return out
}

// TestSubSecondInterval: a 150 ms interval polls several times a second
// (ten complete cycles within a time that a one-second floor could not
// reach).
func TestSubSecondInterval(t *testing.T) {
	b := runOnSim(t, sim.Options{Token: "tok", Seed: 1, SeedItems: 10, Resources: []string{"tasks"}}, nil, nil, map[string]string{
		"ROCKETY_POLL_INTERVAL": "150ms", "ROCKETY_RATE_LIMIT": "0", "BRIDGE_COMMANDS": "false",
	})
	base := b.base
	ok := `rockety_bridge_poll_cycles_total{kind="full",outcome="ok",resource="tasks"}`
	lab.WaitFor(t, "a first cycle", 15*time.Second, func() bool { return metricValue(t, base, ok) >= 1 })
	first := time.Now()
	lab.WaitFor(t, "ten more cycles", 9*time.Second, func() bool { return metricValue(t, base, ok) >= 11 })
	t.Logf("ten cycles in %s", time.Since(first).Round(time.Millisecond))
}

// TestWrongTokenIsOneErrorAndNotReady: a token the API refuses is one
// error line (not one per retry), /readyz says why per resource, the
// cycles count as refused, and fixing the token file heals it without a
// restart.
func TestWrongTokenIsOneErrorAndNotReady(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("wrong-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := runOnSim(t, sim.Options{Seed: 1, SeedItems: 10, Resources: []string{"tasks", "users"}},
		func(h http.Handler) http.Handler { return &rotatingAuth{next: h, accepted: "right-token"} }, nil,
		map[string]string{"ROCKETY_API_TOKEN_FILE": tokenFile, "ROCKETY_POLL_INTERVAL": "150ms", "BRIDGE_INSTANCE_ID": "refused-pod"})
	base, logs := b.base, b.logs
	refused := `rockety_bridge_poll_cycles_total{kind="full",outcome="refused",resource="tasks"}`
	lab.WaitFor(t, "several refused cycles", 20*time.Second, func() bool { return metricValue(t, base, refused) >= 4 })
	code, body := get(t, base+"/readyz")
	for _, want := range []string{"tasks: the API refused the token (401): check ROCKETY_API_TOKEN",
		"users: the API refused the token (401)"} {
		if code != 503 || !strings.Contains(body, want) {
			t.Errorf("/readyz = %d %q; want 503 naming %q", code, body, want)
		}
	}
	if lines := logLines(t, logs.String(), "error", "refuses to list"); len(lines) != 2 {
		t.Errorf("%d error lines for two refused resources, want one each:\n%s", len(lines), strings.Join(lines, "\n"))
	} else if !strings.Contains(lines[0], "check ROCKETY_API_TOKEN") {
		t.Errorf("the error line gives no hint: %s", lines[0])
	}
	if n := len(logLines(t, logs.String(), "warn", "poll cycle failed")); n != 0 {
		t.Errorf("%d warnings for refused cycles; a refusal is an error, logged once", n)
	}
	if metricValue(t, base, `rockety_bridge_poll_cycles_total{kind="full",outcome="error",resource="tasks"}`) > 0 {
		t.Error("refused cycles counted as errors")
	}

	if err := os.WriteFile(tokenFile, []byte("right-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Refused cycles back off up to a minute; a few refusals in, the next
	// try is seconds away.
	lab.WaitFor(t, "/readyz once the token is fixed", 40*time.Second, func() bool { c, _ := get(t, base+"/readyz"); return c == 200 })
	if n := len(logLines(t, logs.String(), "info", "accepts this resource's requests again")); n != 2 {
		t.Errorf("%d recovery lines, want one per resource", n)
	}
	if strings.Contains(logs.String(), "wrong-token") || strings.Contains(logs.String(), "right-token") {
		t.Error("a token appears in the logs")
	}
}

// TestCommandConsumerDownFailsReadiness: a command consumer that cannot
// start (here its durable consumer exists with settings JetStream will
// not change) is named by /readyz, and readiness returns once it runs.
func TestCommandConsumerDownFailsReadiness(t *testing.T) {
	clearEnv(t)
	s, err := sim.New(sim.Options{Token: "tok", Seed: 1, SeedItems: 10, Resources: []string{"tasks"}})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(s)
	defer api.Close()
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	// The durable consumer exists with a setting JetStream will not
	// change (its replay policy), so the bridge cannot create its own.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ROCKETY_COMMANDS", Subjects: []string{"rockety.commands.>"},
		Retention: jetstream.WorkQueuePolicy, Duplicates: 10 * time.Minute, Discard: jetstream.DiscardNew, MaxAge: 25 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, "ROCKETY_COMMANDS", jetstream.ConsumerConfig{Durable: "rockety-bridge-commands",
		AckPolicy: jetstream.AckExplicitPolicy, ReplayPolicy: jetstream.ReplayOriginalPolicy}); err != nil {
		t.Fatal(err)
	}
	httpAddr := lab.FreeAddr(t)
	startRun(t, map[string]string{
		"ROCKETY_API_URL": api.URL + sim.BasePath, "ROCKETY_API_TOKEN": "tok", "ROCKETY_ALLOW_INSECURE": "true",
		"ROCKETY_RESOURCES": "tasks", "ROCKETY_POLL_INTERVAL": "200ms", "NATS_URL": ns.ClientURL(),
		"BRIDGE_HTTP_ADDR": httpAddr,
	})
	base := "http://" + httpAddr
	ok := `rockety_bridge_poll_cycles_total{kind="full",outcome="ok",resource="tasks"}`
	lab.WaitFor(t, "polling", 15*time.Second, func() bool { return metricValue(t, base, ok) >= 2 })
	code, body := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "command consumer: not running") {
		t.Errorf("/readyz with the consumer down = %d %q", code, body)
	}
	if err := js.DeleteConsumer(ctx, "ROCKETY_COMMANDS", "rockety-bridge-commands"); err != nil {
		t.Fatal(err)
	}
	lab.WaitFor(t, "/readyz once the consumer runs", 40*time.Second, func() bool { c, _ := get(t, base+"/readyz"); return c == 200 })
}

// TestSIGTERMWithNATSAndTheAPIGone: the process exits within
// BRIDGE_SHUTDOWN_GRACE + 2 s even when nothing it talks to is reachable
// and a cycle and a command are in flight.
func TestSIGTERMWithNATSAndTheAPIGone(t *testing.T) {
	clearEnv(t)
	s, err := sim.New(sim.Options{Token: "tok", Seed: 1, SeedItems: 500, Resources: []string{"tasks", "users"}})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(s)
	ns := natstest.Start(t)
	httpAddr := lab.FreeAddr(t)
	const grace = time.Second
	for k, v := range map[string]string{
		"ROCKETY_API_URL": api.URL + sim.BasePath, "ROCKETY_API_TOKEN": "tok", "ROCKETY_ALLOW_INSECURE": "true",
		"ROCKETY_RESOURCES": "tasks,users", "ROCKETY_POLL_INTERVAL": "100ms", "ROCKETY_PAGE_SIZE": "10",
		"ROCKETY_RATE_LIMIT": "20", "NATS_URL": ns.ClientURL(), "BRIDGE_HTTP_ADDR": httpAddr,
		"BRIDGE_SHUTDOWN_GRACE": grace.String(),
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &lab.SyncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run"}, io.Discard, logs) }()
	base := "http://" + httpAddr
	lab.WaitFor(t, "/readyz", 20*time.Second, func() bool { c, _ := get(t, base+"/readyz"); return c == 200 })

	// A command on its way when everything goes.
	sender := ns.Connect(t)
	msg := nats.NewMsg("rockety.commands.tasks.update")
	msg.Data = []byte(`{"id": "1", "data": {"status": "done"}}`)
	_ = sender.PublishMsg(msg)
	api.CloseClientConnections()
	api.Close()
	ns.Stop()
	time.Sleep(300 * time.Millisecond)

	stopped := time.Now()
	cancel()
	select {
	case code := <-done:
		took := time.Since(stopped)
		t.Logf("exit %d after %s", code, took.Round(time.Millisecond))
		if took > grace+2*time.Second {
			t.Errorf("exit took %s, more than BRIDGE_SHUTDOWN_GRACE %s + 2s", took, grace)
		}
	case <-time.After(30 * time.Second):
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		t.Fatalf("no exit 30s after the stop:\n%s", logs.String())
	}
	fmt.Fprint(io.Discard, logs.String())
}

// TestMadeUpCommandSubjectsDoNotGrowTheSeries: commands to fifty made-up
// resources and actions are rejected and counted under "other"; the
// command series stay as many as before.
func TestMadeUpCommandSubjectsDoNotGrowTheSeries(t *testing.T) {
	b := runOnSim(t, sim.Options{Token: "tok", Seed: 1, SeedItems: 5, Resources: []string{"tasks"}}, nil, nil,
		map[string]string{"ROCKETY_POLL_INTERVAL": "1s"})
	base, ns := b.base, b.ns
	lab.WaitFor(t, "/readyz", 20*time.Second, func() bool { c, _ := get(t, base+"/readyz"); return c == 200 })
	series := func() []string {
		_, body := get(t, base+"/metrics")
		var out []string
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "rockety_bridge_command") {
				out = append(out, line)
			}
		}
		return out
	}
	before := len(series())

	nc := ns.Connect(t)
	results, err := nc.SubscribeSync("rockety.results.>")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		m := nats.NewMsg(fmt.Sprintf("rockety.commands.made-up-%d.frob-%d", i, i))
		m.Data = []byte(`{"id": "1"}`)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		m, err := results.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(m.Data), `"status":"rejected"`) {
			t.Errorf("result %s", m.Data)
		}
	}
	after := series()
	if len(after) != before {
		t.Errorf("command series grew from %d to %d", before, len(after))
	}
	for _, line := range after {
		if strings.Contains(line, "made-up") || strings.Contains(line, "frob") {
			t.Errorf("a label from a subject: %s", line)
		}
	}
	if v := metricValue(t, base, `rockety_bridge_commands_total{action="other",resource="other",status="rejected"}`); v != 50 {
		t.Errorf("other/other/rejected = %v, want 50", v)
	}
}

func TestRunUntilGraceStopsWaitingForStuckWork(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	stuck := make(chan struct{})
	defer close(stuck)
	cancel()
	err := runUntilGrace(ctx, func(context.Context) error { <-stuck; return nil }, 10*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "BRIDGE_SHUTDOWN_GRACE") {
		t.Errorf("stuck work: %v", err)
	}
	if err := runUntilGrace(context.Background(), func(context.Context) error { return nil }, time.Hour); err != nil {
		t.Errorf("work that returns: %v", err)
	}
}

// TestProfilesOnlyWhenAsked: BRIDGE_PPROF adds Go's profiles to the
// metrics port; without it they are not there.
func TestProfilesOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv := httptest.NewServer(httpHandler(app.NewMetrics("test"), func() error { return nil }, on))
		resp, err := http.Get(srv.URL + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if resp.StatusCode != want || (on && !strings.Contains(string(body), "goroutine profile")) {
			t.Errorf("BRIDGE_PPROF=%v: GET /debug/pprof/goroutine: %d %.80q, want %d", on, resp.StatusCode, body, want)
		}
	}
}

// TestSubcommandHelp: -h after demo, tail or command shows that command's
// own flags, not the general help.
func TestSubcommandHelp(t *testing.T) {
	for cmd, want := range map[string]string{"demo": "-command-interval", "tail": "usage: rockety-bridge tail", "command": "--command-id"} {
		var out strings.Builder
		if code := run(context.Background(), []string{cmd, "-h"}, &out, &out); code != 0 || !strings.Contains(out.String(), want) {
			t.Errorf("%s -h: exit %d, output %.200q; want exit 0 and %q", cmd, code, out.String(), want)
		}
	}
}

// TestGCPercent: GOGC, when set, is the user's; otherwise the bridge
// collects at half the default headroom.
func TestGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	if _, set := tuneGC(func(string) string { return "200" }); set || debug.SetGCPercent(100) != 100 {
		t.Error("GOGC=200 was overridden")
	}
	if p, set := tuneGC(func(string) string { return "" }); !set || p != 50 || debug.SetGCPercent(100) != 50 {
		t.Errorf("without GOGC the percent is %d (set %v), want 50", p, set)
	}
}

// TestGCPercentOnceReady: the percent changes only after the bridge is
// ready (its loads done), and never once the bridge stops.
func TestGCPercentOnceReady(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tuneGCOnceReady(ctx, func(string) string { return "" }, func() error { return errors.New("loading") })
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("a bridge that stopped before it was ready set GOGC %d", p)
	}
	calls := 0
	tuneGCOnceReady(context.Background(), func(string) string { return "" }, func() error {
		if calls++; calls < 2 {
			return errors.New("loading")
		}
		return nil
	})
	if p := debug.SetGCPercent(100); p != 50 || calls != 2 {
		t.Errorf("GOGC %d after %d readiness checks, want 50 after 2", p, calls)
	}
}
