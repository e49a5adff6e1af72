// Package poller turns a Rockety list endpoint into change events. One
// Poller per resource runs cycles: it traverses every page, compares each
// item with what it knew (by the hash of the item's canonical JSON), and
// publishes creates and updates as pages arrive; after a complete traversal
// it confirms every item that vanished with a GET before publishing its
// delete. State advances only after JetStream has acknowledged the event:
// event first, snapshot second.
package poller

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// Lister reads the Rockety API.
type Lister interface {
	// Pages traverses a resource in page order, narrowed by filters; it
	// yields an error once and stops when a page cannot be read.
	Pages(ctx context.Context, resource string, filters ...rockety.Filter) iter.Seq2[*rockety.Page, error]
	// Get reads one item; a missing one matches rockety.ErrNotFound.
	Get(ctx context.Context, resource string, id rockety.ID) (rockety.Item, error)
}

// Mirror is the stored state of every item (KV ROCKETY_STATE), the
// poller's snapshot.
type Mirror interface {
	// Load streams every stored item of resource, deleted ones included.
	Load(ctx context.Context, resource string, expect func(n int), fn func(plan.State) error) error
	// Lookup reads the stored state of ids, in order.
	Lookup(ctx context.Context, resource string, ids []string) ([]plan.State, error)
	// Commit applies writes with compare-and-set; outcomes in order.
	Commit(ctx context.Context, resource string, writes []plan.Write) ([]plan.Committed, error)
	// RevisionAt is the first revision stored at or after t: every entry
	// below it is older.
	RevisionAt(ctx context.Context, t time.Time) (uint64, error)
	// Forget drops delete markers that are still their item's last entry,
	// and reports which are gone.
	Forget(ctx context.Context, resource string, markers []plan.Marker) ([]bool, error)
}

// Checkpoints remember, per resource, the events-stream sequence up to
// which every event is reflected in the mirror (and so whether the
// resource has been synchronised at all), the incremental cursor and when
// the last full traversal finished.
type Checkpoints interface {
	Bookmark(ctx context.Context, resource string) (b plan.Bookmark, synced bool, err error)
	SetBookmark(ctx context.Context, resource string, b plan.Bookmark) error
}

// Sink publishes events and reports the acknowledged ones.
type Sink interface {
	// Publish calls acked(i, ack) for each event JetStream stored, or
	// dropped as a duplicate of one it stored before; an error means some
	// were not acknowledged.
	Publish(ctx context.Context, evs []plan.Outgoing, acked func(i int, ack plan.Ack)) error
}

// Journal reads back published events, to finish commits that a stopped
// bridge left undone, and to learn what an event that JetStream reports
// as a duplicate said.
type Journal interface {
	// Replay reads the events of resource stored after afterSeq, and
	// those stored up to lookback before it.
	Replay(ctx context.Context, resource string, afterSeq uint64, lookback time.Duration, fn func(seq uint64, e events.Event) error) (skipped int, err error)
	// ReplayOthers is Replay without lookback, leaving out the events at
	// the sequences in own (sorted), and reading nothing when there are
	// no others.
	ReplayOthers(ctx context.Context, resource string, afterSeq uint64, own []uint64, fn func(seq uint64, e events.Event) error) error
	Event(ctx context.Context, seq uint64) (events.Event, error)
	// Latest reads the last event of op stored for one item.
	Latest(ctx context.Context, resource, id string, op events.Op) (e events.Event, found bool, err error)
	// LastSeq is the events stream's last sequence.
	LastSeq(ctx context.Context) (uint64, error)
}

// DefaultChangedAtField is ROCKETY_CHANGED_AT_FIELD's default.
const DefaultChangedAtField = "updated_at"

// InitialSync says what the first cycle of a resource publishes.
type InitialSync string

// The BRIDGE_INITIAL_SYNC modes.
const (
	// SyncBaseline records the current state silently (the default).
	SyncBaseline InitialSync = "baseline"
	// SyncSnapshot publishes one snapshot event per existing item.
	SyncSnapshot InitialSync = "snapshot"
)

// Config configures one resource's poller.
type Config struct {
	Resource string
	// Interval between the starts of two cycles, jittered by ±Jitter.
	Interval time.Duration
	Jitter   float64
	// InitialSync is BRIDGE_INITIAL_SYNC.
	InitialSync InitialSync
	// MaxDeleteRatio is BRIDGE_MAX_DELETE_RATIO: a cycle in which more than
	// this fraction of known items vanish publishes no deletes.
	MaxDeleteRatio float64
	// ConfirmConcurrency bounds the GETs that confirm suspected deletes.
	ConfirmConcurrency int
	// FlushChanges and FlushAfter bound how many changes, and for how long,
	// wait before they are published: a few pages' worth, so a cycle with
	// scattered changes does not pay a round trip per page.
	FlushChanges int
	FlushAfter   time.Duration

	// ChangedSince turns incremental polling on: the list endpoint's
	// filter parameter for items changed since a time
	// (ROCKETY_CHANGED_SINCE), e.g. updated_since. Empty polls by full
	// traversals only.
	ChangedSince string
	// ChangedAtField is the item field (RFC 3339) that says when it last
	// changed (ROCKETY_CHANGED_AT_FIELD); DefaultChangedAtField if empty.
	ChangedAtField string
	// Lookback: the filter asks from the cursor minus this
	// (ROCKETY_CHANGED_SINCE_LOOKBACK), for changes made in the same
	// second as the cursor, shown to the filter late, or stamped by a
	// server whose clock is behind.
	Lookback time.Duration
	// FullEvery: with ChangedSince, a full traversal at least this often
	// (ROCKETY_FULL_SYNC_INTERVAL); default 15m.
	FullEvery time.Duration
	// DeletedField marks a soft-deleted item (ROCKETY_DELETED_FIELD),
	// published as a delete from any cycle; empty is off.
	DeletedField string
	// Instance is this replica's BRIDGE_INSTANCE_ID, named in its cycle
	// reports.
	Instance string
	// DeleteRetention is BRIDGE_DELETE_RETENTION: after a complete full
	// traversal, the delete markers of items deleted longer ago than this
	// are dropped from the mirror and the index (compact). Zero keeps
	// them for ever.
	DeleteRetention time.Duration
}

func (c *Config) setDefaults() error {
	if err := events.ValidResource(c.Resource); err != nil {
		return err
	}
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.Jitter == 0 {
		c.Jitter = 0.1
	}
	if c.InitialSync == "" {
		c.InitialSync = SyncBaseline
	}
	if c.MaxDeleteRatio == 0 {
		c.MaxDeleteRatio = 0.5
	}
	if c.ConfirmConcurrency == 0 {
		c.ConfirmConcurrency = 4
	}
	if c.FlushChanges == 0 {
		c.FlushChanges = 100
	}
	if c.FlushAfter == 0 {
		c.FlushAfter = time.Second
	}
	if c.ChangedAtField == "" {
		c.ChangedAtField = DefaultChangedAtField
	}
	if c.FullEvery == 0 {
		c.FullEvery = 15 * time.Minute
	}
	switch {
	case c.InitialSync != SyncBaseline && c.InitialSync != SyncSnapshot:
		return fmt.Errorf("poller: initial sync %q (BRIDGE_INITIAL_SYNC): want baseline or snapshot", c.InitialSync)
	case c.MaxDeleteRatio < 0 || c.MaxDeleteRatio > 1:
		return fmt.Errorf("poller: max delete ratio %v (BRIDGE_MAX_DELETE_RATIO): want 0 to 1", c.MaxDeleteRatio)
	case c.Jitter < 0 || c.Jitter >= 1:
		return fmt.Errorf("poller: jitter %v: want 0 to 1", c.Jitter)
	case c.Lookback < 0:
		return fmt.Errorf("poller: lookback %s (ROCKETY_CHANGED_SINCE_LOOKBACK): want 0 or more", c.Lookback)
	case c.FullEvery < 0:
		return fmt.Errorf("poller: full sync interval %s (ROCKETY_FULL_SYNC_INTERVAL): want 0 (the default, 15m) or more", c.FullEvery)
	case c.DeleteRetention < 0:
		return fmt.Errorf("poller: delete retention %s (BRIDGE_DELETE_RETENTION): want 0 (keep for ever) or more", c.DeleteRetention)
	}
	return nil
}

// Deps are a poller's collaborators. Lease, Observer and Reports may be
// nil.
type Deps struct {
	Lister      Lister
	Mirror      Mirror
	Checkpoints Checkpoints
	Sink        Sink
	Journal     Journal
	Lease       Lease
	Observer    Observer
	// Reports, when set, is told of every cycle Run finishes.
	Reports Reporter
	Now     func() time.Time
}

// ErrLeaseLost stops a cycle whose lease ran out; nothing more is published.
var ErrLeaseLost = errors.New("poller: lease lost")

// ErrIncomplete marks a cycle that could not read every page: what it saw
// was published, but it published no deletes.
var ErrIncomplete = errors.New("poller: incomplete traversal")

// Poller runs the cycles of one resource. RunOnce does one cycle; Run
// schedules them. One goroutine runs a Poller's cycles; within a cycle, a
// background flusher publishes while the traversal reads (cycle.traverse).
type Poller struct {
	cfg  Config
	deps Deps

	// mu guards ix: a cycle diffs pages while the changes it found
	// earlier are published and committed in the background.
	mu sync.Mutex
	ix *Index

	loaded   bool
	synced   bool
	bookmark plan.Bookmark
	cycle    uint32
	// filterIgnored: a cycle found the API ignoring the filter;
	// the resource is polled by full traversals until restart.
	filterIgnored bool
	// covered is what incremental cycles asked about since the last full
	// traversal.
	covered coverage
	// lastAsked is when a cycle last asked for the changed items: the
	// start of an incremental cycle, or a full traversal's catch-up. A
	// full traversal that follows incremental cycles catches up an
	// interval after the last of them, not after its own start.
	lastAsked time.Time
	// othersFrom is the events-stream sequence up to which the events of
	// others (a command's write-through, on any replica) were looked at
	// for items the index does not know.
	othersFrom uint64
	// published are the events-stream sequences of the events this
	// poller stored after othersFrom: learnOthers need not read them.
	published []uint64
	// uncommitted: a commit failed after its events were acknowledged; the
	// next cycle loads the index again (RunOnce), and compaction waits
	// for that.
	uncommitted bool
	// compacted is when compaction last looked for delete markers, and
	// floorRaised when it last raised the floor.
	compacted, floorRaised time.Time

	leaseMu    sync.Mutex
	leaseUntil time.Time
	// leaseLost: the lease was held and lost since the last load.
	leaseLost bool
	// wake starts Run's next cycle at once: the lease was taken (so the
	// first cycle does not wait out its look-again timer), or a resync
	// was asked for.
	wake chan struct{}

	resyncMu sync.Mutex
	// resync is the resync asked for and not yet begun.
	resync *resyncRequest
}

// New returns a poller; it reads nothing until its first cycle.
func New(cfg Config, deps Deps) (*Poller, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if deps.Lister == nil || deps.Mirror == nil || deps.Checkpoints == nil || deps.Sink == nil || deps.Journal == nil {
		return nil, errors.New("poller: Lister, Mirror, Checkpoints, Sink and Journal are required")
	}
	if deps.Observer == nil {
		deps.Observer = nopObserver{}
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Poller{cfg: cfg, deps: deps, ix: NewIndex(0), wake: make(chan struct{}, 1)}, nil
}

// Resource is the polled resource.
func (p *Poller) Resource() string { return p.cfg.Resource }

// IDs is the number of ids the poller tracks, deleted ones whose markers
// are kept included.
func (p *Poller) IDs() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ix.Len()
}

// Tracked is the number of live items the poller knows.
func (p *Poller) Tracked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ix.Live()
}

// CycleStats describe one cycle.
type CycleStats struct {
	Kind     Kind
	Pages    int
	Seen     int // distinct items seen
	Dupes    int // items seen twice (moved between pages)
	Total    int // the total the API reported, -1 if none
	Created  int
	Updated  int
	Deleted  int
	Snapshot int
	// Suspected deletes and how their confirmations came out.
	Suspected, Confirmed, StillThere int
	GuardTripped                     bool
	Complete                         bool
	// Missed counts the changes this full traversal published that an
	// incremental cycle should have seen (incremental_missed_total).
	Missed int
	// Distrusted, when set, says how this incremental cycle found the API
	// ignoring the filter (incremental_fallbacks_total); the resource is
	// polled by full traversals from now on.
	Distrusted string
	// Cursor is the incremental cursor after the cycle; zero when none.
	Cursor time.Time
	// Requests counts the API requests of the cycle: its pages, those of
	// its catch-ups, and the GETs that confirm suspected deletes; CatchUps,
	// the lists of changed items a full traversal asked for between its
	// pages, and CatchUpsFailed those that could not be read whole.
	Requests, CatchUps, CatchUpsFailed int
	// ResyncID names the resync this cycle ran for, if one did.
	ResyncID string
	// Compacted counts the deleted ids whose delete markers compaction
	// dropped after the cycle; CompactErr says why it stopped short.
	Compacted  int
	CompactErr error
}

// RunOnce runs one cycle: on the first, load the snapshot and finish what
// a stopped bridge left undone; then traverse (the whole list, or with
// ROCKETY_CHANGED_SINCE the items changed since the cursor), diff, publish
// and commit creates and updates page by page; then, after a complete
// full traversal, confirm and publish deletes; last, advance the
// checkpoint and the cursor. A failed page ends the traversal with
// ErrIncomplete, no deletes, and the cursor where it was; so does an
// incremental cycle that finds the filter ignored.
func (p *Poller) RunOnce(ctx context.Context) (CycleStats, error) {
	stats := CycleStats{Total: -1}
	if err := p.checkLease(); err != nil {
		return stats, err
	}
	p.mu.Lock()
	unsure := p.uncommitted
	p.mu.Unlock()
	p.leaseMu.Lock()
	unsure, p.leaseLost = unsure || p.leaseLost, false
	p.leaseMu.Unlock()
	// After a failed commit the index cannot tell which writes landed (an
	// ack lost in a leader change): loaded again, it holds what the mirror
	// holds, and the replay stores the events whose writes did not land.
	// Else an item stored live but held dead here would never be suspected
	// when it goes, and one published but not stored never get its delete.
	if !p.loaded || unsure {
		if err := p.load(ctx); err != nil {
			return stats, err
		}
	}
	start := p.deps.Now()
	stats.Kind = p.schedule().nextKind(start)
	rs := p.takeResync()
	if rs != nil {
		stats.ResyncID = rs.id
		if stats.Kind == KindIncremental {
			stats.Kind = KindFull
		}
		if rs.snapshot {
			stats.Kind = KindSnapshot
		}
	}
	stats.Cursor = p.bookmark.Cursor
	p.cycle++
	// An incremental cycle is a handful of requests that keep latency low;
	// a full traversal yields its turns to it and to commands.
	lane := rockety.LaneFull
	if stats.Kind == KindIncremental {
		lane = rockety.LaneIncremental
	}
	ctx = rockety.WithLane(ctx, lane)
	c := &cycle{p: p, ctx: ctx, stats: &stats, lastSeq: p.bookmark.Checkpoint, kind: stats.Kind, start: start, resync: rs}
	if c.kind == KindIncremental {
		c.since = filterTime(p.bookmark.Cursor, p.cfg.Lookback)
	}
	if p.synced && start.Sub(p.floorRaised) < recoveryLookback {
		// A write-through that read the floor before it rose may have
		// published a create since and not stored it: stored first, its
		// item is not decided again against the new floor, under another
		// event id.
		if err := c.learnOthers(); err != nil {
			return stats, err
		}
	}
	if err := c.traverse(); err != nil {
		return stats, err
	}
	b := p.bookmark
	b.Checkpoint = c.lastSeq
	if c.distrusted != "" {
		p.filterIgnored, stats.Distrusted = true, c.distrusted
	}
	switch {
	case c.kind == KindIncremental && c.distrusted != "":
		// What it saw is published and committed; the cursor stays.
	case c.kind == KindIncremental:
		stats.Complete = true
		b.Cursor = later(b.Cursor, c.nextCursor())
		p.covered.add(c.since, start, b.Cursor, p.cfg.Lookback)
	default:
		stats.Complete = true
		if p.synced {
			if err := c.deletes(); err != nil {
				return stats, err
			}
		}
		b.Cursor = later(b.Cursor, c.nextCursor())
		b.LastFull = p.deps.Now()
		p.covered = coverage{}
	}
	if err := p.deps.Checkpoints.SetBookmark(ctx, p.cfg.Resource, b); err != nil {
		return stats, err
	}
	p.bookmark, p.synced = b, true
	stats.Cursor = b.Cursor
	if c.kind != KindIncremental && p.compactDue() {
		stats.Compacted, stats.CompactErr = p.compact(ctx)
	}
	return stats, nil
}

// compactDue: delete markers are kept, and compaction last looked a
// quarter of their retention ago (at most ten minutes), and every event
// this poller published since its load is in the mirror.
func (p *Poller) compactDue() bool {
	keep := p.cfg.DeleteRetention
	if keep <= 0 {
		return false
	}
	p.mu.Lock()
	uncommitted := p.uncommitted
	p.mu.Unlock()
	every := min(max(keep/4, time.Second), 10*time.Minute)
	return !uncommitted && p.deps.Now().Sub(p.compacted) >= every
}

// compact drops the delete markers older than DeleteRetention from the
// mirror and the index, after raising the floor above them, so that an id
// deleted long ago costs nothing and, created again, still gets a
// revision and an event id of its own (plan's package comment). It
// returns how many ids it dropped.
//
// The floor is stored before any marker goes: a stop in between leaves
// markers below the floor, which are items deleted at their own revision
// as before. Before the floor rises, the events others published up to
// now are learned, their creates stored where the mirror lacks them: an
// event decided against the old floor and read back later is then one
// stored after FloorFrom, which the replay rule knows may be so.
func (p *Poller) compact(ctx context.Context) (int, error) {
	res := p.cfg.Resource
	now := p.deps.Now()
	p.compacted = now
	cut, err := p.deps.Mirror.RevisionAt(ctx, now.Add(-p.cfg.DeleteRetention))
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	markers := p.ix.Buried(cut)
	p.mu.Unlock()
	if len(markers) == 0 {
		return 0, nil
	}
	from, err := p.deps.Journal.LastSeq(ctx)
	if err != nil {
		return 0, err
	}
	c := &cycle{p: p, ctx: ctx, stats: &CycleStats{}}
	if err := c.learnOthers(); err != nil {
		return 0, err
	}
	b := p.bookmark
	for _, m := range markers {
		b.Floor = max(b.Floor, m.Revision)
	}
	b.FloorFrom = from
	// Only the holder raises the floor and drops markers: a replica that
	// took the lease over loaded the floor before, and would decide
	// against it.
	if err := p.checkLease(); err != nil {
		return 0, err
	}
	if err := p.deps.Checkpoints.SetBookmark(ctx, res, b); err != nil {
		return 0, err
	}
	p.bookmark, p.floorRaised = b, now
	p.mu.Lock()
	p.ix.SetFloor(b.Floor)
	p.mu.Unlock()
	if err := p.checkLease(); err != nil {
		return 0, err
	}
	gone, err := p.deps.Mirror.Forget(ctx, res, markers)
	p.mu.Lock()
	n := p.ix.Forget(markers, gone, p.cycle)
	p.mu.Unlock()
	return n, err
}

func (p *Poller) schedule() schedule {
	return schedule{incremental: p.cfg.ChangedSince != "", distrusted: p.filterIgnored, synced: p.synced,
		initial: p.cfg.InitialSync, bookmark: p.bookmark, fullEvery: p.cfg.FullEvery}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// load reads the snapshot into the index, then replays the events
// published after the checkpoint and commits any the mirror lacks: the
// bridge stopped between publishing them and storing their state.
func (p *Poller) load(ctx context.Context) error {
	res := p.cfg.Resource
	b, synced, err := p.deps.Checkpoints.Bookmark(ctx, res)
	if err != nil {
		return err
	}
	seq := b.Checkpoint
	ix := NewIndex(1024)
	// Sized once: grown by doubling, the index of a million items would
	// briefly be held twice.
	err = p.deps.Mirror.Load(ctx, res, ix.Expect, func(s plan.State) error {
		if s.Deleted {
			ix.Load(s.ID, 0, 0, s.Revision, true)
			return nil
		}
		h, raw := s.Hashes()
		ix.Load(s.ID, h, raw, s.Revision, false)
		return nil
	})
	if err != nil {
		return fmt.Errorf("poller: loading %s: %w", res, err)
	}
	ix.SetFloor(b.Floor)
	p.mu.Lock()
	p.ix, p.uncommitted = ix, false
	p.mu.Unlock()
	p.bookmark, p.synced = b, synced

	last := seq
	_, err = p.deps.Journal.Replay(ctx, res, seq, recoveryLookback, func(at uint64, e events.Event) error {
		last = max(last, at)
		return p.recover(ctx, at, e)
	})
	if err != nil {
		return fmt.Errorf("poller: replaying %s events after %d: %w", res, seq, err)
	}
	// The mirror just loaded holds every item stored before this.
	p.othersFrom = last
	if last != seq {
		b.Checkpoint = last
		if err := p.deps.Checkpoints.SetBookmark(ctx, res, b); err != nil {
			return err
		}
		p.bookmark = b
	}
	p.loaded = true
	return nil
}

// recoveryLookback is how far before the checkpoint a start replays: a
// write-through's publish and commit are at most its publish timeout and
// its commit's ack wait apart (30 s each), so a bridge killed between the
// two left its event less than that before any checkpoint it set later.
const recoveryLookback = 2 * time.Minute

// recover commits one replayed event, stored at seq, if it is the next
// change of its item and the mirror does not have it yet.
func (p *Poller) recover(ctx context.Context, seq uint64, e events.Event) error {
	p.mu.Lock()
	stored := p.ix.State(e.ID)
	p.mu.Unlock()
	d := plan.Decide(p.cfg.Resource, stored, p.replayed(seq, e), p.deps.Now())
	if d.Write == nil {
		return nil
	}
	writes := []plan.Write{*d.Write}
	res, err := p.deps.Mirror.Commit(ctx, p.cfg.Resource, writes)
	if err != nil {
		return err
	}
	return p.apply(ctx, writes, res)
}

// replayed is the observation of an event read back from the stream at seq.
func (p *Poller) replayed(seq uint64, e events.Event) plan.Observation {
	return plan.Observation{Kind: plan.Replayed, Event: e, OlderFloor: seq > p.bookmark.FloorFrom}
}

// lookup reads the mirror's state of ids, absent ones at the floor.
func (p *Poller) lookup(ctx context.Context, ids []string) ([]plan.State, error) {
	stored, err := p.deps.Mirror.Lookup(ctx, p.cfg.Resource, ids)
	for i := range stored {
		stored[i] = stored[i].AtFloor(p.bookmark.Floor)
	}
	return stored, err
}

// apply records committed writes in the index; a conflict re-reads the
// item, whose state someone else (a command's write-through) stored.
func (p *Poller) apply(ctx context.Context, writes []plan.Write, res []plan.Committed) error {
	var conflicts []string
	p.mu.Lock()
	for i, w := range writes {
		switch {
		case res[i].Conflict:
			conflicts = append(conflicts, w.ID)
		case w.Value == nil:
			p.ix.Bury(w.ID, res[i].Revision)
		default:
			p.ix.Commit(w.ID, res[i].Hash, res[i].RawHash, res[i].Revision)
		}
	}
	p.mu.Unlock()
	if len(conflicts) == 0 {
		return nil
	}
	stored, err := p.lookup(ctx, conflicts)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range stored {
		p.refreshLocked(s)
	}
	return nil
}

// refreshLocked makes the index agree with the mirror for one item. The
// caller holds p.mu. A state older than the one the index holds is
// ignored: a mirror entry's revision only grows, so the read came from a
// replica behind the others (a direct get answered by a follower of a
// replicated bucket); taken, it would make a live item dead here, never
// suspected when it goes.
func (p *Poller) refreshLocked(s plan.State) {
	if s.EntryRevision() < p.ix.entryRevision(s.ID) {
		return
	}
	switch {
	case s.Absent || s.Revision == 0:
		p.ix.Bury(s.ID, 0)
	case s.Deleted:
		p.ix.Bury(s.ID, s.Revision)
	default:
		h, raw := s.Hashes()
		p.ix.Commit(s.ID, h, raw, s.Revision)
	}
}
