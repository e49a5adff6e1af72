package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// admin sends one request to an admin route of e's server.
func (e *env) admin(method, path, body string, token ...string) response {
	e.t.Helper()
	return e.send(method, e.srv.URL+sim.AdminPath+path, body, token...)
}

func (e *env) remote() *sim.Remote { return sim.NewRemote(e.srv.URL, testToken) }

func TestAdminRoutes(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 5})
	if _, err := e.sim.Create("tasks", map[string]any{"title": "one"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		method     string
		path, body string
		token      string
		status     int
		want       string // in the body
	}{
		{"seq", "GET", "/seq", "", testToken, 200, `{"last_seq":1,"oldest_seq":1}`},
		{"no token", "GET", "/seq", "", "", 401, `"code":"unauthorized"`},
		{"wrong token", "GET", "/mutations", "", "nope", 401, `"code":"unauthorized"`},
		{"items of a resource that does not exist", "GET", "/items/nothing", "", testToken, 200, ""},
		{"items, bad name", "GET", "/items/Bad", "", testToken, 404, `"code":"not_found"`},
		{"unknown route", "GET", "/nope", "", testToken, 404, "no such admin route: /_sim/nope"},
		{"the prefix alone", "GET", "", "", testToken, 404, "no such admin route"},
		{"wrong method", "POST", "/seq", "", testToken, 405, "POST not allowed on /_sim/seq"},
		{"bad since", "GET", "/mutations?since=-1", "", testToken, 400, `since must be a whole number >= 0, got \"-1\"`},
		{"bad limit", "GET", "/mutations?limit=x", "", testToken, 400, "limit must be"},
		{"churn", "GET", "/churn", "", testToken, 200, `{"rate":0}`},
		{"churn without a rate", "PUT", "/churn", `{}`, testToken, 400, `want {\"rate\": mutations per second}`},
		{"churn negative", "PUT", "/churn", `{"rate":-1}`, testToken, 400, "churn rate -1"},
		{"churn unknown key", "PUT", "/churn", `{"rate":1,"speed":2}`, testToken, 400, "want"},
		{"faults unknown key", "PUT", "/faults", `{"error_rat":1}`, testToken, 400, `unknown field \"error_rat\"`},
		{"faults bad duration", "PUT", "/faults", `{"latency":"soon"}`, testToken, 400, "latency: time: invalid duration"},
		{"faults out of range", "PUT", "/faults", `{"repeat_page_rate":2}`, testToken, 400, "repeat page rate 2 outside [0, 1]"},
		{"faults bad changes lag", "PUT", "/faults", `{"changes_lag":"5"}`, testToken, 400, `changes_lag: time: missing unit in duration \"5\"`},
		{"faults negative changes lag", "PUT", "/faults", `{"changes_lag":"-1s"}`, testToken, 400, "negative changes lag -1s"},
		{"faults soft delete not a bool", "PUT", "/faults", `{"soft_delete":"yes"}`, testToken, 400, "soft_delete"},
		{"faults", "GET", "/faults", "", testToken, 200, `{"retry_after":"1s"}`},
		{"faults of incremental polling", "PUT", "/faults", `{"soft_delete":true,"ignore_changed_since":true,"changes_lag":"1m30s"}`, testToken, 200,
			`{"retry_after":"1s","changes_lag":"1m30s","ignore_changed_since":true,"soft_delete":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.admin(tt.method, tt.path, tt.body, tt.token)
			if r.status != tt.status || !strings.Contains(string(r.body), tt.want) {
				t.Errorf("%s %s: %d %s, want %d with %s", tt.method, tt.path, r.status, r.body, tt.status, tt.want)
			}
		})
	}
	if st := e.sim.Stats(); st.Total != 0 {
		t.Errorf("admin requests were counted as API requests: %+v", st)
	}
}

// TestAdminMutationsStream reads a log of 120,000 mutations in one streamed
// answer, then in pages, and compares both with the log itself.
func TestAdminMutationsStream(t *testing.T) {
	if testing.Short() {
		t.Skip("120,000 mutations")
	}
	const n = 120_000
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 10})
	for i := range n {
		var err error
		switch i % 3 {
		case 0:
			_, err = e.sim.Create("tasks", map[string]any{"title": "t" + strconv.Itoa(i)})
		default:
			err = e.sim.Update("tasks", strconv.Itoa(1+i%10), map[string]any{"status": "s" + strconv.Itoa(i)})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want := e.sim.Mutations()
	ctx := context.Background()
	got, err := e.remote().MutationsSince(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d mutations over HTTP, want %d", len(got), n)
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.Seq != w.Seq || g.ID != w.ID || g.Op != w.Op || g.Resource != w.Resource || !g.Time.Equal(w.Time) || !bytes.Equal(g.Item, w.Item) {
			t.Fatalf("mutation %d over HTTP\n%+v\nwant\n%+v", i, g, w)
		}
	}

	// Paged with limit, from the middle.
	r := e.admin(http.MethodGet, "/mutations?since=100&limit=5", "")
	if ct := r.header.Get("Content-Type"); r.status != 200 || ct != "application/x-ndjson" || r.header.Get(sim.LastSeqHeader) != strconv.Itoa(n) {
		t.Fatalf("page: %d %q %q", r.status, ct, r.header.Get(sim.LastSeqHeader))
	}
	var seqs []uint64
	for line := range bytes.Lines(r.body) {
		var m sim.Mutation
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		seqs = append(seqs, m.Seq)
	}
	if !slices.Equal(seqs, []uint64{101, 102, 103, 104, 105}) {
		t.Errorf("since=100&limit=5 gave %v", seqs)
	}
	if r := e.admin(http.MethodGet, "/mutations?since="+strconv.Itoa(n), ""); r.status != 200 || len(r.body) != 0 {
		t.Errorf("since the last: %d %q", r.status, r.body)
	}
}

func TestAdminLogTrimmed(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 1, LogLimit: 10})
	for i := range 25 {
		if err := e.sim.Update("tasks", "1", map[string]any{"status": strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	info, err := e.remote().Seq(ctx)
	if err != nil || info.LastSeq != 25 || info.OldestSeq < 11 || info.OldestSeq > 16 {
		t.Fatalf("seq %+v, %v", info, err)
	}
	if _, err := e.remote().MutationsSince(ctx, 0); !errors.Is(err, sim.ErrLogTrimmed) {
		t.Errorf("since 0 with a trimmed log: %v", err)
	}
	got, err := e.remote().MutationsSince(ctx, info.OldestSeq-1)
	if err != nil || len(got) != int(25-info.OldestSeq+1) {
		t.Errorf("from the oldest kept: %d mutations, %v", len(got), err)
	}
}

// TestAdminItemsAreASnapshot reads the items while churn runs fast: the items
// at the announced position, with the mutations after it replayed, must be
// what the simulator has once churn stops.
func TestAdminItemsAreASnapshot(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, Seed: 4, SeedItems: 2000, Resources: []string{"tasks"}, Churn: 2000})
	ctx := context.Background()
	if err := e.sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rem := e.remote()
	time.Sleep(50 * time.Millisecond)
	items, seq, err := rem.Items(ctx, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]string{}
	for _, it := range items {
		state[idOf(t, it)] = string(it)
	}
	time.Sleep(50 * time.Millisecond)
	stopped, err := rem.SetChurn(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if stopped <= seq {
		t.Fatalf("churn did not run during the read (items at %d, stopped at %d)", seq, stopped)
	}
	muts, err := rem.MutationsSince(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range muts {
		if m.Op == sim.OpDeleted {
			delete(state, m.ID)
		} else {
			state[m.ID] = string(m.Item)
		}
	}
	ids := e.sim.IDs("tasks")
	if len(ids) != len(state) {
		t.Fatalf("replayed %d items, the simulator has %d", len(state), len(ids))
	}
	for _, id := range ids {
		raw, _ := e.sim.Get("tasks", id)
		if state[id] != string(raw) {
			t.Fatalf("item %s: replayed %s, have %s", id, state[id], raw)
		}
	}
	// Churn stopped for good when SetChurn returned.
	time.Sleep(100 * time.Millisecond)
	if last := e.sim.LastSeq(); last != stopped {
		t.Errorf("churn went on after it was stopped: last seq %d, stopped at %d", last, stopped)
	}
	if muts[len(muts)-1].Seq != stopped {
		t.Errorf("mutations end at %d, churn stopped at %d", muts[len(muts)-1].Seq, stopped)
	}
}

func TestAdminChurn(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 100, Resources: []string{"tasks"}})
	ctx := context.Background()
	if err := e.sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rem := e.remote()
	if _, err := rem.SetChurn(ctx, 500); err != nil {
		t.Fatal(err)
	}
	if rate, err := rem.Churn(ctx); err != nil || rate != 500 {
		t.Errorf("churn rate %g, %v", rate, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.sim.LastSeq() < 50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	last, err := rem.SetChurn(ctx, 0)
	if err != nil || last < 50 {
		t.Fatalf("churn at 500/s made %d mutations; %v", last, err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := e.sim.LastSeq(); got != last {
		t.Errorf("mutations after churn stopped: %d, then %d", last, got)
	}
}

func TestAdminFaults(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 3})
	ctx := context.Background()
	rem := e.remote()
	want := sim.Faults{Latency: 300 * time.Millisecond, ErrorRate: 1, RateLimitRate: 0, RetryAfter: 2 * time.Second,
		FailPage: sim.FailPage{Resource: "tasks", Page: 2, Status: 503, Times: 1}, TruncateRate: 0.1, HTMLRate: 0.2,
		PagesUnderreport: 1, RepeatPageRate: 0.3, DriftInserts: 2,
		ChangesLag: 1500 * time.Millisecond, IgnoreChangedSince: true, SoftDelete: true}
	if err := rem.SetFaults(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got := e.sim.Faults(); got != want {
		t.Errorf("faults in force %+v\nwant %+v", got, want)
	}
	if got, err := rem.Faults(ctx); err != nil || got != want {
		t.Errorf("faults read back %+v, %v", got, err)
	}
	// The API is slow and failing; the admin routes are neither.
	start := time.Now()
	if r := e.admin(http.MethodGet, "/seq", ""); r.status != 200 || time.Since(start) >= 300*time.Millisecond {
		t.Errorf("admin route under faults: %d after %s", r.status, time.Since(start))
	}
	if r := e.do(http.MethodGet, "/tasks/1", ""); r.status != 500 {
		t.Errorf("API under faults: %d", r.status)
	}
	st, err := rem.Stats(ctx)
	if err != nil || st.Total != 1 || st.ByStatus["500"] != 1 || st.ByMethod["GET"] != 1 {
		t.Errorf("stats %+v, %v", st, err)
	}
	if err := rem.SetFaults(ctx, sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	if r := e.do(http.MethodGet, "/tasks/1", ""); r.status != 200 {
		t.Errorf("API after the faults stopped: %d", r.status)
	}
}
