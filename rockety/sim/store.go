package sim

import (
	"slices"
	"sort"
	"strconv"
)

// record is one item. raw is never modified in place: a write swaps in a new
// slice, so a page being copied out under the read lock and a mutation logged
// earlier can share the bytes safely.
type record struct {
	key int64 // position in list order
	id  int64
	at  int64 // updated_at in microseconds, the key of the change index
	raw []byte
	// soft is 1 + the record's place in collection.soft while it is
	// soft-deleted, else 0.
	soft int
}

func (r *record) softDeleted() bool { return r.soft > 0 }

// collection holds one resource's items in list order plus an index by id.
// The order is a slice sorted by key: a page is a sub-slice, found in O(1),
// which is what keeps serving pages cheap with a million items.
type collection struct {
	kind  *kind
	order []*record
	byID  map[int64]*record
	// changes orders the items for updated_since. A seeded collection
	// builds it on its first filtered list, so that seeding stays as quick
	// as before and a simulator nobody asks for changes never sorts.
	changes *changeIndex
	// soft holds the soft-deleted items, for churn to pick one to restore.
	soft   []*record
	nextID int64
	// tailKey and headKey are the keys the next append and the next
	// insert-at-front get; seeded items take 1..n.
	tailKey int64
	headKey int64
}

func newCollection(k *kind) *collection {
	return &collection{kind: k, byID: make(map[int64]*record), changes: &changeIndex{}, nextID: 1, tailKey: 1, headKey: 0}
}

// parseID accepts only the canonical decimal form, so "007" is not item 7.
func parseID(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != s {
		return 0, false
	}
	return n, true
}

func (c *collection) get(id string) *record {
	n, ok := parseID(id)
	if !ok {
		return nil
	}
	return c.byID[n]
}

// newID hands out the next id; ids only grow, even after deletes.
func (c *collection) newID() int64 {
	id := c.nextID
	c.nextID++
	return id
}

func (c *collection) appendRec(rec *record) {
	rec.key = c.tailKey
	c.tailKey++
	c.order = append(c.order, rec)
	c.byID[rec.id] = rec
	if c.changes != nil {
		c.changes.insert(rec)
	}
}

func (c *collection) prependRec(rec *record) {
	rec.key = c.headKey
	c.headKey--
	c.order = slices.Insert(c.order, 0, rec)
	c.byID[rec.id] = rec
	if c.changes != nil {
		c.changes.insert(rec)
	}
}

func (c *collection) remove(rec *record) {
	i := sort.Search(len(c.order), func(i int) bool { return c.order[i].key >= rec.key })
	if i < len(c.order) && c.order[i] == rec {
		c.order = slices.Delete(c.order, i, i+1)
	}
	delete(c.byID, rec.id)
	if c.changes != nil {
		c.changes.remove(rec)
	}
	if rec.softDeleted() {
		c.restore(rec)
	}
}

// retime moves rec to its new place in the change index; every write that
// changes updated_at goes through it.
func (c *collection) retime(rec *record, at int64) {
	if rec.at == at {
		return
	}
	if c.changes != nil {
		c.changes.remove(rec)
	}
	rec.at = at
	if c.changes != nil {
		c.changes.insert(rec)
	}
}

// indexChanges builds the change index if it is not built yet. The caller
// holds the server's lock exclusively.
func (c *collection) indexChanges() {
	if c.changes == nil {
		c.changes = buildChangeIndex(c.order)
	}
}

func (c *collection) softDelete(rec *record) {
	c.soft = append(c.soft, rec)
	rec.soft = len(c.soft)
}

func (c *collection) restore(rec *record) {
	i := rec.soft - 1
	last := c.soft[len(c.soft)-1]
	c.soft[i], last.soft = last, i+1
	c.soft[len(c.soft)-1] = nil
	c.soft = c.soft[:len(c.soft)-1]
	rec.soft = 0
}

// window returns the bounds of a page in order; past the end it is empty.
func (c *collection) window(page, perPage int) (start, end int) {
	return window(len(c.order), page, perPage)
}

// window returns the bounds of a page of n items; past the end it is empty.
func window(n, page, perPage int) (start, end int) {
	if page-1 >= (n+perPage-1)/perPage {
		return n, n
	}
	start = (page - 1) * perPage
	return start, min(start+perPage, n)
}
