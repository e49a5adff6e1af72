package events

import (
	"errors"
	"fmt"
	"strings"
)

// ErrSubject wraps every error about a subject, key or name that does not
// follow the contract.
var ErrSubject = errors.New("events: invalid subject")

// Escape makes s safe as one NATS subject token and as part of a KV key:
// every byte outside [A-Za-z0-9_-] becomes =XX (upper-case hex), so "a.b"
// becomes "a=2Eb" and "=" becomes "=3D". The empty string stays empty.
func Escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '=', hexDigits[c>>4], hexDigits[c&0xF])
	}
	return string(b)
}

// Unescape reverses Escape. It refuses anything Escape would not produce:
// a byte outside [A-Za-z0-9_=-], a truncated or lower-case escape, or an
// escape of a byte that needs none.
func Unescape(s string) (string, error) {
	if !strings.Contains(s, "=") {
		for i := 0; i < len(s); i++ {
			if !plain(s[i]) {
				return "", fmt.Errorf("%w: %q: byte %q at %d is not allowed in an escaped token", ErrSubject, s, s[i], i)
			}
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case plain(c):
			b = append(b, c)
		case c == '=':
			if i+2 >= len(s) {
				return "", fmt.Errorf("%w: %q: escape at %d is cut short", ErrSubject, s, i)
			}
			hi, ok1 := upperHex(s[i+1])
			lo, ok2 := upperHex(s[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("%w: %q: escape at %d is not =XX with upper-case hex", ErrSubject, s, i)
			}
			v := hi<<4 | lo
			if plain(v) {
				return "", fmt.Errorf("%w: %q: escape at %d encodes %q, which is never escaped", ErrSubject, s, i, v)
			}
			b = append(b, v)
			i += 2
		default:
			return "", fmt.Errorf("%w: %q: byte %q at %d is not allowed in an escaped token", ErrSubject, s, c, i)
		}
	}
	return string(b), nil
}

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func upperHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// ValidResource checks a resource name: one or more of [A-Za-z0-9_-], so it
// is a subject token, a KV key part and a URL path segment as it is.
func ValidResource(resource string) error {
	if resource == "" {
		return fmt.Errorf("%w: empty resource name", ErrSubject)
	}
	for i := 0; i < len(resource); i++ {
		if !plain(resource[i]) {
			return fmt.Errorf("%w: resource name %q: only letters, digits, '_' and '-' are allowed", ErrSubject, resource)
		}
	}
	return nil
}

// Subjects builds and parses every subject and name of the contract for one
// prefix (BRIDGE_SUBJECT_PREFIX). The zero value is not usable; use
// NewSubjects.
type Subjects struct {
	prefix string
	upper  string
}

// DefaultPrefix is the subject prefix when BRIDGE_SUBJECT_PREFIX is unset.
const DefaultPrefix = "rockety"

// NewSubjects checks prefix: one or more dot-separated tokens of
// [A-Za-z0-9_-] ("rockety", "acme.rockety").
func NewSubjects(prefix string) (Subjects, error) {
	if prefix == "" {
		return Subjects{}, fmt.Errorf("%w: empty subject prefix (BRIDGE_SUBJECT_PREFIX)", ErrSubject)
	}
	for _, tok := range strings.Split(prefix, ".") {
		if tok == "" || ValidResource(tok) != nil {
			return Subjects{}, fmt.Errorf("%w: subject prefix %q (BRIDGE_SUBJECT_PREFIX): want dot-separated tokens of letters, digits, '_' and '-'",
				ErrSubject, prefix)
		}
	}
	upper := strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(prefix))
	return Subjects{prefix: prefix, upper: upper}, nil
}

// MustSubjects is NewSubjects for a prefix known to be valid; it panics
// otherwise.
func MustSubjects(prefix string) Subjects {
	s, err := NewSubjects(prefix)
	if err != nil {
		panic(err)
	}
	return s
}

// Prefix is the subject prefix.
func (s Subjects) Prefix() string { return s.prefix }

// Event is P.events.<resource>.<op>.<escaped id>.
func (s Subjects) Event(resource string, op Op, id string) string {
	return s.prefix + ".events." + resource + "." + string(op) + "." + Escape(id)
}

// Events is P.events.>, every change event.
func (s Subjects) Events() string { return s.prefix + ".events.>" }

// EventFilter is a subscription filter for one resource and op; an empty
// resource or op matches any (P.events.tasks.updated.*, P.events.*.deleted.*).
func (s Subjects) EventFilter(resource string, op Op) string {
	r, o := resource, string(op)
	if r == "" {
		r = "*"
	}
	if o == "" {
		o = "*"
	}
	return s.prefix + ".events." + r + "." + o + ".*"
}

// Command is P.commands.<resource>.<action>.
func (s Subjects) Command(resource string, action Action) string {
	return s.prefix + ".commands." + resource + "." + string(action)
}

// Commands is P.commands.>, every command.
func (s Subjects) Commands() string { return s.prefix + ".commands.>" }

// Result is P.results.<resource>.<action>.<escaped command id>. resource and
// action are the command subject's tokens as received, even when they name
// nothing the bridge knows, so a sender always finds its answer.
func (s Subjects) Result(resource, action, commandID string) string {
	return s.prefix + ".results." + resource + "." + action + "." + Escape(commandID)
}

// Results is P.results.>, every command result.
func (s Subjects) Results() string { return s.prefix + ".results.>" }

// Cycle is P.cycles.<resource>, where the poller of resource reports each
// cycle it finished.
func (s Subjects) Cycle(resource string) string { return s.prefix + ".cycles." + resource }

// Cycles is P.cycles.>, every cycle report.
func (s Subjects) Cycles() string { return s.prefix + ".cycles.>" }

// Resync is P.control.resync.<resource>, the request the holder of the
// resource's lease answers by running a resync.
func (s Subjects) Resync(resource string) string { return s.prefix + ".control.resync." + resource }

// EventSubject is a parsed change event subject.
type EventSubject struct {
	Resource string
	Op       Op
	ID       string
}

// ParseEvent parses P.events.<resource>.<op>.<escaped id>.
func (s Subjects) ParseEvent(subject string) (EventSubject, error) {
	toks, err := s.tokens(subject, "events", 3)
	if err != nil {
		return EventSubject{}, err
	}
	op := Op(toks[1])
	if !op.Valid() {
		return EventSubject{}, fmt.Errorf("%w: %q: unknown op %q (want created, updated, deleted or snapshot)", ErrSubject, subject, toks[1])
	}
	id, err := Unescape(toks[2])
	if err != nil {
		return EventSubject{}, err
	}
	if id == "" {
		return EventSubject{}, fmt.Errorf("%w: %q: empty id", ErrSubject, subject)
	}
	return EventSubject{Resource: toks[0], Op: op, ID: id}, nil
}

// CommandSubject is a parsed command subject. Action is the token as
// received; it may name no known action.
type CommandSubject struct {
	Resource string
	Action   string
}

// ParseCommand parses P.commands.<resource>.<action>.
func (s Subjects) ParseCommand(subject string) (CommandSubject, error) {
	toks, err := s.tokens(subject, "commands", 2)
	if err != nil {
		return CommandSubject{}, err
	}
	return CommandSubject{Resource: toks[0], Action: toks[1]}, nil
}

func (s Subjects) tokens(subject, kind string, n int) ([]string, error) {
	head := s.prefix + "." + kind + "."
	rest, ok := strings.CutPrefix(subject, head)
	if !ok {
		return nil, fmt.Errorf("%w: %q does not start with %q", ErrSubject, subject, head)
	}
	toks := strings.Split(rest, ".")
	if len(toks) != n {
		return nil, fmt.Errorf("%w: %q: want %d tokens after %q, got %d", ErrSubject, subject, n, head, len(toks))
	}
	if err := ValidResource(toks[0]); err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrSubject, subject, err)
	}
	return toks, nil
}

// EventsStream is the stream of events and results, e.g. ROCKETY_EVENTS.
func (s Subjects) EventsStream() string { return s.upper + "_EVENTS" }

// CommandsStream is the work-queue stream of commands, e.g. ROCKETY_COMMANDS.
func (s Subjects) CommandsStream() string { return s.upper + "_COMMANDS" }

// StateBucket is the KV bucket of the live mirror, e.g. ROCKETY_STATE.
func (s Subjects) StateBucket() string { return s.upper + "_STATE" }

// LeasesBucket is the KV bucket of poller leases, e.g. ROCKETY_LEASES.
func (s Subjects) LeasesBucket() string { return s.upper + "_LEASES" }

// CommandResultsBucket is the KV bucket of executed command ids and their
// results, e.g. ROCKETY_COMMAND_RESULTS.
func (s Subjects) CommandResultsBucket() string { return s.upper + "_COMMAND_RESULTS" }

// CheckpointsBucket is the KV bucket of the bridge's own bookkeeping per
// resource, e.g. ROCKETY_CHECKPOINTS; the mirror holds items only.
func (s Subjects) CheckpointsBucket() string { return s.upper + "_CHECKPOINTS" }

// StateKey is the mirror's key of an item: <resource>.<escaped id>.
func StateKey(resource, id string) string { return resource + "." + Escape(id) }

// ParseStateKey splits a mirror key into resource and id.
func ParseStateKey(key string) (resource, id string, err error) {
	resource, escaped, ok := strings.Cut(key, ".")
	if !ok || ValidResource(resource) != nil || escaped == "" {
		return "", "", fmt.Errorf("%w: state key %q: want <resource>.<escaped id>", ErrSubject, key)
	}
	id, err = Unescape(escaped)
	return resource, id, err
}
