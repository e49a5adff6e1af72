// Package lab holds what the bridge's tests set up around the code under
// test: free loopback addresses, waiting for a condition, the binaries
// built and run as processes, a simulator served over HTTP with a client
// for it, and the change events read back from the stream for the judge.
//
// It is for tests and the reliability suite only.
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/judge"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
	"github.com/rockety-io/rockety-bridge/schemas"
)

// FreeAddr returns a loopback address nobody listens on (for a moment).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ErrTimeout is what Within returns when the condition did not hold in time.
var ErrTimeout = errors.New("timed out")

// Within calls ok until it reports true or an error, or timeout passes,
// and returns how long that took. It asks often at first and every 50ms
// from the first tenth of a second on, so a quick condition is seen at
// once and a slow one is not asked in a tight loop.
func Within(timeout time.Duration, ok func() (bool, error)) (time.Duration, error) {
	start := time.Now()
	pause := 5 * time.Millisecond
	for {
		done, err := ok()
		if err != nil {
			return time.Since(start), err
		}
		if done {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return time.Since(start), fmt.Errorf("%w after %s", ErrTimeout, timeout)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// Wait is Within that fails the test, naming what it waited for, on an
// error of ok or when timeout passes.
func Wait(t testing.TB, what string, timeout time.Duration, ok func() (bool, error)) time.Duration {
	t.Helper()
	took, err := Within(timeout, ok)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return took
}

// WaitFor is Wait for a condition that cannot fail.
func WaitFor(t testing.TB, what string, timeout time.Duration, ok func() bool) time.Duration {
	t.Helper()
	return Wait(t, what, timeout, func() (bool, error) { return ok(), nil })
}

// SyncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The binaries Build makes.
const (
	BridgeBin = "rockety-bridge"
	SimBin    = "rockety-sim"
	NATSBin   = "nats-server"
)

// Build compiles rockety-bridge and rockety-sim from this module, and
// nats-server from the module cache at the version go.mod pins, into dir,
// all three at once.
func Build(t testing.TB, dir string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, b := range []struct{ name, pkg string }{
		{BridgeBin, "github.com/rockety-io/rockety-bridge/cmd/rockety-bridge"},
		{SimBin, "github.com/rockety-io/rockety-bridge/cmd/rockety-sim"},
		{NATSBin, "github.com/nats-io/nats-server/v2"},
	} {
		wg.Go(func() {
			out, err := exec.Command("go", "build", "-o", filepath.Join(dir, b.name), b.pkg).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("building %s: %w\n%s", b.name, err, out)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// Process is a child process writing its output to its own log file.
type Process struct {
	Name    string
	LogPath string
	Started time.Time
	cmd     *exec.Cmd
	done    chan struct{}
}

// Start runs bin with args, writing its output to name.log in logDir. Its
// environment is PATH, HOME and env only: no NATS or Rockety setting of the
// machine running the test leaks in. At cleanup a process still running
// gets SIGTERM, and SIGKILL 10s later.
func Start(t testing.TB, logDir, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, Started: time.Now(), cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.Stop(10 * time.Second) })
	return p
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Done is closed once the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and returns the exit code, or -1 after a SIGKILL when
// the process did not end within timeout.
func (p *Process) Stop(timeout time.Duration) int {
	if p.Exited() {
		return p.cmd.ProcessState.ExitCode()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		p.Kill()
		return -1
	}
}

// Output returns what the process has written so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Tail returns the last n lines of the process's output.
func (p *Process) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Token is the API token of the simulators NewSim makes and of the clients
// Serve makes.
const Token = "tok"

// NewSim makes a simulator with opts and the token Token, closed at
// cleanup.
func NewSim(t testing.TB, opts sim.Options) *sim.Server {
	t.Helper()
	opts.Token = Token
	s, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Serve serves h (a simulator, or a handler in front of one) over HTTP
// until cleanup, and returns a client for its API with the token Token,
// plain HTTP allowed, and opts.
func Serve(t testing.TB, h http.Handler, opts ...rockety.Option) *rockety.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := rockety.New(srv.URL+sim.BasePath,
		append([]rockety.Option{rockety.WithToken(Token), rockety.WithAllowInsecure(true)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Events reads the change events the events stream holds after stream
// sequence after, for the judge; command results, which share the
// stream, are passed over. Each event must match its JSON Schema and
// decode.
func Events(t testing.TB, js jetstream.JetStream, subjects events.Subjects, after uint64) []judge.Observed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, info := eventsStream(ctx, t, js, subjects)
	var out []judge.Observed
	for seq := max(after+1, info.State.FirstSeq); seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(raw.Subject, subjects.Prefix()+".events.") {
			continue // results and cycle reports
		}
		if err := schemas.ValidateEvent(raw.Data); err != nil {
			t.Errorf("event at stream seq %d breaks the schema: %v", seq, err)
		}
		e, _, err := events.Decode(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
		if err != nil {
			t.Fatalf("event at stream seq %d: %v", seq, err)
		}
		out = append(out, judge.Observed{Seq: seq, MsgID: raw.Header.Get(jetstream.MsgIDHeader), Event: e})
	}
	return out
}

// LastSeq returns the events stream's last sequence: the events a test
// judges come after it.
func LastSeq(t testing.TB, js jetstream.JetStream, subjects events.Subjects) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, info := eventsStream(ctx, t, js, subjects)
	return info.State.LastSeq
}

func eventsStream(ctx context.Context, t testing.TB, js jetstream.JetStream, subjects events.Subjects) (jetstream.Stream, *jetstream.StreamInfo) {
	t.Helper()
	st, err := js.Stream(ctx, subjects.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st, info
}
