// Package publisher is everything the bridge does with JetStream: it
// provisions the streams and buckets, publishes events with dedupe ids and
// reports exactly which were acknowledged, keeps the live mirror of every
// item in KV, and hands out one lease per resource so that only one replica
// polls it.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
)

// Defaults of the provisioned streams and buckets.
const (
	DefaultMaxAge          = 7 * 24 * time.Hour
	DefaultDuplicateWindow = 10 * time.Minute
	DefaultLeaseTTL        = 15 * time.Second
	// DefaultCommandRetention is the default command validity (1h) and a day.
	DefaultCommandRetention = 25 * time.Hour
	// CommandResultTTL is how long an executed command id and its result
	// are kept: a command re-sent or redelivered within it is not executed
	// again.
	CommandResultTTL = 24 * time.Hour
	// MinDuplicateWindow is the shortest dedupe window allowed: a crashed
	// bridge that republishes within it cannot produce a duplicate.
	MinDuplicateWindow = 10 * time.Minute
)

// Config says what to provision. Zero fields take the defaults.
type Config struct {
	Subjects events.Subjects
	// MaxAge bounds how long events and results are kept.
	MaxAge time.Duration
	// CommandRetention bounds how long an unread command is kept. A
	// command outlives its validity (BRIDGE_COMMAND_MAX_AGE) by a day, so
	// a bridge that was down answers it as expired instead of letting it
	// vanish unanswered. Zero is DefaultCommandRetention.
	CommandRetention time.Duration
	DuplicateWindow  time.Duration
	// Replicas is the stream and bucket replication factor in a cluster.
	Replicas int
	// LeaseTTL is the bucket-level TTL of the leases bucket
	// (BRIDGE_LEASE_TTL): a holder that stops renewing loses its lease
	// after it.
	LeaseTTL time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Subjects.Prefix() == "" {
		return c, errors.New("publisher: config without subjects; use events.NewSubjects")
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.CommandRetention == 0 {
		c.CommandRetention = DefaultCommandRetention
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	switch {
	case c.MaxAge < 0:
		return c, fmt.Errorf("publisher: max age %s: must be positive", c.MaxAge)
	case c.DuplicateWindow < MinDuplicateWindow:
		return c, fmt.Errorf("publisher: duplicate window %s: must be at least %s so a republish after a crash is still deduplicated",
			c.DuplicateWindow, MinDuplicateWindow)
	case c.DuplicateWindow > c.MaxAge || c.DuplicateWindow > c.CommandRetention:
		return c, fmt.Errorf("publisher: duplicate window %s is longer than the max age %s or the command retention %s",
			c.DuplicateWindow, c.MaxAge, c.CommandRetention)
	case c.Replicas < 1 || c.Replicas > 5:
		return c, fmt.Errorf("publisher: replicas %d: want 1 to 5", c.Replicas)
	case c.LeaseTTL < time.Second:
		return c, fmt.Errorf("publisher: lease TTL %s (BRIDGE_LEASE_TTL): must be at least 1s", c.LeaseTTL)
	}
	return c, nil
}

// Resources are the provisioned streams and buckets.
type Resources struct {
	Events   jetstream.Stream
	Commands jetstream.Stream
	State    jetstream.KeyValue
	Leases   jetstream.KeyValue
	// Checkpoints is the bridge's bookkeeping per resource.
	Checkpoints jetstream.KeyValue
	// CommandResults holds executed command ids and their results.
	CommandResults jetstream.KeyValue
}

// Provision creates the streams ROCKETY_EVENTS and ROCKETY_COMMANDS and the
// buckets ROCKETY_STATE, ROCKETY_CHECKPOINTS, ROCKETY_COMMAND_RESULTS and
// ROCKETY_LEASES (names follow the prefix), or
// updates them to cfg. It is idempotent, and it never deletes a stream or a
// bucket: a change the server refuses (storage type, retention) is an error
// that names the stream and says what to do.
func Provision(ctx context.Context, js jetstream.JetStream, cfg Config) (Resources, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Resources{}, err
	}
	s := cfg.Subjects
	var res Resources
	res.Events, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        s.EventsStream(),
		Description: "Rockety change events, command results and cycle reports (rockety-bridge)",
		Subjects:    []string{s.Events(), s.Results(), s.Cycles()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.MaxAge,
		Duplicates:  cfg.DuplicateWindow,
		Replicas:    cfg.Replicas,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return res, err
	}
	res.Commands, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        s.CommandsStream(),
		Description: "Commands for the Rockety API (rockety-bridge)",
		Subjects:    []string{s.Commands()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		MaxAge:      cfg.CommandRetention,
		Duplicates:  cfg.DuplicateWindow,
		Replicas:    cfg.Replicas,
		// A full queue must refuse new commands, not drop accepted ones.
		Discard: jetstream.DiscardNew,
	})
	if err != nil {
		return res, err
	}
	res.State, err = ensureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      s.StateBucket(),
		Description: "Live mirror of every Rockety item (rockety-bridge)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return res, err
	}
	res.Checkpoints, err = ensureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      s.CheckpointsBucket(),
		Description: "Per resource: events-stream checkpoint, incremental cursor, last full traversal (rockety-bridge)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return res, err
	}
	res.CommandResults, err = ensureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      s.CommandResultsBucket(),
		Description: "Executed command ids and their results (rockety-bridge)",
		History:     1,
		TTL:         CommandResultTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return res, err
	}
	res.Leases, err = ensureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      s.LeasesBucket(),
		Description: "One poller per Rockety resource (rockety-bridge)",
		History:     1,
		// A bucket-level TTL, not a per-key one: every renewal is a new
		// message, so a lease lives exactly TTL past its last renewal.
		TTL:      cfg.LeaseTTL,
		Storage:  jetstream.FileStorage,
		Replicas: cfg.Replicas,
	})
	return res, err
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("publisher: provisioning stream %s: %w%s", cfg.Name, err, refusalHint(err, cfg.Replicas))
	}
	return st, nil
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("publisher: provisioning KV bucket %s: %w%s", cfg.Bucket, err, refusalHint(err, cfg.Replicas))
	}
	return kv, nil
}

// JetStream error codes the bridge acts on that nats.go does not name, with
// the server's names (nats-server's errors.json).
const (
	// JSStreamInvalidConfigF: a stream update the server will not make (a
	// change of storage type or retention, say).
	streamInvalidConfig jetstream.ErrorCode = 10052
	// JSInsufficientResourcesErr and JSStorageResourcesExceededErr: no
	// storage left.
	insufficientResources    jetstream.ErrorCode = 10023
	storageResourcesExceeded jetstream.ErrorCode = 10047
	// JSStreamReplicasNotSupportedErr: replicas above 1 on a server that is
	// not clustered.
	replicasNotSupported jetstream.ErrorCode = 10074
	// JSClusterNoPeersErrF: fewer servers than replicas to place them on.
	noSuitablePeers jetstream.ErrorCode = 10005
	// JSStreamWrongLastSequenceConstantErr: a compare-and-set write whose
	// expected revision is no longer the last.
	wrongLastSequenceConstant jetstream.ErrorCode = 10164
)

func refusalHint(err error, replicas int) string {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return " (enable JetStream on the NATS server or for this account)"
	case errors.As(err, &apiErr) && apiErr.ErrorCode == replicasNotSupported:
		return fmt.Sprintf(" (BRIDGE_STREAM_REPLICAS=%d, but this NATS server is not part of a JetStream cluster: set BRIDGE_STREAM_REPLICAS=1, or connect to a cluster of at least %d servers)", replicas, replicas)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == noSuitablePeers:
		return fmt.Sprintf(" (BRIDGE_STREAM_REPLICAS=%d asks for more JetStream servers than the cluster has to place it on: set it to the cluster's size or less, 3 on a 3-node cluster)", replicas)
	case errors.As(err, &apiErr) && (apiErr.Code == 400 || apiErr.ErrorCode == streamInvalidConfig):
		return " (the server refuses to change the existing one to this configuration; the bridge never deletes data, so migrate or remove it by hand)"
	case errors.As(err, &apiErr) && (apiErr.Code == 401 || apiErr.Code == 403):
		return " (the NATS user lacks permission for the JetStream API; see the README's NATS permissions)"
	}
	return ""
}
