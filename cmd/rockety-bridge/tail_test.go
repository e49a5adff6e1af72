package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/publisher"
)

func TestTailPrintsEvents(t *testing.T) {
	clearEnv(t)
	ns := natstest.Start(t)
	t.Setenv("NATS_URL", ns.ClientURL())
	js, _ := jetstream.New(ns.Connect(t))
	ctx := context.Background()
	s := events.MustSubjects("rockety")
	if _, err := publisher.Provision(ctx, js, publisher.Config{Subjects: s}); err != nil {
		t.Fatal(err)
	}
	publish := func(resource string, op events.Op, id, before, after string, changed ...string) {
		e := events.Event{Resource: resource, Op: op, ID: id, Revision: 1, Changed: changed, DetectedAt: time.Now()}
		if before != "" {
			e.Before = json.RawMessage(before)
		}
		if after != "" {
			e.After = json.RawMessage(after)
		}
		m, err := events.NewMsg(s, "https://x/api", events.EventID(resource, id, op, 0), e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	publish("tasks", events.OpCreated, "1", "", `{"id":1,"title":"old news"}`)
	publish("users", events.OpDeleted, "9", `{"id":9,"name":"Ada"}`, "")

	tail := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		var out, errOut lab.SyncBuffer
		done := make(chan int, 1)
		go func() { done <- run(ctx, append([]string{"tail"}, args...), &out, &errOut) }()
		time.Sleep(500 * time.Millisecond)
		publish("tasks", events.OpUpdated, "2", `{"id":2,"title":"a"}`, `{"id":2,"title":"b"}`, "title")
		if code := <-done; code != 0 {
			t.Fatalf("tail %v exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}

	now := tail("tasks")
	if !strings.Contains(now, `rockety.events.tasks.updated.2  title: "a" → "b"`) || strings.Contains(now, "old news") {
		t.Errorf("tail from now:\n%s", now)
	}
	all := tail("--all")
	for _, want := range []string{`created  rockety.events.tasks.created.1  title="old news"`, `deleted  rockety.events.users.deleted.9  name="Ada"`} {
		if !strings.Contains(all, want) {
			t.Errorf("tail --all lacks %q:\n%s", want, all)
		}
	}
	if since := tail("--since", "1h", "*.deleted"); !strings.Contains(since, "users.deleted.9") || strings.Contains(since, "tasks.") {
		t.Errorf("tail --since 1h *.deleted:\n%s", since)
	}
	// Cycle reports: only with --cycles, and only the filter's resource.
	for _, rep := range []events.CycleReport{
		{Resource: "tasks", Kind: events.CycleSnapshot, Outcome: events.CycleComplete, Instance: "bridge-0", Items: 3, Snapshot: 3, ResyncID: "r-9"},
		{Resource: "users", Kind: events.CycleFull, Outcome: events.CyclePartial, Instance: "bridge-0", Error: "page 2: 500"},
	} {
		body, _ := events.EncodeJSON(rep)
		if _, err := js.Publish(ctx, s.Cycle(rep.Resource), body); err != nil {
			t.Fatal(err)
		}
	}
	if plain := tail("--all"); strings.Contains(plain, "cycle") {
		t.Errorf("tail --all shows cycle reports without --cycles:\n%s", plain)
	}
	withCycles := tail("--all", "--cycles", "tasks")
	if !strings.Contains(withCycles, "tasks snapshot complete") || !strings.Contains(withCycles, "resync r-9") ||
		strings.Contains(withCycles, "users") || !strings.Contains(withCycles, "tasks.created.1") {
		t.Errorf("tail --all --cycles tasks:\n%s", withCycles)
	}
	if every := tail("--all", "--cycles"); !strings.Contains(every, "users full partial") || !strings.Contains(every, ": page 2: 500") {
		t.Errorf("tail --all --cycles:\n%s", every)
	}
	var out, errOut lab.SyncBuffer
	if code := run(context.Background(), []string{"tail", "--all", "--since", "1m"}, &out, &errOut); code != 2 {
		t.Errorf("conflicting flags exit %d", code)
	}
}
