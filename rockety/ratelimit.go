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
	if v := h.Get("RateLimit"); v != "" {
		params := structuredParams(v)
		remaining, okR := firstOf(params, "r", "remaining")
		reset, okT := firstOf(params, "t", "reset")
		if okR && okT {
			return waitFor(remaining, reset, now)
		}
	}
	for _, prefix := range []string{"RateLimit-", "X-RateLimit-"} {
		remaining, okR := parseNumber(h.Get(prefix + "Remaining"))
		reset, okT := parseNumber(h.Get(prefix + "Reset"))
		if okR && okT {
			return waitFor(remaining, reset, now)
		}
	}
	return 0, false
}

func waitFor(remaining, reset int64, now time.Time) (time.Duration, bool) {
	if remaining > 0 || reset < 0 {
		return 0, false
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
		return 0, false
	}
	return wait, true
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
