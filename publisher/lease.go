package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/events"
)

// ErrLeaseLost means a lease is no longer held: it expired, or another
// instance took it.
var ErrLeaseLost = errors.New("publisher: lease lost")

// Leases hands out one lease per resource in KV ROCKETY_LEASES, whose
// bucket-level TTL (BRIDGE_LEASE_TTL) makes a lease pass on when its holder
// stops renewing. The value of a lease is its holder's instance id.
type Leases struct {
	kv       jetstream.KeyValue
	instance string
	ttl      time.Duration
	now      func() time.Time
}

// Lease is a held lease. Renew it well within the TTL.
type Lease struct {
	Resource string
	// Until is when the lease ends unless renewed, counted from before the
	// request that took or renewed it, so the holder stops no later than
	// the bucket lets another instance take over.
	Until    time.Time
	revision uint64
}

// Valid reports whether the lease is still held at now, by its own clock.
func (l Lease) Valid(now time.Time) bool { return now.Before(l.Until) }

// NewLeases returns leases for one instance (BRIDGE_INSTANCE_ID) in the
// leases bucket, whose TTL it reads.
func NewLeases(ctx context.Context, kv jetstream.KeyValue, instanceID string) (*Leases, error) {
	if instanceID == "" {
		return nil, errors.New("publisher: empty instance id (BRIDGE_INSTANCE_ID)")
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("publisher: reading the leases bucket: %w", err)
	}
	if st.TTL() <= 0 {
		return nil, fmt.Errorf("publisher: the leases bucket %s has no TTL; a dead holder would keep its lease for ever", kv.Bucket())
	}
	return &Leases{kv: kv, instance: instanceID, ttl: st.TTL(), now: time.Now}, nil
}

// TTL is the lease time to live of the bucket.
func (l *Leases) TTL() time.Duration { return l.ttl }

// Acquire takes the lease of resource if nobody holds it, or if it is held
// under this instance's own id (a restart of the same pod). Otherwise it
// reports false and the current holder.
func (l *Leases) Acquire(ctx context.Context, resource string) (lease Lease, held bool, holder string, err error) {
	if err := events.ValidResource(resource); err != nil {
		return Lease{}, false, "", err
	}
	start := l.now()
	rev, err := l.kv.Create(ctx, resource, []byte(l.instance))
	if err == nil {
		return Lease{Resource: resource, Until: start.Add(l.ttl), revision: rev}, true, l.instance, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return Lease{}, false, "", fmt.Errorf("publisher: taking the %s lease: %w", resource, storageFull(err))
	}
	cur, err := l.kv.Get(ctx, resource)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		// Expired or released between the two calls: try again next time.
		return Lease{}, false, "", nil
	}
	if err != nil {
		return Lease{}, false, "", fmt.Errorf("publisher: reading the %s lease: %w", resource, err)
	}
	holder = string(cur.Value())
	if holder != l.instance {
		return Lease{}, false, holder, nil
	}
	rev, err = l.kv.Update(ctx, resource, []byte(l.instance), cur.Revision())
	if err != nil {
		return Lease{}, false, holder, nil
	}
	return Lease{Resource: resource, Until: start.Add(l.ttl), revision: rev}, true, l.instance, nil
}

// Renew extends a held lease by another TTL. ErrLeaseLost means it is gone:
// stop polling at once.
func (l *Leases) Renew(ctx context.Context, lease Lease) (Lease, error) {
	start := l.now()
	rev, err := l.kv.Update(ctx, lease.Resource, []byte(l.instance), lease.revision)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) ||
			(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return Lease{}, fmt.Errorf("%w: %s: %w", ErrLeaseLost, lease.Resource, err)
		}
		return lease, fmt.Errorf("publisher: renewing the %s lease: %w", lease.Resource, storageFull(err))
	}
	lease.revision, lease.Until = rev, start.Add(l.ttl)
	return lease, nil
}

// Release gives a held lease up, so another instance can take it without
// waiting for the TTL. A lease that was lost already is left alone.
func (l *Leases) Release(ctx context.Context, lease Lease) error {
	err := l.kv.Delete(ctx, lease.Resource, jetstream.LastRevision(lease.revision))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return nil
		}
		return fmt.Errorf("publisher: releasing the %s lease: %w", lease.Resource, err)
	}
	return nil
}

// ResourceLease is one resource's lease as its poller holds it: taken,
// renewed while held, released at shutdown. Its methods are called from
// one goroutine.
type ResourceLease struct {
	leases   *Leases
	resource string
	cur      *Lease
}

// For returns the lease of resource, not yet taken.
func (l *Leases) For(resource string) *ResourceLease {
	return &ResourceLease{leases: l, resource: resource}
}

// Hold renews the lease if held, else tries to take it, and says until
// when it is held. While NATS is unreachable a held lease holds until it
// runs out.
func (l *ResourceLease) Hold(ctx context.Context) (time.Time, bool, error) {
	if l.cur != nil {
		renewed, err := l.leases.Renew(ctx, *l.cur)
		switch {
		case err == nil:
			l.cur = &renewed
			return renewed.Until, true, nil
		case !errors.Is(err, ErrLeaseLost):
			return l.cur.Until, l.cur.Valid(l.leases.now()), err
		}
		l.cur = nil
	}
	taken, held, _, err := l.leases.Acquire(ctx, l.resource)
	if err != nil || !held {
		return time.Time{}, false, err
	}
	l.cur = &taken
	return taken.Until, true, nil
}

// Release gives the lease up, if held.
func (l *ResourceLease) Release(ctx context.Context) error {
	if l.cur == nil {
		return nil
	}
	err := l.leases.Release(ctx, *l.cur)
	l.cur = nil
	if err != nil {
		return fmt.Errorf("releasing the %s lease: %w", l.resource, err)
	}
	return nil
}
