package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// runDemo is `rockety-bridge demo`: an embedded NATS server, a simulated
// Rockety with steady churn, the bridge, and a live view of the events,
// with nothing to install.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seedItems := fs.Int("seed-items", 200, "items per resource at the start")
	churn := fs.Float64("churn", 3, "simulated creates, updates and deletes per second")
	interval := fs.Duration("interval", time.Second, "poll interval")
	natsPort := fs.Int("nats-port", embeddedPort, "port of the embedded NATS server (0: any free port)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("demo takes no arguments, got %q", fs.Arg(0))}
	case *seedItems < 0 || *churn < 0 || *interval < 100*time.Millisecond:
		return usageError{errors.New("demo: -seed-items and -churn must not be negative, -interval at least 100ms")}
	}
	start := time.Now()

	dir, err := os.MkdirTemp("", "rockety-bridge-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := startEmbedded(dir, *natsPort)
	if err != nil && *natsPort != 0 {
		fmt.Fprintf(stderr, "port %d is taken; the demo's NATS server takes a free port instead\n", *natsPort)
		ns, err = startEmbedded(dir, 0)
	}
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()

	const token = "demo-token"
	simulator, err := sim.New(sim.Options{Token: token, Seed: time.Now().UnixNano(), SeedItems: *seedItems, Churn: *churn})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	apiURL := "http://" + ln.Addr().String() + sim.BasePath
	srv := &http.Server{Handler: simulator, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()

	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(stderr), zap.WarnLevel))
	nc, err := connect(ns.ClientURL(), NATSConfig{}, "rockety-bridge demo", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	client, err := rockety.New(apiURL, rockety.WithToken(token), rockety.WithAllowInsecure(true), rockety.WithRateLimit(0))
	if err != nil {
		return err
	}
	subjects := events.MustSubjects(events.DefaultPrefix)
	opts := app.Options{Client: client, Conn: nc, Subjects: subjects, InitialSync: poller.SyncBaseline,
		MaxDeleteRatio: 0.5, InstanceID: "demo", LeaseTTL: 5 * time.Second, Logger: log, ShutdownGrace: 2 * time.Second}
	for _, r := range sim.DefaultResources {
		opts.Resources = append(opts.Resources, app.Resource{Name: r, Interval: *interval})
	}
	bridge, err := app.New(ctx, opts)
	if err != nil {
		return err
	}

	js := bridge.JetStream()
	cons, err := js.OrderedConsumer(ctx, subjects.EventsStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.Events()}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return err
	}
	v := newView(stdout)
	fmt.Fprintf(stdout, "rockety-bridge demo: a simulated Rockety API with %d items per resource and %g changes a second,\n",
		*seedItems, *churn)
	fmt.Fprintf(stdout, "polled every %s, each change published to NATS JetStream (stream %s).\n", *interval, subjects.EventsStream())
	fmt.Fprintf(stdout, "  Rockety API (simulated): %s   (curl -H 'Authorization: Bearer %s' %s/tasks)\n", apiURL, token, apiURL)
	fmt.Fprintf(stdout, "  NATS:                    %s\n", ns.ClientURL())
	fmt.Fprintf(stdout, "Watch the same events from another terminal:\n  nats sub '%s' --server %s\n", subjects.Events(), ns.ClientURL())
	fmt.Fprintf(stdout, "  or: NATS_URL=%s go run ./cmd/rockety-bridge tail\n", ns.ClientURL())
	fmt.Fprintln(stdout, "Ctrl-C stops the demo.")
	fmt.Fprintln(stdout)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 2)
	go func() { done <- bridge.Run(runCtx) }()
	go func() { done <- printEvents(runCtx, cons, v, stderr) }()
	if err := simulator.Start(runCtx); err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	err = errors.Join(<-done, <-done)
	_ = simulator.Close()
	v.summary(stdout, time.Since(start))
	return err
}
