package sim

import (
	"fmt"
	"net/http"
	"time"
)

// DefaultRetryAfter is the Retry-After of injected 429s when Faults.RetryAfter
// is zero.
const DefaultRetryAfter = time.Second

// Faults are the misbehaviours the server injects. The zero value injects
// nothing. Random decisions draw from a source seeded by Options.Seed, so a
// run with one request at a time is reproducible.
type Faults struct {
	// Latency is added to every request before anything else happens.
	Latency time.Duration
	// ErrorRate is the fraction of requests answered 500, in [0, 1].
	ErrorRate float64
	// RateLimitRate is the fraction of requests answered 429, in [0, 1].
	// It is decided before ErrorRate.
	RateLimitRate float64
	// RetryAfter is sent with every injected 429, rounded up to whole
	// seconds; zero means DefaultRetryAfter and a negative value sends 0.
	RetryAfter time.Duration
	// FailPage fails list requests of one page; see FailPage.
	FailPage FailPage
	// TruncateRate is the fraction of list responses whose JSON is cut in
	// half (the HTTP framing stays correct: a broken API, not a broken
	// connection).
	TruncateRate float64
	// HTMLRate is the fraction of list requests answered 502 with an HTML page,
	// as a proxy in front of an API does.
	HTMLRate float64
	// PagesUnderreport lowers the page count list metadata reports by this
	// much (the item total stays true).
	PagesUnderreport int
	// RepeatPageRate is the fraction of list requests for a page N > 1
	// answered with page N-1 instead, byte for byte as that page reads at
	// that moment, its metadata included (so it names page N-1): what a
	// proxy cache that mixes up its keys serves, or an API whose offset is
	// off by one page under load. The status is 200; nothing says it is the
	// wrong page but its content.
	RepeatPageRate float64
	// DriftInserts is how many new items are inserted at the front of a
	// resource after each page of it is served, shifting every later page
	// as a real API does when items are added while a client pages through.
	DriftInserts int
	// ChangesLag keeps a change out of lists filtered by updated_since
	// until this long after its updated_at, as a search index that is
	// eventually consistent does: an item whose newest change is younger
	// is left out of them (the unfiltered list and GET show it at once).
	ChangesLag time.Duration
	// IgnoreChangedSince makes the server ignore updated_since, malformed
	// or not, and answer the unfiltered list: an API without the filter.
	IgnoreChangedSince bool
	// SoftDelete is not a fault but a kind of API: a DELETE, from the API,
	// churn or Delete, stamps the item's deleted_at and keeps it listed and
	// readable; see the package documentation, "Soft deletes". Turning it
	// off later leaves soft-deleted items as they are, still restorable.
	SoftDelete bool
	// Quota is a real rate limit over fixed windows, with its headers on
	// every API answer; see Quota. SetFaults keeps the window in progress
	// while the limit and the window stay the same, and starts afresh when
	// either changes.
	Quota Quota
}

// FailPage fails the list requests of one page of one resource; a zero
// Resource turns it off.
type FailPage struct {
	Resource string
	Page     int
	// Status is the answer; 0 means 500.
	Status int
	// Times is how many of the next requests of that page fail; 0 means all.
	// SetFaults restarts the count.
	Times int
}

func (f Faults) validate() error {
	switch {
	case f.Latency < 0:
		return fmt.Errorf("%w: negative latency %s", ErrInvalid, f.Latency)
	case f.ErrorRate < 0 || f.ErrorRate > 1:
		return fmt.Errorf("%w: error rate %g outside [0, 1]", ErrInvalid, f.ErrorRate)
	case f.RateLimitRate < 0 || f.RateLimitRate > 1:
		return fmt.Errorf("%w: rate-limit rate %g outside [0, 1]", ErrInvalid, f.RateLimitRate)
	case f.TruncateRate < 0 || f.TruncateRate > 1 || f.HTMLRate < 0 || f.HTMLRate > 1:
		return fmt.Errorf("%w: truncate rate %g or HTML rate %g outside [0, 1]", ErrInvalid, f.TruncateRate, f.HTMLRate)
	case f.RepeatPageRate < 0 || f.RepeatPageRate > 1:
		return fmt.Errorf("%w: repeat page rate %g outside [0, 1]", ErrInvalid, f.RepeatPageRate)
	case f.PagesUnderreport < 0:
		return fmt.Errorf("%w: negative pages underreport %d", ErrInvalid, f.PagesUnderreport)
	case f.DriftInserts < 0:
		return fmt.Errorf("%w: negative drift inserts %d", ErrInvalid, f.DriftInserts)
	case f.ChangesLag < 0:
		return fmt.Errorf("%w: negative changes lag %s", ErrInvalid, f.ChangesLag)
	case f.FailPage.Resource != "" && f.FailPage.Page < 1:
		return fmt.Errorf("%w: fail page %d: want >= 1", ErrInvalid, f.FailPage.Page)
	case f.FailPage.Status != 0 && (f.FailPage.Status < 400 || f.FailPage.Status > 599):
		return fmt.Errorf("%w: fail page status %d: want 4xx or 5xx", ErrInvalid, f.FailPage.Status)
	case f.FailPage.Times < 0:
		return fmt.Errorf("%w: negative fail page times %d", ErrInvalid, f.FailPage.Times)
	}
	return f.Quota.validate()
}

// SetFaults replaces the faults in force; requests already past a decision
// are not affected. The error matches ErrInvalid for out-of-range values, and
// then nothing changes.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("setting faults: %w", err)
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.setFaultsLocked(f)
	return nil
}

func (s *Server) setFaultsLocked(f Faults) {
	if f.RetryAfter == 0 {
		f.RetryAfter = DefaultRetryAfter
	}
	if f.FailPage.Status == 0 {
		f.FailPage.Status = http.StatusInternalServerError
	}
	if f.Quota.Limit > 0 && f.Quota.Headers == "" {
		f.Quota.Headers = QuotaHeadersIETF
	}
	if old := s.faults.Quota; old.Limit != f.Quota.Limit || old.Window != f.Quota.Window {
		s.quota = quotaState{}
	}
	s.faults = f
	s.failLeft = f.FailPage.Times
}

// Faults returns the faults in force, with defaults filled in.
func (s *Server) Faults() Faults {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults
}

// injected decides whether this request gets a random 429 or 500; status 0
// means neither.
func (s *Server) injected() (status int, retryAfter time.Duration) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	f := s.faults
	if f.RateLimitRate > 0 && s.faultRnd.Float64() < f.RateLimitRate {
		return http.StatusTooManyRequests, f.RetryAfter
	}
	if f.ErrorRate > 0 && s.faultRnd.Float64() < f.ErrorRate {
		return http.StatusInternalServerError, 0
	}
	return 0, 0
}

// failPage decides whether a valid list request of page fails; status 0
// means it does not. It also returns the drift to apply if it is served.
func (s *Server) failPage(resource string, page int) (status int, retryAfter time.Duration, drift int) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	fp := s.faults.FailPage
	if fp.Resource != "" && fp.Resource == resource && fp.Page == page {
		if fp.Times == 0 {
			return fp.Status, s.faults.RetryAfter, 0
		}
		if s.failLeft > 0 {
			s.failLeft--
			return fp.Status, s.faults.RetryAfter, 0
		}
	}
	return 0, 0, s.faults.DriftInserts
}

// chance draws a fault decision with probability rate.
func (s *Server) chance(rate float64) bool {
	if rate <= 0 {
		return false
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faultRnd.Float64() < rate
}

func (s *Server) latency() time.Duration {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faults.Latency
}
