package poller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// minGuardCount keeps the mass-delete guard from blocking small resources
// for ever (deleting the last item of a one-item resource is a 100%
// "mass" delete); below it, the GET that confirms each delete protects on
// its own.
const minGuardCount = 10

// cycle is the state of one RunOnce.
type cycle struct {
	p     *Poller
	ctx   context.Context
	stats *CycleStats
	// queued are changes found and not yet handed on; send, during a
	// traversal, hands a batch to the background flusher.
	queued  []Change
	since   int64 // unix nanos of the oldest queued change
	send    func([]Change) error
	lastSeq uint64
}

// traverse reads every page and diffs it, while a background flusher
// publishes and commits the changes found so far: fetching the next pages
// never waits for JetStream. At most two batches are in the pipeline.
func (c *cycle) traverse() error {
	p := c.p
	res := p.cfg.Resource
	batches := make(chan []Change, 1)
	failed := make(chan struct{}) // closed when the flusher gives up
	var flushErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for batch := range batches {
			if flushErr != nil {
				continue // drain: the traversal stops at its next page
			}
			if flushErr = c.publish(batch); flushErr != nil {
				close(failed)
			}
		}
	}()
	c.send = func(batch []Change) error {
		select {
		case <-failed:
			return flushErr
		case batches <- batch:
			return nil
		}
	}
	finish := func(err error) error {
		if len(c.queued) > 0 {
			// What was seen is published even when the traversal failed.
			_ = c.send(c.queued)
		}
		c.queued, c.send = nil, nil
		close(batches)
		<-done
		if err != nil && errors.Is(err, flushErr) {
			return err
		}
		return errors.Join(err, flushErr)
	}

	for page, err := range p.deps.Lister.Pages(c.ctx, res) {
		if err != nil {
			// Publish what this cycle saw, then stop: never a delete.
			return finish(fmt.Errorf("%w: %s: %w", ErrIncomplete, res, err))
		}
		c.stats.Pages++
		if page.Meta.Total >= 0 {
			c.stats.Total = page.Meta.Total
		}
		p.mu.Lock()
		changes, dupes, err := p.ix.Diff(p.cycle, page.Items)
		p.mu.Unlock()
		if err != nil {
			return finish(fmt.Errorf("%w: %s page %d: %w", ErrIncomplete, res, page.Number, err))
		}
		c.stats.Dupes += dupes
		c.stats.Seen += len(page.Items) - dupes
		if err := c.add(changes); err != nil {
			return finish(err)
		}
	}
	return finish(nil)
}

// add queues changes and hands them on when enough have gathered, or when
// the oldest has waited long enough: to the flusher during a traversal,
// else straight to publishing.
func (c *cycle) add(changes []Change) error {
	now := c.p.deps.Now().UnixNano()
	for _, ch := range changes {
		// Detach from the page's buffer so the page can be freed.
		ch.Raw = bytes.Clone(ch.Raw)
		if len(c.queued) == 0 {
			c.since = now
		}
		c.queued = append(c.queued, ch)
	}
	if len(c.queued) >= c.p.cfg.FlushChanges ||
		(len(c.queued) > 0 && now-c.since >= int64(c.p.cfg.FlushAfter)) {
		return c.flush()
	}
	return nil
}

// flush hands the queued changes on.
func (c *cycle) flush() error {
	batch := c.queued
	c.queued = nil
	if len(batch) == 0 {
		return nil
	}
	if c.send != nil {
		return c.send(batch)
	}
	return c.publish(batch)
}

// publish publishes a batch of changes and commits those acknowledged.
func (c *cycle) publish(batch []Change) error {
	p := c.p
	if !p.synced && p.cfg.InitialSync == SyncBaseline {
		writes := make([]Write, len(batch))
		for i, ch := range batch {
			writes[i] = Write{ID: ch.ID, Value: ch.Raw, LastRevision: ch.Replaced}
		}
		return c.commit(writes)
	}

	var befores []Stored
	if p.synced {
		// The mirror holds the full previous state for `before`, and tells
		// whether someone else (a command's write-through) stored a newer
		// state since the index last looked.
		ids := make([]string, len(batch))
		for i, ch := range batch {
			ids[i] = ch.ID
		}
		var err error
		if befores, err = p.deps.Mirror.Lookup(c.ctx, p.cfg.Resource, ids); err != nil {
			return err
		}
	}
	out := make([]Outgoing, 0, len(batch))
	writes := make([]Write, 0, len(batch))
	for i, ch := range batch {
		var before []byte
		if befores != nil {
			s := befores[i]
			if s.Revision != ch.Replaced {
				p.mu.Lock()
				p.refreshLocked(s)
				rev, live := p.ix.Revision(ch.ID)
				current := p.ix.hashOf(ch.ID)
				p.mu.Unlock()
				if live && current == ch.Hash {
					continue // the mirror has this state already
				}
				ch.Replaced = rev
				ch.Op = events.OpCreated
				if live {
					ch.Op = events.OpUpdated
				}
			}
			if ch.Op == events.OpUpdated {
				before = s.Value
			}
		}
		op := ch.Op
		if !p.synced {
			op = events.OpSnapshot
		}
		e := events.Event{Resource: p.cfg.Resource, Op: op, ID: ch.ID, Revision: events.ChangeRevision(ch.Replaced),
			After: ch.Raw, DetectedAt: p.deps.Now().UTC()}
		if op == events.OpUpdated {
			changed, err := plan.ChangedFields(before, ch.Raw)
			if err != nil || len(changed) == 0 {
				// Nothing a subscriber could see changed (or the stored
				// state is unreadable): store the new state silently.
				writes = append(writes, Write{ID: ch.ID, Value: ch.Raw, LastRevision: ch.Replaced})
				continue
			}
			e.Before, e.Changed = before, changed
		}
		out = append(out, Outgoing{EventID: events.EventID(p.cfg.Resource, ch.ID, op, ch.Replaced), Event: e})
		writes = append(writes, Write{ID: ch.ID, Value: ch.Raw, LastRevision: ch.Replaced})
	}
	return c.publishAndCommit(out, writes)
}

// publishAndCommit publishes out and commits, for each acknowledged event,
// its write; writes without an event (silent ones) are committed as well.
// Writes are matched to events by item id.
func (c *cycle) publishAndCommit(out []Outgoing, writes []Write) error {
	if err := c.p.checkLease(); err != nil {
		return err
	}
	acked := make(map[string]bool, len(out))
	var dups map[string]uint64 // id -> sequence of the event stored before
	var pubErr error
	if len(out) > 0 {
		pubErr = c.p.deps.Sink.Publish(c.ctx, out, func(i int, ack Ack) {
			acked[out[i].Event.ID] = true
			c.lastSeq = max(c.lastSeq, ack.Seq)
			if ack.Duplicate {
				if dups == nil {
					dups = map[string]uint64{}
				}
				dups[out[i].Event.ID] = ack.Seq
				return
			}
			c.count(out[i].Event.Op)
		})
	}
	hasEvent := make(map[string]bool, len(out))
	for _, o := range out {
		hasEvent[o.Event.ID] = true
	}
	toCommit := writes[:0:0]
	var dupErrs []error
	for _, w := range writes {
		if hasEvent[w.ID] && !acked[w.ID] {
			continue
		}
		if seq, dup := dups[w.ID]; dup {
			var err error
			if w, err = c.storedState(w, seq); err != nil {
				dupErrs = append(dupErrs, err)
				continue // the next cycle tries again
			}
		}
		toCommit = append(toCommit, w)
	}
	// Commit what was acknowledged even when part of the batch was not:
	// the event is out, and its state must follow.
	return errors.Join(pubErr, errors.Join(dupErrs...), c.commit(toCommit))
}

// storedState turns w into the state that the event stored at seq says,
// for an event JetStream dropped as a duplicate. Subscribers saw the stored
// event, not ours: it is this bridge's own from before a crash (the same
// state, perhaps formatted otherwise), or a command's write-through that
// raced this cycle (another state). Storing its state keeps the events of
// the item a chain; the next cycle reports whatever differs from it now.
func (c *cycle) storedState(w Write, seq uint64) (Write, error) {
	e, err := c.p.deps.Journal.Event(c.ctx, seq)
	if err != nil {
		return w, fmt.Errorf("poller: reading the event stored at %d, which %s %s repeated: %w", seq, c.p.cfg.Resource, w.ID, err)
	}
	if e.Resource != c.p.cfg.Resource || e.ID != w.ID {
		return w, fmt.Errorf("poller: the event stored at %d is of %s %s, not of %s %s, yet has the same id",
			seq, e.Resource, e.ID, c.p.cfg.Resource, w.ID)
	}
	w.Value = e.After // nil for a delete
	return w, nil
}

func (c *cycle) count(op events.Op) {
	switch op {
	case events.OpCreated:
		c.stats.Created++
	case events.OpUpdated:
		c.stats.Updated++
	case events.OpDeleted:
		c.stats.Deleted++
	case events.OpSnapshot:
		c.stats.Snapshot++
	}
}

func (c *cycle) commit(writes []Write) error {
	if len(writes) == 0 {
		return nil
	}
	if err := c.p.checkLease(); err != nil {
		return err
	}
	res, err := c.p.deps.Mirror.Commit(c.ctx, c.p.cfg.Resource, writes)
	if err != nil {
		return err
	}
	return c.p.apply(c.ctx, writes, res)
}

// deletes confirms every live item the traversal did not see and publishes
// the deletes of those the API no longer has.
func (c *cycle) deletes() error {
	p := c.p
	p.mu.Lock()
	suspects := p.ix.Missing(p.cycle)
	known := p.ix.Live()
	p.mu.Unlock()
	c.stats.Suspected = len(suspects)
	if len(suspects) == 0 {
		return nil
	}
	if len(suspects) >= minGuardCount && float64(len(suspects)) > p.cfg.MaxDeleteRatio*float64(known) {
		c.stats.GuardTripped = true
		return nil
	}

	gone, back, err := c.confirm(suspects)
	c.stats.Confirmed, c.stats.StillThere = len(gone), len(back)
	// Items the paging missed are still there: publish their updates, if
	// any, like any other.
	p.mu.Lock()
	changes, _, derr := p.ix.Diff(p.cycle, back)
	p.mu.Unlock()
	if derr == nil {
		derr = c.add(changes)
	}
	if ferr := c.flush(); ferr != nil || derr != nil {
		return errors.Join(err, derr, ferr)
	}
	if len(gone) > 0 {
		if derr := c.publishDeletes(gone); derr != nil {
			return errors.Join(err, derr)
		}
	}
	return err
}

// confirm asks the API for each suspect, a few at a time. A 404 confirms
// the delete; an answer means the traversal missed the item; any other
// failure keeps the item (it is asked about again next cycle).
func (c *cycle) confirm(suspects []Suspect) (gone []Suspect, back []rockety.Item, err error) {
	p := c.p
	type outcome struct {
		item rockety.Item
		err  error
	}
	results := make([]outcome, len(suspects))
	sem := make(chan struct{}, p.cfg.ConfirmConcurrency)
	var wg sync.WaitGroup
	for i, s := range suspects {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			it, err := p.deps.Lister.Get(c.ctx, p.cfg.Resource, rockety.ID(s.ID))
			results[i] = outcome{it, err}
		}()
	}
	wg.Wait()
	var errs []error
	for i, r := range results {
		switch {
		case r.err == nil:
			r.item.Raw = bytes.Clone(r.item.Raw)
			r.item.ID = rockety.ID(suspects[i].ID) // the id asked for, even if the body spells it differently
			back = append(back, r.item)
		case errors.Is(r.err, rockety.ErrNotFound):
			gone = append(gone, suspects[i])
		default:
			errs = append(errs, r.err)
		}
	}
	if len(errs) > 0 {
		err = fmt.Errorf("poller: %s: %d of %d suspected deletes could not be confirmed and are kept: %w",
			p.cfg.Resource, len(errs), len(suspects), errs[0])
	}
	return gone, back, err
}

func (c *cycle) publishDeletes(gone []Suspect) error {
	p := c.p
	ids := make([]string, len(gone))
	for i, s := range gone {
		ids[i] = s.ID
	}
	stored, err := p.deps.Mirror.Lookup(c.ctx, p.cfg.Resource, ids)
	if err != nil {
		return err
	}
	out := make([]Outgoing, 0, len(gone))
	writes := make([]Write, 0, len(gone))
	for i, s := range gone {
		st := stored[i]
		if st.Revision != s.Rev || st.Deleted {
			p.mu.Lock()
			p.refreshLocked(st) // someone else stored a newer state; judge it next cycle
			p.mu.Unlock()
			continue
		}
		e := events.Event{Resource: p.cfg.Resource, Op: events.OpDeleted, ID: s.ID, Revision: events.ChangeRevision(s.Rev),
			Before: st.Value, DetectedAt: p.deps.Now().UTC()}
		out = append(out, Outgoing{EventID: events.EventID(p.cfg.Resource, s.ID, events.OpDeleted, s.Rev), Event: e})
		writes = append(writes, Write{ID: s.ID, LastRevision: s.Rev})
	}
	return c.publishAndCommit(out, writes)
}
