package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a JetStream cluster of embedded servers on loopback, each
// with its own storage, that a test can stop and start one by one.
type Cluster struct {
	t       testing.TB
	Servers []*Server
}

// StartCluster runs n clustered JetStream servers (n1, n2, ...) until
// cleanup, and waits until they have elected a JetStream leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)}
	}
	c := &Cluster{t: t}
	for i := range n {
		s := &Server{t: t, opts: server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       freePort(t),
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "rockety-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     routes,
		}}
		ns, err := server.NewServer(&s.opts)
		if err != nil {
			t.Fatalf("natstest: %v", err)
		}
		ns.Start()
		s.Server = ns
		c.Servers = append(c.Servers, s)
	}
	t.Cleanup(func() {
		for _, s := range c.Servers {
			s.Shutdown()
		}
	})
	for _, s := range c.Servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("natstest: %s not ready within 10s", s.opts.ServerName)
		}
	}
	c.WaitForJetStream(30 * time.Second)
	return c
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URLs is every server's client URL, comma-separated, as NATS_URL takes
// them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port)
	}
	return strings.Join(urls, ",")
}

// Connect opens a client connection to the whole cluster that reconnects
// for ever, closed at cleanup.
func (c *Cluster) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(c.URLs(), opts...)
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// WaitForJetStream waits until the cluster answers JetStream requests (it
// has a meta leader).
func (c *Cluster) WaitForJetStream(timeout time.Duration) {
	c.t.Helper()
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		c.t.Fatalf("natstest: connect: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("natstest: the cluster has no JetStream leader after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Server returns the server called name (n1, n2, ...).
func (c *Cluster) Server(name string) *Server {
	for _, s := range c.Servers {
		if s.opts.ServerName == name {
			return s
		}
	}
	c.t.Fatalf("natstest: no server %q", name)
	return nil
}

// StreamLeader is the name of the server that leads stream now.
func (c *Cluster) StreamLeader(js jetstream.JetStream, stream string) string {
	c.t.Helper()
	leader, err := Leader(js, stream)
	if err != nil {
		c.t.Fatalf("natstest: %v", err)
	}
	return leader
}

// Leader is the name of the server that leads stream now, for polling
// while a new one is elected.
func Leader(js jetstream.JetStream, stream string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", stream, err)
	}
	if info.Cluster == nil {
		return "", fmt.Errorf("stream %s: no cluster info", stream)
	}
	return info.Cluster.Leader, nil
}

// WaitCurrent waits until every stream of the account (buckets included)
// has a leader and all its replicas, each current, so that stopping any
// one node next leaves every stream a quorum. It returns how long that
// took.
func (c *Cluster) WaitCurrent(js jetstream.JetStream, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	var why string
	for {
		why = behind(js)
		if why == "" {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			c.t.Fatalf("natstest: streams not current after %s: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// behind names a stream without a leader or with a replica missing or
// not current, or is empty when there is none.
func behind(js jetstream.JetStream) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return fmt.Sprintf("stream %s: %v", name, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return fmt.Sprintf("stream %s: %v", name, err)
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Sprintf("stream %s: no leader", name)
		}
		if len(info.Cluster.Replicas) != info.Config.Replicas-1 {
			return fmt.Sprintf("stream %s: %d of %d replicas", name, len(info.Cluster.Replicas)+1, info.Config.Replicas)
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return fmt.Sprintf("stream %s: replica %s not current", name, r.Name)
			}
		}
	}
	if err := names.Err(); err != nil {
		return fmt.Sprintf("listing streams: %v", err)
	}
	return ""
}
