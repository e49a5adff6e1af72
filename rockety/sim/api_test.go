package sim_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

func seq(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

func TestListPaging(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 250})
	tests := []struct {
		name  string
		query string
		ids   []string
		meta  meta
	}{
		{"defaults", "", seq(1, 100), meta{1, 100, 250, 3}},
		{"first page", "?page=1&per_page=100", seq(1, 100), meta{1, 100, 250, 3}},
		{"middle page", "?page=2&per_page=100", seq(101, 200), meta{2, 100, 250, 3}},
		{"short last page", "?page=3&per_page=100", seq(201, 250), meta{3, 100, 250, 3}},
		{"past the end", "?page=4&per_page=100", nil, meta{4, 100, 250, 3}},
		{"far past the end", "?page=999999999", nil, meta{999999999, 100, 250, 3}},
		{"small pages", "?page=7&per_page=7", seq(43, 49), meta{7, 7, 250, 36}},
		{"per_page clamped down", "?per_page=1000", seq(1, 250), meta{1, 500, 250, 1}},
		{"per_page zero clamped up", "?page=2&per_page=0", []string{"2"}, meta{2, 1, 250, 250}},
		{"negative per_page clamped up", "?per_page=-5", []string{"1"}, meta{1, 1, 250, 250}},
		{"page only", "?page=3", seq(201, 250), meta{3, 100, 250, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/tasks"+tt.query, "")
			if r.status != http.StatusOK {
				t.Fatalf("status %d, body %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			p := decode[page](t, r.body)
			if p.Data == nil {
				t.Fatalf("data missing or null in %s", r.body)
			}
			if got := ids(t, p.Data); !slices.Equal(got, tt.ids) && len(got)+len(tt.ids) > 0 {
				t.Errorf("ids %v, want %v", got, tt.ids)
			}
			if p.Meta == nil || *p.Meta != tt.meta {
				t.Errorf("meta %+v, want %+v", p.Meta, tt.meta)
			}
		})
	}
}

func TestListBadParams(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 5})
	for _, q := range []string{"?page=0", "?page=-1", "?page=abc", "?page=", "?page=1.5", "?per_page=x", "?per_page=", "?page=99999999999999999999"} {
		t.Run(q, func(t *testing.T) {
			r := e.do(http.MethodGet, "/tasks"+q, "")
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", r.status, r.body)
			}
			if err := decode[apiError](t, r.body); err.Error.Code != "bad_request" || err.Error.Message == "" {
				t.Errorf("error body %s", r.body)
			}
		})
	}
}

func TestListUnknownResourceIsEmpty(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 5})
	r := e.do(http.MethodGet, "/widgets", "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	if got, want := string(r.body), `{"data":[],"meta":{"page":1,"per_page":100,"total":0,"pages":0}}`; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	if got := e.sim.Resources(); slices.Contains(got, "widgets") {
		t.Errorf("a read created the resource: %v", got)
	}
}

func TestStyles(t *testing.T) {
	tests := []struct {
		name  string
		style sim.Style
		want  string
	}{
		{"data", sim.StyleDataMeta, `{"data":[A,B],"meta":{"page":2,"per_page":2,"total":5,"pages":3}}`},
		{"items", sim.StyleItemsPagination, `{"items":[A,B],"pagination":{"current_page":2,"per_page":2,"total_items":5,"total_pages":3}}`},
		{"nometa", sim.StyleNoMeta, `{"data":[A,B]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sim.Options{Token: testToken, SeedItems: 5, Style: tt.style})
			a, _ := e.sim.Get("users", "3")
			b, _ := e.sim.Get("users", "4")
			want := strings.NewReplacer("A", string(a), "B", string(b)).Replace(tt.want)
			r := e.do(http.MethodGet, "/users?page=2&per_page=2", "")
			if r.status != http.StatusOK || string(r.body) != want {
				t.Errorf("got %d %s\nwant %s", r.status, r.body, want)
			}
			if !json.Valid(r.body) {
				t.Errorf("invalid JSON")
			}
			st, err := sim.ParseStyle(tt.name)
			if err != nil || st != tt.style || st.String() != tt.name {
				t.Errorf("ParseStyle(%q) = %v, %v", tt.name, st, err)
			}
		})
	}
	if _, err := sim.ParseStyle("xml"); !errors.Is(err, sim.ErrInvalid) {
		t.Errorf("ParseStyle(xml) error %v", err)
	}
}

func TestItemLifecycle(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 3})
	start := time.Now().UTC().Add(-time.Second)

	// GET an existing item: the bare object, byte for byte what the list has.
	r := e.do(http.MethodGet, "/tasks/2", "")
	want, _ := e.sim.Get("tasks", "2")
	if r.status != http.StatusOK || string(r.body) != string(want) {
		t.Fatalf("GET: %d %s, want %s", r.status, r.body, want)
	}

	// POST: new id 4, body id ignored, timestamps set, fields kept in order.
	r = e.do(http.MethodPost, "/tasks", `{"id":999,"title":"Ship it","status":"todo","tags":["a","b"],"meta":{"x":[1,2,{"y":null}]},"created_at":"1999-01-01T00:00:00Z"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	if !strings.HasPrefix(string(r.body), `{"id":4,"title":"Ship it","status":"todo","tags":["a","b"],"meta":{"x":[1,2,{"y":null}]},"created_at":"`) {
		t.Errorf("POST body %s", r.body)
	}
	created := fields(t, r.body)
	ca, err := time.Parse(time.RFC3339, created["created_at"].(string))
	if err != nil || ca.Before(start) || ca.Location() != time.UTC || created["updated_at"] != created["created_at"] {
		t.Errorf("timestamps %v %v (%v)", created["created_at"], created["updated_at"], err)
	}
	if r2 := e.do(http.MethodGet, "/tasks/4", ""); string(r2.body) != string(r.body) {
		t.Errorf("GET after POST %s, want %s", r2.body, r.body)
	}

	// PUT: merges top-level fields, null sets null, id and created_at stay.
	r = e.do(http.MethodPut, "/tasks/4", `{"id":77,"status":"done","tags":null,"new_field":{"k":1},"created_at":"2000-01-01T00:00:00Z"}`)
	if r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	updated := fields(t, r.body)
	if updated["id"] != 4.0 || updated["status"] != "done" || updated["tags"] != nil || updated["title"] != "Ship it" ||
		updated["created_at"] != created["created_at"] || fmt.Sprint(updated["new_field"]) != "map[k:1]" {
		t.Errorf("PUT body %s", r.body)
	}
	if _, ok := updated["tags"]; !ok {
		t.Errorf("null field dropped instead of set to null: %s", r.body)
	}
	ua, _ := time.Parse(time.RFC3339, updated["updated_at"].(string))
	if !ua.After(ca) {
		t.Errorf("updated_at %v not after created_at %v", ua, ca)
	}

	// DELETE: 204 with no body, then 404 everywhere.
	r = e.do(http.MethodDelete, "/tasks/4", "")
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Errorf("DELETE: %d %q", r.status, r.body)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		if r := e.do(m, "/tasks/4", ""); r.status != http.StatusNotFound {
			t.Errorf("%s after delete: %d", m, r.status)
		}
	}
	if r := e.do(http.MethodPut, "/tasks/4", `{"status":"x"}`); r.status != http.StatusNotFound {
		t.Errorf("PUT after delete: %d", r.status)
	}

	// Ids are never reused.
	r = e.do(http.MethodPost, "/tasks", `{"title":"again"}`)
	if got := idOf(t, r.body); got != "5" {
		t.Errorf("next id %s, want 5", got)
	}

	// The log saw each write, in order.
	var ops []string
	for _, m := range e.sim.Mutations() {
		ops = append(ops, m.Op+" "+m.Resource+"/"+m.ID)
	}
	if want := []string{"created tasks/4", "updated tasks/4", "deleted tasks/4", "created tasks/5"}; !slices.Equal(ops, want) {
		t.Errorf("log %v, want %v", ops, want)
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 3})
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
		allow                    string
	}{
		{"missing item", "GET", "/tasks/99", "", 404, "not_found", ""},
		{"zero-padded id", "GET", "/tasks/007", "", 404, "not_found", ""},
		{"non-numeric id", "GET", "/tasks/abc", "", 404, "not_found", ""},
		{"unknown resource item", "GET", "/widgets/1", "", 404, "not_found", ""},
		{"bad resource name", "GET", "/Tasks", "", 404, "not_found", ""},
		{"too deep", "GET", "/tasks/1/comments", "", 404, "not_found", ""},
		{"base path itself", "GET", "", "", 404, "not_found", ""},
		{"PATCH item", "PATCH", "/tasks/1", `{}`, 405, "method_not_allowed", "GET, PUT, DELETE"},
		{"POST item", "POST", "/tasks/1", `{}`, 405, "method_not_allowed", "GET, PUT, DELETE"},
		{"PUT collection", "PUT", "/tasks", `{}`, 405, "method_not_allowed", "GET, POST"},
		{"DELETE collection", "DELETE", "/tasks", "", 405, "method_not_allowed", "GET, POST"},
		{"HEAD collection", "HEAD", "/tasks", "", 405, "", "GET, POST"},
		{"bad JSON", "POST", "/tasks", `{"title":`, 400, "bad_request", ""},
		{"empty body", "POST", "/tasks", ``, 400, "bad_request", ""},
		{"array body", "POST", "/tasks", `[{"title":"x"}]`, 400, "bad_request", ""},
		{"string body", "POST", "/tasks", `"x"`, 400, "bad_request", ""},
		{"trailing data", "POST", "/tasks", `{"title":"x"} {}`, 400, "bad_request", ""},
		{"task without title", "POST", "/tasks", `{"status":"todo"}`, 400, "bad_request", ""},
		{"task empty title", "POST", "/tasks", `{"title":""}`, 400, "bad_request", ""},
		{"task null title", "POST", "/tasks", `{"title":null}`, 400, "bad_request", ""},
		{"project without name", "POST", "/projects", `{"status":"active"}`, 400, "bad_request", ""},
		{"project numeric name", "POST", "/projects", `{"name":5}`, 400, "bad_request", ""},
		{"user without email", "POST", "/users", `{"name":"Ada"}`, 400, "bad_request", ""},
		{"user without name", "POST", "/users", `{"email":"a@example.com"}`, 400, "bad_request", ""},
		{"PUT nulls required", "PUT", "/tasks/1", `{"title":null}`, 400, "bad_request", ""},
		{"PUT bad JSON", "PUT", "/tasks/1", `{`, 400, "bad_request", ""},
		{"PUT array", "PUT", "/users/1", `[]`, 400, "bad_request", ""},
		{"body too large", "POST", "/widgets", `{"name":"` + strings.Repeat("x", 1<<20) + `"}`, 400, "bad_request", ""},
	}
	before := e.sim.LastSeq()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.status, r.body)
			}
			if tt.allow != "" && r.header.Get("Allow") != tt.allow {
				t.Errorf("Allow %q, want %q", r.header.Get("Allow"), tt.allow)
			}
			if tt.method == "HEAD" {
				return
			}
			if got := decode[apiError](t, r.body); got.Error.Code != tt.code || got.Error.Message == "" {
				t.Errorf("error body %s, want code %s", r.body, tt.code)
			}
		})
	}
	if after := e.sim.LastSeq(); after != before {
		t.Errorf("refused writes changed data: %v", e.sim.MutationsSince(before))
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 1})
	tests := []struct {
		name   string
		header string
		status int
	}{
		{"no header", "", 401},
		{"wrong token", "Bearer nope", 401},
		{"token prefix", "Bearer " + testToken[:4], 401},
		{"token suffix added", "Bearer " + testToken + "x", 401},
		{"basic scheme", "Basic " + testToken, 401},
		{"bare token", testToken, 401},
		{"right token", "Bearer " + testToken, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.base+"/users", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 401 {
				var body apiError
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error.Code != "unauthorized" {
					t.Errorf("body %+v (%v)", body, err)
				}
			}
		})
	}
	// Auth comes before writes: a refused POST changes nothing.
	if r := e.do(http.MethodPost, "/users", `{"name":"A","email":"a@x"}`, "wrong"); r.status != 401 || e.sim.Count("users") != 1 {
		t.Errorf("unauthorised POST: %d, count %d", r.status, e.sim.Count("users"))
	}

	open := newEnv(t, sim.Options{SeedItems: 1})
	if r := open.do(http.MethodGet, "/users", "", ""); r.status != http.StatusOK {
		t.Errorf("no token configured: status %d", r.status)
	}
}

func TestGenericResources(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 3, Resources: []string{"widgets", "tasks"}})
	r := e.do(http.MethodGet, "/widgets/2", "")
	item := fields(t, r.body)
	attrs, ok := item["attributes"].(map[string]any)
	if r.status != 200 || item["id"] != 2.0 || item["name"] == "" || !ok || attrs["labels"] == nil || attrs["size"] == nil {
		t.Errorf("seeded generic item %s", r.body)
	}
	// A name never seen becomes a resource on its first write.
	r = e.do(http.MethodPost, "/gadget_v2-x", `{"nested":{"deep":[{"a":1}]},"n":12345678901234567890}`)
	if r.status != http.StatusCreated || !strings.HasPrefix(string(r.body), `{"id":1,"nested":{"deep":[{"a":1}]},"n":12345678901234567890,`) {
		t.Errorf("POST generic: %d %s", r.status, r.body)
	}
	if got := e.sim.Resources(); !slices.Equal(got, []string{"gadget_v2-x", "tasks", "widgets"}) {
		t.Errorf("resources %v", got)
	}
	r = e.do(http.MethodGet, "/gadget_v2-x", "")
	if p := decode[page](t, r.body); len(p.Data) != 1 || p.Meta.Total != 1 {
		t.Errorf("list after POST %s", r.body)
	}
}

// TestSeededDataFitsModels checks that seeded items decode into the client's
// typed models and that references point at seeded items.
func TestSeededDataFitsModels(t *testing.T) {
	const n = 200
	s, err := sim.New(sim.Options{Seed: 7, SeedItems: n})
	if err != nil {
		t.Fatal(err)
	}
	inRange := func(id rockety.ID, nullable bool) bool {
		if id == "" {
			return nullable
		}
		k, err := strconv.Atoi(string(id))
		return err == nil && k >= 1 && k <= n
	}
	checkTimes := func(id string, c, u time.Time) {
		if c.IsZero() || u.Before(c) || c.Location() != time.UTC {
			t.Errorf("item %s: created %v updated %v", id, c, u)
		}
	}
	for _, id := range s.IDs("projects") {
		raw, _ := s.Get("projects", id)
		p, err := rockety.DecodeItem[rockety.Project](rockety.Item{ID: rockety.ID(id), Raw: raw})
		if err != nil || string(p.ID) != id || p.Name == "" || p.Status == "" || !inRange(p.OwnerID, false) {
			t.Errorf("project %s: %+v (%v)", raw, p, err)
		}
		checkTimes(id, p.CreatedAt, p.UpdatedAt)
	}
	statuses := map[string]bool{}
	for _, id := range s.IDs("tasks") {
		raw, _ := s.Get("tasks", id)
		task, err := rockety.DecodeItem[rockety.Task](rockety.Item{ID: rockety.ID(id), Raw: raw})
		if err != nil || string(task.ID) != id || task.Title == "" || task.Priority == "" || !inRange(task.ProjectID, false) || !inRange(task.AssigneeID, true) {
			t.Errorf("task %s: %+v (%v)", raw, task, err)
		}
		if task.DueDate != "" {
			if _, err := time.Parse(time.DateOnly, task.DueDate); err != nil {
				t.Errorf("task %s due_date: %v", id, err)
			}
		}
		statuses[task.Status] = true
		checkTimes(id, task.CreatedAt, task.UpdatedAt)
	}
	if len(statuses) < 4 {
		t.Errorf("task statuses not varied: %v", statuses)
	}
	emails := map[string]bool{}
	for _, id := range s.IDs("users") {
		raw, _ := s.Get("users", id)
		u, err := rockety.DecodeItem[rockety.User](rockety.Item{ID: rockety.ID(id), Raw: raw})
		if err != nil || u.Name == "" || !strings.Contains(u.Email, "@") || u.Role == "" || emails[u.Email] {
			t.Errorf("user %s: %+v (%v)", raw, u, err)
		}
		emails[u.Email] = true
		checkTimes(id, u.CreatedAt, u.UpdatedAt)
	}
}

func TestGoMutators(t *testing.T) {
	s, err := sim.New(sim.Options{SeedItems: 2})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Create("tasks", map[string]any{"title": "x", "id": 50})
	if err != nil || id != "3" {
		t.Fatalf("Create = %q, %v", id, err)
	}
	if err := s.Update("tasks", id, map[string]any{"status": "done", "assignee_id": nil}); err != nil {
		t.Fatal(err)
	}
	raw, ok := s.Get("tasks", id)
	if m := fields(t, raw); !ok || m["status"] != "done" || m["title"] != "x" || m["assignee_id"] != nil {
		t.Errorf("Get after Update: %s", raw)
	}
	if got := s.IDs("tasks"); !slices.Equal(got, []string{"1", "2", "3"}) || s.Count("tasks") != 3 {
		t.Errorf("IDs %v, Count %d", got, s.Count("tasks"))
	}
	if err := s.Delete("tasks", "1"); err != nil {
		t.Fatal(err)
	}
	if got := s.IDs("tasks"); !slices.Equal(got, []string{"2", "3"}) {
		t.Errorf("IDs after delete %v", got)
	}
	errTests := []struct {
		name string
		err  error
		want error
	}{
		{"delete twice", s.Delete("tasks", "1"), sim.ErrNotFound},
		{"update missing", s.Update("tasks", "1", map[string]any{"a": 1}), sim.ErrNotFound},
		{"update unknown resource", s.Update("nothing", "1", map[string]any{"a": 1}), sim.ErrNotFound},
		{"update clears required", s.Update("tasks", "2", map[string]any{"title": nil}), sim.ErrInvalid},
		{"create without required", func() error { _, err := s.Create("users", map[string]any{"name": "x"}); return err }(), sim.ErrInvalid},
		{"create bad resource", func() error { _, err := s.Create("Bad Name", map[string]any{}); return err }(), sim.ErrInvalid},
		{"create unencodable", func() error { _, err := s.Create("tasks", map[string]any{"title": func() {}}); return err }(), sim.ErrInvalid},
	}
	for _, tt := range errTests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if _, ok := s.Get("tasks", "1"); ok {
		t.Error("Get of deleted item succeeded")
	}
	if s.Count("nothing") != 0 || s.IDs("nothing") != nil {
		t.Error("unknown resource not empty")
	}
}

func TestSetRaw(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken})
	id, err := e.sim.Create("tasks", map[string]any{"title": "t", "tags": []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := e.sim.Get("tasks", id)
	m := fields(t, orig)
	before := e.sim.LastSeq()

	// Same content, other key order and whitespace: not a change.
	reordered := fmt.Sprintf(`{ "updated_at": %q, "tags": [ "a" ],
		"title": "t", "created_at": %q, "id": 1 }`, m["updated_at"], m["created_at"])
	if err := e.sim.SetRaw("tasks", id, []byte(reordered)); err != nil {
		t.Fatal(err)
	}
	if got := e.sim.MutationsSince(before); len(got) != 0 {
		t.Errorf("re-encoding logged %v", got)
	}
	if got, _ := e.sim.Get("tasks", id); string(got) != reordered {
		t.Errorf("Get %s, want the exact bytes", got)
	}
	if r := e.do(http.MethodGet, "/tasks", ""); !strings.Contains(string(r.body), reordered) || !json.Valid(r.body) {
		t.Errorf("page does not carry the exact bytes: %s", r.body)
	}

	// A real change is logged as an update.
	changed := strings.Replace(reordered, `"title": "t"`, `"title": "u"`, 1)
	if err := e.sim.SetRaw("tasks", id, []byte(changed)); err != nil {
		t.Fatal(err)
	}
	if got := e.sim.MutationsSince(before); len(got) != 1 || got[0].Op != sim.OpUpdated || string(got[0].Item) != changed {
		t.Errorf("change logged as %v", got)
	}

	for name, tc := range map[string]struct {
		id, raw string
		want    error
	}{
		"not an object": {id, `[1]`, sim.ErrInvalid},
		"bad JSON":      {id, `{"id":1`, sim.ErrInvalid},
		"other id":      {id, `{"id":2}`, sim.ErrInvalid},
		"no id":         {id, `{"title":"x"}`, sim.ErrInvalid},
		"missing item":  {"9", `{"id":9}`, sim.ErrNotFound},
	} {
		if err := e.sim.SetRaw("tasks", tc.id, []byte(tc.raw)); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", name, err, tc.want)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts sim.Options
	}{
		{"bad resource name", sim.Options{Resources: []string{"Tasks"}}},
		{"duplicate resource", sim.Options{Resources: []string{"tasks", "tasks"}}},
		{"negative items", sim.Options{SeedItems: -1}},
		{"negative churn", sim.Options{Churn: -1}},
		{"error rate above 1", sim.Options{Faults: sim.Faults{ErrorRate: 1.5}}},
		{"bad fail page", sim.Options{Faults: sim.Faults{FailPage: sim.FailPage{Resource: "tasks"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := sim.New(tt.opts); !errors.Is(err, sim.ErrInvalid) {
				t.Errorf("error %v, want ErrInvalid", err)
			}
		})
	}
}
