package publisher

import (
	"math"
	"testing"
	"time"
)

func TestTokenPoolTake(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	sec := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name     string
		pool     tokenPool
		now      time.Time
		n        int
		want     tokenPool
		wantWait time.Duration
	}{
		{name: "never written: full, then taken", pool: tokenPool{}, now: t0, n: 2,
			want: tokenPool{Tokens: 2, At: t0}},
		{name: "refilled for the time since", pool: tokenPool{Tokens: 0, At: t0}, now: sec(0.5), n: 2,
			want: tokenPool{Tokens: 2, At: sec(0.5)}},
		{name: "refill stops at capacity", pool: tokenPool{Tokens: 1, At: t0}, now: sec(60), n: 1,
			want: tokenPool{Tokens: 3, At: sec(60)}},
		{name: "not enough: wait for the rest", pool: tokenPool{Tokens: 0.5, At: t0}, now: t0, n: 1,
			want: tokenPool{Tokens: 0.5, At: t0}, wantWait: 50 * time.Millisecond},
		{name: "this clock late: no refill, the wait includes the lead", pool: tokenPool{Tokens: 0, At: sec(0.2)}, now: t0, n: 1,
			want: tokenPool{Tokens: 0, At: sec(0.2)}, wantWait: 300 * time.Millisecond},
		{name: "this clock late with tokens left: taken, the clock stays", pool: tokenPool{Tokens: 2, At: sec(0.2)}, now: t0, n: 1,
			want: tokenPool{Tokens: 1, At: sec(0.2)}},
		{name: "a pool far ahead is broken: reset empty", pool: tokenPool{Tokens: 4, At: sec(3600)}, now: t0, n: 1,
			want: tokenPool{Tokens: 0, At: t0}, wantWait: 100 * time.Millisecond},
		{name: "NaN tokens: reset empty", pool: tokenPool{Tokens: math.NaN(), At: t0}, now: t0, n: 1,
			want: tokenPool{At: t0}, wantWait: 100 * time.Millisecond},
		{name: "negative tokens: reset empty", pool: tokenPool{Tokens: -50, At: t0}, now: t0, n: 1,
			want: tokenPool{At: t0}, wantWait: 100 * time.Millisecond},
		{name: "paused: wait for the pause", pool: tokenPool{Tokens: 4, At: t0, PausedUntil: sec(2)}, now: sec(1), n: 1,
			want: tokenPool{Tokens: 4, At: t0, PausedUntil: sec(2)}, wantWait: time.Second},
		{name: "pause over: refilled and taken, the pause dropped", pool: tokenPool{Tokens: 0, At: t0, PausedUntil: sec(1)}, now: sec(2), n: 1,
			want: tokenPool{Tokens: 3, At: sec(2)}},
		{name: "a lower limit in force: refilled at it", pool: tokenPool{Tokens: 0, At: t0, Limit: 2, LimitUntil: sec(60)}, now: sec(1), n: 1,
			want: tokenPool{Tokens: 1, At: sec(1), Limit: 2, LimitUntil: sec(60)}},
		{name: "a limit that has ended: refilled at the rate, dropped", pool: tokenPool{Tokens: 0, At: t0, Limit: 2, LimitUntil: sec(1)}, now: sec(1), n: 1,
			want: tokenPool{Tokens: 3, At: sec(1)}},
		{name: "a limit above the rate: the rate", pool: tokenPool{Tokens: 0, At: t0, Limit: 50, LimitUntil: sec(60)}, now: sec(0.1), n: 1,
			want: tokenPool{Tokens: 0, At: sec(0.1), Limit: 50, LimitUntil: sec(60)}},
		{name: "more than the capacity: served once that many are there", pool: tokenPool{Tokens: 0, At: t0}, now: sec(1), n: 6,
			want: tokenPool{Tokens: 0, At: sec(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, wait := tt.pool.take(tt.now, 10, 4, tt.n)
			if wait != tt.wantWait {
				t.Errorf("wait = %v, want %v", wait, tt.wantWait)
			}
			if math.Abs(got.Tokens-tt.want.Tokens) > 1e-9 || !got.At.Equal(tt.want.At) || !got.PausedUntil.Equal(tt.want.PausedUntil) ||
				got.Limit != tt.want.Limit || !got.LimitUntil.Equal(tt.want.LimitUntil) {
				t.Errorf("pool = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestTokenPoolNeverOverspends takes as fast as two skewed clocks allow
// and checks the tokens handed out against rate × time + capacity + skew.
func TestTokenPoolNeverOverspends(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	const rate, capacity, skew = 20.0, 2.0, 300 * time.Millisecond
	var p tokenPool
	taken := 0
	for step := range 20_000 {
		now := t0.Add(time.Duration(step) * time.Millisecond)
		if step%2 == 1 {
			now = now.Add(skew) // the other replica's clock runs ahead
		}
		next, wait := p.take(now, rate, capacity, 1)
		if wait == 0 {
			p = next
			taken++
		}
	}
	elapsed := 20 * time.Second
	bound := rate*(elapsed+skew).Seconds() + capacity
	if float64(taken) > bound {
		t.Fatalf("handed out %d tokens in %s at %v/s, more than %v", taken, elapsed, rate, bound)
	}
	if float64(taken) < rate*elapsed.Seconds()*0.9 {
		t.Fatalf("handed out %d tokens in %s at %v/s: the skew starved the pool", taken, elapsed, rate)
	}
}

func TestTokenPoolPause(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	p := tokenPool{Tokens: 1, At: t0, PausedUntil: t0.Add(time.Second)}
	if _, changed := p.pause(t0.Add(500 * time.Millisecond)); changed {
		t.Fatal("an earlier pause replaced a later one")
	}
	q, changed := p.pause(t0.Add(2 * time.Second))
	if !changed || !q.PausedUntil.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("pause = %+v, %v", q, changed)
	}
}

func TestTokenPoolLimit(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	p := tokenPool{Limit: 5, LimitUntil: t0.Add(time.Minute)}
	if _, changed := p.limit(8, t0.Add(time.Hour), t0); changed {
		t.Fatal("a higher limit replaced a lower one in force")
	}
	if q, changed := p.limit(3, t0.Add(time.Hour), t0); !changed || q.Limit != 3 {
		t.Fatalf("a lower limit: %+v, %v", q, changed)
	}
	if q, changed := p.limit(8, t0.Add(time.Hour), t0.Add(2*time.Minute)); !changed || q.Limit != 8 {
		t.Fatalf("a limit after the last ended: %+v, %v", q, changed)
	}
}

func TestDecodePool(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	p := tokenPool{Tokens: 1.5, At: t0}
	if got := decodePool(p.encode()); got.Tokens != 1.5 || !got.At.Equal(t0) {
		t.Fatalf("round trip = %+v", got)
	}
	for _, junk := range []string{"", "nope", `{"tokens":"x"}`, `[]`} {
		if got := decodePool([]byte(junk)); !got.At.IsZero() {
			t.Fatalf("decodePool(%q) = %+v, want a pool never written", junk, got)
		}
	}
}
