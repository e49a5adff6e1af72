package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rockety-io/rockety-bridge/events"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"42", "42"},
		{"abc-DEF_09", "abc-DEF_09"},
		{"a.b", "a=2Eb"},
		{"=", "=3D"},
		{"a b*>", "a=20b=2A=3E"},
		{"é", "=C3=A9"},
		{"\x00\xff", "=00=FF"},
		{"x/y:z", "x=2Fy=3Az"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := events.Escape(tt.in)
			if got != tt.want {
				t.Fatalf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
			back, err := events.Unescape(got)
			if err != nil || back != tt.in {
				t.Fatalf("Unescape(%q) = %q, %v; want %q", got, back, err, tt.in)
			}
		})
	}
}

func TestUnescapeRefuses(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"a.b", "byte '.' at 1 is not allowed"},
		{"a=2", "cut short"},
		{"a=", "cut short"},
		{"=2e", "not =XX with upper-case hex"},
		{"=ZZ", "not =XX with upper-case hex"},
		{"=41", "encodes 'A', which is never escaped"},
		{"a b", "byte ' ' at 1"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := events.Unescape(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, events.ErrSubject) {
				t.Fatalf("Unescape(%q) err = %v, want ErrSubject containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "42", "a.b", "=3D", "é", "\x00", "a=2Eb", "*", ">"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		esc := events.Escape(s)
		for i := 0; i < len(esc); i++ {
			c := esc[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '=') {
				t.Fatalf("Escape(%q) = %q has byte %q, not valid in a subject token and KV key", s, esc, c)
			}
		}
		back, err := events.Unescape(esc)
		if err != nil || back != s {
			t.Fatalf("round trip of %q: %q, %v", s, back, err)
		}
		// Whatever Unescape accepts, Escape gives back exactly.
		if u, err := events.Unescape(s); err == nil && events.Escape(u) != s {
			t.Fatalf("Unescape(%q) = %q, but Escape of that is %q", s, u, events.Escape(u))
		}
	})
}

func TestSubjects(t *testing.T) {
	s := events.MustSubjects("rockety")
	checks := []struct{ got, want string }{
		{s.Event("tasks", events.OpUpdated, "42"), "rockety.events.tasks.updated.42"},
		{s.Event("tasks", events.OpDeleted, "a.b"), "rockety.events.tasks.deleted.a=2Eb"},
		{s.Events(), "rockety.events.>"},
		{s.EventFilter("tasks", events.OpUpdated), "rockety.events.tasks.updated.*"},
		{s.EventFilter("", events.OpDeleted), "rockety.events.*.deleted.*"},
		{s.EventFilter("", ""), "rockety.events.*.*.*"},
		{s.Command("tasks", events.ActionUpdate), "rockety.commands.tasks.update"},
		{s.Commands(), "rockety.commands.>"},
		{s.Result("tasks", "frobnicate", "c 1"), "rockety.results.tasks.frobnicate.c=201"},
		{s.Results(), "rockety.results.>"},
		{s.EventsStream(), "ROCKETY_EVENTS"},
		{s.CommandsStream(), "ROCKETY_COMMANDS"},
		{s.StateBucket(), "ROCKETY_STATE"},
		{s.LeasesBucket(), "ROCKETY_LEASES"},
		{s.CheckpointsBucket(), "ROCKETY_CHECKPOINTS"},
		{events.StateKey("tasks", "a.b"), "tasks.a=2Eb"},
		{events.MustSubjects("acme.rock-ety").EventsStream(), "ACME_ROCK_ETY_EVENTS"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}

	ev, err := s.ParseEvent("rockety.events.tasks.deleted.a=2Eb")
	if err != nil || ev != (events.EventSubject{Resource: "tasks", Op: events.OpDeleted, ID: "a.b"}) {
		t.Errorf("ParseEvent = %+v, %v", ev, err)
	}
	cmd, err := s.ParseCommand("rockety.commands.tasks.frobnicate")
	if err != nil || cmd != (events.CommandSubject{Resource: "tasks", Action: "frobnicate"}) {
		t.Errorf("ParseCommand = %+v, %v", cmd, err)
	}
	res, id, err := events.ParseStateKey("tasks.a=2Eb")
	if err != nil || res != "tasks" || id != "a.b" {
		t.Errorf("ParseStateKey = %q, %q, %v", res, id, err)
	}
}

func TestSubjectsRefuse(t *testing.T) {
	for _, prefix := range []string{"", ".", "a..b", "a.", "a b", "a.*", "a.>", "é"} {
		if _, err := events.NewSubjects(prefix); err == nil || !strings.Contains(err.Error(), "BRIDGE_SUBJECT_PREFIX") {
			t.Errorf("NewSubjects(%q) err = %v, want one naming BRIDGE_SUBJECT_PREFIX", prefix, err)
		}
	}
	s := events.MustSubjects("rockety")
	for subject, wantErr := range map[string]string{
		"other.events.tasks.created.1":      `does not start with "rockety.events."`,
		"rockety.events.tasks.created":      "want 3 tokens",
		"rockety.events.tasks.created.1.2":  "want 3 tokens",
		"rockety.events.tasks.renamed.1":    `unknown op "renamed"`,
		"rockety.events.tasks.created.a=2e": "upper-case hex",
		"rockety.events.ta*ks.created.1":    "resource name",
	} {
		if _, err := s.ParseEvent(subject); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseEvent(%q) err = %v, want %q", subject, err, wantErr)
		}
	}
	for subject, wantErr := range map[string]string{
		"rockety.commands.tasks":          "want 2 tokens",
		"rockety.commands.tasks.update.x": "want 2 tokens",
		"rockety.results.tasks.update":    "does not start with",
	} {
		if _, err := s.ParseCommand(subject); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseCommand(%q) err = %v, want %q", subject, err, wantErr)
		}
	}
	for _, key := range []string{"tasks", "tasks.", ".1", "ta sks.1", "tasks.a.b"} {
		if _, _, err := events.ParseStateKey(key); err == nil {
			t.Errorf("ParseStateKey(%q): no error", key)
		}
	}
}
