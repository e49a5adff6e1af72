package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// Header names of a change event: the CloudEvents attributes in the binary
// content mode of the NATS protocol binding, and JetStream's dedupe id.
const (
	HeaderSpecVersion     = "ce-specversion"
	HeaderID              = "ce-id"
	HeaderType            = "ce-type"
	HeaderSource          = "ce-source"
	HeaderSubject         = "ce-subject"
	HeaderTime            = "ce-time"
	HeaderDataContentType = "ce-datacontenttype"
	HeaderMsgID           = nats.MsgIdHdr // Nats-Msg-Id
)

// SpecVersion is the CloudEvents version of every event.
const SpecVersion = "1.0"

// TypePrefix starts every event's ce-type: io.rockety.<resource>.<op>.
const TypePrefix = "io.rockety."

// ErrMalformed wraps every reason Decode refuses a message.
var ErrMalformed = errors.New("events: malformed change event")

// Type is the ce-type of an event: io.rockety.<resource>.<op>.
func Type(resource string, op Op) string { return TypePrefix + resource + "." + string(op) }

// Source is the ce-source of an event: the API base URL and the resource.
func Source(apiBaseURL, resource string) string {
	return strings.TrimRight(apiBaseURL, "/") + "/" + resource
}

// NewMsg builds the message of an event: subject, CloudEvents headers,
// Nats-Msg-Id and JSON body. id is the event id (EventID).
func NewMsg(subjects Subjects, apiBaseURL, id string, e Event) (*nats.Msg, error) {
	if err := ValidResource(e.Resource); err != nil {
		return nil, err
	}
	if !e.Op.Valid() || e.ID == "" || id == "" {
		return nil, fmt.Errorf("%w: event needs a valid op, an item id and an event id (op %q, id %q, event id %q)",
			ErrMalformed, e.Op, e.ID, id)
	}
	body, err := encodeEvent(e)
	if err != nil {
		return nil, fmt.Errorf("events: encoding %s %s %s: %w", e.Resource, e.Op, e.ID, err)
	}
	h := make(nats.Header, 8)
	h[HeaderSpecVersion] = []string{SpecVersion}
	h[HeaderID] = []string{PercentEncode(id)}
	h[HeaderType] = []string{PercentEncode(Type(e.Resource, e.Op))}
	h[HeaderSource] = []string{PercentEncode(Source(apiBaseURL, e.Resource))}
	h[HeaderSubject] = []string{PercentEncode(e.ID)}
	h[HeaderTime] = []string{e.DetectedAt.UTC().Format(time.RFC3339Nano)}
	h[HeaderDataContentType] = []string{"application/json"}
	h[HeaderMsgID] = []string{id}
	return &nats.Msg{Subject: subjects.Event(e.Resource, e.Op, e.ID), Header: h, Data: body}, nil
}

// Attributes are the CloudEvents attributes of a message, decoded.
type Attributes struct {
	ID, Type, Source, Subject, DataContentType string
	Time                                       time.Time
}

// Decode reads a change event message, checks that its headers and body
// agree with each other and with the contract, and returns the event and
// its CloudEvents attributes. Every refusal matches ErrMalformed and names
// what is wrong.
func Decode(msg *nats.Msg) (Event, Attributes, error) {
	var attrs Attributes
	if msg == nil {
		return Event{}, attrs, fmt.Errorf("%w: nil message", ErrMalformed)
	}
	fail := func(format string, args ...any) (Event, Attributes, error) {
		return Event{}, attrs, fmt.Errorf("%w: %s: %s", ErrMalformed, msg.Subject, fmt.Sprintf(format, args...))
	}
	if len(msg.Header) == 0 {
		return fail("no headers; a change event carries CloudEvents ce- headers (binary content mode)")
	}
	get := func(name string) (string, error) {
		raw := msg.Header.Get(name)
		if raw == "" {
			return "", fmt.Errorf("header %s is missing", name)
		}
		v, err := PercentDecode(raw)
		if err != nil {
			return "", fmt.Errorf("header %s: %w", name, err)
		}
		return v, nil
	}
	var errs []error
	read := func(dst *string, name string) {
		v, err := get(name)
		errs = append(errs, err)
		*dst = v
	}
	var spec, ts string
	read(&spec, HeaderSpecVersion)
	read(&attrs.ID, HeaderID)
	read(&attrs.Type, HeaderType)
	read(&attrs.Source, HeaderSource)
	read(&attrs.Subject, HeaderSubject)
	read(&ts, HeaderTime)
	read(&attrs.DataContentType, HeaderDataContentType)
	if err := errors.Join(errs...); err != nil {
		return fail("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if spec != SpecVersion {
		return fail("header %s is %q; want %q", HeaderSpecVersion, spec, SpecVersion)
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return fail("header %s %q is not an RFC 3339 time", HeaderTime, ts)
	}
	attrs.Time = t
	if mt, _, err := mime.ParseMediaType(attrs.DataContentType); err != nil || mt != "application/json" {
		return fail("header %s is %q; want application/json", HeaderDataContentType, attrs.DataContentType)
	}
	if dedupe := msg.Header.Get(HeaderMsgID); dedupe != "" && dedupe != attrs.ID {
		return fail("header %s %q differs from %s %q", HeaderMsgID, dedupe, HeaderID, attrs.ID)
	}
	typ, ok := strings.CutPrefix(attrs.Type, TypePrefix)
	resource, op, ok2 := strings.Cut(typ, ".")
	if !ok || !ok2 || ValidResource(resource) != nil || !Op(op).Valid() {
		return fail("header %s is %q; want %s<resource>.<created|updated|deleted|snapshot>", HeaderType, attrs.Type, TypePrefix)
	}

	var e Event
	dec := json.NewDecoder(bytes.NewReader(msg.Data))
	if err := dec.Decode(&e); err != nil {
		return fail("body is not an event: %v", err)
	}
	switch {
	case e.Resource != resource || e.Op != Op(op):
		return fail("body says %s %s but %s says %s %s", e.Resource, e.Op, HeaderType, resource, op)
	case e.ID != attrs.Subject:
		return fail("body id %q differs from %s %q", e.ID, HeaderSubject, attrs.Subject)
	case e.Revision == 0:
		return fail("body has no revision")
	}
	if err := checkStates(e); err != nil {
		return fail("%v", err)
	}
	// A JSON null decodes to the bytes "null"; nil is what callers test for.
	if string(e.Before) == "null" {
		e.Before = nil
	}
	if string(e.After) == "null" {
		e.After = nil
	}
	return e, attrs, nil
}

// StreamMsg is what a JetStream message (jetstream.Msg) offers; DecodeStream
// takes one so a consumer need not copy it into a *nats.Msg.
type StreamMsg interface {
	Subject() string
	Headers() nats.Header
	Data() []byte
}

// DecodeStream is Decode for a message read from a JetStream consumer.
func DecodeStream(m StreamMsg) (Event, Attributes, error) {
	return Decode(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
}

// checkStates enforces which of before and after an op carries.
func checkStates(e Event) error {
	isNull := func(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }
	switch e.Op {
	case OpCreated, OpSnapshot:
		if !isNull(e.Before) || isNull(e.After) {
			return fmt.Errorf("a %s event has before null and after set", e.Op)
		}
	case OpUpdated:
		if isNull(e.Before) || isNull(e.After) {
			return errors.New("an updated event has both before and after")
		}
	case OpDeleted:
		if isNull(e.Before) || !isNull(e.After) {
			return errors.New("a deleted event has before set and after null")
		}
	}
	return nil
}

// PercentEncode encodes a header value as the CloudEvents NATS binding
// requires: space, double quote, percent and every byte outside printable
// ASCII become %XY.
func PercentEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if needsPercent(s[i]) {
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
		if needsPercent(c) {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xF])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

func needsPercent(c byte) bool { return c <= ' ' || c == '"' || c == '%' || c >= 0x7F }

// PercentDecode reverses PercentEncode as the binding says a receiver must:
// a double-quoted value is unquoted first, lower-case hex is accepted, and
// a result that is not valid UTF-8 is refused.
func PercentDecode(s string) (string, error) {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(s)-1; i++ {
			if s[i] == '\\' && i+1 < len(s)-1 {
				i++
			}
			b.WriteByte(s[i])
		}
		s = b.String()
	}
	if !strings.Contains(s, "%") {
		if !utf8.ValidString(s) {
			return "", errors.New("not valid UTF-8")
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("percent escape at %d is cut short", i)
		}
		hi, ok1 := anyHex(s[i+1])
		lo, ok2 := anyHex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("percent escape at %d is not %%XY", i)
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(b) {
		return "", errors.New("percent-decoded value is not valid UTF-8")
	}
	return string(b), nil
}

func anyHex(c byte) (byte, bool) {
	if v, ok := upperHex(c); ok {
		return v, true
	}
	if c >= 'a' && c <= 'f' {
		return c - 'a' + 10, true
	}
	return 0, false
}
