// Package natstest runs a real nats-server with JetStream inside a test
// process, on a random loopback port with its own storage directory.
package natstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is an embedded nats-server that a test can stop and start again on
// the same port and storage, to simulate an outage.
type Server struct {
	t    testing.TB
	opts server.Options
	*server.Server
}

// Option changes the server's options before it starts.
type Option func(*server.Options)

// Start runs a JetStream server for the test and stops it at cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	for _, o := range opts {
		o(&s.opts)
	}
	s.start()
	// A restart must come back on the same port for clients to find it.
	s.opts.Port = s.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { s.Shutdown() })
	return s
}

func (s *Server) start() {
	s.t.Helper()
	ns, err := server.NewServer(&s.opts)
	if err != nil {
		s.t.Fatalf("natstest: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		s.t.Fatal("natstest: server not ready within 10s")
	}
	s.Server = ns
}

// Stop shuts the server down and waits until it is gone.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

// Restart starts a stopped server again with the same port and storage,
// and the options changed by opts.
func (s *Server) Restart(opts ...Option) {
	s.t.Helper()
	for _, o := range opts {
		o(&s.opts)
	}
	s.start()
}

// Connect opens a client connection that reconnects for ever, closed at
// cleanup.
func (s *Server) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
