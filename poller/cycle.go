package poller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

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
	queued   []Change
	queuedAt int64 // unix nanos of the oldest queued change
	send     func([]Change) error
	// drain, during a traversal, waits until every batch handed on is
	// committed.
	drain   func() error
	lastSeq uint64

	kind  Kind
	start time.Time
	// resync is the resync this cycle runs for, or nil.
	resync *resyncRequest
	// since is what an incremental cycle's filter asks from.
	since time.Time
	// listedTo is the largest changed-at value in the complete lists of
	// changed items the cycle read (an incremental cycle's own, a full
	// traversal's catch-ups): every change up to it was seen. seenBefore
	// is the largest a full traversal's own pages showed up to its start:
	// once the traversal completes, every change made before it started
	// was seen. The cursor moves to the later of the two once the cycle's
	// changes are committed; a value a full traversal's page showed that
	// is later than its start is no cursor, as a change made meanwhile on
	// a page read already was not seen.
	listedTo, seenBefore time.Time
	// distrusted, when set, says how the API showed that it ignores the
	// filter.
	distrusted string
}

// futureSlack bounds how far ahead of the bridge's clock a changed-at
// value may move the cursor: an item stamped hours ahead by mistake (a
// time zone taken for UTC) would otherwise leave every later change behind
// the filter until the clock caught up. Clocks that differ by more than
// this cost wider filters, not changes.
const futureSlack = time.Hour

// note moves the cursor's candidates on with a changed-at value; listed
// says it comes from a complete list of the items changed since a time.
func (c *cycle) note(t time.Time, listed bool) {
	switch {
	case !t.Before(c.start.Add(futureSlack)):
	case listed:
		c.listedTo = later(c.listedTo, t)
	case !t.After(c.start):
		c.seenBefore = later(c.seenBefore, t)
	}
}

// nextCursor is the cursor's next value, once the cycle's changes are
// committed.
func (c *cycle) nextCursor() time.Time { return later(c.listedTo, c.seenBefore) }

// readsEveryChangedAt: an incremental cycle checks every item against its
// filter time, and the first full traversal of a resource sets the cursor
// from all of them; later full traversals move it by their changes only
// (the others are older than the cursor already), so they do not pay for
// parsing every item.
func (c *cycle) readsEveryChangedAt() bool {
	return c.p.cfg.ChangedSince != "" && (c.kind == KindIncremental || c.p.bookmark.Cursor.IsZero())
}

// filter narrows a list to the items changed since a time.
func (c *cycle) filter(since time.Time) []rockety.Filter {
	return []rockety.Filter{{Param: c.p.cfg.ChangedSince, Value: since.Format(time.RFC3339)}}
}

// checkChangedAt reads the changed-at value of every item of a page: the
// cursor's candidates, and, for a filtered page (since not zero), the
// evidence that the filter works. An item changed before the filter time
// means the API ignored the filter.
func (c *cycle) checkChangedAt(items []rockety.Item, since time.Time, listed bool) (newest time.Time) {
	for _, it := range items {
		t, ok := changedAt(it.Raw, c.p.cfg.ChangedAtField)
		if !ok {
			continue
		}
		newest = later(newest, t)
		if !since.IsZero() && t.Before(since) && c.distrusted == "" {
			at := since.Format(time.RFC3339)
			c.distrusted = fmt.Sprintf("asked for items changed since %s (%s=%s), the API listed item %s, changed at %s: it ignores the parameter",
				at, c.p.cfg.ChangedSince, at, it.ID, t.Format(time.RFC3339Nano))
		}
		c.note(t, listed)
	}
	return newest
}

// catchUpDue: a full traversal of a large resource takes minutes (a
// million items at 10 requests a second: over three), and a change made
// meanwhile would wait for its page, or the next cycle. So, with
// incremental polling on, a full traversal asks for the items changed
// since the cursor once per poll interval, between its pages, as an
// incremental cycle would: changes still arrive within about an interval.
func (c *cycle) catchUpDue() bool {
	p := c.p
	return c.kind == KindFull && p.cfg.ChangedSince != "" && c.distrusted == "" && !p.filterIgnored && p.synced &&
		!p.bookmark.Cursor.IsZero() && p.deps.Now().Sub(p.lastAsked) >= p.cfg.Interval
}

// catchUp lists the items changed since the cursor (advanced by what the
// catch-ups listed so far) and diffs them like the traversal's own pages.
// Its list moves the cursor only when it was read whole and filtered: a
// page that failed may have held older changes than the ones read. A
// failure is not the traversal's: the next catch-up, or the next cycle,
// asks again.
func (c *cycle) catchUp() error {
	p := c.p
	p.lastAsked = p.deps.Now()
	since := filterTime(later(p.bookmark.Cursor, c.listedTo), p.cfg.Lookback)
	c.stats.CatchUps++
	// An item the catch-up lists may have a change queued from its page
	// already: that one is committed first, so that the catch-up's is
	// judged against the state it stored, not taken for someone else's.
	if err := c.flush(); err != nil {
		return err
	}
	if c.drain != nil {
		if err := c.drain(); err != nil {
			return err
		}
	}
	var newest time.Time
	listed := map[rockety.ID]bool{}
	// A catch-up is an incremental cycle inside a full traversal: it goes
	// before the traversal's pages in the budget.
	ctx := rockety.WithLane(c.ctx, rockety.LaneIncremental)
	for page, err := range p.deps.Lister.Pages(ctx, p.cfg.Resource, c.filter(since)...) {
		if err != nil {
			c.stats.CatchUpsFailed++
			return c.flush()
		}
		c.stats.Requests++
		newest = later(newest, c.checkChangedAt(page.Items, since, false))
		// An item changed while the list is read moves to its end and is
		// listed twice: the first copy is diffed, the second is the next
		// catch-up's.
		items := slices.DeleteFunc(slices.Clone(page.Items), func(it rockety.Item) bool {
			seen := listed[it.ID]
			listed[it.ID] = true
			return seen
		})
		if err := c.diff(items, false); err != nil {
			return err
		}
		if c.distrusted != "" {
			return c.flush()
		}
	}
	c.listedTo = later(c.listedTo, newest)
	return c.flush()
}

// diff compares items with the index and queues the changes. ownPage
// says they come from the cycle's own traversal, not a catch-up: there an
// item seen twice moved between pages, and, in a full traversal, a change
// an incremental cycle should have seen counts as missed.
func (c *cycle) diff(items []rockety.Item, ownPage bool) error {
	p := c.p
	p.mu.Lock()
	var changes []Change
	var err error
	if ownPage {
		var dupes int
		if c.resnapshot() {
			changes, dupes, err = p.ix.DiffAll(p.cycle, items)
		} else {
			changes, dupes, err = p.ix.Diff(p.cycle, items)
		}
		c.stats.Dupes += dupes
		c.stats.Seen += len(items) - dupes
	} else {
		changes, err = p.ix.Recheck(p.cycle, items)
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	// checkChangedAt read every item of the page already where it reads
	// every changed-at value; otherwise the changes are read here.
	if p.cfg.ChangedSince != "" && ownPage && !c.readsEveryChangedAt() {
		for i := range changes {
			t, ok := changedAt(changes[i].Raw, p.cfg.ChangedAtField)
			if !ok {
				continue
			}
			c.note(t, c.kind == KindIncremental)
			changes[i].Missed = c.kind == KindFull && p.covered.covers(t)
		}
	}
	return c.add(changes)
}

// traverse reads every page and diffs it, while a pipeline publishes and
// commits the changes found so far: fetching the next pages never waits
// for JetStream.
func (c *cycle) traverse() error {
	p := c.p
	res := p.cfg.Resource
	pl := c.startPipeline()
	c.send, c.drain = pl.send, pl.drain
	finish := func(err error) error {
		if len(c.queued) > 0 {
			// What was seen is published even when the traversal failed.
			_ = c.send(c.queued)
		}
		c.queued, c.send, c.drain = nil, nil, nil
		flushErr := pl.close()
		if err != nil && errors.Is(err, flushErr) {
			return err
		}
		return errors.Join(err, flushErr)
	}

	var filters []rockety.Filter
	if c.kind == KindIncremental {
		filters = c.filter(c.since)
	}
	if c.kind == KindIncremental {
		p.lastAsked = c.start
	}
	for page, err := range p.deps.Lister.Pages(c.ctx, res, filters...) {
		if err != nil {
			// Publish what this cycle saw, then stop: never a delete.
			return finish(fmt.Errorf("%w: %s: %w", ErrIncomplete, res, err))
		}
		c.stats.Pages++
		c.stats.Requests++
		if page.Meta.Total >= 0 {
			c.stats.Total = page.Meta.Total
		}
		if c.readsEveryChangedAt() {
			c.checkChangedAt(page.Items, c.since, c.kind == KindIncremental)
		}
		if err := c.diff(page.Items, true); err != nil {
			return finish(fmt.Errorf("%w: %s page %d: %w", ErrIncomplete, res, page.Number, err))
		}
		if c.distrusted != "" && c.kind == KindIncremental {
			// This page was true, and is published; the rest of a list
			// the API did not filter is a full traversal's to read.
			break
		}
		if c.catchUpDue() {
			if err := c.catchUp(); err != nil {
				return finish(err)
			}
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
			c.queuedAt = now
		}
		c.queued = append(c.queued, ch)
	}
	if len(c.queued) >= c.p.cfg.FlushChanges ||
		(len(c.queued) > 0 && now-c.queuedAt >= int64(c.p.cfg.FlushAfter)) {
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

// publish decides the event and the write of each change in batch,
// publishes the events and commits the writes of those acknowledged.
func (c *cycle) publish(batch []Change) error {
	d, err := c.prepare(batch)
	if err != nil {
		return err
	}
	return c.publishAndCommit(d.out, d.writes, &d.notes)
}

// decided is a batch whose events and writes are decided.
type decided struct {
	ids    []string // in the pipeline: what the batch holds
	out    []plan.Outgoing
	writes []plan.Write
	notes  notes
}

// prepare reads the mirror's state of each change in batch and decides its
// event and write.
func (c *cycle) prepare(batch []Change) (decided, error) {
	p := c.p
	batch = lastOfEach(batch)
	sync := c.sync()
	stored := make([]plan.State, len(batch))
	if p.synced {
		// The mirror holds the full previous state for `before`, and tells
		// whether someone else (a command's write-through) stored a newer
		// state since the index last looked.
		ids := make([]string, len(batch))
		for i, ch := range batch {
			ids[i] = ch.ID
		}
		var err error
		if stored, err = p.lookup(c.ctx, ids); err != nil {
			return decided{}, err
		}
		p.mu.Lock()
		for i, s := range stored {
			if s.Revision != batch[i].Replaces {
				p.refreshLocked(s)
			}
		}
		p.mu.Unlock()
	} else {
		// The first sync publishes no `before`: what the index loaded is
		// all it needs to know.
		for i, ch := range batch {
			stored[i] = plan.State{ID: ch.ID, Revision: ch.Replaces, Deleted: !ch.Live && !ch.Absent, Absent: ch.Absent}
		}
	}
	now := p.deps.Now()
	out := make([]plan.Outgoing, 0, len(batch))
	writes := make([]plan.Write, 0, len(batch))
	var n notes
	for i, ch := range batch {
		marked := plan.MarkedDeleted(ch.Raw, p.cfg.DeletedField)
		d := plan.Decide(p.cfg.Resource, stored[i],
			plan.Observation{Kind: plan.Listed, Value: ch.Raw, Sync: sync, MarkedDeleted: marked, Replaces: ch.Replaces, ResyncID: c.resyncID()}, now)
		if d.Outcome == plan.Stale {
			continue // the index has the newer state now; the next cycle judges the item against it
		}
		if marked {
			n.tombstone(ch)
			if d.Write == nil {
				p.mu.Lock()
				p.ix.BuryListed(ch.ID, ch.Hash, ch.RawHash, stored[i].EntryRevision())
				p.mu.Unlock()
			}
		}
		if d.Event != nil {
			out = append(out, *d.Event)
			if ch.Missed {
				n.miss(ch.ID)
			}
		}
		if d.Write != nil {
			writes = append(writes, *d.Write)
		}
	}
	return decided{out: out, writes: writes, notes: n}, nil
}

// sync is how the cycle records what it lists.
func (c *cycle) sync() plan.Sync {
	snapshot := c.resync != nil && c.resync.snapshot
	switch {
	case c.p.synced && snapshot:
		return plan.Resnapshot
	case c.p.synced:
		return plan.Live
	case c.p.cfg.InitialSync == SyncBaseline && !snapshot:
		return plan.FirstBaseline
	}
	return plan.FirstSnapshot
}

// resnapshot: every item the cycle lists is published, unchanged ones too.
func (c *cycle) resnapshot() bool { return c.sync() == plan.Resnapshot }

func (c *cycle) resyncID() string {
	if c.resync == nil {
		return ""
	}
	return c.resync.id
}

// notes are what a batch's commit needs to know beyond its writes.
type notes struct {
	// missed: changes an incremental cycle should have seen.
	missed map[string]bool
	// tombstones: soft-deleted items, still listed, whose delete is
	// being written; the index keeps their hashes so that the next
	// cycles find them unchanged.
	tombstones map[string]Change
}

func (n *notes) miss(id string) {
	if n.missed == nil {
		n.missed = map[string]bool{}
	}
	n.missed[id] = true
}

func (n *notes) tombstone(ch Change) {
	if n.tombstones == nil {
		n.tombstones = map[string]Change{}
	}
	n.tombstones[ch.ID] = ch
}

// publishAndCommit publishes out and commits, for each acknowledged event,
// its write; writes without an event (silent ones) are committed as well.
// Writes are matched to events by item id.
func (c *cycle) publishAndCommit(out []plan.Outgoing, writes []plan.Write, n *notes) error {
	toCommit, err := c.deliver(out, writes, n)
	return errors.Join(err, c.commit(toCommit, n.tombstones))
}

// deliver publishes out and returns the writes to commit: those of the
// events acknowledged (turned into the stored event's state where
// JetStream dropped ours as a duplicate), and those without an event. What
// was acknowledged is to be committed even when part of the batch was not:
// the event is out, and its state must follow.
func (c *cycle) deliver(out []plan.Outgoing, writes []plan.Write, n *notes) ([]plan.Write, error) {
	if err := c.p.checkLease(); err != nil {
		return nil, err
	}
	acked := make(map[string]bool, len(out))
	var dups map[string]uint64 // id -> sequence of the event stored before
	var pubErr error
	var stored []uint64 // where JetStream stored our events
	if len(out) > 0 {
		pubErr = c.p.deps.Sink.Publish(c.ctx, out, func(i int, ack plan.Ack) {
			acked[out[i].Event.ID] = true
			c.lastSeq = max(c.lastSeq, ack.Seq)
			if ack.Duplicate {
				if dups == nil {
					dups = map[string]uint64{}
				}
				dups[out[i].Event.ID] = ack.Seq
				return
			}
			stored = append(stored, ack.Seq)
			c.count(out[i].Event.Op)
			if n.missed[out[i].Event.ID] {
				c.stats.Missed++
			}
		})
		c.p.mu.Lock()
		c.p.published = append(c.p.published, stored...)
		c.p.mu.Unlock()
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
	return toCommit, errors.Join(pubErr, errors.Join(dupErrs...))
}

// storedState turns w into the state of the event stored at seq, for an
// event JetStream dropped as a duplicate (plan.Adopt says why).
func (c *cycle) storedState(w plan.Write, seq uint64) (plan.Write, error) {
	e, err := c.p.deps.Journal.Event(c.ctx, seq)
	if err != nil {
		return w, fmt.Errorf("poller: reading the event stored at %d, which %s %s repeated: %w", seq, c.p.cfg.Resource, w.ID, err)
	}
	return plan.Adopt(c.p.cfg.Resource, w, e)
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

func (c *cycle) commit(writes []plan.Write, tombstones map[string]Change) error {
	if len(writes) == 0 {
		return nil
	}
	if err := c.p.checkLease(); err != nil {
		return err
	}
	res, err := c.p.deps.Mirror.Commit(c.ctx, c.p.cfg.Resource, writes)
	if err != nil {
		c.p.mu.Lock()
		c.p.uncommitted = true
		c.p.mu.Unlock()
		return err
	}
	if err := c.p.apply(c.ctx, writes, res); err != nil {
		return err
	}
	if len(tombstones) > 0 {
		c.p.mu.Lock()
		for i, w := range writes {
			if ch, ok := tombstones[w.ID]; ok && w.Value == nil && !res[i].Conflict {
				c.p.ix.BuryListed(w.ID, ch.Hash, ch.RawHash, res[i].Revision)
			}
		}
		c.p.mu.Unlock()
	}
	return nil
}

// deletes confirms every live item the traversal did not see and publishes
// the deletes of those the API no longer has.
func (c *cycle) deletes() error {
	p := c.p
	if err := c.learnOthers(); err != nil {
		return err
	}
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

	c.stats.Requests += len(suspects)
	gone, back, err := c.confirm(suspects)
	c.stats.Confirmed, c.stats.StillThere = len(gone), len(back)
	// Items the paging missed are still there: publish their updates, if
	// any, like any other.
	p.mu.Lock()
	diff := p.ix.Diff
	if c.resnapshot() {
		diff = p.ix.DiffAll
	}
	changes, _, derr := diff(p.cycle, back)
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

// learnOthers puts in the index what someone else stored since it last
// looked (a command's write-through, on any replica): live items no
// traversal has listed, so that one this traversal did not list is a
// suspect like any other (else an item a command created and the API
// deleted before a traversal listed it would never get its delete); and
// deletes, so that an item listed again after one is created, not taken
// for unchanged.
func (c *cycle) learnOthers() error {
	p := c.p
	var unknown []string
	// first is the first event of each unknown item: for one the mirror
	// does not have at all, the create its writer published and has not
	// stored (yet, or ever: it died in between).
	first := map[string]seqEvent{}
	last := p.othersFrom
	p.mu.Lock()
	own := slices.Clone(p.published)
	p.mu.Unlock()
	slices.Sort(own)
	if len(own) > 0 {
		last = max(last, own[len(own)-1])
	}
	err := p.deps.Journal.ReplayOthers(c.ctx, p.cfg.Resource, p.othersFrom, own, func(seq uint64, e events.Event) error {
		last = max(last, seq)
		if _, asked := first[e.ID]; asked {
			return nil
		}
		p.mu.Lock()
		_, live := p.ix.Revision(e.ID)
		p.mu.Unlock()
		// A live item the index lacks, or a delete it has not heard of.
		if live == (e.Op == events.OpDeleted) {
			first[e.ID] = seqEvent{seq, e}
			unknown = append(unknown, e.ID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("poller: reading the %s events stored by others: %w", p.cfg.Resource, err)
	}
	if len(unknown) > 0 {
		stored, err := p.lookup(c.ctx, unknown)
		if err != nil {
			return err
		}
		var writes []plan.Write
		now := p.deps.Now()
		p.mu.Lock()
		for _, s := range stored {
			if !s.Absent {
				p.refreshLocked(s)
				continue
			}
			// Stored now, as a restart's replay would: a poll deciding
			// it afresh could do so against another floor, and publish
			// the create a second time under another id.
			f := first[s.ID]
			if d := plan.Decide(p.cfg.Resource, s, p.replayed(f.seq, f.e), now); d.Write != nil {
				writes = append(writes, *d.Write)
			}
		}
		p.mu.Unlock()
		if len(writes) > 0 {
			res, err := p.deps.Mirror.Commit(c.ctx, p.cfg.Resource, writes)
			if err != nil {
				return err
			}
			if err := p.apply(c.ctx, writes, res); err != nil {
				return err
			}
		}
	}
	p.mu.Lock()
	p.othersFrom = last
	p.published = slices.DeleteFunc(p.published, func(seq uint64) bool { return seq <= last })
	p.mu.Unlock()
	return nil
}

// seqEvent is an event and where the events stream stored it.
type seqEvent struct {
	seq uint64
	e   events.Event
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
	var catchUpErr error
	for i, s := range suspects {
		sem <- struct{}{}
		// A hundred confirmations at 10 requests a second take ten
		// seconds: changes meanwhile are caught up on as during the pages.
		if c.catchUpDue() && catchUpErr == nil {
			catchUpErr = c.catchUp()
		}
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
	return gone, back, errors.Join(err, catchUpErr)
}

func (c *cycle) publishDeletes(gone []Suspect) error {
	p := c.p
	ids := make([]string, len(gone))
	for i, s := range gone {
		ids[i] = s.ID
	}
	stored, err := p.lookup(c.ctx, ids)
	if err != nil {
		return err
	}
	now := p.deps.Now()
	out := make([]plan.Outgoing, 0, len(gone))
	writes := make([]plan.Write, 0, len(gone))
	for i, s := range gone {
		d := plan.Decide(p.cfg.Resource, stored[i], plan.Observation{Kind: plan.Gone, Replaces: s.Replaces}, now)
		if d.Event != nil {
			// A command's write-through may have published an update of
			// this state and not stored it yet (it is in flight, or its
			// bridge died in between): a delete replacing the same state
			// would break the item's chain of events. Store that update
			// instead, as a recovery would; the next cycle confirms the
			// delete again, after it.
			e, found, err := p.deps.Journal.Latest(c.ctx, p.cfg.Resource, s.ID, events.OpUpdated)
			if err != nil {
				return err
			}
			if found {
				if r := plan.Decide(p.cfg.Resource, stored[i], plan.Observation{Kind: plan.Replayed, Event: e}, now); r.Write != nil {
					writes = append(writes, *r.Write)
					continue
				}
			}
		}
		if d.Event == nil {
			p.mu.Lock()
			p.refreshLocked(stored[i]) // someone else stored a newer state; judge it next cycle
			p.mu.Unlock()
			continue
		}
		out = append(out, *d.Event)
		writes = append(writes, *d.Write)
	}
	return c.publishAndCommit(out, writes, &notes{})
}

// lastOfEach keeps, of changes to one item, the last: two decided against
// the same stored state would be two events replacing one revision. The
// cycle hands on each item once, and this keeps it so whatever the lists
// were like.
func lastOfEach(batch []Change) []Change {
	at := make(map[string]int, len(batch))
	for i, ch := range batch {
		at[ch.ID] = i
	}
	if len(at) == len(batch) {
		return batch
	}
	out := make([]Change, 0, len(at))
	for i, ch := range batch {
		if at[ch.ID] == i {
			out = append(out, ch)
		}
	}
	return out
}
