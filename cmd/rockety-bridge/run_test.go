package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

func TestDemoShowsChangesFlowing(t *testing.T) {
	clearEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut lab.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "-nats-port", "0", "-seed-items", "50", "-churn", "30"}, &out, &errOut)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !(strings.Contains(out.String(), "created  rockety.events.") &&
		strings.Contains(out.String(), "updated  rockety.events.") &&
		strings.Contains(out.String(), "deleted  rockety.events.") &&
		roundTrip(out.String()) != "") {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no created, updated and deleted events and no command round trip within 15s:\n%s\n%s", out.String(), errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	metricsURL := regexp.MustCompile(`Metrics: +(http://127\.0\.0\.1:\d+/metrics)`).FindStringSubmatch(out.String())
	if metricsURL == nil {
		t.Errorf("the banner does not say where /metrics is:\n%s", out.String())
	} else if code, body := get(t, metricsURL[1]); code != 200 ||
		!strings.Contains(body, `rockety_bridge_commands_total{action="update",resource="tasks",status="succeeded"}`) {
		t.Errorf("%s: %d\n%s", metricsURL[1], code, body)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("demo exit %d: %s", code, errOut.String())
	}
	s := out.String()
	for _, want := range []string{"nats sub 'rockety.events.>' --server nats://127.0.0.1:", " → ", "events in ", "resource  created",
		"go run ./cmd/rockety-bridge command tasks update ", "nats stream get ROCKETY_EVENTS --last-for rockety.results.tasks.update.c-1",
		" succeeded, "} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "\x1b[") {
		t.Error("colour codes written to something that is not a terminal")
	}
}

// roundTrip returns the id of a demo command whose sending, write-through
// event and result the output shows, or "".
func roundTrip(out string) string {
	for _, m := range regexp.MustCompile(`⇠ write-through of (demo-\d+)`).FindAllStringSubmatch(out, -1) {
		id := m[1]
		if strings.Contains(out, "→ command tasks.") && strings.Contains(out, "(command id "+id+", on rockety.commands.tasks.") &&
			strings.Contains(out, "← result  "+id+" succeeded") {
			return id
		}
	}
	return ""
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunHealthReadinessAndMetrics(t *testing.T) {
	clearEnv(t)
	const token = "tok-9f3c2a7e-never-shown"
	s, err := sim.New(sim.Options{Token: token, Seed: 1, SeedItems: 30, Churn: 10})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(s)
	defer api.Close()
	defer s.Close()
	ns := natstest.Start(t)
	addr := lab.FreeAddr(t)
	for k, v := range map[string]string{
		"ROCKETY_API_URL": api.URL + sim.BasePath, "ROCKETY_API_TOKEN": token, "ROCKETY_ALLOW_INSECURE": "true",
		"ROCKETY_POLL_INTERVAL": "1s", "NATS_URL": ns.ClientURL(), "BRIDGE_HTTP_ADDR": addr,
		"BRIDGE_LEASE_TTL": "2s", "LOG_LEVEL": "debug", "BRIDGE_INSTANCE_ID": "test-pod",
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs lab.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run"}, io.Discard, &logs) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("run exit %d", code)
		}
		if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), "Bearer") {
			t.Errorf("the token appears in the logs")
		}
	}()
	base := "http://" + addr
	lab.WaitFor(t, "/healthz", 10*time.Second, func() bool { c, _ := get(t, base+"/healthz"); return c == 200 })
	lab.WaitFor(t, "/readyz", 15*time.Second, func() bool { c, _ := get(t, base+"/readyz"); return c == 200 })
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}

	lab.WaitFor(t, "events in the metrics", 15*time.Second, func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, `rockety_bridge_events_published_total{op="updated",resource="tasks"} `) &&
			!strings.Contains(body, `rockety_bridge_events_published_total{op="updated",resource="tasks"} 0`)
	})
	_, body := get(t, base+"/metrics")
	if strings.Contains(body, token) {
		t.Error("the token appears in the metrics")
	}
	for _, series := range []string{
		"rockety_bridge_poll_cycles_total{kind=\"full\",outcome=\"ok\",resource=\"tasks\"}",
		"rockety_bridge_poll_cycle_duration_seconds_bucket",
		"rockety_bridge_items_tracked{resource=\"users\"}",
		"rockety_bridge_api_requests_total{method=\"GET\",resource=\"tasks\",status=\"200\"}",
		"rockety_bridge_lease_held{resource=\"projects\"} 1",
		"rockety_bridge_last_successful_cycle_timestamp_seconds{resource=\"tasks\"}",
		"rockety_bridge_build_info{",
		"rockety_bridge_delete_confirmations_total",
		"rockety_bridge_mass_delete_guard_trips_total",
		"rockety_bridge_api_retries_total",
		"rockety_bridge_commands_total{action=\"update\",resource=\"tasks\",status=\"succeeded\"}",
		"go_goroutines",
	} {
		if !strings.Contains(body, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}

	// NATS goes away: not ready, saying why; it comes back: ready again.
	ns.Stop()
	lab.WaitFor(t, "/readyz to fail", 10*time.Second, func() bool {
		c, b := get(t, base+"/readyz")
		return c == 503 && strings.Contains(b, "NATS is not connected")
	})
	if c, _ := get(t, base+"/healthz"); c != 200 {
		t.Errorf("/healthz = %d while NATS is away; the process itself is alive", c)
	}
	ns.Restart()
	lab.WaitFor(t, "/readyz to recover", 20*time.Second, func() bool { c, _ := get(t, base+"/readyz"); return c == 200 })
}

// TestNATSUnreachableAtStart starts the bridge before its NATS server: it
// stays alive, says it is not ready and why, and works once NATS is there.
func TestNATSUnreachableAtStart(t *testing.T) {
	clearEnv(t)
	s, err := sim.New(sim.Options{Token: "tok", Seed: 1, SeedItems: 10, Resources: []string{"tasks"}})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(s)
	defer api.Close()
	natsAddr, httpAddr := lab.FreeAddr(t), lab.FreeAddr(t)
	_, natsPort, _ := net.SplitHostPort(natsAddr)
	logs := startRun(t, map[string]string{
		"ROCKETY_API_URL": api.URL + sim.BasePath, "ROCKETY_API_TOKEN": "tok", "ROCKETY_ALLOW_INSECURE": "true",
		"ROCKETY_RESOURCES": "tasks", "ROCKETY_POLL_INTERVAL": "1s", "NATS_URL": "nats://" + natsAddr,
		"BRIDGE_HTTP_ADDR": httpAddr, "BRIDGE_INSTANCE_ID": "early-pod",
	})
	base := "http://" + httpAddr
	lab.WaitFor(t, "/healthz", 10*time.Second, func() bool { c, _ := get(t, base+"/healthz"); return c == 200 })
	time.Sleep(1500 * time.Millisecond)
	if c, body := get(t, base+"/readyz"); c != 503 || !strings.Contains(body, "waiting for NATS") {
		t.Errorf("/readyz without NATS = %d %q", c, body)
	}

	port, _ := strconv.Atoi(natsPort)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	lab.WaitFor(t, "/readyz once NATS is up", 30*time.Second, func() bool { c, _ := get(t, base+"/readyz"); return c == 200 })
	if !strings.Contains(logs.String(), "NATS is not reachable yet; the bridge waits for it") {
		t.Errorf("no log line says the bridge waits for NATS:\n%s", logs.String())
	}
}

// rotatingAuth accepts one token at a time, like an API whose token was
// rotated: requests with the old one get 401.
type rotatingAuth struct {
	next     http.Handler
	mu       sync.Mutex
	accepted string
}

func (a *rotatingAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	ok := r.Header.Get("Authorization") == "Bearer "+a.accepted
	a.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"invalid token"}}`))
		return
	}
	a.next.ServeHTTP(w, r)
}

func (a *rotatingAuth) rotate(token string) {
	a.mu.Lock()
	a.accepted = token
	a.mu.Unlock()
}

// TestTokenRotationThroughTheTokenFile: the API starts refusing the token
// (401, the cycles fail and readiness says why), a new token lands in the
// file, and polling resumes without a restart.
func TestTokenRotationThroughTheTokenFile(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("token-one"), 0o600); err != nil {
		t.Fatal(err)
	}
	var auth *rotatingAuth
	b := runOnSim(t, sim.Options{Seed: 1, SeedItems: 10, Resources: []string{"tasks"}},
		func(h http.Handler) http.Handler { auth = &rotatingAuth{next: h, accepted: "token-one"}; return auth }, nil,
		map[string]string{"ROCKETY_API_TOKEN_FILE": tokenFile, "ROCKETY_POLL_INTERVAL": "1s", "BRIDGE_INSTANCE_ID": "rotating-pod"})
	logs, httpAddr := b.logs, strings.TrimPrefix(b.base, "http://")
	metric := func(series string) string {
		_, body := get(t, "http://"+httpAddr+"/metrics")
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, series+" ") {
				return strings.TrimPrefix(line, series+" ")
			}
		}
		return ""
	}
	ok := `rockety_bridge_api_requests_total{method="GET",resource="tasks",status="200"}`
	refused := `rockety_bridge_api_requests_total{method="GET",resource="tasks",status="401"}`
	lab.WaitFor(t, "a first cycle", 15*time.Second, func() bool { return metric(ok) != "" })

	auth.rotate("token-two")
	lab.WaitFor(t, "the API to refuse the old token", 15*time.Second, func() bool { return metric(refused) != "" })
	if !strings.Contains(logs.String(), "check ROCKETY_API_TOKEN") {
		t.Errorf("the logs do not say to check the token:\n%s", logs.String())
	}
	before := metric(ok)
	if err := os.WriteFile(tokenFile, []byte("token-two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lab.WaitFor(t, "polling to resume with the new token", 30*time.Second, func() bool { return metric(ok) != before })
	if strings.Contains(logs.String(), "token-one") || strings.Contains(logs.String(), "token-two") {
		t.Error("a token appears in the logs")
	}
}

// onSim is `rockety-bridge run` in the test against the simulator and an
// embedded NATS server.
type onSim struct {
	sim  *sim.Server
	ns   *natstest.Server
	base string // http:// and BRIDGE_HTTP_ADDR
	logs *lab.SyncBuffer
}

// runOnSim starts one. opts seeds the simulator; front, when set, stands in
// front of it (an auth check, say); ns is the NATS server (nil: a new one);
// env adds to and overrides the usual settings: the simulator's URL over
// http, token "tok" (unless a token file is given), its resources, the
// NATS server, a free HTTP address.
func runOnSim(t *testing.T, opts sim.Options, front func(http.Handler) http.Handler, ns *natstest.Server, env map[string]string) onSim {
	t.Helper()
	clearEnv(t)
	s, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = s
	if front != nil {
		h = front(s)
	}
	api := httptest.NewServer(h)
	t.Cleanup(api.Close)
	if ns == nil {
		ns = natstest.Start(t)
	}
	httpAddr := lab.FreeAddr(t)
	vars := map[string]string{
		"ROCKETY_API_URL": api.URL + sim.BasePath, "ROCKETY_API_TOKEN": "tok", "ROCKETY_ALLOW_INSECURE": "true",
		"ROCKETY_RESOURCES": strings.Join(opts.Resources, ","), "NATS_URL": ns.ClientURL(), "BRIDGE_HTTP_ADDR": httpAddr,
	}
	for k, v := range env {
		vars[k] = v
	}
	if vars["ROCKETY_API_TOKEN_FILE"] != "" {
		delete(vars, "ROCKETY_API_TOKEN")
	}
	return onSim{sim: s, ns: ns, base: "http://" + httpAddr, logs: startRun(t, vars)}
}

// startRun runs `rockety-bridge run` in the test with env set, and at
// cleanup stops it and checks it exited 0. It returns the logs.
func startRun(t *testing.T, env map[string]string) *lab.SyncBuffer {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lab.SyncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run"}, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d:\n%s", code, logs.String())
		}
	})
	return logs
}
