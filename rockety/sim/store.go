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
	raw []byte
}

// collection holds one resource's items in list order plus an index by id.
// The order is a slice sorted by key: a page is a sub-slice, found in O(1),
// which is what keeps serving pages cheap with a million items.
type collection struct {
	kind   *kind
	order  []*record
	byID   map[int64]*record
	nextID int64
	// tailKey and headKey are the keys the next append and the next
	// insert-at-front get; seeded items take 1..n.
	tailKey int64
	headKey int64
}

func newCollection(k *kind) *collection {
	return &collection{kind: k, byID: make(map[int64]*record), nextID: 1, tailKey: 1, headKey: 0}
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
}

func (c *collection) prependRec(rec *record) {
	rec.key = c.headKey
	c.headKey--
	c.order = slices.Insert(c.order, 0, rec)
	c.byID[rec.id] = rec
}

func (c *collection) remove(rec *record) {
	i := sort.Search(len(c.order), func(i int) bool { return c.order[i].key >= rec.key })
	if i < len(c.order) && c.order[i] == rec {
		c.order = slices.Delete(c.order, i, i+1)
	}
	delete(c.byID, rec.id)
}

// window returns the bounds of a page in order; past the end it is empty.
func (c *collection) window(page, perPage int) (start, end int) {
	n := len(c.order)
	if page-1 >= (n+perPage-1)/perPage {
		return n, n
	}
	start = (page - 1) * perPage
	return start, min(start+perPage, n)
}
