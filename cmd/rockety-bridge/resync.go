package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety"
)

const resyncUsage = `usage: rockety-bridge resync [--snapshot] [--answer-timeout 10s] [--timeout 1h] <resource>

  rockety-bridge resync tasks
  rockety-bridge resync tasks --snapshot

Asks the bridge that polls <resource> (the holder of its lease) for a resync:
its next cycle, started at once, is a full traversal; with --snapshot it also
publishes one snapshot event per current item, each carrying the resync's id
(resync_id). Waits for that cycle's report and prints it as JSON on stdout,
with a line for a person on stderr. Exit 0 when the cycle was complete, 1 when
it was not, no bridge answered or no report came in time, 2 for bad
arguments. NATS_URL, the NATS_* auth variables and BRIDGE_SUBJECT_PREFIX say
where to send it.`

// runResync is `rockety-bridge resync`.
func runResync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("resync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	snapshot := fs.Bool("snapshot", false, "also publish one snapshot event per current item")
	answerTimeout := fs.Duration("answer-timeout", 10*time.Second, "how long to wait for the lease holder to answer")
	timeout := fs.Duration("timeout", time.Hour, "how long to wait for the resync's cycle report")
	fs.Usage = func() { fmt.Fprintln(stderr, resyncUsage) }
	pos, help, err := parseAnywhere(fs, args)
	if help || err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		return usageError{fmt.Errorf("resync: want one resource, got %d arguments; e.g. rockety-bridge resync tasks --snapshot", len(pos))}
	case *answerTimeout <= 0 || *timeout <= 0:
		return usageError{errors.New("resync: --answer-timeout and --timeout must be positive")}
	}
	resource := pos[0]
	if err := events.ValidResource(resource); err != nil {
		return usageError{fmt.Errorf("resync: %w", err)}
	}
	mode := events.ResyncFull
	if *snapshot {
		mode = events.ResyncSnapshot
	}

	cfg, nc, url, err := connectTool("rockety-bridge resync")
	if err != nil {
		return err
	}
	defer nc.Close()
	if !connectedWithin(ctx, nc, 5*time.Second) {
		return fmt.Errorf("resync %s: NATS at %s is not reachable; set NATS_URL (is the bridge's NATS server running?)", resource, rockety.RedactURL(url))
	}
	// Subscribed before asking, so the report cannot come first.
	reports := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(cfg.Subjects.Cycle(resource), reports)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()

	body, _ := events.EncodeJSON(events.ResyncRequest{Mode: mode})
	actx, cancel := context.WithTimeout(ctx, *answerTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(actx, cfg.Subjects.Resync(resource), body)
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("resync %s: no bridge holds the lease of %s: nothing answered on %s within %s (is a bridge running with %s in ROCKETY_RESOURCES and BRIDGE_SUBJECT_PREFIX=%s?)",
			resource, resource, cfg.Subjects.Resync(resource), *answerTimeout, resource, cfg.Subjects.Prefix())
	case err != nil:
		return fmt.Errorf("resync %s: %w", resource, err)
	}
	var reply events.ResyncReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return fmt.Errorf("resync %s: the answer %q is not a resync reply: %w", resource, msg.Data, err)
	}
	if !reply.Accepted {
		return fmt.Errorf("resync %s: refused by %s: %s", resource, reply.Instance, reply.Error)
	}
	fmt.Fprintf(stderr, "resync %s (%s) accepted by %s, id %s; waiting for its cycle\n", resource, mode, reply.Instance, reply.ResyncID)

	wait := time.NewTimer(*timeout)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("resync %s: stopped waiting for the report of resync %s", resource, reply.ResyncID)
		case <-wait.C:
			return fmt.Errorf("resync %s: no report of resync %s within %s; its cycle may still run: see rockety-bridge tail --cycles", resource, reply.ResyncID, *timeout)
		case m := <-reports:
			var rep events.CycleReport
			if json.Unmarshal(m.Data, &rep) != nil {
				continue
			}
			if rep.Instance != reply.Instance {
				// The holder lost the lease before the resync ran, and
				// dropped it with the lease: another replica polls now.
				return fmt.Errorf("resync %s: the lease passed from %s to %s before resync %s ran; ask again", resource, reply.Instance, rep.Instance, reply.ResyncID)
			}
			if rep.ResyncID != reply.ResyncID {
				continue // a cycle under way when it was asked for
			}
			var out bytes.Buffer
			enc := json.NewEncoder(&out)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
			_, _ = stdout.Write(out.Bytes())
			took := rep.FinishedAt.Sub(rep.StartedAt).Round(time.Millisecond)
			summary := fmt.Sprintf("resync %s: %s %s cycle in %s: %d items, %d created, %d updated, %d deleted, %d snapshot",
				resource, rep.Outcome, rep.Kind, took, rep.Items, rep.Created, rep.Updated, rep.Deleted, rep.Snapshot)
			if rep.Outcome != events.CycleComplete {
				return fmt.Errorf("%s: %s", summary, rep.Error)
			}
			fmt.Fprintln(stderr, summary)
			return nil
		}
	}
}
