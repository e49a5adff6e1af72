// Package consumer turns command messages on NATS into Rockety API writes
// and reports each outcome as a result message. Every command is executed
// at most once: its id (Nats-Msg-Id, or the stream sequence) and its result
// are kept in KV, and the intent is recorded before the write, so a command
// redelivered after a crash is recognised. A bad command is rejected at
// once and never redelivered.
package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// Writer makes API writes: the rockety client.
type Writer interface {
	Create(ctx context.Context, resource string, obj json.RawMessage) (rockety.Response, error)
	Update(ctx context.Context, resource string, id rockety.ID, obj json.RawMessage) (rockety.Response, error)
	Delete(ctx context.Context, resource string, id rockety.ID) (rockety.Response, error)
}

// WriteThrough stores a successful write in the mirror and publishes its
// change event at once, so the next poll has nothing to add.
type WriteThrough interface {
	// Begin is called as the API write of req starts, so that what the
	// write-through needs can be read while the write is in flight. The
	// function it returns is called exactly once: with the API's answer
	// after a successful write, or with nil after any other outcome.
	Begin(ctx context.Context, req Request) func(ctx context.Context, written *rockety.Response) error
}

// Queue is what the consumer needs of JetStream for the commands
// themselves: the durable consumer they are read from, and a way to send
// results (jetstream.JetStream has both).
type Queue interface {
	CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error)
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// Records is the part of the results bucket (KV ROCKETY_COMMAND_RESULTS,
// provisioned with the other buckets) the consumer uses: claim a command
// id (Create fails when the id has a record), record its result (Update
// at the claimed revision), and read what is known of an id.
type Records interface {
	Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
}

// Observer is told the outcome of every command, and of problems that do
// not change an outcome (a failed write-through, say).
type Observer interface {
	CommandDone(resource, action string, status events.Status, took time.Duration)
	Problem(msg string, commandID string, err error)
}

// Config configures a Consumer. Zero fields take the defaults.
type Config struct {
	Subjects events.Subjects
	// Resources, when not empty, are the resources commands may name.
	Resources []string
	// Allow is BRIDGE_COMMAND_ALLOW; empty allows nothing.
	Allow Allow
	// Durable is the name of the pull consumer all replicas share.
	Durable string
	// Concurrency bounds the commands executed at once.
	Concurrency int
	// AckWait is how long a delivered command may go unacknowledged before
	// it is delivered again; long writes send progress to extend it.
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one command.
	MaxDeliver int
	// ResultTTL is how long the results bucket keeps executed command ids
	// (publisher.CommandResultTTL); a command may not stay valid longer.
	ResultTTL time.Duration
	// MaxAge is BRIDGE_COMMAND_MAX_AGE: a command stored longer ago than
	// this when it is read is rejected as expired, not executed. Zero is 1h.
	MaxAge time.Duration
	// APIBaseURL is the ce-source of results, as of change events.
	APIBaseURL string
	// ShutdownGrace is how long commands in progress may run on after Run
	// is told to stop; then they are cut short and left unacknowledged, so
	// they are delivered again (and recognised) later. Zero is 10s.
	ShutdownGrace time.Duration
	Observer      Observer
	// Reprovision, when set, recreates the streams (the commands stream was
	// deleted under the bridge, say) before the consumer is created again.
	Reprovision func(ctx context.Context) error
}

// Consumer executes commands from the commands stream.
type Consumer struct {
	cfg     Config
	queue   Queue
	cons    jetstream.Consumer
	results Records
	writer  Writer
	wt      WriteThrough
	// down is why commands are not being read, or nil while they are.
	down atomic.Pointer[error]
}

// New creates (or updates) the durable consumer that reads commands from
// queue; records is the results bucket; wt may be nil.
func New(ctx context.Context, queue Queue, records Records, w Writer, wt WriteThrough, cfg Config) (*Consumer, error) {
	if cfg.Durable == "" {
		cfg.Durable = "rockety-bridge-commands"
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 8
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = 5
	}
	if cfg.ResultTTL == 0 {
		cfg.ResultTTL = 24 * time.Hour
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Concurrency < 1 || cfg.MaxDeliver < 1 || cfg.ResultTTL < 24*time.Hour {
		return nil, fmt.Errorf("consumer: concurrency %d, max deliver %d, result TTL %s: want at least 1, 1 and 24h",
			cfg.Concurrency, cfg.MaxDeliver, cfg.ResultTTL)
	}
	if cfg.MaxAge < 0 || cfg.MaxAge > cfg.ResultTTL {
		// Past the results' TTL a redelivered command's record could be
		// gone, and the command executed twice.
		return nil, fmt.Errorf("consumer: command max age %s (BRIDGE_COMMAND_MAX_AGE): want more than 0 and at most the result TTL %s",
			cfg.MaxAge, cfg.ResultTTL)
	}
	c := &Consumer{cfg: cfg, queue: queue, results: records, writer: w, wt: wt}
	notYet := errors.New("not reading commands yet")
	c.down.Store(&notYet)
	if err := c.ensure(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// ensure creates or updates the durable consumer all replicas share.
func (c *Consumer) ensure(ctx context.Context) error {
	cfg, s := c.cfg, c.cfg.Subjects
	cons, err := c.queue.CreateOrUpdateConsumer(ctx, s.CommandsStream(), jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "rockety-bridge: commands to Rockety API writes",
		FilterSubject: s.Commands(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		// Few commands are held by one replica at a time, so the others
		// get their share.
		MaxAckPending: cfg.Concurrency * 4,
	})
	if err != nil {
		return fmt.Errorf("consumer: creating consumer %s on %s: %w", cfg.Durable, s.CommandsStream(), err)
	}
	c.cons = cons
	return nil
}

// DefaultMaxAge is how long a command stays valid unless configured.
const DefaultMaxAge = time.Hour

// Ready reports why commands are not being read (the stream or the
// consumer is gone and being recreated, say), or nil while they are.
func (c *Consumer) Ready() error {
	if err := c.down.Load(); err != nil {
		return *err
	}
	return nil
}

// Run executes commands until ctx ends. Up to Concurrency commands run at
// once; two commands for the same item run one after the other, in
// publish order, while commands for other items go ahead. Commands in
// progress when ctx ends are finished (each is bounded by AckWait) before
// Run returns.
func (c *Consumer) Run(ctx context.Context) error {
	retry := backoff.NewExponentialBackOff(backoff.WithInitialInterval(time.Second),
		backoff.WithMaxInterval(30*time.Second), backoff.WithMaxElapsedTime(0))
	for {
		err := c.serve(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		down := fmt.Errorf("reading commands failed, recreating the consumer: %w", err)
		c.down.Store(&down)
		// The stream or the consumer went away (deleted by hand, or the
		// server lost them): recreate and carry on.
		c.cfg.Observer.Problem("reading commands failed; recreating the consumer", "", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry.NextBackOff()):
		}
		if c.cfg.Reprovision != nil {
			if err := c.cfg.Reprovision(ctx); err != nil {
				c.cfg.Observer.Problem("recreating the streams", "", err)
				continue
			}
		}
		if err := c.ensure(ctx); err != nil {
			c.cfg.Observer.Problem("recreating the consumer", "", err)
		}
	}
}

// serve executes commands until ctx ends (nil) or reading them fails.
func (c *Consumer) serve(ctx context.Context) error {
	iter, err := c.cons.Messages(jetstream.PullMaxMessages(c.cfg.Concurrency*2),
		// A pull request sent while a restarted server is still loading
		// JetStream is lost; missing heartbeats tell, and the iterator
		// pulls again. Short ones keep that gap to seconds, not the
		// default half minute.
		jetstream.PullExpiry(10*time.Second), jetstream.PullHeartbeat(2*time.Second),
		jetstream.WithMessagesErrOnMissingHeartbeat(false))
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	stopIter := context.AfterFunc(ctx, iter.Stop)
	defer stopIter()
	c.down.Store(nil)

	// Commands in progress outlive ctx by the grace at most.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	graceDone := make(chan struct{})
	go func() {
		defer close(graceDone)
		select {
		case <-work.Done():
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(c.cfg.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelWork()
		case <-work.Done():
		}
	}()
	defer func() { cancelWork(); <-graceDone }()
	slots := make(chan struct{}, c.cfg.Concurrency)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		busy = map[string][]delivery{} // target -> commands waiting behind the running one
	)
	defer wg.Wait()
	// runTarget executes msg, then whatever queued up behind it for the
	// same target.
	runTarget := func(target string, d delivery) {
		defer wg.Done()
		defer func() { <-slots }()
		for {
			c.handle(work, d)
			mu.Lock()
			queue := busy[target]
			if len(queue) == 0 {
				delete(busy, target)
				mu.Unlock()
				return
			}
			d, busy[target] = queue[0], queue[1:]
			mu.Unlock()
		}
	}
	for n := 0; ; n++ {
		msg, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consumer: reading commands: %w", err)
		}
		d := c.decode(msg)
		target := d.target(n)
		mu.Lock()
		if queue, running := busy[target]; running {
			busy[target] = append(queue, d)
			mu.Unlock()
			continue
		}
		busy[target] = nil
		mu.Unlock()
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			// Not started: it is delivered again after AckWait.
			return nil
		}
		wg.Add(1)
		go runTarget(target, d)
	}
}

// delivery is one delivered command, decoded once: its subject's tokens,
// and the request it asks for or why it is rejected.
type delivery struct {
	msg              jetstream.Msg
	resource, action string
	req              Request
	invalid          error
}

func (c *Consumer) decode(msg jetstream.Msg) delivery {
	d := delivery{msg: msg}
	d.resource, d.action = c.tokens(msg.Subject())
	d.req, d.invalid = Validate(d.resource, d.action, msg.Data(), c.cfg.Resources, c.cfg.Allow)
	return d
}

// target names the item a command writes to; a create, whose item does not
// exist yet, and a command that names none get a name of their own.
func (d delivery) target(n int) string {
	if d.invalid == nil && d.req.ID != "" {
		return d.resource + "/" + string(d.req.ID)
	}
	return "\x00" + strconv.Itoa(n)
}

// tokens splits a command subject into the resource token and the rest.
func (c *Consumer) tokens(subject string) (resource, action string) {
	rest, _ := strings.CutPrefix(subject, c.cfg.Subjects.Prefix()+".commands.")
	resource, action, _ = strings.Cut(rest, ".")
	// A subject with a token missing (P.commands.tasks) still needs a
	// valid results subject for its rejection.
	if resource == "" {
		resource = "_"
	}
	if action == "" {
		action = "_"
	}
	return resource, action
}

// record is what the results bucket keeps per command id.
type record struct {
	State  string         `json:"state"` // "pending" before the write, "done" after
	Action string         `json:"action,omitempty"`
	Result *events.Result `json:"result,omitempty"`
}

const (
	statePending = "pending"
	stateDone    = "done"
)

// claim is what the results bucket says of a command id before it runs.
type claim struct {
	id, key string
	rev     uint64
	// done is the stored result of a command executed before.
	done *events.Result
	// resumed: the intent was recorded by a bridge that stopped before
	// the outcome; the write may or may not have landed.
	resumed bool
}

// handle executes one command: claim its id → check it → execute it →
// settle it (record, publish the result, acknowledge).
func (c *Consumer) handle(ctx context.Context, d delivery) {
	start := time.Now()
	meta, err := d.msg.Metadata()
	if err != nil {
		c.cfg.Observer.Problem("command without JetStream metadata; terminated", "", err)
		_ = d.msg.Term()
		return
	}
	cl, ok := c.claim(ctx, d, meta)
	if !ok {
		return
	}
	if cl.done != nil {
		// Executed before: the same result again, and no second write.
		c.finish(ctx, d.msg, cl.id, *cl.done, start, false)
		return
	}
	if res, refused := c.check(d, cl, meta.Timestamp); refused {
		c.complete(ctx, d.msg, cl.key, cl.rev, cl.id, res, start)
		return
	}
	c.execute(ctx, d, cl, start)
}

// claim records the intent under the command id, or reads what an earlier
// delivery recorded there. Not ok means the command is retried later.
func (c *Consumer) claim(ctx context.Context, d delivery, meta *jetstream.MsgMetadata) (claim, bool) {
	cl := claim{id: d.msg.Headers().Get(nats.MsgIdHdr)}
	if cl.id == "" {
		cl.id = strconv.FormatUint(meta.Sequence.Stream, 10)
	}
	cl.key = events.Escape(cl.id)
	// Most commands are new: claim the id first, and read the record only
	// when someone has.
	pendingRec, _ := events.EncodeJSON(record{State: statePending, Action: d.action})
	rev, err := c.results.Create(ctx, cl.key, pendingRec)
	if err == nil {
		cl.rev = rev
		return cl, true
	}
	rec, rev, err := c.lookup(ctx, cl.key)
	if err != nil {
		c.retryLater(d.msg, cl.id, "reading the command's record", err)
		return cl, false
	}
	cl.rev = rev
	switch {
	case rec.State == stateDone && rec.Result != nil:
		cl.done = rec.Result
	case rec.State == statePending:
		cl.resumed = true
	default:
		// The record vanished between the two calls (its TTL ran out):
		// let the redelivery claim the id afresh.
		c.retryLater(d.msg, cl.id, "recording the command's intent", errors.New("the record of this command changed meanwhile"))
		return cl, false
	}
	return cl, true
}

// check decides whether a claimed command may run: not when it expired,
// is invalid, or is a create whose earlier attempt has an unknown outcome.
// It does no I/O.
func (c *Consumer) check(d delivery, cl claim, published time.Time) (events.Result, bool) {
	res := events.Result{CommandID: cl.id, Resource: d.resource, Action: d.action, Command: originalCommand(d.msg.Data())}
	switch age := time.Since(published); {
	case age > c.cfg.MaxAge:
		res.Status, res.Error = events.StatusRejected, expired(published, age, c.cfg.MaxAge, cl.resumed)
		if cl.resumed {
			// It may have been sent before the bridge stopped: that much
			// is unknown, but it is not sent again.
			res.Status = events.StatusFailed
		}
	case d.invalid != nil:
		res.Status, res.Error = events.StatusRejected, d.invalid.Error()
	case cl.resumed && d.req.Action == events.ActionCreate:
		// The bridge stopped between recording the intent and the outcome:
		// the item may or may not exist. Sending it again could create it
		// twice, so it is not sent.
		res.Status = events.StatusFailed
		res.Error = "the outcome is unknown: the bridge stopped while this create was in flight, so Rockety may or may not " +
			"have created the item; check before sending it again (a create is never sent twice)"
	default:
		return events.Result{}, false
	}
	return res, true
}

// execute makes the API write, writes it through to the mirror and the
// events stream, and records and publishes its result.
func (c *Consumer) execute(ctx context.Context, d delivery, cl claim, start time.Time) {
	req := d.req
	var writeThrough func(context.Context, *rockety.Response) error
	if c.wt != nil {
		writeThrough = c.wt.Begin(ctx, req)
	}
	resp, werr := c.write(ctx, d.msg, req)
	if werr != nil && ctx.Err() != nil {
		// Cut short by shutdown: the outcome is not known, so nothing is
		// recorded and the command stays unacknowledged. Its redelivery
		// finds the intent recorded and resumes it.
		if writeThrough != nil {
			_ = writeThrough(ctx, nil)
		}
		return
	}
	res := resultOf(cl.id, d.resource, d.action, resp, werr, d.msg.Data())
	if werr != nil && cl.resumed && req.Action == events.ActionDelete && errors.Is(werr, rockety.ErrNotFound) {
		// The delete landed before the bridge stopped: the item is gone,
		// which is what a successful delete (204) means.
		res = events.Result{CommandID: cl.id, Resource: d.resource, Action: d.action, Status: events.StatusSucceeded,
			HTTPStatus: http.StatusNoContent}
	}
	// The result is recorded while the write-through runs, and published
	// after both: a service that has the result finds the change in the
	// mirror and in the events stream already.
	recorded := make(chan error, 1)
	go func() { recorded <- c.record(ctx, d.msg, cl.key, cl.rev, res) }()
	if writeThrough != nil {
		var written *rockety.Response
		if res.Status == events.StatusSucceeded && werr == nil {
			written = &resp
		}
		if err := writeThrough(ctx, written); err != nil {
			c.cfg.Observer.Problem("write-through failed; the next poll publishes the change instead", cl.id, err)
		}
	}
	if err := <-recorded; err != nil {
		c.retryLater(d.msg, cl.id, "recording the command's result", err)
		return
	}
	c.finish(ctx, d.msg, cl.id, res, start, true)
}

// expired says why a command too old to execute was not executed.
func expired(published time.Time, age, maxAge time.Duration, resumed bool) string {
	msg := fmt.Sprintf("the command expired: it was published %s ago (%s), and commands older than %s "+
		"(BRIDGE_COMMAND_MAX_AGE) are not executed, so a stale write does not land late; ",
		age.Round(time.Second), published.UTC().Format(time.RFC3339), maxAge)
	if resumed {
		return msg + "the bridge stopped while it was in flight, so Rockety may or may not have it; check before sending it again"
	}
	return msg + "it was not sent to Rockety; send it again with a new command id if it still applies"
}

// write calls the API, telling JetStream the command is in progress while
// retries run, so it is not delivered to another replica meanwhile.
func (c *Consumer) write(ctx context.Context, msg jetstream.Msg, req Request) (rockety.Response, error) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(c.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	// A command goes before every poll in the API budget: someone waits
	// for its result.
	ctx = rockety.WithLane(ctx, rockety.LaneCommand)
	switch req.Action {
	case events.ActionCreate:
		return c.writer.Create(ctx, req.Resource, req.Data)
	case events.ActionUpdate:
		return c.writer.Update(ctx, req.Resource, req.ID, req.Data)
	default:
		return c.writer.Delete(ctx, req.Resource, req.ID)
	}
}

// resultOf maps an API outcome onto a result.
func resultOf(commandID, resource, action string, resp rockety.Response, err error, body []byte) events.Result {
	res := events.Result{CommandID: commandID, Resource: resource, Action: action}
	if err == nil {
		res.Status, res.HTTPStatus = events.StatusSucceeded, resp.StatusCode
		if len(resp.Body) > 0 && json.Valid(resp.Body) {
			res.Data = resp.Body
		}
		return res
	}
	res.Status, res.Command = events.StatusFailed, originalCommand(body)
	var apiErr *rockety.APIError
	if errors.As(err, &apiErr) {
		res.HTTPStatus = apiErr.StatusCode
	}
	res.Error = err.Error()
	if errors.Is(err, rockety.ErrTransient) {
		res.Error = "the Rockety API kept failing and the retries ran out: " + res.Error
	}
	return res
}

// complete records the result under the command id, then publishes it
// and settles the command.
func (c *Consumer) complete(ctx context.Context, msg jetstream.Msg, key string, rev uint64, commandID string, res events.Result, start time.Time) {
	if err := c.record(ctx, msg, key, rev, res); err != nil {
		c.retryLater(msg, commandID, "recording the command's result", err)
		return
	}
	c.finish(ctx, msg, commandID, res, start, true)
}

// record stores a command's result under its id. Without the record a
// redelivery could not tell the write's outcome (a create would be
// reported unknown), so while NATS is away it tries again for up to
// AckWait, holding the command meanwhile; after that the caller asks for
// the command again.
func (c *Consumer) record(ctx context.Context, msg jetstream.Msg, key string, rev uint64, res events.Result) error {
	data, _ := events.EncodeJSON(record{State: stateDone, Action: res.Action, Result: &res})
	retry := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second), backoff.WithMaxElapsedTime(c.cfg.AckWait))
	return backoff.RetryNotify(func() error {
		// A try sent to a server that is going away is never answered: on
		// its own it would wait out the client's timeout (5 s), which may be
		// all of AckWait, and the command would be delivered again and, an
		// update, sent to the API again. Short tries leave time for more.
		tctx, cancel := context.WithTimeout(ctx, recordTry(c.cfg.AckWait))
		defer cancel()
		var err error
		if rev == 0 {
			_, err = c.results.Create(tctx, key, data)
		} else {
			_, err = c.results.Update(tctx, key, data, rev)
		}
		if err == nil {
			return nil
		}
		// A try whose answer was lost may have landed: the revision moved on.
		if rec, _, lerr := c.lookup(tctx, key); lerr == nil && rec.State == stateDone {
			return nil
		}
		return err
	}, backoff.WithContext(retry, ctx), func(error, time.Duration) { _ = msg.InProgress() })
}

// recordTry bounds one try of recording a result: a sixth of AckWait, so
// that several fit in it, from 250 ms (a round trip under load) to 2 s.
func recordTry(ackWait time.Duration) time.Duration {
	return min(max(ackWait/6, 250*time.Millisecond), 2*time.Second)
}

// finish publishes a result recorded before and settles the command.
func (c *Consumer) finish(ctx context.Context, msg jetstream.Msg, commandID string, res events.Result, start time.Time, first bool) {
	published, err := c.publishResult(commandID, res)
	c.settle(ctx, msg, commandID, res, start, first, published, err)
}

// publishResult sends a result, a CloudEvent, without waiting for
// JetStream's ack.
func (c *Consumer) publishResult(commandID string, res events.Result) (jetstream.PubAckFuture, error) {
	res.CommandID = commandID
	out, err := events.NewResultMsg(c.cfg.Subjects, c.cfg.APIBaseURL, res, time.Now())
	if err != nil {
		return nil, err
	}
	return c.queue.PublishMsgAsync(out)
}

// settle waits until the result is stored, then acknowledges the command
// when it succeeded and terminates it otherwise (never redelivered).
func (c *Consumer) settle(ctx context.Context, msg jetstream.Msg, commandID string, res events.Result, start time.Time, first bool,
	published jetstream.PubAckFuture, err error) {
	if err == nil {
		select {
		case <-published.Ok():
		case err = <-published.Err():
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(c.cfg.AckWait):
			err = jetstream.ErrAsyncPublishTimeout
		}
	}
	if err != nil {
		c.retryLater(msg, commandID, "publishing the result", err)
		return
	}
	if res.Status == events.StatusSucceeded {
		if err := msg.Ack(); err != nil {
			c.cfg.Observer.Problem("acknowledging a command", commandID, err)
		}
	} else {
		_ = msg.TermWithReason(string(res.Status) + ": " + truncate(res.Error, 200))
	}
	if first {
		c.cfg.Observer.CommandDone(res.Resource, res.Action, res.Status, time.Since(start))
	}
}

// retryLater asks for the command again a little later: NATS or the bridge
// failed, not the command.
func (c *Consumer) retryLater(msg jetstream.Msg, commandID, what string, err error) {
	c.cfg.Observer.Problem(what+"; the command is retried", commandID, err)
	_ = msg.NakWithDelay(2 * time.Second)
}

// lookup reads a command's record; a missing one is the zero record.
func (c *Consumer) lookup(ctx context.Context, key string) (record, uint64, error) {
	e, err := c.results.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return record{}, 0, nil
	}
	if err != nil {
		return record{}, 0, err
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return record{}, 0, fmt.Errorf("the record of this command is unreadable: %w", err)
	}
	return rec, e.Revision(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

type nopObserver struct{}

func (nopObserver) CommandDone(string, string, events.Status, time.Duration) {}
func (nopObserver) Problem(string, string, error)                            {}
