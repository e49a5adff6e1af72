package sim

import (
	"cmp"
	"encoding/json"
	"math"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// SinceParam is the list query parameter that asks for the items changed
// since a time.
const SinceParam = "updated_since"

// noTime is the change time of an item whose updated_at is missing or not a
// time (only SetRaw can make one): it sorts first and so falls before every
// updated_since, since no one can say when such an item changed.
const noTime = math.MinInt64

// sinceParam reads updated_since as a time in microseconds, the precision of
// updated_at; ok is false when the request has none. A time with digits
// below the microsecond is rounded up, so that "updated_at >= since" keeps
// its meaning: an item stamped in the microsecond before since is left out.
func sinceParam(q url.Values) (since int64, ok bool, err error) {
	if !q.Has(SinceParam) {
		return 0, false, nil
	}
	v := q.Get(SinceParam)
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		hint := ""
		if strings.Contains(v, " ") {
			// A "+01:00" sent unencoded arrives as " 01:00": the query
			// decoding turned the plus into a space.
			hint = `; a "+" in the offset must be sent as %2B`
		}
		return 0, false, invalidf("%s must be an RFC 3339 time such as 2025-06-02T09:00:00Z, got %q%s", SinceParam, v, hint)
	}
	since = t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		since++
	}
	return since, true, nil
}

// itemTime reads an item's updated_at in microseconds, noTime if it has none.
func itemTime(obj object) int64 {
	t, ok := stampOf(obj, "updated_at")
	if !ok {
		return noTime
	}
	return t.UnixMicro()
}

// stampOf reads a field holding an RFC 3339 time.
func stampOf(obj object, key string) (time.Time, bool) {
	raw, ok := obj.get(key)
	if !ok {
		return time.Time{}, false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// changeIndex holds a collection's items ordered by updated_at, then id: the
// order of a list filtered by updated_since. Every write moves its item to
// the end of that order, so the index is a list of sorted blocks rather than
// one sorted slice: taking an item out of the middle of a million pointers
// would copy megabytes per write, while a block copies at most 2*blockSize,
// and finding the n-th entry stays a binary search over the blocks' starts.
type changeIndex struct {
	blocks [][]*record // none empty
	// starts[i] is how many entries the blocks before i hold.
	starts []int
	n      int
}

// blockSize is the size blocks are built at; an insert splits a block that
// reaches twice this, a delete merges one that falls under a quarter.
const blockSize = 1024

func compareChange(a, b *record) int {
	if c := cmp.Compare(a.at, b.at); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// buildChangeIndex indexes recs, in any order.
func buildChangeIndex(recs []*record) *changeIndex {
	// Sorting the keys beside the pointers, rather than the pointers by
	// what they point at, keeps the sort of a million items in cache.
	type entry struct {
		at, id int64
		rec    *record
	}
	keys := make([]entry, len(recs))
	for i, rec := range recs {
		keys[i] = entry{rec.at, rec.id, rec}
	}
	slices.SortFunc(keys, func(a, b entry) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	sorted := make([]*record, len(keys))
	for i, k := range keys {
		sorted[i] = k.rec
	}
	x := &changeIndex{n: len(sorted)}
	for lo := 0; lo < len(sorted); lo += blockSize {
		hi := min(lo+blockSize, len(sorted))
		// Clipped, so that the first insert into a block copies it out
		// instead of overwriting the next block's entries.
		x.blocks = append(x.blocks, sorted[lo:hi:hi])
		x.starts = append(x.starts, lo)
	}
	return x
}

// find returns the block and offset of the first entry for which ge holds;
// ge must be false for a prefix of the order and true after it. Past the
// end, it returns the end of the last block.
func (x *changeIndex) find(ge func(*record) bool) (b, o int) {
	b = sort.Search(len(x.blocks), func(i int) bool {
		blk := x.blocks[i]
		return ge(blk[len(blk)-1])
	})
	if b == len(x.blocks) {
		if b == 0 {
			return 0, 0
		}
		return b - 1, len(x.blocks[b-1])
	}
	blk := x.blocks[b]
	return b, sort.Search(len(blk), func(i int) bool { return ge(blk[i]) })
}

func (x *changeIndex) findRec(rec *record) (b, o int) {
	return x.find(func(r *record) bool { return compareChange(r, rec) >= 0 })
}

// rankAt returns how many entries changed before at.
func (x *changeIndex) rankAt(at int64) int {
	b, o := x.find(func(r *record) bool { return r.at >= at })
	if len(x.blocks) == 0 {
		return 0
	}
	return x.starts[b] + o
}

// bounds returns the range of entries a filtered list shows: changed at or
// after since and, unless cutoff is math.MaxInt64, not after cutoff.
func (x *changeIndex) bounds(since, cutoff int64) (lo, hi int) {
	lo, hi = x.rankAt(since), x.n
	if cutoff < math.MaxInt64 {
		hi = max(lo, x.rankAt(cutoff+1))
	}
	return lo, hi
}

// appendRange appends the entries from to to (positions in the order) to dst.
func (x *changeIndex) appendRange(dst []*record, from, to int) []*record {
	if from >= to {
		return dst
	}
	b := sort.Search(len(x.starts), func(i int) bool { return x.starts[i] > from }) - 1
	o := from - x.starts[b]
	for from < to {
		blk := x.blocks[b]
		k := min(len(blk)-o, to-from)
		dst = append(dst, blk[o:o+k]...)
		from += k
		b, o = b+1, 0
	}
	return dst
}

func (x *changeIndex) shiftStarts(after, by int) {
	for i := after + 1; i < len(x.starts); i++ {
		x.starts[i] += by
	}
}

func (x *changeIndex) insert(rec *record) {
	x.n++
	if len(x.blocks) == 0 {
		x.blocks, x.starts = [][]*record{{rec}}, []int{0}
		return
	}
	b, o := x.findRec(rec)
	x.blocks[b] = slices.Insert(x.blocks[b], o, rec)
	x.shiftStarts(b, 1)
	x.split(b)
}

func (x *changeIndex) split(b int) {
	blk := x.blocks[b]
	if len(blk) < 2*blockSize {
		return
	}
	half := len(blk) / 2
	// The right half is copied with room to grow: it is the tail block
	// when writes append, and would otherwise be copied again at once.
	right := append(make([]*record, 0, 2*blockSize), blk[half:]...)
	x.blocks[b] = blk[:half]
	x.blocks = slices.Insert(x.blocks, b+1, right)
	x.starts = slices.Insert(x.starts, b+1, x.starts[b]+half)
}

// remove takes rec out; rec must be in the index with its current at.
func (x *changeIndex) remove(rec *record) {
	b, o := x.findRec(rec)
	if b >= len(x.blocks) || o >= len(x.blocks[b]) || x.blocks[b][o] != rec {
		return
	}
	x.n--
	x.blocks[b] = slices.Delete(x.blocks[b], o, o+1)
	x.shiftStarts(b, -1)
	if len(x.blocks[b]) >= blockSize/4 || len(x.blocks) == 1 {
		if len(x.blocks[b]) == 0 {
			x.blocks, x.starts = nil, nil
		}
		return
	}
	// Merging small blocks into a neighbour bounds the number of blocks,
	// and so the cost of shiftStarts, however the writes fall.
	if b == len(x.blocks)-1 {
		b--
	}
	x.blocks[b] = append(x.blocks[b], x.blocks[b+1]...)
	x.blocks = slices.Delete(x.blocks, b+1, b+2)
	x.starts = slices.Delete(x.starts, b+1, b+2)
	x.split(b)
}
