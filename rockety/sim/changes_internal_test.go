package sim

import (
	"cmp"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The tests of the API are black-box (package sim_test); these test the
// pure parts of updated_since: the parameter, the order and the cut-off.

func TestSinceParam(t *testing.T) {
	base := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC).UnixMicro()
	tests := []struct {
		name  string
		query string
		want  int64
		ok    bool
		err   string // in the message
	}{
		{"absent", "page=2", 0, false, ""},
		{"UTC", "updated_since=2025-06-02T09:00:00Z", base, true, ""},
		{"offset", "updated_since=2025-06-02T11:00:00%2B02:00", base, true, ""},
		{"negative offset", "updated_since=2025-06-02T08:00:00-01:00", base, true, ""},
		{"microseconds", "updated_since=2025-06-02T09:00:00.000001Z", base + 1, true, ""},
		{"milliseconds", "updated_since=2025-06-02T09:00:00.5Z", base + 500_000, true, ""},
		// updated_at >= since, at the precision of updated_at: an item of
		// the microsecond before since is not after it.
		{"nanoseconds round up", "updated_since=2025-06-02T09:00:00.000000001Z", base + 1, true, ""},
		{"far past", "updated_since=0001-01-01T00:00:00Z", time.Time{}.UnixMicro(), true, ""},
		{"empty", "updated_since=", 0, false, `updated_since must be an RFC 3339 time such as 2025-06-02T09:00:00Z, got ""`},
		{"date only", "updated_since=2025-06-02", 0, false, `got "2025-06-02"`},
		{"no zone", "updated_since=2025-06-02T09:00:00", 0, false, `got "2025-06-02T09:00:00"`},
		{"unix seconds", "updated_since=1748854800", 0, false, `got "1748854800"`},
		{"not a time", "updated_since=yesterday", 0, false, `got "yesterday"`},
		{"month 13", "updated_since=2025-13-02T09:00:00Z", 0, false, "updated_since must be"},
		{"plus not encoded", "updated_since=2025-06-02T11:00:00+02:00", 0, false, `got "2025-06-02T11:00:00 02:00"; a "+" in the offset must be sent as %2B`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := sinceParam(q)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want || ok != tt.ok {
				t.Errorf("sinceParam = %d, %v, %v; want %d, %v", got, ok, err, tt.want, tt.ok)
			}
		})
	}
}

// recs makes records from (updated_at, id) pairs.
func recs(pairs ...[2]int64) []*record {
	out := make([]*record, len(pairs))
	for i, p := range pairs {
		out[i] = &record{at: p[0], id: p[1]}
	}
	return out
}

func keys(rs []*record) [][2]int64 {
	out := make([][2]int64, len(rs))
	for i, r := range rs {
		out[i] = [2]int64{r.at, r.id}
	}
	return out
}

func TestChangeIndexOrderAndBounds(t *testing.T) {
	// Built from list order, not change order; ties on updated_at go by id.
	x := buildChangeIndex(recs([2]int64{30, 1}, [2]int64{10, 5}, [2]int64{20, 3}, [2]int64{20, 2}, [2]int64{10, 4}, [2]int64{noTime, 6}))
	all := x.appendRange(nil, 0, x.n)
	if got, want := keys(all), [][2]int64{{noTime, 6}, {10, 4}, {10, 5}, {20, 2}, {20, 3}, {30, 1}}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	none := int64(math.MaxInt64)
	tests := []struct {
		name          string
		since, cutoff int64
		want          [][2]int64
	}{
		{"everything", math.MinInt64 + 1, none, [][2]int64{{10, 4}, {10, 5}, {20, 2}, {20, 3}, {30, 1}}},
		{"since is inclusive", 20, none, [][2]int64{{20, 2}, {20, 3}, {30, 1}}},
		{"since between", 11, none, [][2]int64{{20, 2}, {20, 3}, {30, 1}}},
		{"since the last", 30, none, [][2]int64{{30, 1}}},
		{"since after all", 31, none, nil},
		{"cut-off is inclusive", 10, 20, [][2]int64{{10, 4}, {10, 5}, {20, 2}, {20, 3}}},
		{"cut-off between", 10, 19, [][2]int64{{10, 4}, {10, 5}}},
		{"cut-off before since", 20, 10, nil},
		{"cut-off before all", 0, 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := x.bounds(tt.since, tt.cutoff)
			if hi < lo {
				t.Fatalf("bounds %d, %d", lo, hi)
			}
			// A noTime item is in no list: it must fall before any since.
			if got := keys(x.appendRange(nil, lo, hi)); !slices.Equal(got, tt.want) && len(got)+len(tt.want) > 0 {
				t.Errorf("items %v, want %v", got, tt.want)
			}
		})
	}
	empty := &changeIndex{}
	if lo, hi := empty.bounds(0, none); lo != 0 || hi != 0 {
		t.Errorf("empty index bounds %d, %d", lo, hi)
	}
}

// TestChangeIndexAgainstSort drives the index with random inserts, moves and
// removes across many blocks and checks it, at every step, against the
// plain sort it stands for.
func TestChangeIndexAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	live := map[int64]*record{}
	var nextID int64
	fresh := func(at int64) *record {
		nextID++
		rec := &record{id: nextID, at: at}
		live[rec.id] = rec
		return rec
	}
	var seeded []*record
	for range 5000 {
		seeded = append(seeded, fresh(r.Int64N(1000)))
	}
	x := buildChangeIndex(seeded)
	now := int64(1000)
	check := func(step int) {
		t.Helper()
		want := make([]*record, 0, len(live))
		for _, rec := range live {
			want = append(want, rec)
		}
		slices.SortFunc(want, compareChange)
		got := x.appendRange(nil, 0, x.n)
		if x.n != len(want) || !slices.Equal(got, want) {
			t.Fatalf("step %d: index holds %d entries out of order or wrong, want %d", step, x.n, len(want))
		}
		for i, b := range x.blocks {
			if len(b) == 0 || len(b) >= 2*blockSize {
				t.Fatalf("step %d: block %d has %d entries", step, i, len(b))
			}
			if i > 0 && x.starts[i] != x.starts[i-1]+len(x.blocks[i-1]) {
				t.Fatalf("step %d: starts %v wrong at %d", step, x.starts, i)
			}
		}
		since := r.Int64N(now + 10)
		lo, _ := x.bounds(since, math.MaxInt64)
		if n := slices.IndexFunc(want, func(rec *record) bool { return rec.at >= since }); n >= 0 && n != lo || n < 0 && lo != len(want) {
			t.Fatalf("step %d: bounds from %d start at %d, want %d", step, since, lo, n)
		}
	}
	check(0)
	pick := func() *record {
		for _, rec := range live {
			return rec // map order is random enough for picking
		}
		return nil
	}
	for step := 1; step <= 20000; step++ {
		switch op := r.IntN(10); {
		case op < 3 || len(live) == 0:
			// Mostly at the end, sometimes behind it: a clock that went
			// back, or a bumped updated_at ahead of the clock.
			now += r.Int64N(2)
			x.insert(fresh(now - r.Int64N(3)))
		case op < 8:
			rec := pick()
			x.remove(rec)
			now += r.Int64N(2)
			rec.at = now
			if r.IntN(20) == 0 {
				rec.at = r.Int64N(now) // SetRaw with any updated_at
			}
			x.insert(rec)
		default:
			rec := pick()
			x.remove(rec)
			delete(live, rec.id)
		}
		if step%997 == 0 {
			check(step)
		}
	}
	check(-1)
	// Emptied and filled again.
	for _, rec := range live {
		x.remove(rec)
		delete(live, rec.id)
	}
	check(-2)
	x.insert(fresh(5))
	check(-3)
}

func TestWindow(t *testing.T) {
	tests := []struct {
		n, page, perPage int
		start, end       int
	}{
		{0, 1, 10, 0, 0},
		{25, 1, 10, 0, 10},
		{25, 3, 10, 20, 25},
		{25, 4, 10, 25, 25},
		{25, math.MaxInt32, 500, 25, 25},
	}
	for _, tt := range tests {
		if start, end := window(tt.n, tt.page, tt.perPage); start != tt.start || end != tt.end {
			t.Errorf("window(%d, %d, %d) = %d, %d; want %d, %d", tt.n, tt.page, tt.perPage, start, end, tt.start, tt.end)
		}
	}
}

func TestCompareChange(t *testing.T) {
	tests := []struct {
		a, b [2]int64
		want int
	}{
		{[2]int64{1, 9}, [2]int64{2, 1}, -1},
		{[2]int64{2, 1}, [2]int64{2, 9}, -1},
		{[2]int64{2, 9}, [2]int64{2, 9}, 0},
		{[2]int64{noTime, 1}, [2]int64{math.MinInt64 + 1, 1}, -1},
	}
	for _, tt := range tests {
		rs := recs(tt.a, tt.b)
		if got := compareChange(rs[0], rs[1]); cmp.Compare(got, 0) != tt.want {
			t.Errorf("compareChange(%v, %v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
