package publisher

import (
	"encoding/json"
	"math"
	"time"
)

// tokenPool is a token bucket that carries its own clock: At only moves
// forward, to the latest clock of any replica that took from it, so the
// tokens it ever hands out are bounded by the rate times real time, plus
// the capacity and the largest clock skew once; never the skew per take.
type tokenPool struct {
	Tokens float64   `json:"tokens"`
	At     time.Time `json:"at"`
	// PausedUntil holds every replica: the API said its budget is spent.
	PausedUntil time.Time `json:"paused_until,omitzero"`
	// Limit, until LimitUntil, is a lower rate than the configured one
	// that the API showed (rockety.Budget.Learn).
	Limit      float64   `json:"limit,omitempty"`
	LimitUntil time.Time `json:"limit_until,omitzero"`
}

// maxPoolLead is how far ahead of a replica's clock the pool's may be
// before it is taken for a broken record, not a skewed clock.
const maxPoolLead = 10 * time.Second

// take takes n tokens at now, at rate per second, from a pool holding at
// most capacity. It returns the pool after the take, or, when the tokens
// are not there yet, the pool unchanged and how long to wait for them.
//
//	pool                        → result
//	never written (zero At)     → full, then taken
//	At ≤ now                    → refilled for now−At, up to capacity
//	At > now (this clock late)  → no refill; a wait includes the lead
//	At > now + maxPoolLead      → broken: reset to empty at now
//	Tokens NaN, ±Inf, < 0       → broken: reset to empty at now
//	paused until after now      → wait for the pause
//	a lower limit until later   → refilled at the limit
//	a limit that has ended      → refilled at rate, the limit dropped
//	n > capacity                → capacity counts as n (never waits for ever)
func (p tokenPool) take(now time.Time, rate, capacity float64, n int) (tokenPool, time.Duration) {
	want := float64(n)
	capacity = max(capacity, want)
	switch {
	case p.At.IsZero():
		p = tokenPool{Tokens: capacity, At: now, PausedUntil: p.PausedUntil, Limit: p.Limit, LimitUntil: p.LimitUntil}
	case math.IsNaN(p.Tokens) || math.IsInf(p.Tokens, 0) || p.Tokens < 0 || p.At.After(now.Add(maxPoolLead)):
		p = tokenPool{At: now, PausedUntil: p.PausedUntil, Limit: p.Limit, LimitUntil: p.LimitUntil}
	}
	if now.Before(p.PausedUntil) {
		return p, p.PausedUntil.Sub(now)
	}
	var limit float64
	var limitUntil time.Time
	if p.Limit > 0 && now.Before(p.LimitUntil) {
		limit, limitUntil = p.Limit, p.LimitUntil
		rate = min(rate, p.Limit)
	}
	at := p.At
	if now.After(at) {
		at = now
	}
	tokens := min(capacity, p.Tokens+rate*at.Sub(p.At).Seconds())
	if tokens >= want {
		return tokenPool{Tokens: tokens - want, At: at, Limit: limit, LimitUntil: limitUntil}, 0
	}
	wait := at.Sub(now) + time.Duration(math.Ceil((want-tokens)/rate*float64(time.Second)))
	return p, wait
}

// pause makes the pool hold every replica until until, if that is later.
func (p tokenPool) pause(until time.Time) (tokenPool, bool) {
	if !until.After(p.PausedUntil) {
		return p, false
	}
	p.PausedUntil = until
	return p, true
}

// limit lowers the pool's rate to perSecond until until, unless a lower
// limit is in force at now.
func (p tokenPool) limit(perSecond float64, until, now time.Time) (tokenPool, bool) {
	if p.Limit > 0 && now.Before(p.LimitUntil) && p.Limit <= perSecond {
		return p, false
	}
	p.Limit, p.LimitUntil = perSecond, until
	return p, true
}

// decodePool reads a pool record; anything unreadable is a pool never
// written, which take fills: one burst at worst, never a stall.
func decodePool(data []byte) tokenPool {
	var p tokenPool
	if json.Unmarshal(data, &p) != nil {
		return tokenPool{}
	}
	return p
}

func (p tokenPool) encode() []byte {
	data, _ := json.Marshal(p) // a struct of a float and times
	return data
}
