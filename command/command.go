// Package command lets a service change Rockety by publishing a command to
// rockety-bridge and waiting for its result, without holding the API token
// or speaking HTTP:
//
//	c := command.New(nc, events.MustSubjects("rockety"))
//	res, err := c.Do(ctx, command.Request{Resource: "tasks", Action: events.ActionUpdate,
//		Command: events.Command{ID: "42", Data: json.RawMessage(`{"status":"done"}`)}})
//
// The command id is the idempotency key: Do with the same id twice makes one
// API write and returns the same result twice.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/rockety-io/rockety-bridge/events"
)

// Client sends commands and waits for their results.
type Client struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	subjects events.Subjects
}

// New returns a client for the bridge that serves subjects.
func New(nc *nats.Conn, subjects events.Subjects) (*Client, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return &Client{nc: nc, js: js, subjects: subjects}, nil
}

// Request is one command.
type Request struct {
	Resource string
	Action   events.Action
	// CommandID is the idempotency key (Nats-Msg-Id); empty means a new
	// unique one.
	CommandID string
	Command   events.Command
}

// ErrNoResult means no result arrived before the context ended; the
// command may still be executed. Do it again with the same CommandID to
// learn its outcome without a second write.
var ErrNoResult = errors.New("command: no result yet")

// Do publishes the command and waits for its result. A result with status
// failed or rejected is returned as a Result, not as an error; errors are
// about getting the command there and the result back.
func (c *Client) Do(ctx context.Context, req Request) (events.Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	if req.CommandID == "" {
		req.CommandID = nuid.Next()
	}
	// Not json.Marshal: it would escape <, > and & in the data, and an API
	// that keeps strings as sent would store "\u003c" for "<".
	body, err := events.EncodeJSON(req.Command)
	if err != nil {
		return events.Result{}, fmt.Errorf("command: encoding: %w", err)
	}
	resultSubject := c.subjects.Result(req.Resource, string(req.Action), req.CommandID)
	// Listen before sending, so the result cannot slip past. Only the
	// first result counts; a small channel (a sync subscription allocates
	// room for 65,536) keeps a command cheap.
	results := make(chan *nats.Msg, 4)
	sub, err := c.nc.ChanSubscribe(resultSubject, results)
	if err != nil {
		return events.Result{}, fmt.Errorf("command: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	msg := nats.NewMsg(c.subjects.Command(req.Resource, req.Action))
	msg.Data = body
	msg.Header.Set(nats.MsgIdHdr, req.CommandID)
	ack, err := c.js.PublishMsg(ctx, msg)
	if err != nil {
		return events.Result{}, fmt.Errorf("command: publishing %s: %w", msg.Subject, err)
	}
	if ack.Duplicate {
		// Sent before: its result, if there is one yet, is in the stream.
		if res, err := c.stored(ctx, resultSubject); err == nil {
			return res, nil
		}
	}
	var m *nats.Msg
	// A result sent while this connection was reconnecting never reaches
	// the subscription, but the stream keeps it: a slow command is looked
	// up there now and then.
	lookup := time.NewTimer(time.Second)
	defer lookup.Stop()
	for wait := time.Second; m == nil; {
		select {
		case m = <-results:
		case <-lookup.C:
			if res, err := c.stored(ctx, resultSubject); err == nil {
				return res, nil
			}
			wait = min(2*wait, 5*time.Second)
			lookup.Reset(wait)
		case <-ctx.Done():
			return events.Result{}, fmt.Errorf("%w for command %s: %w", ErrNoResult, req.CommandID, context.Cause(ctx))
		}
	}
	var res events.Result
	if err := json.Unmarshal(m.Data, &res); err != nil {
		return events.Result{}, fmt.Errorf("command: the result of %s is not a result: %w", req.CommandID, err)
	}
	return res, nil
}

// stored reads a result already in the events stream.
func (c *Client) stored(ctx context.Context, subject string) (events.Result, error) {
	st, err := c.js.Stream(ctx, c.subjects.EventsStream())
	if err != nil {
		return events.Result{}, err
	}
	raw, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return events.Result{}, err
	}
	var res events.Result
	err = json.Unmarshal(raw.Data, &res)
	return res, err
}
