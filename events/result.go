package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// HeaderCommandID carries the command id on every result.
const HeaderCommandID = "Rockety-Command-Id"

// ResultType is the ce-type of a command result:
// io.rockety.<resource>.<action>.result.
func ResultType(resource, action string) string {
	return TypePrefix + resource + "." + action + ".result"
}

// ResultMsgID is the ce-id and Nats-Msg-Id of a command's result: one per
// command id, so a result sent twice is stored once.
func ResultMsgID(commandID string) string { return "result:" + commandID }

// NewResultMsg builds the message of a command result: a CloudEvent in the
// same binary mode as change events, on
// P.results.<resource>.<action>.<command id>. Resource and action are the
// command subject's tokens as received, so a result reaches the subject its
// sender listens on even for an unknown action.
func NewResultMsg(subjects Subjects, apiBaseURL string, r Result, at time.Time) (*nats.Msg, error) {
	if r.CommandID == "" || r.Resource == "" || r.Action == "" {
		return nil, fmt.Errorf("%w: a result needs a command id, a resource and an action (got %q, %q, %q)",
			ErrMalformed, r.CommandID, r.Resource, r.Action)
	}
	body, err := EncodeJSON(r)
	if err != nil {
		return nil, fmt.Errorf("events: encoding the result of %s: %w", r.CommandID, err)
	}
	id := ResultMsgID(r.CommandID)
	h := make(nats.Header, 9)
	h[HeaderSpecVersion] = []string{SpecVersion}
	h[HeaderID] = []string{PercentEncode(id)}
	h[HeaderType] = []string{PercentEncode(ResultType(r.Resource, r.Action))}
	h[HeaderSource] = []string{PercentEncode(Source(apiBaseURL, r.Resource))}
	h[HeaderSubject] = []string{PercentEncode(r.CommandID)}
	h[HeaderTime] = []string{at.UTC().Format(time.RFC3339Nano)}
	h[HeaderDataContentType] = []string{"application/json"}
	// Stored once however often it is sent; live subscribers get every send.
	h[HeaderMsgID] = []string{id}
	h[HeaderCommandID] = []string{r.CommandID}
	return &nats.Msg{Subject: subjects.Result(r.Resource, r.Action, r.CommandID), Header: h, Data: body}, nil
}

// EncodeJSON is json.Marshal without HTML escaping: an item's "<b>" stays
// "<b>" in events and results instead of becoming "\u003cb\u003e", and
// embedded JSON (an item's state) keeps its characters as the API sent them.
func EncodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
