package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// runDemo is `rockety-bridge demo`: an embedded NATS server, a simulated
// Rockety with steady churn, the bridge, and a live view of the events,
// with nothing to install.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseDemoFlags(args, stderr)
	if err != nil || f == nil {
		return err
	}
	start := time.Now()

	dir, err := os.MkdirTemp("", "rockety-bridge-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := startEmbedded(dir, f.natsPort)
	if err != nil && f.natsPort != 0 {
		fmt.Fprintf(stderr, "port %d is taken; the demo's NATS server takes a free port instead\n", f.natsPort)
		ns, err = startEmbedded(dir, 0)
	}
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()

	simulator, err := sim.New(sim.Options{Token: demoToken, Seed: time.Now().UnixNano(), SeedItems: f.seedItems, Churn: f.churn})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	apiURL := "http://" + ln.Addr().String() + sim.BasePath
	stopAPI := serve(ln, simulator)
	defer stopAPI()

	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(stderr), zap.WarnLevel))
	nc, err := connect(ns.ClientURL(), NATSConfig{}, "rockety-bridge demo", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	metrics := app.NewMetrics(buildVersion())
	bridge, err := newDemoBridge(ctx, f, apiURL, nc, log, metrics)
	if err != nil {
		return err
	}
	httpLn, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("demo: -http-addr %s: %w", f.httpAddr, err)
	}
	stopHTTP := serve(httpLn, httpHandler(metrics, bridge.Ready, false))
	defer stopHTTP()
	subjects := events.MustSubjects(events.DefaultPrefix)
	cmds, err := command.New(nc, subjects)
	if err != nil {
		return err
	}
	cons, err := bridge.JetStream().OrderedConsumer(ctx, subjects.EventsStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects.Events()}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return err
	}
	v := newView(stdout)
	example := exampleTask(simulator)
	printBanner(stdout, f, subjects, apiURL, ns.ClientURL(), "http://"+httpLn.Addr().String(), example)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 3)
	go func() { done <- bridge.Run(runCtx) }()
	go func() { done <- printEvents(runCtx, cons, v, stderr) }()
	sender := &demoSender{client: cmds, subjects: subjects, sim: simulator, mirror: bridge.Store(), view: v, keep: example,
		rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))}
	go func() { done <- sender.run(runCtx, f.every) }()
	if err := simulator.Start(runCtx); err != nil {
		stop()
		return errors.Join(err, <-done, <-done, <-done)
	}
	<-ctx.Done()
	stop()
	err = errors.Join(<-done, <-done, <-done)
	_ = simulator.Close()
	v.summary(stdout, time.Since(start))
	return err
}

// demoToken is the simulated API's token: shown in the banner, so a
// person can curl the API.
const demoToken = "demo-token"

// demoFlags are the demo's settings.
type demoFlags struct {
	seedItems int
	churn     float64
	interval  time.Duration
	natsPort  int
	httpAddr  string
	every     time.Duration
}

// parseDemoFlags reads the demo's flags; nil without an error means -h.
func parseDemoFlags(args []string, stderr io.Writer) (*demoFlags, error) {
	var f demoFlags
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.seedItems, "seed-items", 200, "items per resource at the start")
	fs.Float64Var(&f.churn, "churn", 3, "simulated creates, updates and deletes per second")
	fs.DurationVar(&f.interval, "interval", time.Second, "poll interval")
	fs.IntVar(&f.natsPort, "nats-port", embeddedPort, "port of the embedded NATS server (0: any free port)")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:0", "where to serve /metrics, /healthz and /readyz (port 0: any free port)")
	fs.DurationVar(&f.every, "command-interval", 4*time.Second, "how often the demo sends a command through NATS (0: never)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil
		}
		return nil, usageError{err}
	}
	switch {
	case fs.NArg() > 0:
		return nil, usageError{fmt.Errorf("demo takes no arguments, got %q", fs.Arg(0))}
	case f.seedItems < 0 || f.churn < 0 || f.interval < 100*time.Millisecond:
		return nil, usageError{errors.New("demo: -seed-items and -churn must not be negative, -interval at least 100ms")}
	case f.every < 0:
		return nil, usageError{errors.New("demo: -command-interval must not be negative (0 sends no commands)")}
	}
	return &f, nil
}

// newDemoBridge builds the bridge the way `run` does with the defaults,
// from the demo's own configuration, not the environment's.
func newDemoBridge(ctx context.Context, f *demoFlags, apiURL string, nc *nats.Conn, log *zap.Logger, metrics *app.Metrics) (*app.Bridge, error) {
	client, err := rockety.New(apiURL, rockety.WithToken(demoToken), rockety.WithAllowInsecure(true), rockety.WithRateLimit(0),
		rockety.WithObserver(metrics))
	if err != nil {
		return nil, err
	}
	subjects := events.MustSubjects(events.DefaultPrefix)
	opts := app.Options{Client: client, Conn: nc, Subjects: subjects, InitialSync: poller.SyncBaseline,
		MaxDeleteRatio: 0.5, InstanceID: "demo", LeaseTTL: 5 * time.Second, Logger: log, Metrics: metrics, ShutdownGrace: 2 * time.Second}
	for _, r := range sim.DefaultResources {
		opts.Resources = append(opts.Resources, app.Resource{Name: r, Interval: f.interval})
	}
	cfg := Config{Subjects: subjects, Resources: sim.DefaultResources, Commands: true, CommandAllow: []string{"*"},
		CommandConc: 16, StreamReplicas: 1, CommandMaxAge: consumer.DefaultMaxAge}
	opts.Commands = commands(cfg, client)
	return app.New(ctx, opts)
}

// printBanner says what runs where and how to look at it.
func printBanner(w io.Writer, f *demoFlags, subjects events.Subjects, apiURL, natsURL, metricsURL, example string) {
	changes := "changes"
	if f.churn == 1 {
		changes = "change"
	}
	fmt.Fprintf(w, "rockety-bridge demo: a simulated Rockety API with %d items per resource and %g %s a second,\n",
		f.seedItems, f.churn, changes)
	fmt.Fprintf(w, "polled every %s, each change published to NATS JetStream (stream %s).\n", f.interval, subjects.EventsStream())
	fmt.Fprintf(w, "  Rockety API (simulated): %s   (curl -H 'Authorization: Bearer %s' %s/tasks)\n", apiURL, demoToken, apiURL)
	fmt.Fprintf(w, "  NATS:                    %s\n", natsURL)
	fmt.Fprintf(w, "  Metrics:                 %s/metrics   (and /healthz, /readyz)\n", metricsURL)
	fmt.Fprintf(w, "Watch the same events from another terminal:\n  nats sub '%s' --server %s\n", subjects.Events(), natsURL)
	fmt.Fprintf(w, "  or: NATS_URL=%s go run ./cmd/rockety-bridge tail\n", natsURL)
	if f.every > 0 {
		fmt.Fprintf(w, "Every %s the demo sends a command through NATS: → command, ← result, and its event marked ⇠ write-through.\n", f.every)
	}
	printCommandHelp(w, subjects, natsURL, example)
	fmt.Fprintln(w, "Ctrl-C stops the demo.")
	fmt.Fprintln(w)
}

// serve serves h on ln until the returned function is called; that waits
// for the server to stop.
func serve(ln net.Listener, h http.Handler) (stop func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	return func() {
		_ = srv.Close()
		<-served
	}
}

// exampleTask is a task id for the banner's example: one that exists now.
func exampleTask(s *sim.Server) string {
	if ids := s.IDs("tasks"); len(ids) > 0 {
		return ids[0]
	}
	return "42"
}

// printCommandHelp shows how to send a command by hand, with this tool and
// with the nats CLI. The CLI reads the result from the stream rather than
// subscribing to it live, so sending first cannot miss it.
func printCommandHelp(w io.Writer, s events.Subjects, natsURL, id string) {
	const cid = "c-1"
	resultSubject := s.Result("tasks", string(events.ActionUpdate), cid)
	fmt.Fprintf(w, "Send a command by hand (task %s exists now; any task id the view shows will do):\n", id)
	fmt.Fprintf(w, "  NATS_URL=%s go run ./cmd/rockety-bridge command tasks update %s '{\"status\":\"done\"}'\n", natsURL, id)
	fmt.Fprintf(w, "  or with the nats CLI: send it, then read its result from the stream (the sub waits if it is not there yet):\n")
	fmt.Fprintf(w, "    nats pub --jetstream %s '{\"id\":\"%s\",\"data\":{\"status\":\"done\"}}' -H Nats-Msg-Id:%s --server %s\n",
		s.Command("tasks", events.ActionUpdate), id, cid, natsURL)
	fmt.Fprintf(w, "    nats sub '%s' --last --count 1 --server %s\n", resultSubject, natsURL)
	fmt.Fprintf(w, "  or:\n")
	fmt.Fprintf(w, "    nats stream get %s --last-for %s --server %s\n", s.EventsStream(), resultSubject, natsURL)
}

// demoSender sends commands as a service would: mostly an update of a task
// the bridge mirrors, now and then a create or a delete. Each round trip
// is shown in the view.
type demoSender struct {
	client   *command.Client
	subjects events.Subjects
	sim      *sim.Server
	mirror   *publisher.StateStore
	view     *view
	// keep is the banner's example task, left for a person to update.
	keep string
	rnd  *rand.Rand
	sent int
}

// run sends one command every interval until ctx ends; 0 sends none.
func (d *demoSender) run(ctx context.Context, every time.Duration) error {
	if every == 0 {
		return nil
	}
	// The first one goes out as soon as the mirror holds tasks, so a
	// newcomer sees a round trip within seconds.
	next := time.NewTimer(min(every, time.Second))
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-next.C:
		}
		wait := every
		if !d.sendOne(ctx) {
			wait = min(every, 500*time.Millisecond)
		}
		next.Reset(wait)
	}
}

// taskStatuses are the values the demo's updates give a task's status.
var taskStatuses = []string{"todo", "in_progress", "in_review", "blocked", "done"}

// sendOne sends a command and waits for its result. It reports false when
// there was nothing to send yet (the first poll has not filled the mirror).
func (d *demoSender) sendOne(ctx context.Context) bool {
	entry, ok := d.mirroredTask(ctx)
	if !ok {
		return false
	}
	d.sent++
	t := &trip{commandID: fmt.Sprintf("demo-%d", d.sent), resource: "tasks", sent: time.Now()}
	var cmd events.Command
	switch d.sent % 7 {
	case 3:
		t.action = events.ActionCreate
		title, _ := json.Marshal("Sent by the demo as command " + t.commandID)
		t.fields = map[string]json.RawMessage{"title": title, "status": json.RawMessage(`"todo"`)}
	case 6:
		t.action, t.id = events.ActionDelete, entry.ID
	default:
		var current struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(entry.Value, &current)
		// Another status than the current one, so the event shows the
		// command's change and not only a new updated_at.
		statuses := slices.DeleteFunc(slices.Clone(taskStatuses), func(s string) bool { return s == current.Status })
		status, _ := json.Marshal(statuses[d.rnd.IntN(len(statuses))])
		t.action, t.id = events.ActionUpdate, entry.ID
		t.fields = map[string]json.RawMessage{"status": status}
	}
	cmd.ID = rockety.ID(t.id)
	if t.fields != nil {
		cmd.Data, _ = events.EncodeJSON(t.fields)
	}
	d.view.sent(t, d.subjects.Command(t.resource, t.action), cmd)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := d.client.Do(cctx, command.Request{Resource: t.resource, Action: t.action, CommandID: t.commandID, Command: cmd})
	if ctx.Err() != nil {
		return true // stopping: the result no longer matters
	}
	d.view.result(t, d.subjects.Result(t.resource, string(t.action), t.commandID), res, err)
	return true
}

// mirroredTask picks a random task that both the simulator and the mirror
// hold: a write-through needs the item's previous state to say what changed.
func (d *demoSender) mirroredTask(ctx context.Context) (plan.State, bool) {
	ids := d.sim.IDs("tasks")
	for range min(len(ids), 5) {
		id := ids[d.rnd.IntN(len(ids))]
		if id == d.keep {
			continue
		}
		stored, err := d.mirror.Lookup(ctx, "tasks", []string{id})
		if err == nil && stored[0].Live() {
			return stored[0], true
		}
	}
	return plan.State{}, false
}
