package sim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// QuotaHeaders is the style of the rate-limit headers a Quota sends.
type QuotaHeaders string

const (
	// QuotaHeadersIETF sends "RateLimit: r=<remaining>, t=<seconds to
	// reset>" and "RateLimit-Policy: <limit>;w=<window seconds>", as the
	// IETF draft does. It is the default when a quota is set.
	QuotaHeadersIETF QuotaHeaders = "ietf"
	// QuotaHeadersX sends X-RateLimit-Limit, X-RateLimit-Remaining and
	// X-RateLimit-Reset, the reset a Unix time in seconds, as GitHub does.
	QuotaHeadersX QuotaHeaders = "x"
	// QuotaHeadersNone sends no rate-limit header: a client learns of the
	// quota only from the 429 and its Retry-After.
	QuotaHeadersNone QuotaHeaders = "none"
)

// Quota is a real rate limit: Limit API requests per Window, for the one
// token the server has. Windows are fixed and not aligned to the clock: one
// starts at the first request after the previous one ended (or after the
// quota was set), and lasts Window. A request beyond Limit in a window is
// answered 429 with Retry-After the seconds until the window ends, rounded
// up, and changes nothing. Every API request that passes auth counts,
// whatever its answer; admin requests do not. A zero Limit turns it off.
type Quota struct {
	Limit int
	// Window is a whole number of seconds, so that the headers, which
	// speak in seconds, tell the truth.
	Window time.Duration
	// Headers is the style of the headers every API answer carries while
	// the quota is on; empty means QuotaHeadersIETF.
	Headers QuotaHeaders
}

// String returns the form ParseQuota reads, "100/10s", or "0" when off.
func (q Quota) String() string {
	if q.Limit == 0 {
		return "0"
	}
	return strconv.Itoa(q.Limit) + "/" + q.Window.String()
}

// ParseQuota reads a quota as rockety-sim's -quota flag gives it: N/D, N
// requests per window D, a Go duration of whole seconds ("100/10s",
// "5000/1h"). Empty, "0" and a zero N mean no quota. The error matches
// ErrInvalid.
func ParseQuota(s string) (Quota, error) {
	if s == "" || s == "0" {
		return Quota{}, nil
	}
	ns, ds, ok := strings.Cut(s, "/")
	if !ok {
		return Quota{}, fmt.Errorf("%w: quota %q: want N/D, such as 100/10s", ErrInvalid, s)
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 0 {
		return Quota{}, fmt.Errorf("%w: quota %q: requests %q: want a whole number >= 0", ErrInvalid, s, ns)
	}
	d, err := time.ParseDuration(ds)
	if err != nil {
		return Quota{}, fmt.Errorf("%w: quota %q: window %q: want a duration such as 10s", ErrInvalid, s, ds)
	}
	if n == 0 {
		return Quota{}, nil
	}
	if !wholeSeconds(d) {
		return Quota{}, fmt.Errorf("%w: quota %q: window %s: want a whole number of seconds >= 1s", ErrInvalid, s, d)
	}
	return Quota{Limit: n, Window: d}, nil
}

// ParseQuotaHeaders turns "ietf", "x" or "none" into a QuotaHeaders; empty
// is QuotaHeadersIETF.
func ParseQuotaHeaders(s string) (QuotaHeaders, error) {
	switch h := QuotaHeaders(s); h {
	case "", QuotaHeadersIETF:
		return QuotaHeadersIETF, nil
	case QuotaHeadersX, QuotaHeadersNone:
		return h, nil
	}
	return "", fmt.Errorf("%w: rate-limit headers %q: want ietf, x or none", ErrInvalid, s)
}

func (q Quota) validate() error {
	if _, err := ParseQuotaHeaders(string(q.Headers)); err != nil {
		return err
	}
	switch {
	case q.Limit < 0:
		return fmt.Errorf("%w: negative quota limit %d", ErrInvalid, q.Limit)
	case q.Limit == 0:
		return nil
	case !wholeSeconds(q.Window):
		return fmt.Errorf("%w: quota window %s: want a whole number of seconds >= 1s", ErrInvalid, q.Window)
	}
	return nil
}

func wholeSeconds(d time.Duration) bool { return d >= time.Second && d%time.Second == 0 }

// quotaState is where the current window stands; the server guards it with
// faultMu.
type quotaState struct {
	start time.Time // zero: no window open
	used  int
}

// quotaDecision is what the quota says of one request.
type quotaDecision struct {
	on        bool
	refused   bool
	limit     int
	window    time.Duration
	headers   QuotaHeaders
	remaining int
	reset     time.Time // the end of the window
	resetIn   time.Duration
}

// takeQuota counts one API request against the quota.
func (s *Server) takeQuota() quotaDecision {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	q := s.faults.Quota
	if q.Limit == 0 {
		return quotaDecision{}
	}
	now := s.clock()
	st := &s.quota
	// A clock that went back before the window opened starts a new one, so
	// that no wait is ever longer than the window.
	if st.start.IsZero() || now.Before(st.start) || !now.Before(st.start.Add(q.Window)) {
		st.start, st.used = now, 0
	}
	d := quotaDecision{on: true, limit: q.Limit, window: q.Window, headers: q.Headers}
	d.reset = st.start.Add(q.Window)
	d.resetIn = d.reset.Sub(now)
	if st.used >= q.Limit {
		d.refused = true
		return d
	}
	st.used++
	d.remaining = q.Limit - st.used
	return d
}

// ceilSeconds rounds up to whole seconds, so a client that waits that long
// is never early.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// setHeaders writes the quota's headers in its style.
func (d quotaDecision) setHeaders(h http.Header) {
	switch d.headers {
	case QuotaHeadersNone:
	case QuotaHeadersX:
		h.Set("X-RateLimit-Limit", strconv.Itoa(d.limit))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(d.remaining))
		reset := d.reset.Unix()
		if d.reset.After(time.Unix(reset, 0)) {
			reset++
		}
		h.Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
	default:
		h.Set("RateLimit", "r="+strconv.Itoa(d.remaining)+", t="+strconv.FormatInt(ceilSeconds(d.resetIn), 10))
		h.Set("RateLimit-Policy", strconv.Itoa(d.limit)+";w="+strconv.FormatInt(ceilSeconds(d.window), 10))
	}
}
