package poller

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/rockety"
)

func items(raws ...string) []rockety.Item {
	out := make([]rockety.Item, len(raws))
	for i, r := range raws {
		id, err := rockety.ItemID([]byte(r))
		if err != nil {
			panic(err)
		}
		out[i] = rockety.Item{ID: id, Raw: json.RawMessage(r)}
	}
	return out
}

func TestIndexDiff(t *testing.T) {
	sum := func(s string) uint64 { h, _ := plan.Hash([]byte(s)); return h }
	type want struct {
		live     bool
		id       string
		replaces uint64
	}
	tests := []struct {
		name      string
		setup     func(ix *Index)
		page      []rockety.Item
		want      []want
		wantDupes int
	}{
		{name: "empty page", page: nil},
		{name: "new item", page: items(`{"id":7,"t":"a"}`), want: []want{{false, "7", 0}}},
		{name: "re-created after a delete", setup: func(ix *Index) { ix.Load("7", 0, 0, 12, true) },
			page: items(`{"id":7,"t":"a"}`), want: []want{{false, "7", 12}}},
		{name: "unchanged, keys reordered", setup: func(ix *Index) { ix.Load("7", sum(`{"id":7,"t":"a"}`), 0, 5, false) },
			page: items(`{"t":"a", "id":7}`)},
		{name: "updated", setup: func(ix *Index) { ix.Load("7", sum(`{"id":7,"t":"a"}`), 0, 5, false) },
			page: items(`{"id":7,"t":"b"}`), want: []want{{true, "7", 5}}},
		{name: "soft-deleted and listed unchanged: nothing",
			setup: func(ix *Index) {
				ix.BuryListed("7", sum(`{"id":7,"gone":true}`), plan.RawHash([]byte(`{"id":7,"gone":true}`)), 12)
			},
			page: items(`{"id":7,"gone":true}`)},
		{name: "soft-deleted, listed with other formatting: nothing",
			setup: func(ix *Index) { ix.BuryListed("7", sum(`{"id":7,"gone":true}`), 0, 12) },
			page:  items(`{"gone":true,"id":7}`)},
		{name: "soft-deleted, listed changed (restored): a create replacing the marker",
			setup: func(ix *Index) { ix.BuryListed("7", sum(`{"id":7,"gone":true}`), 0, 12) },
			page:  items(`{"id":7,"gone":null}`), want: []want{{false, "7", 12}}},
		{name: "same id twice in a cycle", page: items(`{"id":7}`, `{"id":8}`, `{"id":7}`),
			want: []want{{false, "7", 0}, {false, "8", 0}}, wantDupes: 1},
		{name: "string and number ids are the same id", page: items(`{"id":7}`, `{"id":"7"}`),
			want: []want{{false, "7", 0}}, wantDupes: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := NewIndex(0)
			if tt.setup != nil {
				tt.setup(ix)
			}
			live := ix.Live()
			changes, dupes, err := ix.Diff(1, tt.page)
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, c := range changes {
				got = append(got, want{c.Live, c.ID, c.Replaces})
			}
			if !slices.Equal(got, tt.want) || dupes != tt.wantDupes {
				t.Errorf("changes %v dupes %d, want %v dupes %d", got, dupes, tt.want, tt.wantDupes)
			}
			if ix.Live() != live {
				t.Errorf("Diff changed the live count from %d to %d: only commits may", live, ix.Live())
			}
		})
	}
}

func TestIndexMissingAndCommit(t *testing.T) {
	ix := NewIndex(0)
	ix.Load("a", 1, 0, 10, false)
	ix.Load("b", 2, 0, 11, false)
	ix.Load("c", 0, 0, 12, true) // deleted: never suspected
	if _, _, err := ix.Diff(1, items(`{"id":"a"}`, `{"id":"new"}`)); err != nil {
		t.Fatal(err)
	}
	if got := ix.Missing(1); !slices.Equal(got, []Suspect{{ID: "b", Replaces: 11}}) {
		t.Errorf("missing = %v, want b only (new is not committed, c is deleted)", got)
	}
	if ix.Live() != 2 {
		t.Errorf("live = %d, want 2", ix.Live())
	}
	ix.Commit("new", 3, 0, 13)
	ix.Bury("b", 14)
	if rev, live := ix.Revision("b"); rev != 14 || live {
		t.Errorf("b = %d live %v", rev, live)
	}
	if rev, live := ix.Revision("new"); rev != 13 || !live || ix.Live() != 2 || ix.Len() != 4 {
		t.Errorf("new = %d live %v; live count %d, len %d", rev, live, ix.Live(), ix.Len())
	}
	if got := ix.Missing(2); !slices.Equal(got, []Suspect{{ID: "a", Replaces: 10}, {ID: "new", Replaces: 13}}) {
		t.Errorf("missing in the next cycle = %v", got)
	}
}

func TestNextDelay(t *testing.T) {
	const iv = 30 * time.Second
	tests := []struct {
		name     string
		interval time.Duration
		jitter   float64
		failures int
		ceiling  time.Duration
		rnd      float64
		want     time.Duration
	}{
		{"steady, no jitter", iv, 0, 0, MaxBackoff, 0.7, iv},
		{"jitter low end", iv, 0.1, 0, MaxBackoff, 0, 27 * time.Second},
		{"jitter middle", iv, 0.1, 0, MaxBackoff, 0.5, iv},
		{"jitter high end", iv, 0.1, 0, MaxBackoff, 0.9999999999, 33 * time.Second},
		{"one failure doubles", iv, 0, 1, MaxBackoff, 0.5, time.Minute},
		{"three failures", iv, 0, 3, MaxBackoff, 0.5, 4 * time.Minute},
		{"capped at ten minutes", iv, 0, 20, MaxBackoff, 0.5, 10 * time.Minute},
		{"a long interval is never shortened", time.Hour, 0, 3, MaxBackoff, 0.5, time.Hour},
		{"refused: capped at a minute", iv, 0, 5, RefusedBackoff, 0.5, time.Minute},
		{"refused: a sub-second interval doubles to the cap", 150 * time.Millisecond, 0, 30, RefusedBackoff, 0.5, time.Minute},
		{"refused: a long interval is never shortened", time.Hour, 0, 3, RefusedBackoff, 0.5, time.Hour},
		{"sub-second interval steady", 150 * time.Millisecond, 0, 0, MaxBackoff, 0.5, 150 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NextDelay(tt.interval, tt.jitter, tt.failures, tt.ceiling, tt.rnd)
			if got.Round(time.Millisecond) != tt.want {
				t.Errorf("NextDelay = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestConfigRefusals(t *testing.T) {
	for _, c := range []Config{
		{Resource: ""},
		{Resource: "ta sks"},
		{Resource: "tasks", InitialSync: "everything"},
		{Resource: "tasks", MaxDeleteRatio: 1.5},
		{Resource: "tasks", Jitter: 2},
	} {
		if err := c.setDefaults(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

func TestNumericID(t *testing.T) {
	for id, want := range map[string]bool{"0": true, "42": true, "18446744073709551615": false, "1844674407370955161": true,
		"": false, "042": false, "+1": false, "-1": false, "4a": false, "1.0": false, "١": false} {
		n, ok := numericID(id)
		if ok != want || (ok && strconv.FormatUint(n, 10) != id) {
			t.Errorf("numericID(%q) = %d, %v; want ok=%v", id, n, ok, want)
		}
	}
}

func TestEntryPacking(t *testing.T) {
	var e entry
	e.setRev(revMask)
	e.setSeen(12345)
	e.setDead(true)
	if e.rev() != revMask || e.seen() != 12345 || !e.dead() {
		t.Fatalf("packed %x: rev %d seen %d dead %v", e.meta, e.rev(), e.seen(), e.dead())
	}
	e.setSeen(1<<seenBits + 7) // cycles wrap around
	e.setDead(false)
	e.setRev(3)
	if e.rev() != 3 || e.seen() != 7 || e.dead() {
		t.Fatalf("after changes: rev %d seen %d dead %v", e.rev(), e.seen(), e.dead())
	}
	if e.suspect(1<<seenBits+7) || !e.suspect(8) {
		t.Error("suspect does not compare cycles modulo 2^23")
	}
}

// TestIndexIDKinds: numeric ids in sequence live in the slice, far-off
// numeric ids in the map until the slice grows to them, other ids as
// strings; each keeps its state, and Missing and Len see all of them.
func TestIndexIDKinds(t *testing.T) {
	ix := NewIndex(0)
	ids := []string{"1", "2", "3", "1000000000000", "0", "uuid-7", "007", "2000", "3000", "18446744073709551615"}
	for i, id := range ids {
		ix.Commit(id, uint64(i+1), 0, uint64(i+10))
	}
	// 2000 and 3000 join the slice as it grows; 1e12 stays in the map.
	for i := 4; i < 3000; i++ {
		if id := strconv.Itoa(i); id != "2000" {
			ix.Commit(id, 1, 0, 5)
		}
	}
	if len(ix.dense) <= 3000 || ix.nums[1000000000000] == (entry{}) {
		t.Errorf("slice of %d, far-off id in the map: %v", len(ix.dense), ix.nums[1000000000000] != (entry{}))
	}
	for i, id := range ids {
		rev, live := ix.Revision(id)
		if rev != uint64(i+10) || !live || ix.hashOf(id) != uint64(i+1) {
			t.Errorf("%s: rev %d live %v hash %d; want rev %d hash %d", id, rev, live, ix.hashOf(id), i+10, i+1)
		}
	}
	if want := len(ids) + 2996 - 1; ix.Len() != want || ix.Live() != want {
		t.Errorf("len %d live %d, want %d", ix.Len(), ix.Live(), want)
	}
	if rev, live := ix.Revision("2999999"); rev != 0 || live {
		t.Errorf("an id never stored: rev %d live %v", rev, live)
	}
	ix.Bury("2", 99)
	missing := ix.Missing(1)
	if len(missing) != ix.Live() {
		t.Errorf("%d missing in a cycle that saw nothing, want all %d live ones", len(missing), ix.Live())
	}
	for _, s := range missing {
		if s.ID == "2" {
			t.Error("a deleted id is suspected")
		}
	}
	if !slices.IsSortedFunc(missing, func(a, b Suspect) int { return strings.Compare(a.ID, b.ID) }) {
		t.Error("Missing is not sorted by id")
	}
}

// TestIndexAgainstAMap stores random states under ids of every kind, in
// random order, and holds the index to a plain map after each step.
func TestIndexAgainstAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ix := NewIndex(0)
	model := map[string]uint64{} // id -> revision; odd revisions are deletes
	randomID := func() string {
		switch rng.IntN(4) {
		case 0:
			return strconv.Itoa(rng.IntN(5000)) // dense
		case 1:
			return strconv.FormatUint(rng.Uint64N(1<<40), 10) // far apart
		case 2:
			return fmt.Sprintf("s-%d", rng.IntN(500))
		default:
			return strconv.Itoa(5000 + rng.IntN(20000)) // beyond, then covered
		}
	}
	for step := uint64(1); step <= 20000; step++ {
		id := randomID()
		rev := 2 * step
		if rng.IntN(5) == 0 {
			rev++
			ix.Bury(id, rev)
		} else {
			ix.Commit(id, rev, rev, rev)
		}
		model[id] = rev
		if step%1000 != 0 {
			continue
		}
		live := 0
		for id, rev := range model {
			gotRev, gotLive := ix.Revision(id)
			if gotRev != rev || gotLive != (rev%2 == 0) {
				t.Fatalf("step %d: %s = rev %d live %v, want rev %d", step, id, gotRev, gotLive, rev)
			}
			if rev%2 == 0 {
				live++
			}
		}
		if ix.Len() != len(model) || ix.Live() != live {
			t.Fatalf("step %d: len %d live %d, want %d and %d", step, ix.Len(), ix.Live(), len(model), live)
		}
	}
}

// TestIndexExpectGrowsOnce: a load that announces its size grows the
// slice once, to that size, rather than doubling up to it (which holds
// the old and the new slice at once).
func TestIndexExpectGrowsOnce(t *testing.T) {
	const n = 100_000
	ix := NewIndex(16)
	ix.Expect(n)
	var caps []int
	for id := 1; id <= n; id++ {
		ix.Load(strconv.Itoa(id), 1, 1, uint64(id), false)
		if c := cap(ix.dense); len(caps) == 0 || caps[len(caps)-1] != c {
			caps = append(caps, c)
		}
	}
	if len(caps) != 1 || caps[0] < n+1 || ix.Len() != n {
		t.Errorf("the slice's capacity went %v over %d ids (%d held); want one size of at least %d", caps, n, ix.Len(), n+1)
	}
	// Ids far beyond the announced count still go to the map.
	ix.Load(strconv.Itoa(10*n), 1, 1, 1, false)
	if _, inMap := ix.nums[10*n]; !inMap {
		t.Error("an id ten times beyond the others did not go to the map")
	}
}

// DiffAll, a resync's snapshot, gives every live item listed, changed or
// not, once; a soft-deleted item listed as before stays out.
func TestIndexDiffAll(t *testing.T) {
	sum := func(s string) (uint64, uint64) { return plan.ValueHashes([]byte(s)) }
	ix := NewIndex(0)
	h, r := sum(`{"id":1,"t":"a"}`)
	ix.Load("1", h, r, 5, false)
	h, r = sum(`{"id":2,"t":"a"}`)
	ix.Load("2", h, r, 6, false)
	h, r = sum(`{"id":3,"gone":true}`)
	ix.BuryListed("3", h, r, 7)
	changes, dupes, err := ix.DiffAll(1, items(`{"id":1,"t":"a"}`, `{"t":"a","id":2}`, `{"id":3,"gone":true}`, `{"id":4}`, `{"id":1,"t":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, fmt.Sprintf("%s live=%v replaces=%d", c.ID, c.Live, c.Replaces))
	}
	want := []string{"1 live=true replaces=5", "2 live=true replaces=6", "4 live=false replaces=0"}
	if !slices.Equal(got, want) || dupes != 1 {
		t.Fatalf("DiffAll = %q, %d dupes; want %q, 1 dupe", got, dupes, want)
	}
	// Diff of the same page in a later cycle: nothing changed.
	if changes, _, _ := ix.Diff(2, items(`{"id":1,"t":"a"}`, `{"id":2,"t":"a"}`)); len(changes) != 0 {
		t.Fatalf("Diff after DiffAll = %+v, want nothing", changes)
	}
}

// TestIndexForget: compaction drops the ids of old delete markers, keeps
// a soft-deleted id still listed (its hashes, no revision), leaves a
// marker that moved on, and an id with no entry resolves to the floor. A
// slice that ends mostly holes moves to the map, every id still found.
func TestIndexForget(t *testing.T) {
	ix := NewIndex(0)
	ix.Load("1", 11, 11, 5, true)   // deleted long ago
	ix.Load("2", 22, 22, 6, true)   // soft-deleted, still listed
	ix.Load("3", 33, 33, 7, true)   // deleted, then created again since
	ix.Load("4", 44, 44, 8, false)  // live
	ix.Load("x", 0, 0, 9, true)     // a string id, deleted
	ix.Load("5", 55, 55, 100, true) // deleted recently
	const cycle = 3
	if _, _, err := ix.Diff(cycle, items(`{"id":2,"n":1}`)); err != nil {
		t.Fatal(err)
	}
	listed := []byte(`{"id":2,"n":1}`)
	h, _ := plan.Hash(listed)
	ix.BuryListed("2", h, plan.RawHash(listed), 6)
	buried := ix.Buried(50)
	slices.SortFunc(buried, func(a, b plan.Marker) int { return strings.Compare(a.ID, b.ID) })
	if want := []plan.Marker{{ID: "1", Revision: 5}, {ID: "2", Revision: 6}, {ID: "3", Revision: 7}, {ID: "x", Revision: 9}}; !slices.Equal(buried, want) {
		t.Fatalf("Buried(50) = %v, want %v", buried, want)
	}
	ix.Commit("3", 34, 34, 60)
	ix.SetFloor(9)
	gone := []bool{true, true, true, false}
	if n := ix.Forget(buried, gone, cycle); n != 2 {
		t.Errorf("Forget dropped %d, want 2 (1 gone, 2 emptied; 3 moved on, x not purged)", n)
	}
	for _, tc := range []struct {
		id        string
		rev       uint64
		live, has bool
	}{
		{"1", 9, false, false}, {"2", 9, false, true}, {"3", 60, true, true}, {"4", 8, true, true},
		{"x", 9, false, true}, {"5", 100, false, true}, {"never", 9, false, false},
	} {
		rev, live := ix.Revision(tc.id)
		_, has := ix.get(tc.id)
		if rev != tc.rev || live != tc.live || has != tc.has {
			t.Errorf("%s: revision %d, live %t, kept %t; want %d, %t, %t", tc.id, rev, live, has, tc.rev, tc.live, tc.has)
		}
	}
	if s := ix.State("1"); !s.Absent || s.Revision != 9 || s.Live() {
		t.Errorf("State(1) = %+v, want absent at the floor 9", s)
	}
	if changes, _, _ := ix.Diff(cycle+1, items(`{"id":2,"n":1}`)); len(changes) != 0 {
		t.Errorf("the soft-deleted 2 listed as before: %+v, want nothing", changes)
	}
	if changes, _, _ := ix.Diff(cycle+1, items(`{"id":1,"n":2}`)); len(changes) != 1 || changes[0].Replaces != 9 || !changes[0].Absent {
		t.Errorf("1 listed again: %+v, want a change replacing the floor 9, absent", changes)
	}

	big := NewIndex(0)
	for n := range 20000 {
		big.Commit(strconv.Itoa(n), 1, 1, uint64(n+1))
	}
	var markers []plan.Marker
	for n := range 19900 {
		big.Bury(strconv.Itoa(n), uint64(n+30000))
		markers = append(markers, plan.Marker{ID: strconv.Itoa(n), Revision: uint64(n + 30000)})
	}
	big.SetFloor(60000)
	if n := big.Forget(markers, slices.Repeat([]bool{true}, len(markers)), 1); n != 19900 {
		t.Fatalf("dropped %d, want 19900", n)
	}
	if big.Len() != 100 || big.Live() != 100 || len(big.dense) != 0 || len(big.nums) != 100 {
		t.Errorf("after dropping most ids: %d ids, %d live, slice %d, map %d; want 100, 100, and the slice moved to the map",
			big.Len(), big.Live(), len(big.dense), len(big.nums))
	}
	for n := 19900; n < 20000; n++ {
		if rev, live := big.Revision(strconv.Itoa(n)); !live || rev != uint64(n+1) {
			t.Fatalf("%d after the move: revision %d, live %t", n, rev, live)
		}
	}
}
