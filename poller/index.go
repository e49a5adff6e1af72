package poller

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// entry is what the poller remembers of one item between cycles: hashes of
// its JSON, not the JSON itself, so a million items fit in well under 100
// MB. The full JSON lives in the mirror and is read only for items that
// changed. 24 bytes, packed because there may be millions.
type entry struct {
	hash uint64 // of the canonical JSON
	// raw hashes the exact bytes last seen: the API usually sends an
	// unchanged item byte for byte, and then the canonical hash is skipped.
	raw uint64
	// meta packs, from the low bits: the mirror revision of the item's
	// state (of its live entry, or of its delete marker, or 0 when it never
	// had one; 40 bits, a trillion revisions), the last cycle that saw it
	// (23 bits, compared modulo 2^23) and whether it is deleted.
	meta uint64
}

const (
	revBits  = 40
	revMask  = 1<<revBits - 1
	seenBits = 23
	seenMask = 1<<seenBits - 1
	deadBit  = 1 << 63
)

func (e entry) rev() uint64      { return e.meta & revMask }
func (e entry) seen() uint32     { return uint32(e.meta>>revBits) & seenMask }
func (e entry) dead() bool       { return e.meta&deadBit != 0 }
func (e *entry) setRev(r uint64) { e.meta = e.meta&^revMask | r&revMask }
func (e *entry) setSeen(c uint32) {
	e.meta = e.meta&^(seenMask<<revBits) | uint64(c&seenMask)<<revBits
}
func (e *entry) setDead(d bool) {
	if d {
		e.meta |= deadBit
	} else {
		e.meta &^= deadBit
	}
}

// Index maps item ids to their last committed state. It does no I/O.
//
// Most APIs use numeric ids, handed out in sequence, and list them in that
// order. Those are kept by position in a slice: no id is stored at all, and
// a cycle walks the slice front to back instead of hopping around a hash
// table, where at a million items every lookup is a cache miss. Numeric ids
// too far beyond the others to keep the slice mostly full go to a map of
// integers (which still saves the string); any other id is kept as a string.
type Index struct {
	// dense[n] is the entry of id n; the zero entry means no such id (every
	// stored entry has a revision, a cycle or the deleted bit set).
	dense    []entry
	denseLen int // ids held in dense
	nums     map[uint64]entry
	strs     map[string]entry
	live     int
	// floor is the resource's compaction floor (plan.Bookmark.Floor): an
	// id with no stored entry, absent or held with revision 0, is as if
	// deleted at it.
	floor uint64
	// expected is how many ids a load announced: the slice grows to that
	// at once instead of doubling up to it, which would hold it twice.
	expected int
}

// Expect says that about n ids are coming (a load from the mirror).
func (ix *Index) Expect(n int) { ix.expected = n }

// NewIndex returns an empty index sized for n items.
func NewIndex(n int) *Index {
	return &Index{dense: make([]entry, 0, n), nums: make(map[uint64]entry), strs: make(map[string]entry)}
}

// Live is the number of items that exist as far as the index knows.
func (ix *Index) Live() int { return ix.live }

// Len is the number of ids tracked, deleted ones included.
func (ix *Index) Len() int { return ix.denseLen + len(ix.nums) + len(ix.strs) }

// denseSlack lets the slice run ahead of the ids it holds, so that the
// first ids of a resource, and gaps left by deleted items, stay in it.
const denseSlack = 1024

// numericID reports whether id is a decimal integer that prints back as
// itself ("42", not "042" or "+42"), and its value.
func numericID(id string) (uint64, bool) {
	if len(id) == 0 || len(id) > 19 || (id[0] == '0' && len(id) > 1) {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func (ix *Index) get(id string) (entry, bool) {
	if n, ok := numericID(id); ok {
		if n < uint64(len(ix.dense)) {
			e := ix.dense[n]
			return e, e != entry{}
		}
		e, found := ix.nums[n]
		return e, found
	}
	e, found := ix.strs[id]
	return e, found
}

func (ix *Index) put(id string, e entry) {
	n, ok := numericID(id)
	if !ok {
		ix.strs[id] = e
		return
	}
	if n >= uint64(len(ix.dense)) && !ix.growDense(n) {
		ix.nums[n] = e
		return
	}
	if ix.dense[n] == (entry{}) {
		ix.denseLen++
	}
	ix.dense[n] = e
}

// growDense makes room in the slice for id n if the slice, at that length,
// stays at least half full (or within the slack), and moves the ids it now
// covers out of the map. It reports whether n fits.
func (ix *Index) growDense(n uint64) bool {
	limit := 2*uint64(max(ix.denseLen+len(ix.nums)+1, ix.expected)) + denseSlack
	if n >= limit {
		return false
	}
	// Doubling keeps the copies few; the limit keeps the slice half full.
	size := max(n+1, min(max(2*uint64(len(ix.dense)), denseSlack, uint64(ix.expected)+denseSlack), limit))
	if size <= uint64(cap(ix.dense)) {
		ix.dense = ix.dense[:size]
	} else {
		grown := make([]entry, size)
		copy(grown, ix.dense)
		ix.dense = grown
	}
	for k, e := range ix.nums {
		if k < size {
			ix.dense[k] = e
			ix.denseLen++
			delete(ix.nums, k)
		}
	}
	return true
}

// Load records an item's committed state as read from the mirror.
func (ix *Index) Load(id string, hash, raw, rev uint64, deleted bool) {
	e := entry{hash: hash, raw: raw}
	e.setRev(rev)
	e.setDead(deleted)
	ix.set(id, e)
}

// Commit records that id's state, with these hashes, is now stored at rev.
func (ix *Index) Commit(id string, hash, raw, rev uint64) { ix.record(id, hash, raw, rev, false) }

// Bury records that id was deleted, its delete marker stored at rev.
func (ix *Index) Bury(id string, rev uint64) { ix.record(id, 0, 0, rev, true) }

// BuryListed records that id is deleted although the API still lists it
// (soft-deleted, ROCKETY_DELETED_FIELD): its delete marker is at rev (0
// when it was never stored), and the hashes are of the listed item, so a
// cycle that lists it unchanged finds nothing to do.
func (ix *Index) BuryListed(id string, hash, raw, rev uint64) { ix.record(id, hash, raw, rev, true) }

// record stores a committed state, keeping the cycle that last saw the id.
func (ix *Index) record(id string, hash, raw, rev uint64, dead bool) {
	e, _ := ix.get(id)
	e.hash, e.raw = hash, raw
	e.setRev(rev)
	e.setDead(dead)
	ix.set(id, e)
}

func (ix *Index) set(id string, e entry) {
	old, ok := ix.get(id)
	if ok && !old.dead() {
		ix.live--
	}
	if !e.dead() {
		ix.live++
	}
	ix.put(id, e)
}

// SetFloor sets the compaction floor; it only grows.
func (ix *Index) SetFloor(floor uint64) { ix.floor = max(ix.floor, floor) }

// Revision is the stored revision of id (the floor when it has no entry),
// and whether it is live.
func (ix *Index) Revision(id string) (rev uint64, live bool) {
	e, _ := ix.get(id)
	return ix.replaces(e), !e.dead() && e.rev() != 0
}

// entryRevision is the revision of id's stored entry as the index knows
// it: 0 when none.
func (ix *Index) entryRevision(id string) uint64 {
	e, _ := ix.get(id)
	return e.rev()
}

// replaces is the revision a change of e replaces: the floor when e has
// no stored entry.
func (ix *Index) replaces(e entry) uint64 {
	if e.rev() == 0 {
		return ix.floor
	}
	return e.rev()
}

// State is what the index knows of id as a stored state, without a value.
func (ix *Index) State(id string) plan.State {
	e, _ := ix.get(id)
	if e.rev() == 0 {
		return plan.State{ID: id, Absent: true}.AtFloor(ix.floor)
	}
	return plan.State{ID: id, Revision: e.rev(), Deleted: e.dead()}
}

// Buried lists the delete markers below cut, of items deleted before the
// mirror reached that revision.
func (ix *Index) Buried(cut uint64) []plan.Marker {
	var out []plan.Marker
	buried := func(e entry) bool { return e.dead() && e.rev() != 0 && e.rev() < cut }
	for n, e := range ix.dense {
		if e != (entry{}) && buried(e) {
			out = append(out, plan.Marker{ID: strconv.Itoa(n), Revision: e.rev()})
		}
	}
	for n, e := range ix.nums {
		if buried(e) {
			out = append(out, plan.Marker{ID: strconv.FormatUint(n, 10), Revision: e.rev()})
		}
	}
	for id, e := range ix.strs {
		if buried(e) {
			out = append(out, plan.Marker{ID: id, Revision: e.rev()})
		}
	}
	return out
}

// Forget drops the ids whose delete markers compaction removed (gone[i]
// for markers[i]), unless one changed since. An id that cycle listed,
// soft-deleted (ROCKETY_DELETED_FIELD), keeps its hashes with no
// revision, so the next cycles still find it unchanged. It returns how
// many ids it dropped or emptied. Set the floor first.
func (ix *Index) Forget(markers []plan.Marker, gone []bool, cycle uint32) int {
	n := 0
	for i, m := range markers {
		e, ok := ix.get(m.ID)
		if !gone[i] || !ok || !e.dead() || e.rev() != m.Revision {
			continue
		}
		n++
		if e.hash != 0 && e.seen() == cycle&seenMask {
			e.setRev(0)
			ix.put(m.ID, e)
			continue
		}
		ix.remove(m.ID)
	}
	ix.thin()
	return n
}

// remove drops id; a dead one does not count as live.
func (ix *Index) remove(id string) {
	if e, ok := ix.get(id); ok && !e.dead() {
		ix.live--
	}
	if n, ok := numericID(id); ok {
		if n < uint64(len(ix.dense)) {
			if ix.dense[n] != (entry{}) {
				ix.denseLen--
			}
			ix.dense[n] = entry{}
			return
		}
		delete(ix.nums, n)
		return
	}
	delete(ix.strs, id)
}

// thin moves the slice's ids to the map once the slice is mostly holes:
// ids only grow, so after months of creates and deletes the slice would
// span every id the resource ever had, 24 bytes each, for the few alive.
func (ix *Index) thin() {
	if len(ix.dense) <= 4*denseSlack || ix.denseLen*4 >= len(ix.dense) {
		return
	}
	for n, e := range ix.dense {
		if e != (entry{}) {
			ix.nums[uint64(n)] = e
		}
	}
	ix.dense, ix.denseLen, ix.expected = nil, 0, 0
}

// hashOf is the canonical hash of id's committed state.
func (ix *Index) hashOf(id string) uint64 {
	e, _ := ix.get(id)
	return e.hash
}

// Change is an item whose state may have changed, found by Diff and not yet
// published; which event it makes, if any, is plan.Decide's to say.
type Change struct {
	// Live: the index held the item live (its state differs); else the
	// item is new or comes back after a delete.
	Live bool
	ID   string
	// Raw is the item as the API returned it now.
	Raw  json.RawMessage
	Hash uint64 // of the canonical JSON
	// RawHash is of the bytes as sent.
	RawHash uint64
	// Replaces is the revision this change replaces: the live state's for
	// an update, the delete marker's (or the floor) for a create.
	Replaces uint64
	// Absent: the item has no stored entry; Replaces is the floor.
	Absent bool
	// Missed is the cycle's to set: a full traversal found the change,
	// and an incremental cycle should have (incremental_missed_total).
	Missed bool
}

// Diff compares one page of items with the index and marks each item seen
// in cycle. It returns the creates and updates, in page order, and how many
// items were skipped because this cycle had seen them already (they moved
// between pages while the traversal ran). Unchanged items produce nothing.
// The index's committed state does not change: that waits for Commit.
//
//	index                   page                   result
//	(absent)                {"id":7,"t":"a"}       change 7, not live, replaces 0
//	7 dead at rev 12        {"id":7,"t":"a"}       change 7, not live, replaces 12
//	7 live, hash(t:a), r5   {"t":"a","id":7}       nothing (key order)
//	7 live, hash(t:a), r5   {"id":7,"t":"b"}       change 7, live, replaces 5
//	7 seen this cycle       {"id":7,...}           skipped, dupes+1
//	7 dead, listed hash     the same item          nothing (still soft-deleted)
func (ix *Index) Diff(cycle uint32, items []rockety.Item) (changes []Change, dupes int, err error) {
	return ix.diff(cycle, items, true, false)
}

// DiffAll is Diff for a resync's snapshot: live items come back unchanged
// too (a soft-deleted one listed as before still does not).
func (ix *Index) DiffAll(cycle uint32, items []rockety.Item) (changes []Change, dupes int, err error) {
	return ix.diff(cycle, items, true, true)
}

// Recheck is Diff for a list read beside the traversal (a full
// traversal's catch-up on changed items): an item the cycle saw already is
// compared again, since it may have changed after its page was read, and
// nothing is marked seen, so the traversal's own page still compares the
// item when it comes (a change that did not move the changed-at value is
// found there).
func (ix *Index) Recheck(cycle uint32, items []rockety.Item) ([]Change, error) {
	changes, _, err := ix.diff(cycle, items, false, false)
	return changes, err
}

func (ix *Index) diff(cycle uint32, items []rockety.Item, own, all bool) (changes []Change, dupes int, err error) {
	for _, it := range items {
		id := string(it.ID)
		e, known := ix.get(id)
		if known && e.seen() == cycle&seenMask && own {
			dupes++
			continue
		}
		if own {
			e.setSeen(cycle)
		}
		if !known {
			e.setDead(true) // a new id counts as absent until its state is committed
		}
		raw := plan.RawHash(it.Raw)
		if e.raw == raw && (!e.dead() || e.hash != 0) {
			ix.put(id, e)
			if all && !e.dead() {
				changes = append(changes, Change{Live: true, ID: id, Raw: it.Raw, Hash: e.hash, RawHash: raw, Replaces: e.rev()})
			}
			continue
		}
		h, err := plan.Hash(it.Raw)
		if err != nil {
			return changes, dupes, fmt.Errorf("item %s: %w", id, err)
		}
		switch {
		case e.dead() && e.hash != 0 && e.hash == h:
			e.raw = raw // a soft-deleted item listed again, formatted otherwise
		case e.dead():
			changes = append(changes, Change{ID: id, Raw: it.Raw, Hash: h, RawHash: raw, Replaces: ix.replaces(e), Absent: e.rev() == 0})
		case e.hash != h || all:
			changes = append(changes, Change{Live: true, ID: id, Raw: it.Raw, Hash: h, RawHash: raw, Replaces: e.rev()})
		default:
			// Only the formatting changed: remember these bytes so the
			// next cycle takes the fast path.
			e.raw = raw
		}
		ix.put(id, e)
	}
	return changes, dupes, nil
}

// Suspect is a live item that a complete traversal did not see: deleted,
// or moved between pages while they were read.
type Suspect struct {
	ID       string
	Replaces uint64
}

// suspect: live, stored, and not seen in cycle.
func (e entry) suspect(cycle uint32) bool {
	return !e.dead() && e.rev() != 0 && e.seen() != cycle&seenMask
}

// Missing lists the live items not seen in cycle, sorted by id.
func (ix *Index) Missing(cycle uint32) []Suspect {
	var out []Suspect
	for n, e := range ix.dense {
		if e != (entry{}) && e.suspect(cycle) {
			out = append(out, Suspect{ID: strconv.Itoa(n), Replaces: e.rev()})
		}
	}
	for n, e := range ix.nums {
		if e.suspect(cycle) {
			out = append(out, Suspect{ID: strconv.FormatUint(n, 10), Replaces: e.rev()})
		}
	}
	for id, e := range ix.strs {
		if e.suspect(cycle) {
			out = append(out, Suspect{ID: id, Replaces: e.rev()})
		}
	}
	slices.SortFunc(out, func(a, b Suspect) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}
