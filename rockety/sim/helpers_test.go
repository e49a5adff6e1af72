package sim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

const testToken = "test-token"

// env is a simulator behind a real HTTP server.
type env struct {
	t    *testing.T
	sim  *sim.Server
	srv  *httptest.Server
	base string // ends in /api/v1
}

func newEnv(t *testing.T, opts sim.Options) *env {
	t.Helper()
	s, err := sim.New(opts)
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		_ = s.Close()
	})
	return &env{t: t, sim: s, srv: ts, base: ts.URL + sim.BasePath}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request to the API with the env's token unless token is
// given.
func (e *env) do(method, path, body string, token ...string) response {
	e.t.Helper()
	return e.send(method, e.base+path, body, token...)
}

func (e *env) send(method, url, body string, token ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	tok := testToken
	if len(token) > 0 {
		tok = token[0]
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// page is a list response in any style.
type page struct {
	Data       []json.RawMessage `json:"data"`
	Items      []json.RawMessage `json:"items"`
	Meta       *meta             `json:"meta"`
	Pagination *pagination       `json:"pagination"`
}

type meta struct {
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
	Total   int `json:"total"`
	Pages   int `json:"pages"`
}

type pagination struct {
	CurrentPage int `json:"current_page"`
	PerPage     int `json:"per_page"`
	TotalItems  int `json:"total_items"`
	TotalPages  int `json:"total_pages"`
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %T from %s: %v", v, b, err)
	}
	return v
}

// idOf returns an item's id in string form.
func idOf(t *testing.T, item []byte) string {
	t.Helper()
	var v struct {
		ID json.Number `json:"id"`
	}
	if err := json.Unmarshal(item, &v); err != nil {
		t.Fatalf("item %s: %v", item, err)
	}
	return v.ID.String()
}

func ids(t *testing.T, items []json.RawMessage) []string {
	t.Helper()
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = idOf(t, it)
	}
	return out
}

func fields(t *testing.T, item []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(item, &m); err != nil {
		t.Fatalf("item %s: %v", item, err)
	}
	return m
}
