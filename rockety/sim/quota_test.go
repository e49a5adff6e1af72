package sim_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

func TestParseQuota(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    sim.Quota
		wantErr string
	}{
		{"empty is off", "", sim.Quota{}, ""},
		{"zero is off", "0", sim.Quota{}, ""},
		{"zero requests is off", "0/10s", sim.Quota{}, ""},
		{"seconds", "100/10s", sim.Quota{Limit: 100, Window: 10 * time.Second}, ""},
		{"an hour", "5000/1h", sim.Quota{Limit: 5000, Window: time.Hour}, ""},
		{"one per second", "1/1s", sim.Quota{Limit: 1, Window: time.Second}, ""},
		{"no window", "100", sim.Quota{}, `quota "100": want N/D, such as 100/10s`},
		{"empty window", "100/", sim.Quota{}, `window "": want a duration`},
		{"no requests", "/10s", sim.Quota{}, `requests "": want a whole number >= 0`},
		{"requests not a number", "x/10s", sim.Quota{}, `requests "x"`},
		{"negative requests", "-1/10s", sim.Quota{}, `requests "-1"`},
		{"fractional requests", "1.5/10s", sim.Quota{}, `requests "1.5"`},
		{"window without a unit", "100/10", sim.Quota{}, `window "10": want a duration`},
		{"two slashes", "100/10s/2", sim.Quota{}, `window "10s/2"`},
		{"zero window", "100/0s", sim.Quota{}, "window 0s: want a whole number of seconds >= 1s"},
		{"negative window", "100/-1s", sim.Quota{}, "window -1s"},
		{"fractional seconds", "100/1500ms", sim.Quota{}, "window 1.5s"},
		{"under a second", "100/500ms", sim.Quota{}, "window 500ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sim.ParseQuota(tt.in)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, sim.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseQuota(%q) = %+v, %v; want an ErrInvalid containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseQuota(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			if back, err := sim.ParseQuota(got.String()); err != nil || back != got {
				t.Errorf("String() = %q reads back as %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestParseQuotaHeaders(t *testing.T) {
	tests := []struct {
		in   string
		want sim.QuotaHeaders
		ok   bool
	}{
		{"", sim.QuotaHeadersIETF, true},
		{"ietf", sim.QuotaHeadersIETF, true},
		{"x", sim.QuotaHeadersX, true},
		{"none", sim.QuotaHeadersNone, true},
		{"IETF", "", false},
		{"github", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := sim.ParseQuotaHeaders(tt.in)
			if tt.ok != (err == nil) || got != tt.want || (err != nil && !errors.Is(err, sim.ErrInvalid)) {
				t.Errorf("ParseQuotaHeaders(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}

// quotaHeaderNames are every rate-limit header the quota may send.
var quotaHeaderNames = []string{"RateLimit", "RateLimit-Policy", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}

// checkQuotaHeaders compares the rate-limit headers of r with want, and
// checks that no other one is sent.
func checkQuotaHeaders(t *testing.T, step string, r response, want map[string]string) {
	t.Helper()
	for _, name := range quotaHeaderNames {
		got, ok := r.header[http.CanonicalHeaderKey(name)]
		w, wantOK := want[name]
		switch {
		case wantOK && (len(got) != 1 || got[0] != w):
			t.Errorf("%s: %s %q, want %q", step, name, got, w)
		case !wantOK && ok:
			t.Errorf("%s: %s %q, want none", step, name, got)
		}
	}
}

// TestQuota walks one quota of 3 requests per 10s through two windows, in
// each header style, stepping the clock instead of sleeping.
func TestQuota(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) // newClock's start
	unix := func(d time.Duration) string { return strconv.FormatInt(t0.Add(d).Unix(), 10) }
	tests := []struct {
		style sim.QuotaHeaders
		// headers gives the expected headers for remaining r, seconds to reset
		// t and the window's end.
		headers func(r, t int, end time.Duration) map[string]string
	}{
		{"", func(r, t int, _ time.Duration) map[string]string {
			return map[string]string{"RateLimit": "r=" + strconv.Itoa(r) + ", t=" + strconv.Itoa(t), "RateLimit-Policy": "3;w=10"}
		}},
		{sim.QuotaHeadersIETF, func(r, t int, _ time.Duration) map[string]string {
			return map[string]string{"RateLimit": "r=" + strconv.Itoa(r) + ", t=" + strconv.Itoa(t), "RateLimit-Policy": "3;w=10"}
		}},
		{sim.QuotaHeadersX, func(r, _ int, end time.Duration) map[string]string {
			return map[string]string{"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": strconv.Itoa(r), "X-RateLimit-Reset": unix(end)}
		}},
		{sim.QuotaHeadersNone, func(int, int, time.Duration) map[string]string { return nil }},
	}
	for _, tt := range tests {
		name := string(tt.style)
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			e := newEnv(t, sim.Options{Token: testToken, SeedItems: 2, Clock: clk.Now,
				Faults: sim.Faults{Quota: sim.Quota{Limit: 3, Window: 10 * time.Second, Headers: tt.style}}})
			steps := []struct {
				name         string
				advance      time.Duration
				method, path string
				body, token  string
				status       int
				remaining    int
				reset        int // seconds
				end          time.Duration
			}{
				{"first", 0, "GET", "/tasks", "", testToken, 200, 2, 10, 10 * time.Second},
				{"unauthorised: not counted", 0, "GET", "/tasks", "", "wrong", 401, -1, 0, 0},
				{"second, 2.5s on", 2500 * time.Millisecond, "GET", "/tasks/1", "", testToken, 200, 1, 8, 10 * time.Second},
				{"a 404 counts", 0, "GET", "/tasks/99", "", testToken, 404, 0, 8, 10 * time.Second},
				{"over the quota", 0, "GET", "/tasks", "", testToken, 429, 0, 8, 10 * time.Second},
				{"a refused write", time.Second, "POST", "/tasks", `{"title":"x"}`, testToken, 429, 0, 7, 10 * time.Second},
				{"the last instant", 6500*time.Millisecond - time.Nanosecond, "DELETE", "/tasks/1", "", testToken, 429, 0, 1, 10 * time.Second},
				{"the next window", time.Nanosecond, "DELETE", "/tasks/1", "", testToken, 204, 2, 10, 20 * time.Second},
				{"later in it", 9 * time.Second, "GET", "/tasks", "", testToken, 200, 1, 1, 20 * time.Second},
			}
			refused := 0
			for _, st := range steps {
				clk.Add(st.advance)
				r := e.do(st.method, st.path, st.body, st.token)
				if r.status != st.status {
					t.Fatalf("%s: %d %s, want %d", st.name, r.status, r.body, st.status)
				}
				// Admin requests are outside the quota and carry none of it.
				if a := e.admin(http.MethodGet, "/seq", ""); a.status != 200 {
					t.Errorf("%s: admin %d", st.name, a.status)
				} else {
					checkQuotaHeaders(t, st.name+" (admin)", a, nil)
				}
				if st.remaining < 0 {
					checkQuotaHeaders(t, st.name, r, nil)
					continue
				}
				checkQuotaHeaders(t, st.name, r, tt.headers(st.remaining, st.reset, st.end))
				if st.status == 429 {
					refused++
					if got := r.header.Get("Retry-After"); got != strconv.Itoa(st.reset) {
						t.Errorf("%s: Retry-After %q, want %d", st.name, got, st.reset)
					}
					if got := decode[apiError](t, r.body); got.Error.Code != "rate_limited" || !strings.Contains(got.Error.Message, "3/10s") {
						t.Errorf("%s: body %s", st.name, r.body)
					}
				} else if r.header.Get("Retry-After") != "" {
					t.Errorf("%s: Retry-After %q on a %d", st.name, r.header.Get("Retry-After"), r.status)
				}
			}
			// Only the DELETE of the second window changed anything.
			if last := e.sim.LastSeq(); last != 1 || e.sim.Count("tasks") != 1 {
				t.Errorf("log at %d with %d tasks: a refused request changed data", last, e.sim.Count("tasks"))
			}
			if st := e.sim.Stats(); st.ByStatus[429] != refused || st.Total != len(steps) {
				t.Errorf("stats %+v, want %d 429s of %d", st, refused, len(steps))
			}
		})
	}
}

// TestQuotaSetFaults changes the quota at run time: through /_sim/faults
// and Remote, with a strict round trip, keeping the window while the quota
// stays the same.
func TestQuotaSetFaults(t *testing.T) {
	clk := newClock()
	e := newEnv(t, sim.Options{Token: testToken, SeedItems: 1, Clock: clk.Now})
	if r := e.do(http.MethodGet, "/tasks", ""); r.status != 200 || r.header.Get("RateLimit") != "" {
		t.Fatalf("no quota: %d RateLimit %q", r.status, r.header.Get("RateLimit"))
	}

	r := e.admin(http.MethodPut, "/faults", `{"quota":{"limit":2,"window":"1m"}}`)
	want := `{"retry_after":"1s","quota":{"limit":2,"window":"1m0s","headers":"ietf"}}` + "\n"
	if r.status != 200 || string(r.body) != want {
		t.Fatalf("PUT faults: %d %s, want %s", r.status, r.body, want)
	}
	if r := e.admin(http.MethodGet, "/faults", ""); string(r.body) != want {
		t.Errorf("GET faults %s, want %s", r.body, want)
	}
	if r := e.admin(http.MethodPut, "/faults", strings.TrimSpace(want)); r.status != 200 || string(r.body) != want {
		t.Errorf("PUT of the GET: %d %s", r.status, r.body)
	}
	if got := e.do(http.MethodGet, "/tasks", "").header.Get("RateLimit"); got != "r=1, t=60" {
		t.Errorf("RateLimit %q", got)
	}

	// The same quota set again, with another fault: the window goes on,
	// and the injected 500 still counts against it.
	ctx := context.Background()
	rem := e.remote()
	f := sim.Faults{ErrorRate: 1, Quota: sim.Quota{Limit: 2, Window: time.Minute, Headers: sim.QuotaHeadersX}}
	if err := rem.SetFaults(ctx, f); err != nil {
		t.Fatal(err)
	}
	f.RetryAfter = sim.DefaultRetryAfter
	if got, err := rem.Faults(ctx); err != nil || got != f {
		t.Errorf("faults read back %+v, %v; want %+v", got, err, f)
	}
	clk.Add(time.Second)
	if r := e.do(http.MethodGet, "/tasks", ""); r.status != 500 || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("injected 500: %d remaining %q", r.status, r.header.Get("X-RateLimit-Remaining"))
	}
	if r := e.do(http.MethodGet, "/tasks", ""); r.status != 429 || r.header.Get("Retry-After") != "59" {
		t.Errorf("over the quota: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}

	// Another limit starts a new window; a zero one turns the quota off.
	if err := rem.SetFaults(ctx, sim.Faults{Quota: sim.Quota{Limit: 5, Window: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if r := e.do(http.MethodGet, "/tasks", ""); r.status != 200 || r.header.Get("RateLimit") != "r=4, t=60" {
		t.Errorf("new quota: %d RateLimit %q", r.status, r.header.Get("RateLimit"))
	}
	if err := rem.SetFaults(ctx, sim.Faults{}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if r := e.do(http.MethodGet, "/tasks", ""); r.status != 200 || r.header.Get("RateLimit") != "" {
			t.Fatalf("quota off: %d RateLimit %q", r.status, r.header.Get("RateLimit"))
		}
	}
}

func TestQuotaRefused(t *testing.T) {
	e := newEnv(t, sim.Options{Token: testToken})
	tests := []struct{ name, body, want string }{
		{"no window", `{"quota":{"limit":5}}`, "quota window 0s: want a whole number of seconds >= 1s"},
		{"fractional window", `{"quota":{"limit":5,"window":"1500ms"}}`, "quota window 1.5s"},
		{"bad window", `{"quota":{"limit":5,"window":"soon"}}`, "quota window: time: invalid duration"},
		{"negative limit", `{"quota":{"limit":-1,"window":"1s"}}`, "negative quota limit -1"},
		{"bad headers", `{"quota":{"limit":5,"window":"1s","headers":"X"}}`, `rate-limit headers \"X\": want ietf, x or none`},
		{"unknown key", `{"quota":{"limit":5,"window":"1s","burst":2}}`, `unknown field \"burst\"`},
		{"limit not a number", `{"quota":{"limit":"5","window":"1s"}}`, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.admin(http.MethodPut, "/faults", tt.body)
			if r.status != 400 || !strings.Contains(string(r.body), tt.want) {
				t.Errorf("%d %s, want 400 with %s", r.status, r.body, tt.want)
			}
		})
	}
	if f := e.sim.Faults(); f.Quota != (sim.Quota{}) {
		t.Errorf("a refused quota is in force: %+v", f.Quota)
	}
	if _, err := sim.New(sim.Options{Faults: sim.Faults{Quota: sim.Quota{Limit: 1}}}); !errors.Is(err, sim.ErrInvalid) {
		t.Errorf("New with a quota without a window: %v", err)
	}
}
