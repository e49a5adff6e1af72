package rockety_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety"
)

func TestRateLimitWait(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration // 0: no wait
	}{
		{"none", h(), 0},
		{"IETF draft, spent", h("RateLimit", "r=0, t=5"), 5 * time.Second},
		{"IETF draft, budget left", h("RateLimit", "r=3, t=5"), 0},
		{"IETF draft with a policy name", h("RateLimit", `"default";r=0;t=7`), 7 * time.Second},
		{"older draft keys", h("RateLimit", "limit=100, remaining=0, reset=9"), 9 * time.Second},
		{"RateLimit-Remaining and -Reset", h("RateLimit-Remaining", "0", "RateLimit-Reset", "12"), 12 * time.Second},
		{"X-RateLimit-, seconds", h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "30"), 30 * time.Second},
		{"X-RateLimit-, a Unix time", h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(now.Add(42*time.Second).Unix(), 10)), 42 * time.Second},
		{"X-RateLimit-, Unix milliseconds", h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(now.Add(1500*time.Millisecond).UnixMilli(), 10)), 1500 * time.Millisecond},
		{"a reset in the past is ignored", h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)), 0},
		{"a fraction of a second rounds up", h("RateLimit-Remaining", "0", "RateLimit-Reset", "0.2"), time.Second},
		{"remaining without a reset", h("X-RateLimit-Remaining", "0"), 0},
		{"garbage", h("RateLimit", "r=zero, t=soon", "X-RateLimit-Remaining", "none", "X-RateLimit-Reset", "later"), 0},
		{"a negative reset", h("RateLimit-Remaining", "0", "RateLimit-Reset", "-5"), 0},
		{"an absurd number of seconds is a day at most", h("RateLimit-Remaining", "0", "RateLimit-Reset", "999999999"), 24 * time.Hour},
	}
	for _, tt := range tests {
		got, ok := rockety.RateLimitWait(tt.header, now)
		if got != tt.want || ok != (tt.want > 0) {
			t.Errorf("%s: %s %v, want %s", tt.name, got, ok, tt.want)
		}
	}
}

type pauses struct {
	mu   sync.Mutex
	seen []rockety.RequestInfo
}

func (p *pauses) ObserveRequest(r rockety.RequestInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, r)
}

// TestSpentBudgetPausesEveryRequest: an answer that says the budget is
// spent holds every request of the client until the reset (here, beyond
// the caller's patience: the next request never leaves), and a reset
// longer than the cap is cut to it.
func TestSpentBudgetPausesEveryRequest(t *testing.T) {
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("RateLimit", "r=0, t=3600")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":1}`))
	}))
	defer srv.Close()
	obs := &pauses{}
	c := newClient(t, srv.URL, rockety.WithObserver(obs), rockety.WithMaxRetryAfter(2*time.Minute))
	if _, err := c.Get(context.Background(), "tasks", "1"); err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	first := obs.seen[0]
	obs.mu.Unlock()
	if first.Pause != 2*time.Minute || first.PauseAsked != time.Hour {
		t.Errorf("pause %s (asked %s), want the cap of 2m0s (asked 1h0m0s)", first.Pause, first.PauseAsked)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "tasks", "1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the next request: %v, want it held until the caller gave up", err)
	}
	if n := served.Load(); n != 1 {
		t.Errorf("%d requests reached the API during the pause, want 1", n)
	}
}

func TestMaxRetryAfterMustBePositive(t *testing.T) {
	if _, err := rockety.New("https://app.rockety.io/api/v1", rockety.WithToken("t"), rockety.WithMaxRetryAfter(0)); !errors.Is(err, rockety.ErrInvalidOption) {
		t.Errorf("err = %v", err)
	}
}

func TestLearnedRate(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		accepted int
		window   time.Duration
		want     float64
		ok       bool
	}{
		{name: "a quota of 20 per 2 s: 9 per second with the margin", accepted: 20, window: 2 * time.Second, want: 9, ok: true},
		{name: "a quota of 600 a minute", accepted: 600, window: time.Minute, want: 9, ok: true},
		{name: "too few requests to tell a quota from a stray 429", accepted: 9, window: 2 * time.Second},
		{name: "a window under a second", accepted: 100, window: 500 * time.Millisecond},
		{name: "a window that ends before it starts", accepted: 100, window: -time.Second},
		{name: "nothing accepted", accepted: 0, window: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := rockety.LearnedRate(tt.accepted, t0, t0.Add(tt.window))
			if ok != tt.ok || math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("LearnedRate = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestHasRateLimitHeaders(t *testing.T) {
	for _, tt := range []struct {
		header http.Header
		want   bool
	}{
		{http.Header{}, false},
		{http.Header{"Retry-After": {"2"}}, false},
		{http.Header{"Ratelimit": {"r=0, t=2"}}, true},
		{http.Header{"Ratelimit-Remaining": {"5"}}, true},
		{http.Header{"X-Ratelimit-Remaining": {"5"}}, true},
	} {
		if got := rockety.HasRateLimitHeaders(tt.header); got != tt.want {
			t.Errorf("HasRateLimitHeaders(%v) = %v, want %v", tt.header, got, tt.want)
		}
	}
}
