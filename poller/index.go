package poller

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// entry is what the poller remembers of one item between cycles: the hash
// of its canonical JSON, not the JSON itself, so a million items fit in
// tens of megabytes. The full JSON lives in the mirror and is read only for
// items that changed.
type entry struct {
	hash uint64
	// rev is the mirror revision of the item's state: of its live entry, or
	// of its delete marker (dead), or 0 when it never had one.
	rev  uint64
	seen uint32 // the last cycle that saw the item
	dead bool
}

// Index maps item ids to their last committed state. It does no I/O.
type Index struct {
	items map[string]entry
	live  int
}

// NewIndex returns an empty index sized for n items.
func NewIndex(n int) *Index { return &Index{items: make(map[string]entry, n)} }

// Live is the number of items that exist as far as the index knows.
func (ix *Index) Live() int { return ix.live }

// Len is the number of ids tracked, deleted ones included.
func (ix *Index) Len() int { return len(ix.items) }

// Load records an item's committed state as read from the mirror.
func (ix *Index) Load(id string, hash, rev uint64, deleted bool) {
	ix.set(id, entry{hash: hash, rev: rev, dead: deleted})
}

// Commit records that id's state with hash is now stored at rev.
func (ix *Index) Commit(id string, hash, rev uint64) {
	e := ix.items[id]
	e.hash, e.rev, e.dead = hash, rev, false
	ix.set(id, e)
}

// Bury records that id was deleted, its delete marker stored at rev.
func (ix *Index) Bury(id string, rev uint64) {
	e := ix.items[id]
	e.hash, e.rev, e.dead = 0, rev, true
	ix.set(id, e)
}

func (ix *Index) set(id string, e entry) {
	old, ok := ix.items[id]
	if ok && !old.dead {
		ix.live--
	}
	if !e.dead {
		ix.live++
	}
	ix.items[id] = e
}

// Revision is the stored revision of id, and whether it is live.
func (ix *Index) Revision(id string) (rev uint64, live bool) {
	e := ix.items[id]
	return e.rev, !e.dead && e.rev != 0
}

// Change is a create or an update found by Diff, not yet published.
type Change struct {
	Op events.Op // OpCreated or OpUpdated
	ID string
	// Raw is the item as the API returned it now.
	Raw  json.RawMessage
	Hash uint64
	// Replaced is the revision this change replaces: the live state's for
	// an update, the delete marker's (or 0) for a create.
	Replaced uint64
}

// Diff compares one page of items with the index and marks each item seen
// in cycle. It returns the creates and updates, in page order, and how many
// items were skipped because this cycle had seen them already (they moved
// between pages while the traversal ran). Unchanged items produce nothing.
// The index's committed state does not change: that waits for Commit.
//
//	index                   page                   result
//	(absent)                {"id":7,"t":"a"}       created 7, replaces 0
//	7 dead at rev 12        {"id":7,"t":"a"}       created 7, replaces 12
//	7 live, hash(t:a), r5   {"t":"a","id":7}       nothing (key order)
//	7 live, hash(t:a), r5   {"id":7,"t":"b"}       updated 7, replaces 5
//	7 seen this cycle       {"id":7,...}           skipped, dupes+1
func (ix *Index) Diff(hs *hasher, cycle uint32, items []rockety.Item) (changes []Change, dupes int, err error) {
	for _, it := range items {
		id := string(it.ID)
		e, known := ix.items[id]
		if known && e.seen == cycle {
			dupes++
			continue
		}
		h, err := hs.Sum(it.Raw)
		if err != nil {
			return changes, dupes, fmt.Errorf("item %s: %w", id, err)
		}
		e.seen = cycle
		if !known {
			e.dead = true // a new id counts as absent until its state is committed
		}
		ix.items[id] = e
		switch {
		case !known || e.dead:
			changes = append(changes, Change{Op: events.OpCreated, ID: id, Raw: it.Raw, Hash: h, Replaced: e.rev})
		case e.hash != h:
			changes = append(changes, Change{Op: events.OpUpdated, ID: id, Raw: it.Raw, Hash: h, Replaced: e.rev})
		}
	}
	return changes, dupes, nil
}

// Suspect is a live item that a complete traversal did not see: deleted,
// or moved between pages while they were read.
type Suspect struct {
	ID  string
	Rev uint64
}

// Missing lists the live items not seen in cycle, sorted by id.
func (ix *Index) Missing(cycle uint32) []Suspect {
	var out []Suspect
	for id, e := range ix.items {
		if !e.dead && e.rev != 0 && e.seen != cycle {
			out = append(out, Suspect{ID: id, Rev: e.rev})
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

// ChangedFields lists the top-level fields that differ between two JSON
// objects, sorted; a field present in only one of them counts. Key order
// and formatting inside a field never make it differ.
func ChangedFields(hs *hasher, before, after []byte) ([]string, error) {
	var b, a map[string]json.RawMessage
	if err := json.Unmarshal(before, &b); err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	if err := json.Unmarshal(after, &a); err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	var changed []string
	for k, bv := range b {
		av, ok := a[k]
		if !ok {
			changed = append(changed, k)
			continue
		}
		bh, err := hs.Sum(bv)
		if err != nil {
			return nil, err
		}
		ah, err := hs.Sum(av)
		if err != nil {
			return nil, err
		}
		if ah != bh {
			changed = append(changed, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	return changed, nil
}
