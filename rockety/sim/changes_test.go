package sim_test

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// clock is a settable Options.Clock: the tests of updated_since step time
// instead of sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// sinceQuery is the query of a filtered list.
func sinceQuery(since time.Time, extra string) string {
	q := "?" + sim.SinceParam + "=" + url.QueryEscape(since.Format(time.RFC3339Nano))
	if extra != "" {
		q += "&" + extra
	}
	return q
}

// changed lists resource filtered by since and decodes the page.
func (e *env) changed(resource string, since time.Time, extra string) page {
	e.t.Helper()
	r := e.do(http.MethodGet, "/"+resource+sinceQuery(since, extra), "")
	if r.status != http.StatusOK {
		e.t.Fatalf("filtered list: %d %s", r.status, r.body)
	}
	return decode[page](e.t, r.body)
}

func updatedAt(t *testing.T, item []byte) time.Time {
	t.Helper()
	u, err := time.Parse(time.RFC3339Nano, fields(t, item)["updated_at"].(string))
	if err != nil {
		t.Fatalf("item %s: %v", item, err)
	}
	return u
}

// wantChanged is the documented answer computed the slow way, from every
// item: the ids with since <= updated_at <= cutoff (a zero cutoff: none), by
// updated_at and then id.
func wantChanged(t *testing.T, s *sim.Server, resource string, since, cutoff time.Time) []string {
	t.Helper()
	type item struct {
		at time.Time
		id int
	}
	var items []item
	for _, id := range s.IDs(resource) {
		raw, _ := s.Get(resource, id)
		at := updatedAt(t, raw)
		if at.Before(since) || !cutoff.IsZero() && at.After(cutoff) {
			continue
		}
		n, _ := strconv.Atoi(id)
		items = append(items, item{at, n})
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	out := []string{}
	for _, it := range items {
		out = append(out, strconv.Itoa(it.id))
	}
	return out
}

// pages reads every page of a filtered list and checks each page's metadata.
func (e *env) allChanged(resource string, since time.Time, perPage int) []string {
	e.t.Helper()
	out := []string{}
	first := e.changed(resource, since, "per_page="+strconv.Itoa(perPage))
	for p := 1; p <= max(first.Meta.Pages, 1); p++ {
		pg := e.changed(resource, since, "per_page="+strconv.Itoa(perPage)+"&page="+strconv.Itoa(p))
		if *pg.Meta != (meta{p, perPage, first.Meta.Total, first.Meta.Pages}) {
			e.t.Fatalf("page %d meta %+v, want total %d pages %d", p, *pg.Meta, first.Meta.Total, first.Meta.Pages)
		}
		out = append(out, ids(e.t, pg.Data)...)
	}
	if len(out) != first.Meta.Total {
		e.t.Fatalf("%d items on the pages, total says %d", len(out), first.Meta.Total)
	}
	return out
}

func TestListChangedSinceSeeded(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, Seed: 3, SeedItems: 300, Resources: []string{"tasks", "widgets"}})
	for _, res := range []string{"tasks", "widgets"} {
		t.Run(res, func(t *testing.T) {
			everything := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
			if got, want := e.allChanged(res, everything, 7), wantChanged(t, e.sim, res, everything, time.Time{}); !slices.Equal(got, want) || len(got) != 300 {
				t.Fatalf("filtered from 2000: %v\nwant %v", got, want)
			}
			// Since the updated_at of an item in the middle: inclusive.
			mid := wantChanged(t, e.sim, res, everything, time.Time{})[150]
			raw, _ := e.sim.Get(res, mid)
			since := updatedAt(t, raw)
			got := e.allChanged(res, since, 50)
			if want := wantChanged(t, e.sim, res, since, time.Time{}); !slices.Equal(got, want) || !slices.Contains(got, mid) {
				t.Errorf("filtered from item %s's updated_at: %v\nwant %v", mid, got, want)
			}
			if got := e.allChanged(res, since.Add(time.Microsecond), 50); slices.Contains(got, mid) {
				t.Errorf("an item changed a microsecond before since is listed")
			}
		})
	}
}

// TestEveryWriteIsAChange makes one change of every kind and expects the
// list since just before them to hold exactly the changed items, in the
// order they were made.
func TestEveryWriteIsAChange(t *testing.T) {
	clk := newClock()
	e := newEnv(t, sim.Options{Token: testToken, Seed: 1, SeedItems: 20, Resources: []string{"tasks", "widgets"}, Clock: clk.Now})
	since := clk.Add(time.Second)
	step := func() { clk.Add(time.Millisecond) }

	if r := e.do(http.MethodPost, "/tasks", `{"title":"posted"}`); r.status != 201 { // 21
		t.Fatalf("POST %d", r.status)
	}
	step()
	if r := e.do(http.MethodPut, "/tasks/5", `{"status":"done"}`); r.status != 200 {
		t.Fatalf("PUT %d", r.status)
	}
	step()
	if _, err := e.sim.Create("tasks", map[string]any{"title": "go-side"}); err != nil { // 22
		t.Fatal(err)
	}
	step()
	if err := e.sim.Update("tasks", "3", map[string]any{"status": "todo"}); err != nil {
		t.Fatal(err)
	}
	step()
	// SetRaw's item is placed by the updated_at it gives.
	if err := e.sim.SetRaw("tasks", "9", []byte(`{"id":9,"title":"raw","updated_at":"`+clk.Now().Format(time.RFC3339Nano)+`"}`)); err != nil {
		t.Fatal(err)
	}
	step()
	// A hard delete takes the item out of every list.
	if r := e.do(http.MethodDelete, "/tasks/5", ""); r.status != 204 {
		t.Fatalf("DELETE %d", r.status)
	}
	step()
	// Drift inserts after the page it follows.
	if err := e.sim.SetFaults(sim.Faults{DriftInserts: 1}); err != nil {
		t.Fatal(err)
	}
	e.do(http.MethodGet, "/tasks?per_page=1", "") // 23 at the front
	if err := e.sim.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	step()
	// A generic resource made by its first write.
	if r := e.do(http.MethodPost, "/gadgets", `{"n":1}`); r.status != 201 {
		t.Fatalf("POST gadgets %d", r.status)
	}

	if got, want := e.allChanged("tasks", since, 2), []string{"21", "22", "3", "9", "23"}; !slices.Equal(got, want) {
		t.Errorf("tasks changed %v, want %v", got, want)
	}
	if got := e.allChanged("gadgets", since, 100); !slices.Equal(got, []string{"1"}) {
		t.Errorf("gadgets changed %v", got)
	}
	if got := e.allChanged("widgets", since, 100); len(got) != 0 {
		t.Errorf("widgets changed %v, want none", got)
	}

	// Churn: every mutation it makes moves its item into the list.
	mark := clk.Add(time.Second)
	before := e.sim.LastSeq()
	if err := e.sim.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetChurn(500); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "20 churn mutations", func() bool { return e.sim.LastSeq() >= before+20 })
	if err := e.sim.SetChurn(0); err != nil {
		t.Fatal(err)
	}
	// By the log: the items churn left alive, and no other.
	alive := map[string]map[string]bool{"tasks": {}, "widgets": {}}
	for _, m := range e.sim.MutationsSince(before) {
		alive[m.Resource][m.ID] = m.Op != sim.OpDeleted
	}
	for res, byID := range alive {
		var want []string
		for id, ok := range byID {
			if ok {
				want = append(want, id)
			}
		}
		got := e.allChanged(res, mark, 100)
		if w := wantChanged(t, e.sim, res, mark, time.Time{}); !slices.Equal(got, w) {
			t.Errorf("%s after churn: %v, want %v", res, got, w)
		}
		slices.Sort(want)
		if got = slices.Sorted(slices.Values(got)); !slices.Equal(got, want) {
			t.Errorf("%s after churn: %v listed, churn left %v", res, got, want)
		}
	}
}

func TestListChangedSinceStyles(t *testing.T) {
	clk := newClock()
	tests := []struct {
		style sim.Style
		want  string
	}{
		{sim.StyleDataMeta, `{"data":[A],"meta":{"page":2,"per_page":1,"total":2,"pages":2}}`},
		{sim.StyleItemsPagination, `{"items":[A],"pagination":{"current_page":2,"per_page":1,"total_items":2,"total_pages":2}}`},
		{sim.StyleNoMeta, `{"data":[A]}`},
	}
	for _, tt := range tests {
		t.Run(tt.style.String(), func(t *testing.T) {
			e := newEnv(t, sim.Options{Token: testToken, SeedItems: 5, Style: tt.style, Clock: clk.Now})
			since := clk.Add(time.Hour)
			_ = e.sim.Update("users", "4", map[string]any{"role": "admin"})
			clk.Add(time.Second)
			_ = e.sim.Update("users", "2", map[string]any{"role": "admin"})
			item, _ := e.sim.Get("users", "2")
			want := strings.Replace(tt.want, "A", string(item), 1)
			if r := e.do(http.MethodGet, "/users"+sinceQuery(since, "per_page=1&page=2"), ""); r.status != 200 || string(r.body) != want {
				t.Errorf("got %d %s\nwant %s", r.status, r.body, want)
			}
		})
	}
}

func TestListChangedSinceTies(t *testing.T) {
	// One instant for every write: ties on updated_at go by id.
	clk := newClock()
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 10, Resources: []string{"tasks"}, Clock: clk.Now})
	since := clk.Add(time.Hour)
	for _, id := range []string{"7", "2", "9"} {
		if err := e.sim.Update("tasks", id, map[string]any{"status": "x" + id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.sim.Create("tasks", map[string]any{"title": "new"}); err != nil { // 11
		t.Fatal(err)
	}
	if got, want := e.allChanged("tasks", since, 3), []string{"2", "7", "9", "11"}; !slices.Equal(got, want) {
		t.Errorf("ties %v, want %v", got, want)
	}
	// The same item twice in one instant: its updated_at moves past the
	// instant (bumped), so it sorts after the others.
	if err := e.sim.Update("tasks", "2", map[string]any{"status": "again"}); err != nil {
		t.Fatal(err)
	}
	if got, want := e.allChanged("tasks", since, 3), []string{"7", "9", "11", "2"}; !slices.Equal(got, want) {
		t.Errorf("after a second update %v, want %v", got, want)
	}
}

func TestListChangedSinceBadInput(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 5})
	tests := []struct {
		name, query, want string
	}{
		{"empty", "updated_since=", `updated_since must be an RFC 3339 time such as 2025-06-02T09:00:00Z, got \"\"`},
		{"date only", "updated_since=2025-06-02", `got \"2025-06-02\"`},
		{"no zone", "updated_since=2025-06-02T09:00:00", `got \"2025-06-02T09:00:00\"`},
		{"garbage", "updated_since=%00%ff", `updated_since must be`},
		{"unix time", "updated_since=1748854800", `got \"1748854800\"`},
		{"plus sent raw", "updated_since=2025-06-02T11:00:00+02:00", `a \"+\" in the offset must be sent as %2B`},
		{"with a good page", "page=2&updated_since=soon", `got \"soon\"`},
		// The page is checked first, as it was before the filter.
		{"bad page too", "page=0&updated_since=soon", "page must be a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/tasks?"+tt.query, "")
			if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), tt.want) {
				t.Fatalf("%d %s, want 400 with %s", r.status, r.body, tt.want)
			}
			if err := decode[apiError](t, r.body); err.Error.Code != "bad_request" {
				t.Errorf("code %q", err.Error.Code)
			}
		})
	}
	// An unknown resource is checked too, and stays unknown.
	if r := e.do(http.MethodGet, "/nothing?updated_since=x", ""); r.status != 400 {
		t.Errorf("unknown resource, bad since: %d", r.status)
	}
	if r := e.do(http.MethodGet, "/nothing"+sinceQuery(time.Now(), ""), ""); r.status != 200 ||
		string(r.body) != `{"data":[],"meta":{"page":1,"per_page":100,"total":0,"pages":0}}` {
		t.Errorf("unknown resource: %d %s", r.status, r.body)
	}
	if slices.Contains(e.sim.Resources(), "nothing") {
		t.Error("a filtered read created the resource")
	}
	if e.sim.LastSeq() != 0 {
		t.Error("a refused list changed data")
	}
}

// TestChangedPagesWhileItemsChange pages through a filtered list while items
// change between the requests: each page is the window of the filtered set
// as it is at that request, so a changed item moves to the end and the items
// after its old place move one up.
func TestChangedPagesWhileItemsChange(t *testing.T) {
	clk := newClock()
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 30, Resources: []string{"tasks"}, Clock: clk.Now})
	since := clk.Add(time.Hour)
	for id := 1; id <= 9; id++ { // changed in id order, one per step
		clk.Add(time.Second)
		if err := e.sim.Update("tasks", strconv.Itoa(id), map[string]any{"status": "a"}); err != nil {
			t.Fatal(err)
		}
	}
	p1 := e.changed("tasks", since, "per_page=3&page=1")
	if got := ids(t, p1.Data); !slices.Equal(got, []string{"1", "2", "3"}) || p1.Meta.Total != 9 {
		t.Fatalf("page 1 %v, meta %+v", got, p1.Meta)
	}
	// Item 2, already read, changes: 4 moves up onto page 1 and is skipped
	// by a client that goes on to page 2 by offset; 2 comes again last.
	clk.Add(time.Second)
	if err := e.sim.Update("tasks", "2", map[string]any{"status": "b"}); err != nil {
		t.Fatal(err)
	}
	p2 := e.changed("tasks", since, "per_page=3&page=2")
	if got := ids(t, p2.Data); !slices.Equal(got, []string{"5", "6", "7"}) || p2.Meta.Total != 9 {
		t.Errorf("page 2 after item 2 changed %v, meta %+v", got, p2.Meta)
	}
	// Item 20, never changed before, changes: one more item, at the end.
	clk.Add(time.Second)
	if err := e.sim.Update("tasks", "20", map[string]any{"status": "c"}); err != nil {
		t.Fatal(err)
	}
	p3 := e.changed("tasks", since, "per_page=3&page=3")
	if got := ids(t, p3.Data); !slices.Equal(got, []string{"8", "9", "2"}) || *p3.Meta != (meta{3, 3, 10, 4}) {
		t.Errorf("page 3 %v, meta %+v", got, p3.Meta)
	}
	// Under churn-like writes between every page, every page is still
	// exactly the window of the set at its request.
	for i := range 40 {
		clk.Add(time.Millisecond)
		id := strconv.Itoa(1 + (i*7)%30)
		if i%5 == 4 {
			_ = e.sim.Delete("tasks", id)
		} else {
			_ = e.sim.Update("tasks", id, map[string]any{"status": "s" + strconv.Itoa(i)})
		}
		want := wantChanged(t, e.sim, "tasks", since, time.Time{})
		pg := 1 + i%4
		got := e.changed("tasks", since, "per_page=4&page="+strconv.Itoa(pg))
		lo, hi := min(len(want), (pg-1)*4), min(len(want), pg*4)
		if g := ids(t, got.Data); !slices.Equal(g, want[lo:hi]) && len(g)+hi-lo > 0 || got.Meta.Total != len(want) {
			t.Fatalf("step %d page %d: %v total %d, want %v of %d", i, pg, g, got.Meta.Total, want[lo:hi], len(want))
		}
	}
}

func TestChangesLag(t *testing.T) {
	const lag = 10 * time.Second
	clk := newClock()
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 10, Resources: []string{"tasks"}, Clock: clk.Now,
		Faults: sim.Faults{ChangesLag: lag}})
	since := clk.Add(time.Hour)
	if err := e.sim.Update("tasks", "4", map[string]any{"status": "done"}); err != nil {
		t.Fatal(err)
	}
	changedAt := clk.Now()
	filtered := func() []string { return ids(t, e.changed("tasks", since, "").Data) }

	steps := []struct {
		name   string
		at     time.Duration // after the change
		listed bool
	}{
		{"at once", 0, false},
		{"a microsecond short", lag - time.Microsecond, false},
		{"exactly the lag", lag, true},
		{"later", lag + time.Hour, true},
	}
	for _, st := range steps {
		clk.Add(changedAt.Add(st.at).Sub(clk.Now()))
		if got := filtered(); slices.Contains(got, "4") != st.listed {
			t.Errorf("%s: filtered %v, want item 4 listed %v", st.name, got, st.listed)
		}
		// The unfiltered list and GET never wait.
		raw, _ := e.sim.Get("tasks", "4")
		if r := e.do(http.MethodGet, "/tasks/4", ""); r.status != 200 || string(r.body) != string(raw) || fields(t, raw)["status"] != "done" {
			t.Errorf("%s: GET %d %s", st.name, r.status, r.body)
		}
		if p := decode[page](t, e.do(http.MethodGet, "/tasks", "").body); !slices.Contains(ids(t, p.Data), "4") {
			t.Errorf("%s: unfiltered list without item 4", st.name)
		}
	}
	// Its newest change counts: changed again, the item leaves the
	// filtered list until the lag has passed again; the metadata agree.
	if err := e.sim.Update("tasks", "4", map[string]any{"status": "todo"}); err != nil {
		t.Fatal(err)
	}
	if p := e.changed("tasks", since, ""); len(p.Data) != 0 || p.Meta.Total != 0 || p.Meta.Pages != 0 {
		t.Errorf("after a second change: %v, meta %+v", ids(t, p.Data), p.Meta)
	}
	clk.Add(lag)
	if got := filtered(); !slices.Equal(got, []string{"4"}) {
		t.Errorf("after the lag again: %v", got)
	}
	// Changed at runtime, and off again.
	if err := e.sim.Update("tasks", "5", map[string]any{"status": "done"}); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	if got := filtered(); !slices.Equal(got, []string{"4", "5"}) {
		t.Errorf("without the lag: %v", got)
	}
	if err := e.sim.SetFaults(sim.Faults{ChangesLag: time.Minute}); err != nil {
		t.Fatal(err)
	}
	clk.Add(55 * time.Second) // 4 changed 65s ago, 5 55s ago
	if got := filtered(); !slices.Equal(got, []string{"4"}) {
		t.Errorf("with a lag of a minute: %v", got)
	}
}

func TestIgnoreChangedSince(t *testing.T) {
	clk := newClock()
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 30, Resources: []string{"tasks"}, Clock: clk.Now,
		Faults: sim.Faults{IgnoreChangedSince: true}})
	since := clk.Add(time.Hour)
	if err := e.sim.Update("tasks", "4", map[string]any{"status": "done"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{sinceQuery(since, "per_page=10&page=2"), "?updated_since=garbage&per_page=10&page=2"} {
		want := e.do(http.MethodGet, "/tasks?per_page=10&page=2", "")
		if got := e.do(http.MethodGet, "/tasks"+q, ""); got.status != 200 || string(got.body) != string(want.body) {
			t.Errorf("%s: %d %s\nwant the unfiltered page %s", q, got.status, got.body, want.body)
		}
	}
	if err := e.sim.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, e.changed("tasks", since, "").Data); !slices.Equal(got, []string{"4"}) {
		t.Errorf("filter honoured again: %v", got)
	}
}

func TestSoftDelete(t *testing.T) {
	clk := newClock()
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 5, Resources: []string{"tasks"}, Clock: clk.Now,
		Faults: sim.Faults{SoftDelete: true}})
	since := clk.Add(time.Hour)
	before, _ := e.sim.Get("tasks", "3")

	if r := e.do(http.MethodDelete, "/tasks/3", ""); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("DELETE %d %q", r.status, r.body)
	}
	r := e.do(http.MethodGet, "/tasks/3", "")
	r3 := r.body
	deleted := fields(t, r.body)
	stamp := clk.Now().Format(time.RFC3339Nano)
	if r.status != 200 || deleted["deleted_at"] != stamp || deleted["updated_at"] != stamp || deleted["title"] != fields(t, before)["title"] {
		t.Fatalf("GET soft-deleted: %d %s, want deleted_at and updated_at %s", r.status, r.body, stamp)
	}
	if p := decode[page](t, e.do(http.MethodGet, "/tasks", "").body); !slices.Equal(ids(t, p.Data), seq(1, 5)) || p.Meta.Total != 5 {
		t.Errorf("list after soft delete %v, meta %+v", ids(t, p.Data), p.Meta)
	}
	if got := ids(t, e.changed("tasks", since, "").Data); !slices.Equal(got, []string{"3"}) {
		t.Errorf("filtered after soft delete %v", got)
	}
	if e.sim.Count("tasks") != 5 {
		t.Errorf("count %d", e.sim.Count("tasks"))
	}

	// Every other write sees it as missing.
	for _, w := range []struct{ method, body string }{
		{http.MethodDelete, ""}, {http.MethodPut, `{"status":"done"}`}, {http.MethodPut, `{"deleted_at":"2026-01-01T00:00:00Z"}`},
		{http.MethodPut, `{}`},
	} {
		if r := e.do(w.method, "/tasks/3", w.body); r.status != 404 || decode[apiError](t, r.body).Error.Code != "not_found" {
			t.Errorf("%s %s on a soft-deleted item: %d %s", w.method, w.body, r.status, r.body)
		}
	}
	if err := e.sim.Update("tasks", "3", map[string]any{"status": "x"}); err == nil {
		t.Error("Update of a soft-deleted item succeeded")
	}
	if err := e.sim.SetRaw("tasks", "3", before); err == nil {
		t.Error("SetRaw of a soft-deleted item succeeded")
	}

	// Restored by PUT {"deleted_at": null}, with other fields merged.
	clk.Add(time.Second)
	r = e.do(http.MethodPut, "/tasks/3", `{"deleted_at":null,"status":"todo","updated_at":"1999-01-01T00:00:00Z"}`)
	restored := fields(t, r.body)
	if r.status != 200 || restored["deleted_at"] != nil || restored["status"] != "todo" || restored["updated_at"] != clk.Now().Format(time.RFC3339Nano) {
		t.Fatalf("restore: %d %s", r.status, r.body)
	}
	if _, ok := restored["deleted_at"]; !ok {
		t.Errorf("restored item has no deleted_at: null: %s", r.body)
	}
	if r := e.do(http.MethodPut, "/tasks/3", `{"status":"done"}`); r.status != 200 {
		t.Errorf("PUT after restore: %d", r.status)
	}

	// With SoftDelete on, deleted_at belongs to the server.
	r = e.do(http.MethodPost, "/tasks", `{"title":"t","deleted_at":"2026-01-01T00:00:00Z"}`)
	if _, ok := fields(t, r.body)["deleted_at"]; r.status != 201 || ok {
		t.Errorf("POST with deleted_at: %d %s", r.status, r.body)
	}
	r = e.do(http.MethodPut, "/tasks/1", `{"deleted_at":"2026-01-01T00:00:00Z"}`)
	if _, ok := fields(t, r.body)["deleted_at"]; r.status != 200 || ok {
		t.Errorf("PUT of deleted_at on a live item: %d %s", r.status, r.body)
	}

	// The Go-side mutators do the same.
	if err := e.sim.Delete("tasks", "1"); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Delete("tasks", "1"); err == nil {
		t.Error("deleting a soft-deleted item twice succeeded")
	}
	if raw, ok := e.sim.Get("tasks", "1"); !ok || deletedAt(t, raw) == nil {
		t.Errorf("Get after Delete: %s, %v", raw, ok)
	}
	if err := e.sim.Update("tasks", "1", map[string]any{"deleted_at": nil}); err != nil {
		t.Fatal(err)
	}

	// Off again: soft-deleted items stay so and can be restored, and the
	// next DELETE removes its item.
	if err := e.sim.Delete("tasks", "2"); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetFaults(sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	if r := e.do(http.MethodPut, "/tasks/2", `{"status":"x"}`); r.status != 404 {
		t.Errorf("PUT on an item soft-deleted before the mode went off: %d", r.status)
	}
	if r := e.do(http.MethodPut, "/tasks/2", `{"deleted_at":null}`); r.status != 200 {
		t.Errorf("restore after the mode went off: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodDelete, "/tasks/2", ""); r.status != 204 {
		t.Errorf("hard DELETE: %d", r.status)
	}
	if r := e.do(http.MethodGet, "/tasks/2", ""); r.status != 404 {
		t.Errorf("GET after a hard delete: %d", r.status)
	}
	// Without the mode, deleted_at is a field like any other.
	if r := e.do(http.MethodPut, "/tasks/4", `{"deleted_at":"x"}`); r.status != 200 || fields(t, r.body)["deleted_at"] != "x" {
		t.Errorf("PUT deleted_at without the mode: %d %s", r.status, r.body)
	}

	// The log: a soft delete is deleted with the item as it is now, a
	// restore is created; both under the same id.
	var ops []string
	for _, m := range e.sim.Mutations() {
		op := m.Op + " " + m.ID
		if d := deletedAt(t, m.Item); d != nil {
			op += " deleted_at"
		}
		ops = append(ops, op)
	}
	want := []string{
		"deleted 3 deleted_at", "created 3", "updated 3", "created 6", "updated 1",
		"deleted 1 deleted_at", "created 1", "deleted 2 deleted_at", "created 2", "deleted 2", "updated 4 deleted_at",
	}
	if !slices.Equal(ops, want) {
		t.Errorf("log\n%v\nwant\n%v", ops, want)
	}
	muts := e.sim.Mutations()
	if got, _ := e.sim.Get("tasks", "3"); string(muts[2].Item) != string(got) {
		t.Errorf("last logged state of 3 %s, have %s", muts[2].Item, got)
	}
	if got := string(muts[0].Item); got != string(r3) {
		t.Errorf("soft delete logged %s, GET answered %s", got, r3)
	}
}

func TestSoftDeleteChurn(t *testing.T) {
	resources := []string{"tasks", "users"}
	e := newEnv(t, sim.Options{Token: testToken, Seed: 6, SeedItems: 40, Resources: resources, Churn: 3000,
		Faults: sim.Faults{SoftDelete: true}})
	initial := snapshot(e.sim, resources)
	if err := e.sim.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A restore is an OpCreated of an id that was soft-deleted before.
	restored := func() bool {
		gone := map[string]bool{}
		for _, m := range e.sim.Mutations() {
			key := m.Resource + "/" + m.ID
			if m.Op == sim.OpCreated && gone[key] {
				return true
			}
			gone[key] = m.Op == sim.OpDeleted
		}
		return false
	}
	waitFor(t, "churn to restore a soft-deleted item", restored)
	if err := e.sim.SetChurn(0); err != nil {
		t.Fatal(err)
	}
	muts := e.sim.Mutations()
	ops := map[string]int{}
	for _, m := range muts {
		ops[m.Op]++
		if m.Op == sim.OpDeleted && deletedAt(t, m.Item) == nil {
			t.Fatalf("churn deleted %s/%s for good with SoftDelete on", m.Resource, m.ID)
		}
	}
	if ops[sim.OpDeleted] == 0 || ops[sim.OpUpdated] == 0 {
		t.Errorf("ops %v", ops)
	}
	checkReplay(t, e.sim, initial, muts, resources)
}
