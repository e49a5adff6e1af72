package sim_test

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

func TestLatency(t *testing.T) {
	const d = 60 * time.Millisecond
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 1, Faults: sim.Faults{Latency: d}})
	for _, path := range []string{"/users", "/users/1", "/nowhere/1/2"} {
		start := time.Now()
		e.do(http.MethodGet, path, "")
		// Only a lower bound: a loaded machine may always be slower.
		if took := time.Since(start); took < d {
			t.Errorf("GET %s took %v, want at least %v", path, took, d)
		}
	}
	start := time.Now()
	if r := e.do(http.MethodGet, "/users", "", "wrong"); r.status != 401 || time.Since(start) < d {
		t.Errorf("unauthorised request: %d after %v", r.status, time.Since(start))
	}
}

func TestErrorRate(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 3, Faults: sim.Faults{ErrorRate: 1}})
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/tasks", ""}, {"GET", "/tasks/1", ""}, {"POST", "/tasks", `{"title":"x"}`},
		{"PUT", "/tasks/1", `{"title":"y"}`}, {"DELETE", "/tasks/1", ""}, {"GET", "/nowhere", ""},
	} {
		r := e.do(req.method, req.path, req.body)
		if r.status != http.StatusInternalServerError {
			t.Errorf("%s %s: %d", req.method, req.path, r.status)
			continue
		}
		if got := decode[apiError](t, r.body); got.Error.Code != "internal" {
			t.Errorf("%s %s body %s", req.method, req.path, r.body)
		}
	}
	if e.sim.LastSeq() != 0 || e.sim.Count("tasks") != 3 {
		t.Error("a failed write changed data")
	}

	// A fractional rate fails some requests and lets others through.
	if err := e.sim.SetFaults(sim.Faults{ErrorRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	codes := map[int]int{}
	for range 100 {
		codes[e.do(http.MethodGet, "/tasks", "").status]++
	}
	if codes[200] < 20 || codes[500] < 20 || codes[200]+codes[500] != 100 {
		t.Errorf("error rate 0.5 gave %v", codes)
	}
}

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter time.Duration
		want       string
	}{
		{"default", 0, "1"},
		{"rounded up", 2500 * time.Millisecond, "3"},
		{"negative means now", -1, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sim.Options{Token: testToken, SeedItems: 1,
				Faults: sim.Faults{RateLimitRate: 1, ErrorRate: 1, RetryAfter: tt.retryAfter}})
			r := e.do(http.MethodGet, "/users", "")
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != tt.want {
				t.Errorf("%d Retry-After %q, want 429 %q", r.status, r.header.Get("Retry-After"), tt.want)
			}
			if got := decode[apiError](t, r.body); got.Error.Code != "rate_limited" {
				t.Errorf("body %s", r.body)
			}
		})
	}
}

func TestFailPage(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 50})
	get := func(page string) int { return e.do(http.MethodGet, "/tasks?per_page=10&page="+page, "").status }

	if err := e.sim.SetFaults(sim.Faults{FailPage: sim.FailPage{Resource: "tasks", Page: 3, Times: 2}}); err != nil {
		t.Fatal(err)
	}
	if f := e.sim.Faults(); f.FailPage.Status != 500 || f.RetryAfter != sim.DefaultRetryAfter {
		t.Errorf("defaults not filled in: %+v", f)
	}
	got := []int{get("1"), get("3"), get("2"), get("3"), get("3"), get("3"), get("4")}
	if want := []int{200, 500, 200, 500, 200, 200, 200}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if r := e.do(http.MethodGet, "/users?per_page=10&page=3", ""); r.status != 200 {
		t.Errorf("another resource's page 3: %d", r.status)
	}
	st := e.sim.Stats()
	if n := st.Pages[sim.PageRequest{Resource: "tasks", Page: 3}]; n != 4 {
		t.Errorf("page 3 requested %d times per Stats, want 4", n)
	}

	// Times 0 fails every time, with the given status; SetFaults re-arms.
	if err := e.sim.SetFaults(sim.Faults{FailPage: sim.FailPage{Resource: "tasks", Page: 2, Status: 503}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if s := get("2"); s != 503 {
			t.Errorf("page 2: %d, want 503", s)
		}
	}
	if s := get("3"); s != 200 {
		t.Errorf("page 3 after the fault moved: %d", s)
	}
	if err := e.sim.SetFaults(sim.Faults{FailPage: sim.FailPage{Resource: "tasks", Page: 1, Status: 429, Times: 1}}); err != nil {
		t.Fatal(err)
	}
	if r := e.do(http.MethodGet, "/tasks", ""); r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Errorf("fail page 429: %d %q", r.status, r.header.Get("Retry-After"))
	}
}

func TestDrift(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 10, Faults: sim.Faults{DriftInserts: 2}})
	r := e.do(http.MethodGet, "/tasks?per_page=4", "")
	if got := ids(t, decode[page](t, r.body).Data); !slices.Equal(got, []string{"1", "2", "3", "4"}) {
		t.Errorf("first page %v: drift must follow the page, not precede it", got)
	}
	// The new items sit at the front, newest first, so page 2 now repeats
	// items the client saw on page 1.
	if got := e.sim.IDs("tasks")[:4]; !slices.Equal(got, []string{"12", "11", "1", "2"}) {
		t.Errorf("front after drift %v", got)
	}
	r = e.do(http.MethodGet, "/tasks?per_page=4&page=2", "")
	p := decode[page](t, r.body)
	if got := ids(t, p.Data); !slices.Equal(got, []string{"3", "4", "5", "6"}) || p.Meta.Total != 12 {
		t.Errorf("second page %v, meta %+v", got, p.Meta)
	}
	muts := e.sim.Mutations()
	var created []string
	for _, m := range muts {
		if m.Op != sim.OpCreated || m.Resource != "tasks" {
			t.Errorf("unexpected mutation %+v", m)
		}
		created = append(created, m.ID)
	}
	if !slices.Equal(created, []string{"11", "12", "13", "14"}) {
		t.Errorf("logged creates %v", created)
	}
	// Drift items are real tasks, retrievable and deletable.
	if r := e.do(http.MethodDelete, "/tasks/13", ""); r.status != 204 {
		t.Errorf("delete drift item: %d", r.status)
	}
	if got := e.sim.IDs("tasks")[:3]; !slices.Equal(got, []string{"14", "12", "11"}) {
		t.Errorf("front after delete %v", got)
	}
	// Failed pages do not drift.
	if err := e.sim.SetFaults(sim.Faults{DriftInserts: 2, ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	before := e.sim.Count("tasks")
	e.do(http.MethodGet, "/tasks", "")
	if e.sim.Count("tasks") != before {
		t.Error("a failed page drifted")
	}
}

func TestSetFaultsRejectsBadValues(t *testing.T) {
	s, err := sim.New(sim.Options{Faults: sim.Faults{Latency: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []sim.Faults{
		{Latency: -1},
		{ErrorRate: -0.1},
		{RateLimitRate: 2},
		{DriftInserts: -1},
		{FailPage: sim.FailPage{Resource: "tasks", Page: 0}},
		{FailPage: sim.FailPage{Resource: "tasks", Page: 1, Status: 200}},
		{FailPage: sim.FailPage{Resource: "tasks", Page: 1, Times: -1}},
	} {
		if err := s.SetFaults(f); !errors.Is(err, sim.ErrInvalid) {
			t.Errorf("SetFaults(%+v): %v", f, err)
		}
	}
	if s.Faults().Latency != time.Millisecond {
		t.Error("a refused SetFaults changed the faults")
	}
}

func TestStats(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 5})
	e.do(http.MethodPost, "/tasks", `{"title":"one"}`)
	e.do(http.MethodGet, "/tasks?page=2&per_page=2", "")
	e.do(http.MethodGet, "/tasks?per_page=2&page=2", "")
	e.do(http.MethodGet, "/tasks/1", "")
	e.do(http.MethodGet, "/tasks/99", "")
	e.do(http.MethodGet, "/tasks", "", "wrong")
	st := e.sim.Stats()
	checks := []struct {
		name      string
		got, want int
	}{
		{"total", st.Total, 6},
		{"POST", st.ByMethod["POST"], 1},
		{"GET", st.ByMethod["GET"], 5},
		{"201", st.ByStatus[201], 1},
		{"200", st.ByStatus[200], 3},
		{"404", st.ByStatus[404], 1},
		{"401", st.ByStatus[401], 1},
		{"POST /tasks", st.ByRoute[sim.Route{Method: "POST", Path: "/api/v1/tasks"}], 1},
		{"GET /tasks", st.ByRoute[sim.Route{Method: "GET", Path: "/api/v1/tasks"}], 3},
		{"tasks page 2", st.Pages[sim.PageRequest{Resource: "tasks", Page: 2}], 2},
		{"tasks page 1", st.Pages[sim.PageRequest{Resource: "tasks", Page: 1}], 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	st.ByMethod["POST"] = 100 // a copy: the server's counts must not change
	e.sim.ResetStats()
	if st := e.sim.Stats(); st.Total != 0 || len(st.ByMethod) != 0 || len(st.Pages) != 0 {
		t.Errorf("after reset %+v", st)
	}
}

func TestRepeatPage(t *testing.T) {
	tests := []struct {
		name  string
		style sim.Style
		rate  float64
		page  int
		want  int // the page whose body comes back
	}{
		{"off", sim.StyleDataMeta, 0, 2, 2},
		{"page 2 repeats page 1", sim.StyleDataMeta, 1, 2, 1},
		{"page 4 repeats page 3", sim.StyleDataMeta, 1, 4, 3},
		{"page 1 has no page before it", sim.StyleDataMeta, 1, 1, 1},
		{"past the end repeats the last page", sim.StyleDataMeta, 1, 6, 5},
		{"items and pagination", sim.StyleItemsPagination, 1, 3, 2},
		{"no metadata", sim.StyleNoMeta, 1, 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sim.Options{Token: testToken, SeedItems: 50, Style: tt.style})
			get := func(page int) response {
				return e.do(http.MethodGet, "/tasks?per_page=10&page="+strconv.Itoa(page), "")
			}
			want := get(tt.want)
			e.sim.ResetStats()
			if err := e.sim.SetFaults(sim.Faults{RepeatPageRate: tt.rate}); err != nil {
				t.Fatal(err)
			}
			got := get(tt.page)
			if got.status != http.StatusOK || !bytes.Equal(got.body, want.body) {
				t.Errorf("page %d: %d %s\nwant the body of page %d: %s", tt.page, got.status, got.body, tt.want, want.body)
			}
			if e.sim.LastSeq() != 0 {
				t.Error("a repeated page changed data")
			}
			if n := e.sim.Stats().Pages[sim.PageRequest{Resource: "tasks", Page: tt.page}]; n != 1 {
				t.Errorf("Stats counts page %d %d times, want 1 (by the page asked for)", tt.page, n)
			}
		})
	}

	// A fractional rate repeats some pages and not others.
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 50, Faults: sim.Faults{RepeatPageRate: 0.5}})
	counts := map[int]int{}
	for range 100 {
		p := decode[page](t, e.do(http.MethodGet, "/tasks?per_page=10&page=3", "").body)
		counts[p.Meta.Page]++
	}
	if counts[2] < 20 || counts[3] < 20 || counts[2]+counts[3] != 100 {
		t.Errorf("rate 0.5 answered page 3 with pages %v", counts)
	}

	for _, rate := range []float64{-0.1, 1.5} {
		if err := e.sim.SetFaults(sim.Faults{RepeatPageRate: rate}); !errors.Is(err, sim.ErrInvalid) {
			t.Errorf("repeat page rate %g: %v", rate, err)
		}
	}
}
