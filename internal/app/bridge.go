// Package app wires the bridge's parts together for the binary's run and
// demo commands: the pollers, the command consumer and the publisher on one
// NATS connection, with the metrics and logs that observe them.
package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// Resource is one polled resource and its interval.
type Resource struct {
	Name     string
	Interval time.Duration
	// ChangedSince is the list filter of incremental polling
	// (ROCKETY_CHANGED_SINCE); empty polls by full traversals only.
	ChangedSince string
}

// Incremental configures incremental polling and soft deletes for every
// resource (ROCKETY_CHANGED_AT_FIELD, ROCKETY_CHANGED_SINCE_LOOKBACK,
// ROCKETY_FULL_SYNC_INTERVAL, ROCKETY_DELETED_FIELD); zero values are the
// poller's defaults, and a zero lookback is none.
type Incremental struct {
	ChangedAtField string
	Lookback       time.Duration
	FullEvery      time.Duration
	DeletedField   string
}

// Options configure a Bridge.
type Options struct {
	Client         *rockety.Client
	Conn           *nats.Conn
	Subjects       events.Subjects
	Resources      []Resource
	InitialSync    poller.InitialSync
	MaxDeleteRatio float64
	Incremental    Incremental
	InstanceID     string
	LeaseTTL       time.Duration
	// Replicas of the streams and buckets (BRIDGE_STREAM_REPLICAS); 0 is 1.
	Replicas int
	// CommandMaxAge is BRIDGE_COMMAND_MAX_AGE; the commands stream keeps a
	// command a day past it. 0 is the consumer's default.
	CommandMaxAge time.Duration
	// DeleteRetention is BRIDGE_DELETE_RETENTION (poller.Config).
	DeleteRetention time.Duration
	// ShutdownGrace is how long a cycle in progress may run on after the
	// bridge is told to stop, before it is cut short (what it published is
	// then committed at the next start).
	ShutdownGrace time.Duration
	Logger        *zap.Logger
	Metrics       *Metrics
	// Commands, when set, runs the command consumer beside the pollers.
	Commands *Commands
}

// Commands configures the command consumer. The bridge fills what it
// knows itself: subjects, replicas, the API base URL, the shutdown grace,
// the observer, and recreating the streams.
type Commands struct {
	// Writer makes the API writes: the bridge's client, as a rule.
	Writer consumer.Writer
	// Resources commands may name (ROCKETY_RESOURCES).
	Resources []string
	// Allow is BRIDGE_COMMAND_ALLOW.
	Allow consumer.Allow
	// Concurrency is BRIDGE_COMMAND_CONCURRENCY; 0 is the consumer's default.
	Concurrency int
	// MaxAge is BRIDGE_COMMAND_MAX_AGE; 0 is the consumer's default.
	MaxAge time.Duration
	// AckWait is how long a delivered command may go unacknowledged; 0 is
	// the consumer's default.
	AckWait time.Duration
	// Observer, when set, is told every outcome too (besides the metrics
	// and the logs).
	Observer consumer.Observer
}

// Bridge runs one poller per resource, and the command consumer, on one
// NATS connection.
type Bridge struct {
	opts      Options
	log       *zap.Logger
	js        jetstream.JetStream
	resources publisher.Resources
	store     *publisher.StateStore
	pub       *publisher.Publisher
	pollers   []*poller.Poller
	// budget is the API budget shared with every replica, or nil when
	// the client is unlimited.
	budget *publisher.SharedBudget

	mu     sync.Mutex
	status map[string]*resourceStatus
	// commandsHealth says why the command consumer is not serving, or
	// nil; unset while it starts.
	commandsHealth func() error
}

type resourceStatus struct {
	interval    time.Duration
	held        bool
	polling     bool
	lastSuccess time.Time
	lastErr     error
	// refused is why the API refuses this resource's requests (a wrong
	// token, say), from the first refusal until a complete cycle.
	refused string
	// changedSince is the resource's incremental filter, if any;
	// warnedNoCursor, that its missing changed-at values were logged.
	changedSince   string
	warnedNoCursor bool
}

// New provisions the streams and buckets and builds the pollers.
func New(ctx context.Context, opts Options) (*Bridge, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 10 * time.Second
	}
	b := &Bridge{opts: opts, log: opts.Logger, status: map[string]*resourceStatus{}}
	var err error
	if b.js, err = jetstream.New(opts.Conn); err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b.resources, err = publisher.Provision(pctx, b.js, b.provisioning())
	if err != nil {
		return nil, err
	}
	// Before anything is hashed: the mirror's stored hashes are made with
	// the deployment's key.
	key, err := publisher.HashKey(pctx, b.resources.Checkpoints)
	if err != nil {
		return nil, err
	}
	plan.UseHashKey(key)
	b.store = publisher.NewStateStore(b.js, b.resources.State)
	if b.pub, err = publisher.NewPublisher(opts.Conn); err != nil {
		return nil, err
	}
	leases, err := publisher.NewLeases(pctx, b.resources.Leases, opts.InstanceID)
	if err != nil {
		return nil, err
	}
	if budget := opts.Client.Budget(); budget != nil {
		b.budget, err = publisher.NewSharedBudget(pctx, b.resources.Leases, opts.InstanceID, budget.Rate(), budget.Burst(), (*budgetLog)(b))
		if err != nil {
			return nil, err
		}
		budget.ShareWith(b.budget)
		if opts.Metrics != nil {
			opts.Metrics.WatchBudget(budget, b.budget)
		}
	}
	journal := publisher.NewJournal(b.js, opts.Subjects)
	reports := reporter{reports: publisher.NewReports(b.js, opts.Subjects), log: b.log}
	for _, r := range opts.Resources {
		p, err := poller.New(poller.Config{
			Resource:        r.Name,
			Interval:        r.Interval,
			InitialSync:     opts.InitialSync,
			MaxDeleteRatio:  opts.MaxDeleteRatio,
			ChangedSince:    r.ChangedSince,
			ChangedAtField:  opts.Incremental.ChangedAtField,
			Lookback:        opts.Incremental.Lookback,
			FullEvery:       opts.Incremental.FullEvery,
			DeletedField:    opts.Incremental.DeletedField,
			Instance:        opts.InstanceID,
			DeleteRetention: opts.DeleteRetention,
		}, poller.Deps{
			Lister:      opts.Client,
			Mirror:      b.store,
			Checkpoints: publisher.NewCheckpoints(b.resources.Checkpoints, b.resources.State),
			Sink:        b.sink(),
			Journal:     journal,
			Lease:       leases.For(r.Name),
			Observer:    (*observer)(b),
			Reports:     reports,
		})
		if err != nil {
			return nil, err
		}
		b.pollers = append(b.pollers, p)
		if opts.Metrics != nil {
			opts.Metrics.InitResource(r.Name)
		}
		b.status[r.Name] = &resourceStatus{interval: r.Interval, changedSince: r.ChangedSince}
	}
	return b, nil
}

// sink publishes events the way the pollers do; the command consumer uses
// it for write-through events.
func (b *Bridge) sink() publisher.EventSink {
	return publisher.EventSink{Publisher: b.pub, Subjects: b.opts.Subjects, APIBaseURL: b.opts.Client.BaseURL(),
		Timeout: publishTimeout, Reprovision: b.reprovision}
}

// publishTimeout bounds one batch's wait for JetStream: a cycle that cannot
// publish fails and is retried with backoff, rather than waiting for ever.
const publishTimeout = 30 * time.Second

// reprovision creates the streams and buckets again after one vanished
// under the bridge (deleted by hand, say). Existing ones are left as they are.
func (b *Bridge) reprovision(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := publisher.Provision(ctx, b.js, b.provisioning())
	if err != nil {
		return fmt.Errorf("recreating the streams: %w", err)
	}
	b.log.Error("a stream of the bridge was missing (deleted under it?); streams and buckets recreated. "+
		"What the old one held is gone; new changes and commands flow again",
		zap.String("events", b.opts.Subjects.EventsStream()), zap.String("commands", b.opts.Subjects.CommandsStream()))
	return nil
}

func (b *Bridge) provisioning() publisher.Config {
	cfg := publisher.Config{Subjects: b.opts.Subjects, LeaseTTL: b.opts.LeaseTTL, Replicas: b.opts.Replicas}
	if b.opts.CommandMaxAge > 0 {
		cfg.CommandRetention = b.opts.CommandMaxAge + 24*time.Hour
	}
	return cfg
}

// Store is the live mirror.
func (b *Bridge) Store() *publisher.StateStore { return b.store }

// JetStream is the bridge's JetStream context.
func (b *Bridge) JetStream() jetstream.JetStream { return b.js }

// Run polls every resource, and runs the command consumer, until ctx ends;
// then it lets cycles in progress finish (up to ShutdownGrace) and returns.
func (b *Bridge) Run(ctx context.Context) error {
	control, err := b.serveResync()
	if err != nil {
		return fmt.Errorf("subscribing to resync requests: %w", err)
	}
	defer func() { _ = control.Unsubscribe() }()
	var wg sync.WaitGroup
	errs := make(chan error, len(b.pollers)+2)
	if b.budget != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.budget.Run(ctx); err != nil {
				errs <- fmt.Errorf("API budget: %w", err)
			}
		}()
	}
	for _, p := range b.pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx, b.opts.ShutdownGrace); err != nil {
				errs <- fmt.Errorf("poller %s: %w", p.Resource(), err)
			}
		}()
	}
	if b.opts.Commands != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.runCommands(ctx); err != nil {
				errs <- fmt.Errorf("command consumer: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// runCommands starts the command consumer and runs it until ctx ends.
// Setting up can fail while NATS comes and goes; the pollers go on
// meanwhile, so it keeps trying rather than stay away, and readiness
// says why it is not running.
func (b *Bridge) runCommands(ctx context.Context) error {
	o := b.opts.Commands
	cfg := consumer.Config{
		Subjects:  b.opts.Subjects,
		Resources: o.Resources,
		Allow:     o.Allow,
		// The API's latency, not the bridge, bounds a command: a replica
		// keeps this many writes in flight.
		Concurrency:   o.Concurrency,
		MaxAge:        o.MaxAge,
		APIBaseURL:    b.opts.Client.BaseURL(),
		ShutdownGrace: b.opts.ShutdownGrace,
		AckWait:       o.AckWait,
		Observer:      CommandObserver{Log: b.log, Metrics: b.opts.Metrics, Also: o.Observer},
		// Recreates the commands stream if it is deleted under us.
		Reprovision: b.reprovision,
	}
	wt := WriteThrough{Store: b.store, Sink: b.sink(), Metrics: b.opts.Metrics, DeletedField: b.opts.Incremental.DeletedField,
		Floors: publisher.NewCheckpoints(b.resources.Checkpoints, b.resources.State), Journal: publisher.NewJournal(b.js, b.opts.Subjects)}
	var c *consumer.Consumer
	retry := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(time.Second),
		backoff.WithMaxInterval(30*time.Second), backoff.WithMaxElapsedTime(0)), ctx)
	err := backoff.RetryNotify(func() error {
		var err error
		c, err = consumer.New(ctx, b.js, b.resources.CommandResults, o.Writer, wt, cfg)
		return err
	}, retry, func(err error, wait time.Duration) {
		notStarted := fmt.Errorf("not running: %w", err)
		b.setCommandsHealth(func() error { return notStarted })
		b.log.Error("the command consumer could not start; it tries again", zap.Duration("in", wait), zap.Error(err))
	})
	if err != nil {
		return nil // ctx ended
	}
	if b.opts.Metrics != nil {
		b.opts.Metrics.InitCommands(o.Resources)
	}
	b.setCommandsHealth(c.Ready)
	b.log.Info("command consumer running", zap.String("subjects", b.opts.Subjects.Commands()), zap.Strings("allow", o.Allow))
	return c.Run(ctx)
}

// setCommandsHealth tells Ready how to learn whether the command consumer
// serves: health returns nil while it does, else why not.
func (b *Bridge) setCommandsHealth(health func() error) {
	b.mu.Lock()
	b.commandsHealth = health
	b.mu.Unlock()
}

// Ready reports why the bridge is not ready, or nil: NATS must be
// connected; every resource whose lease this instance holds must have had
// a complete cycle within three intervals, or be in its first one, and the
// API must not be refusing its requests; the command consumer, when it
// runs, must be serving.
func (b *Bridge) Ready() error {
	if !b.opts.Conn.IsConnected() {
		return errors.New("NATS is not connected")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var problems []string
	if b.opts.Commands != nil {
		if b.commandsHealth == nil {
			problems = append(problems, "command consumer: starting")
		} else if err := b.commandsHealth(); err != nil {
			problems = append(problems, "command consumer: "+err.Error())
		}
	}
	now := time.Now()
	names := make([]string, 0, len(b.status))
	for name := range b.status {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s := b.status[name]
		if !s.held {
			continue // another replica polls it
		}
		if s.refused != "" {
			problems = append(problems, name+": "+s.refused)
			continue
		}
		if s.lastSuccess.IsZero() {
			if !s.polling && s.lastErr != nil {
				problems = append(problems, fmt.Sprintf("%s: first cycle failed: %v", name, s.lastErr))
			}
			continue
		}
		if now.Sub(s.lastSuccess) > 3*s.interval && !s.polling {
			problems = append(problems, fmt.Sprintf("%s: no complete cycle since %s (last error: %v)",
				name, s.lastSuccess.Format(time.RFC3339), s.lastErr))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// budgetLog says when the shared API budget cannot be reached, and when it
// is back.
type budgetLog Bridge

func (l *budgetLog) BudgetFallback(alone bool, share float64, replicas int, err error) {
	b := (*Bridge)(l)
	if alone {
		b.log.Warn("the shared API budget in NATS cannot be reached; this replica spends an equal share of ROCKETY_RATE_LIMIT alone until it can",
			zap.Float64("share_per_second", share), zap.Int("replicas", replicas), zap.Error(err))
		return
	}
	b.log.Info("the API budget is shared through NATS again", zap.Int("replicas", replicas))
}

func (l *budgetLog) BudgetUncounted(err error) {
	(*Bridge)(l).log.Warn("the replicas sharing the API budget cannot be counted; the budget is still shared, but while NATS is away this replica would spend the share of the last count. Check the bridge's NATS permissions on the leases bucket",
		zap.Error(err))
}

// observer logs and counts what the pollers report.
type observer Bridge

func (o *observer) CycleStarted(resource string) {
	b := (*Bridge)(o)
	b.mu.Lock()
	b.status[resource].polling = true
	b.mu.Unlock()
}

func (o *observer) CycleDone(resource string, s poller.CycleStats, took time.Duration, err error) {
	b := (*Bridge)(o)
	var apiErr *rockety.APIError
	refused := ""
	if errors.Is(err, rockety.ErrPermanent) && errors.As(err, &apiErr) {
		refused = apiErr.Summary()
	}
	b.mu.Lock()
	st := b.status[resource]
	st.polling = false
	st.lastErr = err
	healed := false
	newlyRefused := refused != "" && refused != st.refused
	switch {
	case err == nil && s.Complete:
		st.lastSuccess = time.Now()
		healed, st.refused = st.refused != "", ""
	case refused != "":
		st.refused = refused
	}
	tracked, ids := 0, 0
	for _, p := range b.pollers {
		if p.Resource() == resource {
			tracked, ids = p.Tracked(), p.IDs()
		}
	}
	if b.opts.Metrics != nil {
		b.opts.Metrics.CycleDone(resource, s, took, err, tracked, ids)
	}
	// An empty resource has no changed-at values to miss.
	noCursor := st.changedSince != "" && err == nil && s.Complete && s.Kind != poller.KindIncremental && s.Seen > 0 &&
		s.Cursor.IsZero() && !st.warnedNoCursor
	if noCursor {
		st.warnedNoCursor = true
	}
	b.mu.Unlock()
	field := b.opts.Incremental.ChangedAtField
	if field == "" {
		field = poller.DefaultChangedAtField
	}
	fields := []zap.Field{zap.String("resource", resource), zap.String("kind", string(s.Kind)), zap.Duration("took", took), zap.Int("pages", s.Pages),
		zap.Int("seen", s.Seen), zap.Int("created", s.Created), zap.Int("updated", s.Updated),
		zap.Int("deleted", s.Deleted), zap.Int("snapshot", s.Snapshot), zap.Int("requests", s.Requests)}
	if s.CatchUps > 0 {
		fields = append(fields, zap.Int("catch_ups", s.CatchUps), zap.Int("catch_ups_failed", s.CatchUpsFailed))
	}
	if s.Distrusted != "" {
		b.log.Error("ROCKETY_CHANGED_SINCE: the API ignores this resource's filter; it is polled by full traversals only until the bridge restarts. Check the parameter's name in the API's documentation",
			zap.String("resource", resource), zap.String("parameter", st.changedSince), zap.String("reason", s.Distrusted))
	}
	switch {
	case s.GuardTripped:
		b.log.Error("mass-delete guard: more than BRIDGE_MAX_DELETE_RATIO of the known items vanished in one cycle; no deletes published",
			append(fields, zap.Int("vanished", s.Suspected), zap.Int("known", tracked+s.Deleted),
				zap.Float64("max_ratio", b.opts.MaxDeleteRatio))...)
	case err != nil && errors.Is(err, context.Canceled):
		b.log.Info("poll cycle cut short by shutdown; what it published is committed at the next start", fields...)
	case err != nil && errors.Is(err, poller.ErrLeaseLost):
		b.log.Warn("poll lease lost; another replica polls this resource now", zap.String("resource", resource))
	case newlyRefused:
		// Retrying will not help until someone acts: one error line when
		// it begins, not one per retry; /readyz says it until it heals.
		b.log.Error("the Rockety API refuses to list this resource; the bridge is not ready and tries again every minute at most until it is fixed",
			append(fields, zap.String("reason", refused), zap.Error(err))...)
	case refused != "":
		b.log.Debug("the Rockety API still refuses to list this resource", append(fields, zap.String("reason", refused))...)
	case err != nil:
		b.log.Warn("poll cycle failed; it is retried with backoff", append(fields, zap.Error(err))...)
	case healed:
		b.log.Info("the Rockety API accepts this resource's requests again", fields...)
	case s.Created+s.Updated+s.Deleted+s.Snapshot > 0:
		b.log.Info("poll cycle", fields...)
	default:
		b.log.Debug("poll cycle", fields...)
	}
	if noCursor {
		b.log.Warn("ROCKETY_CHANGED_AT_FIELD: no item of this resource has an RFC 3339 time in the field, so incremental polling has no cursor and every cycle is a full traversal; name the field that says when an item last changed",
			zap.String("resource", resource), zap.String("field", field))
	}
	if s.CompactErr != nil {
		b.log.Warn("dropping old delete markers stopped short; the next full traversal tries again",
			zap.String("resource", resource), zap.Int("dropped", s.Compacted), zap.Error(s.CompactErr))
	} else if s.Compacted > 0 {
		b.log.Info("dropped the delete markers of items deleted longer ago than BRIDGE_DELETE_RETENTION",
			zap.String("resource", resource), zap.Int("dropped", s.Compacted), zap.Int("ids_tracked", ids))
	}
	if s.Missed > 0 {
		b.log.Warn("a full traversal found changes the incremental filter should have listed and did not; they are published now. If this repeats, raise ROCKETY_CHANGED_SINCE_LOOKBACK or check the filter",
			zap.String("resource", resource), zap.Int("missed", s.Missed), zap.String("parameter", st.changedSince))
	}
	if s.Total >= 0 && s.Complete && s.Seen < s.Total {
		b.log.Debug("the traversal saw fewer items than the API's total; items moved between pages and suspected deletes are confirmed one by one",
			zap.String("resource", resource), zap.Int("seen", s.Seen), zap.Int("total", s.Total))
	}
}

func (o *observer) LeaseHeld(resource string, held bool, err error) {
	b := (*Bridge)(o)
	b.mu.Lock()
	was := b.status[resource].held
	b.status[resource].held = held
	b.mu.Unlock()
	if b.opts.Metrics != nil {
		b.opts.Metrics.LeaseHeld(resource, held)
	}
	switch {
	case err != nil:
		b.log.Warn("poll lease", zap.String("resource", resource), zap.Bool("held", held), zap.Error(err))
	case held != was:
		b.log.Info("poll lease", zap.String("resource", resource), zap.Bool("held", held),
			zap.String("instance", b.opts.InstanceID))
	}
}
