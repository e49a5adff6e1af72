package rockety

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxRetryAfter is ROCKETY_MAX_RETRY_AFTER's default: a longer wait
// the API asks for (Retry-After, a rate-limit reset) is cut to it.
const DefaultMaxRetryAfter = 5 * time.Minute

// unixSecondsFloor tells a reset given as a Unix time from one given as
// seconds to wait: no API asks to wait 31 years, and no reset lies before
// 2001.
const unixSecondsFloor = 1_000_000_000

// RateLimitWait reads the rate-limit headers of a response and says how
// long every request of the token must wait: until the reset when the
// remaining budget is 0, nothing otherwise. It knows the IETF draft's
// RateLimit (r=<remaining>, t=<seconds>, or the older remaining= and
// reset= keys), RateLimit-Remaining with RateLimit-Reset, and
// X-RateLimit-Remaining with X-RateLimit-Reset; a reset is seconds to wait
// or a Unix time (seconds, or milliseconds). A reset in the past, or
// headers that say nothing readable, are no wait.
func RateLimitWait(h http.Header, now time.Time) (time.Duration, bool) {
	remaining, resetIn, ok := RateLimitState(h, now)
	if !ok || remaining > 0 {
		return 0, false
	}
	return resetIn, true
}

// RateLimitState reads what the rate-limit headers say of the budget: the
// requests it has left, and the time until it is renewed (more than 0).
// ok is false without readable headers, or with a reset in the past.
func RateLimitState(h http.Header, now time.Time) (remaining int64, resetIn time.Duration, ok bool) {
	if v := h.Get("RateLimit"); v != "" {
		params := structuredParams(v)
		remaining, okR := firstOf(params, "r", "remaining")
		reset, okT := firstOf(params, "t", "reset")
		if okR && okT {
			return stateOf(remaining, reset, now)
		}
	}
	for _, prefix := range []string{"RateLimit-", "X-RateLimit-"} {
		remaining, okR := parseNumber(h.Get(prefix + "Remaining"))
		reset, okT := parseNumber(h.Get(prefix + "Reset"))
		if okR && okT {
			return stateOf(remaining, reset, now)
		}
	}
	return 0, 0, false
}

func stateOf(remaining, reset int64, now time.Time) (int64, time.Duration, bool) {
	if reset < 0 || remaining < 0 {
		return 0, 0, false
	}
	var wait time.Duration
	switch {
	case reset >= unixSecondsFloor*1000:
		wait = time.UnixMilli(reset).Sub(now)
	case reset >= unixSecondsFloor:
		wait = time.Unix(reset, 0).Sub(now)
	default:
		// A day is already absurd; more would overflow a Duration.
		wait = time.Duration(min(reset, int64(24*time.Hour/time.Second))) * time.Second
	}
	if wait <= 0 {
		return 0, 0, false
	}
	return remaining, wait, true
}

// structuredParams reads "r=0, t=5" or "limit=100, remaining=0; reset=5"
// into a map; unknown or malformed members are left out.
func structuredParams(v string) map[string]int64 {
	out := map[string]int64{}
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		if n, ok := parseNumber(strings.Trim(val, `"`)); ok {
			out[strings.ToLower(strings.TrimSpace(key))] = n
		}
	}
	return out
}

func firstOf(m map[string]int64, keys ...string) (int64, bool) {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v, true
		}
	}
	return 0, false
}

func parseNumber(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		// Some APIs send a fraction of a second.
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || !(f >= 0 && f <= 1e15) {
			return 0, false
		}
		n = int64(math.Ceil(f))
	}
	return n, true
}

// HasRateLimitHeaders reports whether a response carries any of the
// rate-limit headers RateLimitWait reads: an API that sends them says when
// its budget is spent, so its quota need not be guessed from a 429.
func HasRateLimitHeaders(h http.Header) bool {
	for _, k := range []string{"RateLimit", "RateLimit-Remaining", "X-RateLimit-Remaining"} {
		if h.Get(k) != "" {
			return true
		}
	}
	return false
}

// Learning a quota from a 429: the least evidence, and the margin kept
// below what the API showed it accepts.
const (
	minLearnAccepted = 10
	minLearnWindow   = time.Second
	learnMargin      = 0.9
	// LearnedRateFor is how long a learned rate holds without another
	// 429: the quota may be raised, or another integration sharing it
	// stop, and a real quota costs one 429 per this time to find again.
	LearnedRateFor = 10 * time.Minute
)

// LearnedRate is the request rate an API without rate-limit headers
// showed when it refused a request for its quota: it accepted accepted
// requests from windowStart until the 429, whose Retry-After ends the
// window at windowEnd. That is its quota per window; the rate returned
// keeps a margin below it. ok is false when there is too little evidence
// (a handful of requests, or a window under a second): a stray 429 must
// not throttle the bridge.
func LearnedRate(accepted int, windowStart, windowEnd time.Time) (perSecond float64, ok bool) {
	window := windowEnd.Sub(windowStart)
	if accepted < minLearnAccepted || window < minLearnWindow {
		return 0, false
	}
	return learnMargin * float64(accepted) / window.Seconds(), true
}
