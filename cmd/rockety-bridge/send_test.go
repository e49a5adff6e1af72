package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// TestCommandSubcommand sends commands as a person would, to a running
// bridge in front of the simulator: one that succeeds, one the bridge
// rejects, bad arguments, and the same command id twice.
func TestCommandSubcommand(t *testing.T) {
	b := runOnSim(t, sim.Options{Token: "tok", Seed: 1, SeedItems: 10, Resources: []string{"tasks"}}, nil, nil, map[string]string{
		"ROCKETY_POLL_INTERVAL": "1s", "BRIDGE_INSTANCE_ID": "command-pod", "BRIDGE_COMMAND_ALLOW": "tasks.update,tasks.create",
	})
	s := b.sim
	lab.WaitFor(t, "/readyz", 20*time.Second, func() bool { c, _ := get(t, b.base+"/readyz"); return c == 200 })

	send := func(args ...string) (code int, stdout, stderr string) {
		t.Helper()
		var out, errOut lab.SyncBuffer
		code = run(context.Background(), append([]string{"command"}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	id := s.IDs("tasks")[0]
	puts := func() int { return s.Stats().ByMethod["PUT"] }

	code, out, errOut := send("tasks", "update", id, `{"status":"done","title":"<ship it>"}`, "--command-id", "c-1")
	if code != 0 {
		t.Fatalf("update exit %d:\n%s%s", code, out, errOut)
	}
	var res events.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout is not a result: %v\n%s", err, out)
	}
	if res.Status != events.StatusSucceeded || res.CommandID != "c-1" || res.HTTPStatus != 200 {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(errOut, "tasks update "+id+": succeeded (HTTP 200)") || !strings.Contains(errOut, "command id c-1") {
		t.Errorf("no line for a person on stderr: %q", errOut)
	}
	if strings.Contains(out, `\u003c`) {
		t.Errorf("the JSON is HTML-escaped:\n%s", out)
	}
	if item, _ := s.Get("tasks", id); !strings.Contains(string(item), `"status":"done","priority"`) ||
		!strings.Contains(string(item), `"title":"<ship it>"`) {
		t.Errorf("the simulator did not get the write: %s", item)
	}
	if n := puts(); n != 1 {
		t.Fatalf("%d PUTs after one update", n)
	}

	// The same command id again: JetStream drops the duplicate, and the
	// stored result comes back without a second write.
	code, again, _ := send("--command-id", "c-1", "tasks", "update", id, `{"status":"done","title":"<ship it>"}`)
	if code != 0 || again != out {
		t.Errorf("resent c-1: exit %d\n%s\nwant the stored result\n%s", code, again, out)
	}
	if n := puts(); n != 1 {
		t.Errorf("%d PUTs after the same command twice", n)
	}

	code, out, errOut = send("tasks", "create", `{"title":"Write the release notes"}`)
	if code != 0 || !strings.Contains(errOut, "tasks create: succeeded (HTTP 201), id ") {
		t.Errorf("create exit %d:\n%s%s", code, out, errOut)
	}

	code, out, errOut = send("tasks", "delete", id)
	if code != 1 || !strings.Contains(out, `"status": "rejected"`) ||
		!strings.Contains(errOut, "tasks delete "+id+": rejected: tasks.delete is not allowed by BRIDGE_COMMAND_ALLOW") {
		t.Errorf("delete, not allowed: exit %d\n%s%s", code, out, errOut)
	}
	if _, ok := s.Get("tasks", id); !ok {
		t.Error("a rejected delete deleted the item")
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no action", []string{"tasks"}, "command needs a resource and an action, e.g. rockety-bridge command tasks update 42"},
		{"unknown action", []string{"tasks", "archive", "1"}, `"archive" is not an action: create, update or delete`},
		{"update without id", []string{"tasks", "update", `{"status":"done"}`}, "update takes the item's id and the fields to change"},
		{"delete with data", []string{"tasks", "delete", "1", `{}`}, "delete takes the item's id only"},
		{"create with id", []string{"tasks", "create", "1", `{"title":"x"}`}, "create takes the new item's fields as one JSON object and no id"},
		{"not JSON", []string{"tasks", "update", "1", "{status:done}"}, `the data "{status:done}" is not a JSON object`},
		{"JSON but no object", []string{"tasks", "update", "1", `["done"]`}, "is not a JSON object"},
		{"bad resource", []string{"Tasks!", "delete", "1"}, `"Tasks!" is not a resource name`},
		{"bad timeout", []string{"--timeout", "0s", "tasks", "delete", "1"}, "--timeout must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := send(tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.want)
			}
		})
	}
	if n := puts(); n != 1 {
		t.Errorf("%d PUTs in all", n)
	}
}

// TestCommandWithoutNATS: no NATS at NATS_URL is said in seconds, not
// after the whole timeout.
func TestCommandWithoutNATS(t *testing.T) {
	clearEnv(t)
	t.Setenv("NATS_URL", "nats://"+lab.FreeAddr(t))
	var out, errOut lab.SyncBuffer
	start := time.Now()
	code := run(context.Background(), []string{"command", "tasks", "delete", "1"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "is not reachable; set NATS_URL") {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %s", took)
	}
}
