package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety"
)

const commandUsage = `usage: rockety-bridge command [--command-id ID] [--timeout 30s] <resource> <action> [id] [json]

  rockety-bridge command tasks update 42 '{"status":"done"}'
  rockety-bridge command tasks create '{"title":"Write the release notes"}'
  rockety-bridge command tasks delete 42

Sends one command to the bridge through NATS and waits for its result: a line
for a person on stderr, the result's JSON on stdout. Exit 0 when it succeeded,
1 when it failed, was rejected or no result came, 2 for bad arguments.
--command-id is the idempotency key (default: a new one): sending the same id
again writes nothing twice and prints the stored result. NATS_URL and the
NATS_* auth variables say where to connect (default nats://127.0.0.1:4222).`

// runCommand is `rockety-bridge command`: one command through command.Client,
// for a person at a shell.
func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("command", flag.ContinueOnError)
	fs.SetOutput(stderr)
	commandID := fs.String("command-id", "", "the command id, its idempotency key (default: a new one)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the result")
	fs.Usage = func() { fmt.Fprintln(stderr, commandUsage) }
	pos, help, err := parseAnywhere(fs, args)
	if help || err != nil {
		return err
	}
	if *timeout <= 0 {
		return usageError{fmt.Errorf("command: --timeout must be positive, got %s", *timeout)}
	}
	req, err := parseCommand(pos)
	if err != nil {
		return usageError{err}
	}
	req.CommandID = *commandID
	if req.CommandID == "" {
		// Chosen here rather than by Do, so a person can resend it when
		// no result came.
		req.CommandID = "c-" + nuid.Next()
	}

	cfg, nc, url, err := connectTool("rockety-bridge command")
	if err != nil {
		return err
	}
	defer nc.Close()
	client, err := command.New(nc, cfg.Subjects)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%s %s", req.Resource, req.Action)
	if req.Command.ID != "" {
		what += " " + string(req.Command.ID)
	}
	dctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	// The connection is made in the background (it retries for ever), so
	// a NATS that is not there would cost the whole timeout: a person
	// learns it in a few seconds instead.
	if !connectedWithin(dctx, nc, 5*time.Second) {
		return fmt.Errorf("%s: NATS at %s is not reachable; set NATS_URL (is the bridge's NATS server running?)", what, rockety.RedactURL(url))
	}
	start := time.Now()
	res, err := client.Do(dctx, req)
	took := time.Since(start)
	if err != nil {
		switch {
		case !nc.IsConnected():
			return fmt.Errorf("%s: NATS at %s is not reachable (set NATS_URL; is the bridge's NATS server running?): %w",
				what, rockety.RedactURL(url), err)
		case errors.Is(err, command.ErrNoResult):
			return fmt.Errorf("%s: no result within %s on %s: is a bridge running with BRIDGE_COMMANDS=true and BRIDGE_SUBJECT_PREFIX=%s? "+
				"The command stays queued; send it again with --command-id %s to learn its outcome without a second write",
				what, *timeout, cfg.Subjects.Result(req.Resource, string(req.Action), req.CommandID), cfg.Subjects.Prefix(), req.CommandID)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		return err
	}
	_, _ = stdout.Write(out.Bytes())
	summary := fmt.Sprintf("%s: %s", what, res.Status)
	if res.HTTPStatus != 0 {
		summary += fmt.Sprintf(" (HTTP %d)", res.HTTPStatus)
	}
	if res.Status == events.StatusSucceeded {
		if req.Action == events.ActionCreate {
			var item struct {
				ID rockety.ID `json:"id"`
			}
			if json.Unmarshal(res.Data, &item) == nil && item.ID != "" {
				summary += ", id " + string(item.ID)
			}
		}
		fmt.Fprintf(stderr, "%s in %s, command id %s\n", summary, took.Round(time.Millisecond), res.CommandID)
		return nil
	}
	if res.Error != "" {
		summary += ": " + res.Error
	}
	return fmt.Errorf("%s (command id %s)", summary, res.CommandID)
}

// parseCommand reads <resource> <action> [id] [json]: update takes an id and
// the fields to change, delete an id, create the new item's fields.
func parseCommand(args []string) (command.Request, error) {
	const example = `e.g. rockety-bridge command tasks update 42 '{"status":"done"}'`
	if len(args) < 2 {
		return command.Request{}, fmt.Errorf("command needs a resource and an action, %s (see command -h)", example)
	}
	resource, action, rest := args[0], events.Action(args[1]), args[2:]
	if err := events.ValidResource(resource); err != nil {
		return command.Request{}, fmt.Errorf("command: %q is not a resource name (%w), %s", resource, err, example)
	}
	req := command.Request{Resource: resource, Action: action}
	switch action {
	case events.ActionCreate:
		if len(rest) != 1 {
			return req, fmt.Errorf(`command: create takes the new item's fields as one JSON object and no id, got %s; `+
				`e.g. rockety-bridge command %s create '{"title":"Write the release notes"}'`, arguments(len(rest)), resource)
		}
		data, err := jsonObject(rest[0])
		if err != nil {
			return req, err
		}
		req.Command.Data = data
	case events.ActionUpdate:
		if len(rest) != 2 {
			return req, fmt.Errorf(`command: update takes the item's id and the fields to change as one JSON object, got %s; `+
				`e.g. rockety-bridge command %s update 42 '{"status":"done"}' (quote the JSON for the shell)`, arguments(len(rest)), resource)
		}
		data, err := jsonObject(rest[1])
		if err != nil {
			return req, err
		}
		req.Command.ID, req.Command.Data = rockety.ID(rest[0]), data
	case events.ActionDelete:
		if len(rest) != 1 {
			return req, fmt.Errorf("command: delete takes the item's id only, got %s; e.g. rockety-bridge command %s delete 42",
				arguments(len(rest)), resource)
		}
		req.Command.ID = rockety.ID(rest[0])
	default:
		return req, fmt.Errorf("command: %q is not an action: create, update or delete, %s", action, example)
	}
	if (action == events.ActionUpdate || action == events.ActionDelete) && strings.TrimSpace(string(req.Command.ID)) == "" {
		return req, fmt.Errorf("command: %s needs an item id, %s", action, example)
	}
	return req, nil
}

func arguments(n int) string {
	if n == 1 {
		return "1 argument"
	}
	return fmt.Sprintf("%d arguments", n)
}

// jsonObject checks that s is one JSON object: the API takes nothing else
// as a command's data.
func jsonObject(s string) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &fields); err != nil || fields == nil {
		why := "not a JSON object"
		if err != nil {
			why += ": " + err.Error()
		}
		return nil, fmt.Errorf(`command: the data %q is %s; write it as '{"status":"done"}', in single quotes for the shell`, s, why)
	}
	return json.RawMessage(s), nil
}

// connectedWithin reports whether nc is connected within d.
func connectedWithin(ctx context.Context, nc *nats.Conn, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			return nc.IsConnected()
		case <-tick.C:
		}
	}
	return true
}
