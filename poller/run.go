package poller

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety"
)

// Lease is this instance's claim on polling one resource.
type Lease interface {
	// Hold takes the lease, or renews it if held, and says until when it
	// is held. Not held means another instance polls the resource.
	Hold(ctx context.Context) (until time.Time, held bool, err error)
	// Release gives the lease up at shutdown.
	Release(ctx context.Context) error
}

// Observer is told what the poller does, for metrics and logs. Its methods
// must be quick.
type Observer interface {
	CycleStarted(resource string)
	CycleDone(resource string, stats CycleStats, took time.Duration, err error)
	LeaseHeld(resource string, held bool, err error)
}

type nopObserver struct{}

func (nopObserver) CycleStarted(string)                                {}
func (nopObserver) CycleDone(string, CycleStats, time.Duration, error) {}
func (nopObserver) LeaseHeld(string, bool, error)                      {}

func (p *Poller) checkLease() error {
	if p.deps.Lease == nil {
		return nil
	}
	p.leaseMu.Lock()
	until := p.leaseUntil
	p.leaseMu.Unlock()
	if !p.deps.Now().Before(until) {
		return ErrLeaseLost
	}
	return nil
}

func (p *Poller) setLease(until time.Time) {
	p.leaseMu.Lock()
	taken := p.leaseUntil.IsZero() && !until.IsZero()
	if until.IsZero() && !p.leaseUntil.IsZero() {
		// Another replica polls now and may raise the floor or store
		// what this one's index and bookmark do not know: a lease taken
		// again starts from the mirror, as a new process would.
		p.leaseLost = true
	}
	p.leaseUntil = until
	p.leaseMu.Unlock()
	if until.IsZero() {
		// A resync accepted while holding the lease is the holder's to
		// run: one left waiting would run, unasked, whenever the lease
		// came back.
		p.takeResync()
	}
	if taken {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// Backoff ceilings: a failure that may heal by itself (5xx, NATS away) is
// retried ever more slowly up to MaxBackoff; one that waits for a person
// (a wrong token, a missing resource) up to RefusedBackoff, so that the fix
// shows within a minute without hammering the API meanwhile.
const (
	MaxBackoff     = 10 * time.Minute
	RefusedBackoff = time.Minute
)

// NextDelay is the wait before the next cycle: the interval jittered by
// ±jitter (rnd in [0,1) picks where), doubled for each failure in a row up
// to ceiling (or the interval, if that is longer).
func NextDelay(interval time.Duration, jitter float64, failures int, ceiling time.Duration, rnd float64) time.Duration {
	d := interval
	for i := 0; i < failures && d < ceiling; i++ {
		d *= 2
	}
	if failures > 0 {
		d = min(d, max(ceiling, interval))
	}
	return time.Duration(float64(d) * (1 + jitter*(2*rnd-1)))
}

// Run schedules cycles until ctx ends, then returns nil. A cycle in
// progress when ctx ends may run on for grace, so that what it found is
// published and committed; after that it is cut short (and what it
// published is committed at the next start). With a Lease, it polls only
// while it holds the lease, renewing it in the background, and releases it
// last; a lost lease stops the cycle in progress before its next publish.
// One resource's failures never stop another's poller.
func (p *Poller) Run(ctx context.Context, grace time.Duration) error {
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		select {
		case <-work.Done():
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelWork()
		case <-work.Done():
		}
	}()

	stopKeeper := func() {}
	if p.deps.Lease != nil {
		keeperCtx, cancel := context.WithCancel(work)
		keeper := make(chan struct{})
		go func() {
			defer close(keeper)
			p.keepLease(keeperCtx)
		}()
		stopKeeper = func() { cancel(); <-keeper }
	}
	defer stopKeeper()

	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-p.wake:
		}
		if p.checkLease() != nil {
			timer.Reset(time.Second) // not the holder: look again soon
			continue
		}
		start := p.deps.Now()
		p.deps.Observer.CycleStarted(p.cfg.Resource)
		stats, err := p.RunOnce(work)
		finish := p.deps.Now()
		p.deps.Observer.CycleDone(p.cfg.Resource, stats, finish.Sub(start), err)
		if p.deps.Reports != nil {
			p.deps.Reports.Report(work, reportOf(p.cfg.Resource, p.cfg.Instance, stats, start, finish, err))
		}
		if work.Err() != nil {
			return nil
		}
		switch {
		case err == nil:
			failures = 0
		case errors.Is(err, ErrLeaseLost):
			failures = 0
			timer.Reset(time.Second)
			continue
		default:
			failures++
		}
		ceiling := MaxBackoff
		if errors.Is(err, rockety.ErrPermanent) {
			ceiling = RefusedBackoff
		}
		wait := NextDelay(p.cfg.Interval, p.cfg.Jitter, failures, ceiling, rand.Float64())
		timer.Reset(max(0, wait-p.deps.Now().Sub(start)))
	}
}

// keepLease takes and renews the lease until ctx ends, then releases it.
func (p *Poller) keepLease(ctx context.Context) {
renew:
	for {
		until, held, err := p.deps.Lease.Hold(ctx)
		if ctx.Err() != nil {
			break
		}
		if !held {
			until = time.Time{}
		}
		p.setLease(until)
		p.deps.Observer.LeaseHeld(p.cfg.Resource, held, err)
		wait := time.Second
		if held {
			// Renew three times per TTL, so one slow renewal is harmless.
			wait = max(until.Sub(p.deps.Now())/3, 100*time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			break renew
		case <-t.C:
		}
	}
	p.setLease(time.Time{})
	// Bounded short: a shutdown must end within its grace and a little,
	// and an unreleased lease only passes on after its TTL.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = p.deps.Lease.Release(rctx)
}
