// Package rockety is a client for the Rockety REST API: bearer auth, list
// traversal with parallel page fetching and guards against pagination that
// never ends, retries with backoff, a client-wide rate limit and typed errors.
//
// The token never appears in an error, and errors say what to do:
//
//	c, err := rockety.New("https://app.rockety.io/api/v1", rockety.WithToken(token))
//	for page, err := range c.Pages(ctx, "tasks") {
//		if err != nil {
//			return err // e.g. errors.Is(err, rockety.ErrUnauthorized)
//		}
//		for _, item := range page.Items {
//			task, _ := rockety.DecodeItem[rockety.Task](item)
//			_ = task
//		}
//	}
package rockety

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Defaults, chosen for the public API's documented limits.
const (
	DefaultPageSize        = 100
	DefaultPageConcurrency = 4
	DefaultMaxPages        = 100_000
	DefaultMaxBodyBytes    = 32 << 20
	DefaultRequestTimeout  = 30 * time.Second
	DefaultRetryMaxElapsed = 2 * time.Minute
	// MaxPageSize is the per_page asked for by WithMaxPageSize: more than
	// any API we know grants, so the answer is the API's own limit.
	MaxPageSize = 10_000
)

// Client talks to one Rockety API with one token. It is safe for concurrent
// use; its rate limit and any pause a 429 asks for apply to all its requests,
// because the API's limits are per organisation token.
type Client struct {
	base      *url.URL
	basePath  string
	token     func() (string, error)
	http      *http.Client
	userAgent string
	budget    *Budget

	pageSize int
	// pageSizeGranted: the API decides the page size (WithMaxPageSize).
	pageSizeGranted bool
	pageConcurrency int
	maxPages        int
	maxBodyBytes    int64
	requestTimeout  time.Duration
	retryInitial    time.Duration
	retryMax        time.Duration
	retryMaxElapsed time.Duration
	observer        Observer
	allowInsecure   bool
	maxRetryAfter   time.Duration

	pauseUntil atomic.Int64 // unix nanoseconds; requests wait until then

	// The requests the API accepted since the first one sent after the
	// last pause: the evidence a 429 without rate-limit headers is read
	// against (LearnedRate).
	windowMu    sync.Mutex
	windowStart time.Time
	accepted    int
	// left is what the API's headers last said it will still take before
	// resetAt, less the requests in flight then and sent since; -1 when
	// no header said. Requests wait for the reset rather than spend
	// past it: with pages fetched in parallel, waiting for a remaining of
	// 0 would send the requests already in flight to a 429.
	left    int64
	resetAt time.Time
	// sent numbers the requests; inFlight holds the numbers of those
	// not answered yet.
	sent     uint64
	inFlight map[uint64]struct{}
	probing  bool
	// quotaNews is closed, and replaced, at every answer.
	quotaNews chan struct{}
	now       func() time.Time
}

// Observer receives one call per HTTP attempt, for metrics. It must be fast
// and safe for concurrent use.
type Observer interface {
	ObserveRequest(RequestInfo)
}

// RequestInfo describes one HTTP attempt.
type RequestInfo struct {
	Method   string
	Resource string
	// Status is the HTTP status, or 0 when no response arrived.
	Status   int
	Attempt  int // 1 for the first try
	Duration time.Duration
	// Pause is how long the answer holds every request of the client:
	// its Retry-After (a 429), or its rate-limit headers' reset when the
	// remaining budget is 0; 0 for none. PauseAsked is what the API asked
	// for when that was longer than the cap (WithMaxRetryAfter), else 0.
	Pause, PauseAsked time.Duration
	// Lane is the request's lane (WithLane), and BudgetWait how long it
	// waited for its turn in the budget before it was sent.
	Lane       Lane
	BudgetWait time.Duration
	// Learned is the rate the budget was lowered to because this answer
	// was a 429 from an API without rate-limit headers (LearnedRate), or 0.
	Learned float64
}

// Option configures a Client. An invalid value is reported by New, wrapped in
// ErrInvalidOption.
type Option func(*Client) error

// WithToken sets a fixed bearer token.
func WithToken(token string) Option {
	return func(c *Client) error {
		token = strings.TrimSpace(token)
		if token == "" {
			return fmt.Errorf("%w: the API token is empty; set ROCKETY_API_TOKEN or ROCKETY_API_TOKEN_FILE", ErrInvalidOption)
		}
		c.token = func() (string, error) { return token, nil }
		return nil
	}
}

// WithTokenFunc takes the token from fn before every request, so a rotated
// token (a Kubernetes secret file, say) is used without a restart. fn must be
// cheap and safe for concurrent use.
func WithTokenFunc(fn func() (string, error)) Option {
	return func(c *Client) error {
		if fn == nil {
			return fmt.Errorf("%w: nil token function", ErrInvalidOption)
		}
		c.token = fn
		return nil
	}
}

// WithAllowInsecure permits an http:// base URL (ROCKETY_ALLOW_INSECURE).
func WithAllowInsecure(allow bool) Option {
	return func(c *Client) error { c.allowInsecure = allow; return nil }
}

// WithHTTPClient replaces the HTTP client. Its Timeout should be zero: the
// client applies its own per-request timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return fmt.Errorf("%w: nil HTTP client", ErrInvalidOption)
		}
		c.http = hc
		return nil
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) error { c.userAgent = ua; return nil }
}

// WithRateLimit caps requests per second across the whole client; 0 means
// unlimited (ROCKETY_RATE_LIMIT).
func WithRateLimit(perSecond float64) Option {
	return func(c *Client) error {
		if perSecond < 0 {
			return fmt.Errorf("%w: rate limit %v: must be 0 (unlimited) or more", ErrInvalidOption, perSecond)
		}
		if perSecond == 0 {
			c.budget = nil
			return nil
		}
		c.budget = NewBudget(perSecond)
		return nil
	}
}

// WithBudget makes the client take its turns from b, a budget that other
// clients may share; nil means unlimited.
func WithBudget(b *Budget) Option {
	return func(c *Client) error { c.budget = b; return nil }
}

// Budget is the client's API budget, or nil when it is unlimited.
func (c *Client) Budget() *Budget { return c.budget }

// WithPageSize sets per_page for list requests (ROCKETY_PAGE_SIZE).
func WithPageSize(n int) Option {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("%w: page size %d: must be at least 1", ErrInvalidOption, n)
		}
		c.pageSize = n
		c.pageSizeGranted = false
		return nil
	}
}

// WithMaxPageSize asks for the largest page the API grants
// (ROCKETY_PAGE_SIZE=max): per_page=MaxPageSize, and the page size the API
// answers with is the one that counts. With metadata that is its per_page;
// without, the length of a first page shorter than asked for, so a short
// page no longer ends the traversal by itself.
func WithMaxPageSize() Option {
	return func(c *Client) error {
		c.pageSize = MaxPageSize
		c.pageSizeGranted = true
		return nil
	}
}

// WithPageConcurrency sets how many pages are fetched at once once the first
// page has told how many there are (ROCKETY_PAGE_CONCURRENCY).
func WithPageConcurrency(n int) Option {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("%w: page concurrency %d: must be at least 1", ErrInvalidOption, n)
		}
		c.pageConcurrency = n
		return nil
	}
}

// WithMaxPages sets the hard limit on pages in one traversal.
func WithMaxPages(n int) Option {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("%w: max pages %d: must be at least 1", ErrInvalidOption, n)
		}
		c.maxPages = n
		return nil
	}
}

// WithMaxBodyBytes caps the size of a response body.
func WithMaxBodyBytes(n int64) Option {
	return func(c *Client) error {
		if n < 1 {
			return fmt.Errorf("%w: max body bytes %d: must be at least 1", ErrInvalidOption, n)
		}
		c.maxBodyBytes = n
		return nil
	}
}

// WithRequestTimeout bounds each HTTP attempt.
func WithRequestTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("%w: request timeout %s: must be positive", ErrInvalidOption, d)
		}
		c.requestTimeout = d
		return nil
	}
}

// WithRetry sets the exponential backoff between attempts: the first wait,
// the longest wait, and the time after which a request gives up. A
// maxElapsed of zero disables retries.
func WithRetry(initial, maxInterval, maxElapsed time.Duration) Option {
	return func(c *Client) error {
		if initial <= 0 || maxInterval < initial || maxElapsed < 0 {
			return fmt.Errorf("%w: retry %s/%s/%s: want 0 < initial <= max interval and max elapsed >= 0",
				ErrInvalidOption, initial, maxInterval, maxElapsed)
		}
		c.retryInitial, c.retryMax, c.retryMaxElapsed = initial, maxInterval, maxElapsed
		return nil
	}
}

// WithMaxRetryAfter caps a wait the API asks for, by Retry-After or a
// rate-limit reset (ROCKETY_MAX_RETRY_AFTER); DefaultMaxRetryAfter
// otherwise. An hour-long Retry-After from a confused proxy would
// otherwise stop the bridge for an hour.
func WithMaxRetryAfter(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("%w: max retry-after %s: must be positive", ErrInvalidOption, d)
		}
		c.maxRetryAfter = d
		return nil
	}
}

// WithObserver reports every HTTP attempt to o.
func WithObserver(o Observer) Option {
	return func(c *Client) error { c.observer = o; return nil }
}

// New returns a client for the API at baseURL, e.g.
// "https://app.rockety.io/api/v1". A token option is required.
func New(baseURL string, opts ...Option) (*Client, error) {
	c := &Client{
		http:            &http.Client{Transport: defaultTransport()},
		userAgent:       "rockety-bridge/" + moduleVersion(),
		pageSize:        DefaultPageSize,
		maxRetryAfter:   DefaultMaxRetryAfter,
		pageConcurrency: DefaultPageConcurrency,
		maxPages:        DefaultMaxPages,
		maxBodyBytes:    DefaultMaxBodyBytes,
		requestTimeout:  DefaultRequestTimeout,
		retryInitial:    250 * time.Millisecond,
		retryMax:        15 * time.Second,
		retryMaxElapsed: DefaultRetryMaxElapsed,
		now:             time.Now,
	}
	for _, opt := range opts {
		if err := opt(c); err != nil {
			return nil, err
		}
	}
	if c.token == nil {
		return nil, fmt.Errorf("%w: no API token; set ROCKETY_API_TOKEN or ROCKETY_API_TOKEN_FILE", ErrInvalidOption)
	}
	u, err := ParseBaseURL(baseURL, c.allowInsecure)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	c.base = u
	c.basePath = u.Path
	c.left, c.quotaNews, c.inFlight = quotaUnknown, make(chan struct{}), map[uint64]struct{}{}
	return c, nil
}

// ParseBaseURL is the one rule for ROCKETY_API_URL: an absolute https://
// URL without credentials, query or fragment; http:// only when
// allowInsecure (ROCKETY_ALLOW_INSECURE). Errors name the variable and
// never contain a secret.
func ParseBaseURL(raw string, allowInsecure bool) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return nil, fmt.Errorf("ROCKETY_API_URL %q: want an absolute https:// URL such as https://app.rockety.io/api/v1", RedactURL(raw))
	case u.User != nil:
		return nil, errors.New("ROCKETY_API_URL must not contain credentials; put the token in ROCKETY_API_TOKEN")
	case u.Scheme == "http" && !allowInsecure:
		return nil, fmt.Errorf("ROCKETY_API_URL %s uses http://, which would send the token in clear text; use https:// or set ROCKETY_ALLOW_INSECURE=true", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("ROCKETY_API_URL %s: must not have a query or fragment", u.Redacted())
	}
	return u, nil
}

// BaseURL is the API base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base.String() }

func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Parallel page fetching keeps several connections busy to one host.
	t.MaxIdleConnsPerHost = 32
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	return t
}

// moduleVersion is the bridge's version as the Go toolchain recorded it.
func moduleVersion() string {
	const self = "github.com/rockety-io/rockety-bridge"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if info.Main.Path == self && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	for _, d := range info.Deps {
		if d.Path == self {
			return d.Version
		}
	}
	return "dev"
}

// RedactURL hides credentials in a URL, even in one that does not parse,
// so a broken setting cannot leak a secret into an error or a log line.
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	if at := strings.LastIndex(s, "@"); at >= 0 {
		if scheme := strings.Index(s, "://"); scheme >= 0 && scheme < at {
			return s[:scheme+3] + "xxxxx" + s[at:]
		}
		return "xxxxx" + s[at:]
	}
	return s
}

var resourceName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func checkResource(resource string) error {
	if !resourceName.MatchString(resource) {
		return fmt.Errorf("%w: resource name %q: want letters, digits, '_' or '-' (a list endpoint such as tasks)",
			ErrInvalidOption, resource)
	}
	return nil
}

// call is one logical request, retried as a whole.
type call struct {
	method   string
	resource string
	path     string // relative to the base URL, with the query
	body     []byte
	// ok lists the statuses that are success for this call.
	ok func(int) bool
}

// response is a successful answer, its body fully read.
type response struct {
	status int
	body   []byte
}

// do runs c with retries. Only transient failures are retried, and a POST
// only when it provably never reached the server (it could otherwise create
// a second item).
func (c *Client) do(ctx context.Context, req call) (response, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = c.retryInitial
	b.MaxInterval = c.retryMax
	b.MaxElapsedTime = c.retryMaxElapsed
	b.RandomizationFactor = 0.5
	b.Reset()
	for attempt := 1; ; attempt++ {
		resp, reached, err := c.attempt(ctx, req, attempt)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return response{}, fmt.Errorf("rockety: %s %s: %w", req.method, req.path, context.Cause(ctx))
		}
		retry := errors.Is(err, ErrTransient) && (req.method != http.MethodPost || !reached || errors.Is(err, ErrRateLimited))
		if !retry || c.retryMaxElapsed == 0 {
			return response{}, err
		}
		wait := b.NextBackOff()
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.RetryAfter > wait && wait != backoff.Stop {
			wait = apiErr.RetryAfter
			if b.GetElapsedTime()+wait > c.retryMaxElapsed {
				wait = backoff.Stop
			}
		}
		if wait == backoff.Stop {
			return response{}, fmt.Errorf("%w (gave up after %d attempts in %s)", err, attempt, b.GetElapsedTime().Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return response{}, fmt.Errorf("rockety: %s %s: %w (last error: %w)", req.method, req.path, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// attempt makes one HTTP request. reached reports whether the request may
// have got to the server.
func (c *Client) attempt(ctx context.Context, req call, n int) (resp response, reached bool, err error) {
	lane := LaneOf(ctx)
	waited, err := c.waitTurn(ctx, lane)
	if err != nil {
		return response{}, false, fmt.Errorf("rockety: %s %s: %w", req.method, req.path, err)
	}
	token, err := c.token()
	if err != nil {
		// The error comes from our own token source (a file read, say) and
		// names the file, never its content.
		return response{}, false, fmt.Errorf("rockety: reading the API token: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.requestTimeout)
	defer cancel()
	var gotConn atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }})

	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, c.base.String()+req.path, body)
	if err != nil {
		return response{}, false, fmt.Errorf("rockety: %s %s: building request: %w", req.method, req.path, err)
	}
	hreq.Header.Set("Authorization", "Bearer "+strings.TrimSpace(token))
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", c.userAgent)
	if req.body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}

	seq, err := c.takeQuota(ctx)
	if err != nil {
		return response{}, false, fmt.Errorf("rockety: %s %s: %w", req.method, req.path, err)
	}
	start := c.now()
	hresp, err := c.http.Do(hreq)
	c.answered(seq, hresp)
	if err != nil {
		c.observe(req, 0, n, start, 0, 0, lane, waited, 0)
		return response{}, gotConn.Load(), c.transportError(req, err)
	}
	defer closeBody(hresp.Body)
	data, err := readBody(hresp.Body, hresp.ContentLength, c.maxBodyBytes)
	pause, asked, learned := c.pauseFor(hresp)
	c.observe(req, hresp.StatusCode, n, start, pause, asked, lane, waited, learned)
	if errors.Is(err, errBodyTooLarge) {
		return response{}, true, fmt.Errorf("rockety: %s %s: the response is larger than %d bytes; lower ROCKETY_PAGE_SIZE: %w",
			req.method, req.path, c.maxBodyBytes, ErrDecode)
	}
	if err != nil {
		// A body cut short is a network failure, not a bad answer.
		return response{}, true, c.transportError(req, err)
	}
	if req.ok(hresp.StatusCode) {
		return response{status: hresp.StatusCode, body: data}, true, nil
	}
	apiErr := newAPIError(req.method, req.path, hresp, data, c.now())
	apiErr.Message = strings.ReplaceAll(apiErr.Message, strings.TrimSpace(token), "[redacted]")
	apiErr.RetryAfter = min(apiErr.RetryAfter, c.maxRetryAfter)
	return response{}, true, apiErr
}

// takeQuota waits, when the API's headers said its budget is spent by the
// requests in flight and sent since, until the reset; then it counts the
// request as sent. After a reset one request goes alone, and its answer
// says how much the new window has.
func (c *Client) takeQuota(ctx context.Context) (seq uint64, err error) {
	for {
		c.windowMu.Lock()
		now := c.now()
		if c.left >= 0 && !now.Before(c.resetAt) {
			c.left = quotaRenewed
		}
		var wait <-chan time.Time
		var timer *time.Timer
		switch {
		case c.left == quotaUnknown || c.left > 0:
			if c.left > 0 {
				c.left--
			}
			seq = c.sendLocked()
			c.windowMu.Unlock()
			return seq, nil
		case c.left == quotaRenewed && !c.probing:
			c.probing = true
			seq = c.sendLocked()
			c.windowMu.Unlock()
			return seq, nil
		case c.left == 0:
			timer = time.NewTimer(c.resetAt.Sub(now))
			wait = timer.C
		}
		news := c.quotaNews
		c.windowMu.Unlock()
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return 0, context.Cause(ctx)
		case <-wait:
		case <-news:
			if timer != nil {
				timer.Stop()
			}
		}
	}
}

// What c.left holds when no header has said what is left.
const (
	quotaUnknown = -1 // never said: requests go as the budget lets them
	quotaRenewed = -2 // a window ended: one request goes to learn the new one
)

// sendLocked counts a request as sent; the first after a pause opens the
// window a 429 is read against.
func (c *Client) sendLocked() uint64 {
	if c.windowStart.IsZero() {
		c.windowStart = c.now()
	}
	c.sent++
	c.inFlight[c.sent] = struct{}{}
	return c.sent
}

// answered counts request seq as no longer in flight and reads what its
// answer, if any, says of the budget left.
func (c *Client) answered(seq uint64, hresp *http.Response) {
	now := c.now()
	c.windowMu.Lock()
	defer c.windowMu.Unlock()
	delete(c.inFlight, seq)
	defer func() {
		// Wake the requests waiting for news of the quota.
		close(c.quotaNews)
		c.quotaNews = make(chan struct{})
	}()
	if c.left == quotaRenewed {
		c.probing = false
	}
	var remaining int64
	var resetIn time.Duration
	ok := hresp != nil
	if ok {
		remaining, resetIn, ok = RateLimitState(hresp.Header, now)
	}
	if !ok {
		if c.left == quotaRenewed {
			c.left = quotaUnknown // the API stopped saying
		}
		return
	}
	// The API counted the requests it answered before this one: those
	// sent earlier, as a rule. Those sent later and still unanswered it
	// may not have counted yet.
	var later int64
	for q := range c.inFlight {
		if q > seq {
			later++
		}
	}
	left := max(0, remaining-later)
	if c.left >= 0 && now.Before(c.resetAt) {
		// An answer overtaken by a later one says more is left than is.
		c.left = min(c.left, left)
		return
	}
	c.left, c.resetAt = left, now.Add(min(resetIn, c.maxRetryAfter))
}

// pauseFor holds every request of the client as the answer asks: the API's
// limit is per token, so one answer speaks for all requests. It returns
// the pause, and what the API asked for when the cap cut it.
//
// A 429 with a Retry-After from an API that sends no rate-limit headers
// also lowers the budget to the quota it showed (LearnedRate), so the
// next windows are paced below it rather than refused once each.
func (c *Client) pauseFor(hresp *http.Response) (pause, asked time.Duration, learned float64) {
	now := c.now()
	refused := hresp.StatusCode == http.StatusTooManyRequests
	var retryAfter time.Duration
	if refused {
		if ra, ok := ParseRetryAfter(hresp.Header.Get("Retry-After"), now); ok {
			asked, retryAfter = ra, ra
		}
	}
	if w, ok := RateLimitWait(hresp.Header, now); ok {
		asked = max(asked, w)
	}
	c.windowMu.Lock()
	if !refused {
		c.accepted++
	}
	accepted, windowStart := c.accepted, c.windowStart
	if asked > 0 {
		// The API's window ends with the pause; the next begins after it.
		c.windowStart, c.accepted = time.Time{}, 0
	}
	c.windowMu.Unlock()
	if asked <= 0 {
		return 0, 0, 0
	}
	pause = min(asked, c.maxRetryAfter)
	// A Retry-After beyond the cap is not taken for a window: an absurd
	// one would lower the budget to almost nothing.
	if retryAfter > 0 && retryAfter <= c.maxRetryAfter && c.budget != nil && !HasRateLimitHeaders(hresp.Header) {
		if r, ok := LearnedRate(accepted, windowStart, now.Add(retryAfter)); ok && c.budget.Learn(r, now.Add(LearnedRateFor)) {
			learned = r
		}
	}
	c.pause(pause)
	if pause == asked {
		asked = 0
	}
	return pause, asked, learned
}

func (c *Client) observe(req call, status, attempt int, start time.Time, pause, asked time.Duration, lane Lane, waited time.Duration, learned float64) {
	if c.observer != nil {
		c.observer.ObserveRequest(RequestInfo{Method: req.method, Resource: req.resource, Status: status,
			Attempt: attempt, Duration: c.now().Sub(start), Pause: pause, PauseAsked: asked, Lane: lane, BudgetWait: waited, Learned: learned})
	}
}

// transportError rewrites a failure below HTTP without the URL (the base URL
// is in the configuration already) and marks it transient.
func (c *Client) transportError(req call, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no response within %s: %w", c.requestTimeout, err)
	}
	return &transientError{err: fmt.Errorf("rockety: %s %s: %w", req.method, req.path, err)}
}

// pause holds every request of the client for d, and of every replica
// that shares its budget.
func (c *Client) pause(d time.Duration) {
	untilTime := c.now().Add(d)
	until := untilTime.UnixNano()
	for {
		cur := c.pauseUntil.Load()
		if cur >= until {
			return
		}
		if c.pauseUntil.CompareAndSwap(cur, until) {
			break
		}
	}
	if c.budget != nil {
		c.budget.PauseAll(untilTime)
	}
}

// waitTurn waits out a pause and then for the request's turn in the
// budget; a pause that began meanwhile is waited out too, turn in hand.
// It returns how long the budget took.
func (c *Client) waitTurn(ctx context.Context, lane Lane) (budgetWait time.Duration, err error) {
	if err := c.waitPause(ctx); err != nil {
		return 0, err
	}
	if c.budget == nil {
		return 0, nil
	}
	start := time.Now()
	if err := c.budget.Wait(ctx, lane); err != nil {
		return time.Since(start), err
	}
	budgetWait = time.Since(start)
	return budgetWait, c.waitPause(ctx)
}

func (c *Client) waitPause(ctx context.Context) error {
	wait := time.Duration(c.pauseUntil.Load() - c.now().UnixNano())
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

var errBodyTooLarge = errors.New("body too large")

// readBody reads a whole body, at most limit bytes, in one allocation when
// the length is known.
func readBody(r io.Reader, contentLength, limit int64) ([]byte, error) {
	size := int64(4096)
	if contentLength > 0 {
		size = min(contentLength, limit) + 1 // +1 lets the EOF read land without growing
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, errBodyTooLarge
	}
	return buf.Bytes(), nil
}

// closeBody drains a little of what is left so the connection can be reused.
func closeBody(rc io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, rc, 64<<10)
	_ = rc.Close()
}

func statusIs(codes ...int) func(int) bool {
	return func(s int) bool {
		for _, c := range codes {
			if s == c {
				return true
			}
		}
		return false
	}
}

func itemPath(resource string, id ID) string {
	return "/" + resource + "/" + url.PathEscape(string(id))
}

// FetchPage fetches and decodes one page of a list. Most callers want Pages.
func (c *Client) FetchPage(ctx context.Context, resource string, page int, filters ...Filter) (PageBody, error) {
	if err := checkResource(resource); err != nil {
		return PageBody{}, err
	}
	path := "/" + resource + "?page=" + strconv.Itoa(page) + "&per_page=" + strconv.Itoa(c.pageSize)
	for _, f := range filters {
		path += "&" + url.QueryEscape(f.Param) + "=" + url.QueryEscape(f.Value)
	}
	resp, err := c.do(ctx, call{method: http.MethodGet, resource: resource, path: path, ok: statusIs(http.StatusOK)})
	if err != nil {
		return PageBody{}, err
	}
	body, err := DecodePage(resp.body, resource)
	if err != nil {
		return PageBody{}, undecodablePage{fmt.Errorf("rockety: decoding %s page %d: %w", resource, page, err)}
	}
	return body, nil
}

// undecodablePage: a page came back 200 with a body that is not a page
// (cut off, or not JSON at all). It matches ErrDecode.
type undecodablePage struct{ err error }

func (e undecodablePage) Error() string { return e.err.Error() }
func (e undecodablePage) Unwrap() error { return e.err }

// Response is the API's answer to a write.
type Response struct {
	StatusCode int
	// Body is the response body as sent; empty for a 204.
	Body json.RawMessage
	// Item is the object in the body (bare or under "data"), when it has an
	// id; its ID is empty otherwise.
	Item Item
}

// Get fetches one item. A missing item is an error matching ErrNotFound.
func (c *Client) Get(ctx context.Context, resource string, id ID) (Item, error) {
	if err := checkResource(resource); err != nil {
		return Item{}, err
	}
	if id == "" {
		return Item{}, fmt.Errorf("%w: empty id for %s", ErrInvalidOption, resource)
	}
	resp, err := c.do(ctx, call{method: http.MethodGet, resource: resource, path: itemPath(resource, id), ok: statusIs(http.StatusOK)})
	if err != nil {
		return Item{}, err
	}
	it, err := objectOf(resp.body)
	if err != nil {
		return Item{}, fmt.Errorf("rockety: decoding %s %s: %w", resource, id, err)
	}
	return it, nil
}

// Create sends POST /<resource> with obj, a JSON object.
func (c *Client) Create(ctx context.Context, resource string, obj json.RawMessage) (Response, error) {
	return c.write(ctx, http.MethodPost, resource, "", obj, statusIs(http.StatusOK, http.StatusCreated))
}

// Update sends PUT /<resource>/<id> with obj, a JSON object.
func (c *Client) Update(ctx context.Context, resource string, id ID, obj json.RawMessage) (Response, error) {
	if id == "" {
		return Response{}, fmt.Errorf("%w: empty id for updating %s", ErrInvalidOption, resource)
	}
	return c.write(ctx, http.MethodPut, resource, id, obj, statusIs(http.StatusOK, http.StatusNoContent))
}

// Delete sends DELETE /<resource>/<id>. A DELETE retried after a lost
// response may answer 404; the caller decides what that means.
func (c *Client) Delete(ctx context.Context, resource string, id ID) (Response, error) {
	if id == "" {
		return Response{}, fmt.Errorf("%w: empty id for deleting %s", ErrInvalidOption, resource)
	}
	return c.write(ctx, http.MethodDelete, resource, id, nil, statusIs(http.StatusOK, http.StatusAccepted, http.StatusNoContent))
}

func (c *Client) write(ctx context.Context, method, resource string, id ID, obj json.RawMessage, ok func(int) bool) (Response, error) {
	if err := checkResource(resource); err != nil {
		return Response{}, err
	}
	path := "/" + resource
	if id != "" {
		path = itemPath(resource, id)
	}
	if method != http.MethodDelete {
		obj = bytes.TrimSpace(obj)
		if len(obj) == 0 || obj[0] != '{' || !json.Valid(obj) {
			return Response{}, fmt.Errorf("%w: %s %s: the body must be a JSON object", ErrInvalidOption, method, path)
		}
	}
	resp, err := c.do(ctx, call{method: method, resource: resource, path: path, body: obj, ok: ok})
	if err != nil {
		return Response{}, err
	}
	out := Response{StatusCode: resp.status, Body: resp.body}
	if len(bytes.TrimSpace(resp.body)) > 0 {
		// A write whose answer we cannot read still happened: report it
		// without an item rather than as a failure.
		out.Item, _ = objectOf(resp.body)
	}
	return out, nil
}

// objectOf reads a single object, bare or under "data".
func objectOf(body []byte) (Item, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' || !json.Valid(body) {
		return Item{}, fmt.Errorf("%w: want a JSON object", ErrDecode)
	}
	var inner []byte
	_ = eachMember(body, 0, func(key []byte, vs, ve int) error {
		if string(key) == "data" && body[vs] == '{' {
			inner = body[vs:ve]
		}
		return nil
	})
	if inner != nil {
		if id, err := itemID(inner); err == nil {
			return Item{ID: id, Raw: json.RawMessage(inner)}, nil
		}
	}
	id, err := itemID(body)
	if err != nil {
		return Item{}, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return Item{ID: id, Raw: json.RawMessage(body)}, nil
}
