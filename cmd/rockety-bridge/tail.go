package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// runTail is `rockety-bridge tail [filter]`: events from the stream, as the
// demo shows them.
func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	since := fs.Duration("since", 0, "start this long ago, e.g. 10m")
	all := fs.Bool("all", false, "start from the first event in the stream")
	cycles := fs.Bool("cycles", false, "also show the cycle reports of the filter's resources")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: rockety-bridge tail [--since DURATION | --all] [--cycles] [filter]

filter is a resource, optionally with an op: tasks, tasks.updated, *.deleted.
Without --since or --all, only new events are shown; with --cycles, the
report of each poll cycle too (P.cycles.<resource>). NATS_URL and the NATS_*
auth variables say where to connect (default nats://127.0.0.1:4222).`)
	}
	pos, help, err := parseAnywhere(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{fmt.Errorf("tail takes one filter; got %q and %q", pos[0], pos[1])}
	}
	var filter string
	if len(pos) == 1 {
		filter = pos[0]
	}
	if *since != 0 && *all {
		return usageError{errors.New("tail: --since and --all do not go together")}
	}
	cfg, err := loadConfig(false)
	if err != nil {
		return err
	}
	subject, err := tailSubject(cfg.Subjects, filter)
	if err != nil {
		return usageError{err}
	}
	nc, url, err := dialTool(cfg, "rockety-bridge tail")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	filters := []string{subject}
	if *cycles {
		filters = append(filters, cycleSubject(cfg.Subjects, filter))
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverNewPolicy}
	switch {
	case *all:
		occ.DeliverPolicy = jetstream.DeliverAllPolicy
	case *since > 0:
		start := time.Now().Add(-*since)
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(sctx, cfg.Subjects.EventsStream(), occ)
	if err != nil {
		return fmt.Errorf("reading stream %s at %s: %w (is the bridge running, with the same BRIDGE_SUBJECT_PREFIX?)",
			cfg.Subjects.EventsStream(), rockety.RedactURL(url), err)
	}
	fmt.Fprintf(stderr, "tailing %s on %s; Ctrl-C to stop\n", strings.Join(filters, " and "), rockety.RedactURL(url))
	v := newView(stdout)
	v.cyclesPrefix = cfg.Subjects.Prefix() + ".cycles."
	return printEvents(ctx, cons, v, stderr)
}

// connectTool reads what a command-line tool needs of the configuration
// and connects it to the bridge's NATS (dialTool).
func connectTool(name string) (Config, *nats.Conn, string, error) {
	cfg, err := loadConfig(false)
	if err != nil {
		return Config{}, nil, "", err
	}
	nc, url, err := dialTool(cfg, name)
	if err != nil {
		return Config{}, nil, "", err
	}
	return cfg, nc, url, nil
}

// dialTool connects a command-line tool to the bridge's NATS: NATS_URL,
// else the local default where the demo and an embedded server listen,
// with the NATS_* auth. It returns the URL it used, for messages.
func dialTool(cfg Config, name string) (*nats.Conn, string, error) {
	url := cfg.NATS.URL
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := connect(url, cfg.NATS, name, zap.NewNop())
	return nc, url, err
}

// tailSubject turns a tail filter into a subject filter.
func tailSubject(s events.Subjects, filter string) (string, error) {
	if filter == "" {
		return s.Events(), nil
	}
	resource, op, _ := strings.Cut(filter, ".")
	if resource != "*" && events.ValidResource(resource) != nil {
		return "", fmt.Errorf("tail: %q is not a resource (or *)", resource)
	}
	if op == "" {
		if resource == "*" {
			return s.Events(), nil
		}
		return s.Prefix() + ".events." + resource + ".>", nil
	}
	if !events.Op(op).Valid() {
		return "", fmt.Errorf("tail: %q is not an op (created, updated, deleted, snapshot)", op)
	}
	if resource == "*" {
		resource = ""
	}
	return s.EventFilter(resource, events.Op(op)), nil
}

// cycleSubject is the cycle reports of a tail filter's resource (all of
// them for none or *).
func cycleSubject(s events.Subjects, filter string) string {
	resource, _, _ := strings.Cut(filter, ".")
	if resource == "" || resource == "*" {
		return s.Cycles()
	}
	return s.Cycle(resource)
}

// printEvents prints what cons delivers until ctx ends.
func printEvents(ctx context.Context, cons jetstream.Consumer, v *view, stderr io.Writer) error {
	iter, err := cons.Messages()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
	for {
		msg, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		if v.cyclesPrefix != "" && strings.HasPrefix(msg.Subject(), v.cyclesPrefix) {
			var rep events.CycleReport
			if err := json.Unmarshal(msg.Data(), &rep); err != nil {
				fmt.Fprintln(stderr, "skipping a cycle report that does not decode:", err)
				continue
			}
			v.cycle(rep)
			continue
		}
		e, _, err := events.DecodeStream(msg)
		if err != nil {
			fmt.Fprintln(stderr, "skipping a message that is not a change event:", err)
			continue
		}
		v.print(msg.Subject(), e)
	}
}

// parseAnywhere parses fs's flags wherever they stand among the arguments
// (people add them last) and returns the other arguments in order; help
// is true after -h, which has printed the usage.
func parseAnywhere(fs *flag.FlagSet, args []string) (positional []string, help bool, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, true, nil
			}
			return nil, false, usageError{err}
		}
		if fs.NArg() == 0 {
			return positional, false, nil
		}
		positional, args = append(positional, fs.Arg(0)), fs.Args()[1:]
	}
}
