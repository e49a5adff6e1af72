package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The NATS permissions of README.md, tested for real: the documented
// authorization block is loaded into a NATS server, two bridges run under
// its user against the simulator, and any permissions violation the server
// reports fails the test.

const (
	permPrefix     = "acme"
	bridgeUser     = "acme-bridge"
	bridgePassword = "bridge-secret"
	adminUser      = "admin"
	adminPassword  = "admin-secret"
	simToken       = "dev-token"
)

// readmeAuthorization is the conf block after the nats-authorization marker.
func readmeAuthorization(t *testing.T) string {
	t.Helper()
	readme := readFile(t, "README.md")
	_, rest, ok := strings.Cut(readme, "<!-- nats-authorization:")
	if !ok {
		t.Fatal("README.md has no nats-authorization marker")
	}
	_, rest, ok = strings.Cut(rest, "```conf\n")
	if !ok {
		t.Fatal("no ```conf block after the nats-authorization marker")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("the conf block does not end")
	}
	return block
}

// violationLog is the server's logger; it keeps every permissions violation.
type violationLog struct {
	mu         sync.Mutex
	violations []string
}

func (l *violationLog) record(format string, v []any) {
	line := fmt.Sprintf(format, v...)
	if strings.Contains(line, "Violation") {
		l.mu.Lock()
		l.violations = append(l.violations, line)
		l.mu.Unlock()
	}
}

func (l *violationLog) Noticef(format string, v ...any) { l.record(format, v) }
func (l *violationLog) Warnf(format string, v ...any)   { l.record(format, v) }
func (l *violationLog) Fatalf(format string, v ...any)  { l.record(format, v) }
func (l *violationLog) Errorf(format string, v ...any)  { l.record(format, v) }
func (l *violationLog) Debugf(format string, v ...any)  {}
func (l *violationLog) Tracef(format string, v ...any)  {}

func (l *violationLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.violations...)
}

// startNATS runs a NATS server with JetStream configured by the
// authorization block, plus an unrestricted admin user for the test.
func startNATS(t *testing.T, authorization string) (string, *violationLog) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(authorization), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ACME_BRIDGE_PASSWORD", bridgePassword)
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("the README's authorization block does not load: %v", err)
	}
	if len(opts.Users) != 1 || opts.Users[0].Username != bridgeUser || opts.Users[0].Password != bridgePassword ||
		opts.Users[0].Permissions == nil {
		t.Fatalf("the README's block should define the user %s with permissions: %+v", bridgeUser, opts.Users)
	}
	opts.Users = append(opts.Users, &server.User{Username: adminUser, Password: adminPassword})
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.HTTPPort = 0
	opts.JetStream, opts.StoreDir = true, filepath.Join(dir, "js")
	opts.NoSigs, opts.ServerName = true, "permissions-test"
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	log := &violationLog{}
	ns.SetLogger(log, false, false)
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	return ns.ClientURL(), log
}

// syncBuffer is an io.Writer safe for a process's output and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// start runs bin with only env (and PATH) in its environment.
func start(t *testing.T, name, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, tail(p.out.String(), 40))
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop(t *testing.T, within time.Duration) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("%s exited with %v", p.name, p.err)
		}
	case <-time.After(within):
		t.Errorf("%s did not stop within %s of SIGTERM", p.name, within)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startSim runs the simulator on a free port and returns its API URL.
func startSim(t *testing.T, bin string) string {
	t.Helper()
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-token", simToken, "-seed-items", "200", "-seed", "7", "-churn", "20")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("rockety-sim: %v\n%s", err, stderr.String())
	}
	go func() { _, _ = bufio.NewReader(stdout).WriteTo(discard{}) }()
	m := regexp.MustCompile(`(http://\S+/api/v1)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("rockety-sim printed %q", line)
	}
	return m[1]
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

type bridgeEnv struct {
	bin, natsURL, apiURL, tokenFile string
}

func (b bridgeEnv) start(t *testing.T, id string) (*process, string) {
	t.Helper()
	addr := freeAddr(t)
	p := start(t, id, b.bin, []string{
		"ROCKETY_API_URL=" + b.apiURL, "ROCKETY_API_TOKEN_FILE=" + b.tokenFile, "ROCKETY_ALLOW_INSECURE=true",
		"ROCKETY_POLL_INTERVAL=1s", "ROCKETY_RATE_LIMIT=50", // a budget, so its sharing runs under the permissions too
		"NATS_URL=" + b.natsURL, "NATS_USER=" + bridgeUser, "NATS_PASSWORD=" + bridgePassword,
		"BRIDGE_SUBJECT_PREFIX=" + permPrefix, "BRIDGE_HTTP_ADDR=" + addr, "BRIDGE_INSTANCE_ID=" + id,
		"BRIDGE_INITIAL_SYNC=snapshot", "BRIDGE_LEASE_TTL=2s", "BRIDGE_SHUTDOWN_GRACE=2s", "LOG_LEVEL=info",
		"BRIDGE_DELETE_RETENTION=10s", // compaction purges the mirror's stream under the permissions too
	}, "run")
	return p, addr
}

func waitReady(t *testing.T, p *process, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v", p.name, p.err)
		default:
		}
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s is not ready after 30s", p.name)
}

func eventually(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNATSPermissions runs the bridge under the README's NATS permissions.
func TestNATSPermissions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs rockety-bridge and rockety-sim; skipped with -short")
	}
	bins := buildBinaries(t)
	block := readmeAuthorization(t)

	t.Run("as documented", func(t *testing.T) {
		natsURL, violations := startNATS(t, block)
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(simToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env := bridgeEnv{bin: bins.bridge, natsURL: natsURL, apiURL: startSim(t, bins.sim), tokenFile: tokenFile}

		nc, err := nats.Connect(natsURL, nats.UserInfo(adminUser, adminPassword))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		var mu sync.Mutex
		ops := map[string]int{}
		results := map[string]map[string]any{}
		if _, err := nc.Subscribe(permPrefix+".events.>", func(m *nats.Msg) {
			mu.Lock()
			ops[strings.Split(m.Subject, ".")[3]]++
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Subscribe(permPrefix+".results.>", func(m *nats.Msg) {
			var r map[string]any
			if json.Unmarshal(m.Data, &r) == nil {
				mu.Lock()
				results[fmt.Sprint(r["command_id"])] = r
				mu.Unlock()
			}
		}); err != nil {
			t.Fatal(err)
		}

		b1, addr1 := env.start(t, "bridge-1")
		b2, addr2 := env.start(t, "bridge-2")
		waitReady(t, b1, addr1)
		waitReady(t, b2, addr2)
		seen := func(op string) func() bool {
			return func() bool { mu.Lock(); defer mu.Unlock(); return ops[op] > 0 }
		}
		for _, op := range []string{"snapshot", "created", "updated", "deleted"} {
			eventually(t, op+" events", 30*time.Second, seen(op))
		}

		// Commands: create, update and delete an item, and one rejected.
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		command := func(id, action, body string) map[string]any {
			t.Helper()
			msg := nats.NewMsg(permPrefix + ".commands.tasks." + action)
			msg.Header.Set("Nats-Msg-Id", id)
			msg.Data = []byte(body)
			if _, err := js.PublishMsg(ctx, msg); err != nil {
				t.Fatalf("command %s: %v", id, err)
			}
			var r map[string]any
			eventually(t, "result of "+id, 30*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				r = results[id]
				return r != nil
			})
			return r
		}
		r := command("c-create", "create", `{"data": {"title": "permissions test"}}`)
		if r["status"] != "succeeded" {
			t.Fatalf("create: %v", r)
		}
		itemID := fmt.Sprint(r["data"].(map[string]any)["id"])
		if r := command("c-update", "update", fmt.Sprintf(`{"id": %q, "data": {"title": "changed"}}`, itemID)); r["status"] != "succeeded" {
			t.Errorf("update: %v", r)
		}
		if r := command("c-delete", "delete", fmt.Sprintf(`{"id": %q}`, itemID)); r["status"] != "succeeded" {
			t.Errorf("delete: %v", r)
		}
		if r := command("c-bad", "frobnicate", `{}`); r["status"] != "rejected" {
			t.Errorf("unknown action: %v", r)
		}
		// A resync, answered by whichever bridge holds the lease: the
		// subscription and the answer need their own permissions.
		reports, err := nc.SubscribeSync(permPrefix + ".cycles.tasks")
		if err != nil {
			t.Fatal(err)
		}
		answer, err := nc.Request(permPrefix+".control.resync.tasks", []byte(`{"mode":"full"}`), 10*time.Second)
		if err != nil {
			t.Fatalf("resync request: %v", err)
		}
		var reply struct {
			Accepted bool   `json:"accepted"`
			ResyncID string `json:"resync_id"`
		}
		if err := json.Unmarshal(answer.Data, &reply); err != nil || !reply.Accepted {
			t.Fatalf("resync answer %s: %v", answer.Data, err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			m, err := reports.NextMsg(time.Until(deadline))
			if err != nil {
				t.Fatalf("no cycle report of resync %s: %v", reply.ResyncID, err)
			}
			if strings.Contains(string(m.Data), reply.ResyncID) {
				break
			}
		}
		// Lease handover: stop the holder of tasks, the other takes it;
		// restart it (it replays its events at start).
		kv, err := js.KeyValue(ctx, "ACME_LEASES")
		if err != nil {
			t.Fatal(err)
		}
		holder := func() string {
			e, err := kv.Get(ctx, "tasks")
			if err != nil {
				return ""
			}
			return string(e.Value())
		}
		eventually(t, "a tasks lease", 10*time.Second, func() bool { return holder() != "" })
		stopped, other, startedAgain := b1, "bridge-2", "bridge-1"
		if holder() == "bridge-2" {
			stopped, other, startedAgain = b2, "bridge-1", "bridge-2"
		}
		stopped.stop(t, 15*time.Second)
		eventually(t, "handover of tasks to "+other, 15*time.Second, func() bool { return holder() == other })
		b3, addr3 := env.start(t, startedAgain)
		waitReady(t, b3, addr3)
		time.Sleep(3 * time.Second) // a few cycles under the new arrangement
		// Compaction ran: the floor it stores before purging a marker.
		cps, err := js.KeyValue(ctx, "ACME_CHECKPOINTS")
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "a compaction of tasks' delete markers", 30*time.Second, func() bool {
			e, err := cps.Get(ctx, "tasks")
			return err == nil && strings.Contains(string(e.Value()), `"floor_revision"`)
		})

		for _, p := range []*process{b1, b2, b3} {
			if p != stopped {
				p.stop(t, 15*time.Second)
			}
		}
		if v := violations.list(); len(v) > 0 {
			t.Errorf("the bridge's user lacks permissions; the server reported:\n%s", strings.Join(v, "\n"))
		}
		for _, p := range []*process{b1, b2, b3} {
			if strings.Contains(strings.ToLower(p.out.String()), "permissions violation") {
				t.Errorf("%s reports a permissions violation:\n%s", p.name, tail(p.out.String(), 20))
			}
		}
		// Everything was provisioned under the user.
		for _, s := range []string{"ACME_EVENTS", "ACME_COMMANDS", "KV_ACME_STATE", "KV_ACME_LEASES", "KV_ACME_COMMAND_RESULTS", "KV_ACME_CHECKPOINTS"} {
			if _, err := js.Stream(ctx, s); err != nil {
				t.Errorf("stream %s: %v", s, err)
			}
		}
		mu.Lock()
		t.Logf("events seen by op: %v; results: %d", ops, len(results))
		mu.Unlock()
	})

	t.Run("a missing permission is caught", func(t *testing.T) {
		const entry = `"$KV.ACME_LEASES.>"`
		if !strings.Contains(block, entry) {
			t.Fatalf("the block has no %s", entry)
		}
		natsURL, violations := startNATS(t, strings.Replace(block, entry, "", 1))
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(simToken), 0o600); err != nil {
			t.Fatal(err)
		}
		env := bridgeEnv{bin: bins.bridge, natsURL: natsURL, apiURL: startSim(t, bins.sim), tokenFile: tokenFile}
		env.start(t, "bridge-1") // killed at cleanup
		eventually(t, "a violation on $KV.ACME_LEASES", 30*time.Second, func() bool {
			for _, v := range violations.list() {
				if strings.Contains(v, "$KV.ACME_LEASES.") {
					return true
				}
			}
			return false
		})
	})
}
