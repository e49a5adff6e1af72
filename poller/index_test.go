package poller

import (
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
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
	hs := newHasher()
	sum := func(s string) uint64 { h, _ := hs.Sum([]byte(s)); return h }
	type want struct {
		op       events.Op
		id       string
		replaced uint64
	}
	tests := []struct {
		name      string
		setup     func(ix *Index)
		page      []rockety.Item
		want      []want
		wantDupes int
	}{
		{name: "empty page", page: nil},
		{name: "new item", page: items(`{"id":7,"t":"a"}`), want: []want{{events.OpCreated, "7", 0}}},
		{name: "re-created after a delete", setup: func(ix *Index) { ix.Load("7", 0, 0, 12, true) },
			page: items(`{"id":7,"t":"a"}`), want: []want{{events.OpCreated, "7", 12}}},
		{name: "unchanged, keys reordered", setup: func(ix *Index) { ix.Load("7", sum(`{"id":7,"t":"a"}`), 0, 5, false) },
			page: items(`{"t":"a", "id":7}`)},
		{name: "updated", setup: func(ix *Index) { ix.Load("7", sum(`{"id":7,"t":"a"}`), 0, 5, false) },
			page: items(`{"id":7,"t":"b"}`), want: []want{{events.OpUpdated, "7", 5}}},
		{name: "same id twice in a cycle", page: items(`{"id":7}`, `{"id":8}`, `{"id":7}`),
			want: []want{{events.OpCreated, "7", 0}, {events.OpCreated, "8", 0}}, wantDupes: 1},
		{name: "string and number ids are the same id", page: items(`{"id":7}`, `{"id":"7"}`),
			want: []want{{events.OpCreated, "7", 0}}, wantDupes: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := NewIndex(0)
			if tt.setup != nil {
				tt.setup(ix)
			}
			live := ix.Live()
			changes, dupes, err := ix.Diff(hs, 1, tt.page)
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, c := range changes {
				got = append(got, want{c.Op, c.ID, c.Replaced})
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
	hs := newHasher()
	ix := NewIndex(0)
	ix.Load("a", 1, 0, 10, false)
	ix.Load("b", 2, 0, 11, false)
	ix.Load("c", 0, 0, 12, true) // deleted: never suspected
	if _, _, err := ix.Diff(hs, 1, items(`{"id":"a"}`, `{"id":"new"}`)); err != nil {
		t.Fatal(err)
	}
	if got := ix.Missing(1); !slices.Equal(got, []Suspect{{ID: "b", Rev: 11}}) {
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
	if got := ix.Missing(2); !slices.Equal(got, []Suspect{{ID: "a", Rev: 10}, {ID: "new", Rev: 13}}) {
		t.Errorf("missing in the next cycle = %v", got)
	}
}

func TestChangedFields(t *testing.T) {
	tests := []struct {
		name, before, after string
		want                []string
		wantErr             bool
	}{
		{name: "not an object", before: `[1]`, after: `{}`, wantErr: true},
		{name: "broken after", before: `{}`, after: `{"a":`, wantErr: true},
		{name: "same", before: `{"a":1,"b":{"x":1,"y":2}}`, after: `{"b":{"y":2,"x":1},"a":1}`},
		{name: "changed, added and removed", before: `{"a":1,"b":2,"c":3}`, after: `{"a":1,"b":5,"d":4}`, want: []string{"b", "c", "d"}},
		{name: "nested change names the top field", before: `{"a":{"x":[1,2]}}`, after: `{"a":{"x":[2,1]}}`, want: []string{"a"}},
		{name: "null is a value", before: `{"a":null}`, after: `{}`, want: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChangedFields([]byte(tt.before), []byte(tt.after))
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("ChangedFields = %v, %v; want %v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestNextDelay(t *testing.T) {
	const iv = 30 * time.Second
	tests := []struct {
		name     string
		interval time.Duration
		jitter   float64
		failures int
		rnd      float64
		want     time.Duration
	}{
		{"steady, no jitter", iv, 0, 0, 0.7, iv},
		{"jitter low end", iv, 0.1, 0, 0, 27 * time.Second},
		{"jitter middle", iv, 0.1, 0, 0.5, iv},
		{"jitter high end", iv, 0.1, 0, 0.9999999999, 33 * time.Second},
		{"one failure doubles", iv, 0, 1, 0.5, time.Minute},
		{"three failures", iv, 0, 3, 0.5, 4 * time.Minute},
		{"capped at ten minutes", iv, 0, 20, 0.5, 10 * time.Minute},
		{"a long interval is never shortened", time.Hour, 0, 3, 0.5, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NextDelay(tt.interval, tt.jitter, tt.failures, tt.rnd)
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
