package rockety_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety"
)

const secretToken = "s3cr3t-T0KEN-never-shown"

// errorLog collects every error a test sees, so it can check that none of
// them carries the token.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) error {
	if err != nil {
		l.mu.Lock()
		l.errs = append(l.errs, err)
		l.mu.Unlock()
	}
	return err
}

func (l *errorLog) checkNoToken(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.errs {
		if strings.Contains(err.Error(), secretToken) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), secretToken) {
			t.Errorf("the token appears in an error: %v", err)
		}
	}
}

func newClient(t *testing.T, url string, opts ...rockety.Option) *rockety.Client {
	t.Helper()
	base := []rockety.Option{
		rockety.WithToken(secretToken),
		rockety.WithAllowInsecure(true),
		rockety.WithRetry(5*time.Millisecond, 20*time.Millisecond, 2*time.Second),
	}
	c, err := rockety.New(url, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewRefusesBadSettings(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		opts    []rockety.Option
		wantErr string
	}{
		{name: "http without allow", url: "http://api.example.com/v1", opts: []rockety.Option{rockety.WithToken("t")},
			wantErr: "ROCKETY_ALLOW_INSECURE"},
		{name: "no token", url: "https://api.example.com/v1", wantErr: "set ROCKETY_API_TOKEN or ROCKETY_API_TOKEN_FILE"},
		{name: "blank token", url: "https://api.example.com/v1", opts: []rockety.Option{rockety.WithToken("  ")}, wantErr: "token is empty"},
		{name: "relative url", url: "/api/v1", opts: []rockety.Option{rockety.WithToken("t")}, wantErr: "want an absolute https:// URL"},
		{name: "ftp url", url: "ftp://api.example.com", opts: []rockety.Option{rockety.WithToken("t")}, wantErr: "want an absolute https:// URL"},
		{name: "credentials in url", url: "https://user:" + secretToken + "@api.example.com/v1",
			opts: []rockety.Option{rockety.WithToken("t")}, wantErr: "must not contain credentials"},
		{name: "credentials in a url that does not parse", url: "https://user:" + secretToken + "@api example.com/%zz",
			opts: []rockety.Option{rockety.WithToken("t")}, wantErr: "ROCKETY_API_URL"},
		{name: "query in url", url: "https://api.example.com/v1?x=1", opts: []rockety.Option{rockety.WithToken("t")}, wantErr: "query"},
		{name: "negative rate", url: "https://api.example.com", opts: []rockety.Option{rockety.WithToken("t"), rockety.WithRateLimit(-1)}, wantErr: "rate limit"},
		{name: "zero page size", url: "https://api.example.com", opts: []rockety.Option{rockety.WithToken("t"), rockety.WithPageSize(0)}, wantErr: "page size 0"},
		{name: "zero concurrency", url: "https://api.example.com", opts: []rockety.Option{rockety.WithToken("t"), rockety.WithPageConcurrency(0)}, wantErr: "page concurrency 0"},
		{name: "bad retry", url: "https://api.example.com", opts: []rockety.Option{rockety.WithToken("t"), rockety.WithRetry(time.Second, time.Millisecond, 0)}, wantErr: "retry"},
	}
	var log errorLog
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rockety.New(tt.url, tt.opts...)
			log.add(err)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, rockety.ErrInvalidOption) {
				t.Fatalf("err = %v, want ErrInvalidOption containing %q", err, tt.wantErr)
			}
		})
	}
	log.checkNoToken(t)
	if _, err := rockety.New("https://api.example.com/v1/", rockety.WithToken("t")); err != nil {
		t.Errorf("https URL with trailing slash: %v", err)
	}
}

// scripted answers requests with the responses in order, then repeats the
// last one, and records what it saw.
type scripted struct {
	mu        sync.Mutex
	responses []func(w http.ResponseWriter, r *http.Request)
	requests  []*http.Request
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.requests)
	s.requests = append(s.requests, r)
	h := s.responses[min(n, len(s.responses)-1)]
	s.mu.Unlock()
	h(w, r)
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func reply(status int, body string, headers ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func TestRetriesAndErrors(t *testing.T) {
	const okItem = `{"id":42,"title":"x"}`
	type op func(ctx context.Context, c *rockety.Client) error
	get := func(ctx context.Context, c *rockety.Client) error { _, err := c.Get(ctx, "tasks", "42"); return err }
	post := func(ctx context.Context, c *rockety.Client) error {
		_, err := c.Create(ctx, "tasks", []byte(`{"title":"x"}`))
		return err
	}
	put := func(ctx context.Context, c *rockety.Client) error {
		_, err := c.Update(ctx, "tasks", "42", []byte(`{"title":"x"}`))
		return err
	}
	del := func(ctx context.Context, c *rockety.Client) error { _, err := c.Delete(ctx, "tasks", "42"); return err }

	tests := []struct {
		name      string
		op        op
		responses []func(http.ResponseWriter, *http.Request)
		requests  int
		is        error // nil: success
		inError   string
	}{
		{name: "401 fails at once", op: get, responses: []func(http.ResponseWriter, *http.Request){
			reply(401, `{"error":{"code":"unauthorized","message":"bad token"}}`)},
			requests: 1, is: rockety.ErrUnauthorized, inError: "(unauthorized: bad token): the API refused the token; check ROCKETY_API_TOKEN"},
		{name: "404 fails at once", op: get, responses: []func(http.ResponseWriter, *http.Request){reply(404, `{"message":"no such task"}`)},
			requests: 1, is: rockety.ErrNotFound, inError: "GET /tasks/42: 404 Not Found (no such task)"},
		{name: "400 with errors array", op: put, responses: []func(http.ResponseWriter, *http.Request){
			reply(400, `{"errors":[{"code":"invalid","message":"title too long"}]}`)},
			requests: 1, is: rockety.ErrBadRequest, inError: "(invalid: title too long)"},
		{name: "error as a plain string", op: put, responses: []func(http.ResponseWriter, *http.Request){reply(400, `{"error":"nope","code":17}`)},
			requests: 1, is: rockety.ErrBadRequest, inError: "(17: nope)"},
		{name: "500 twice then 200", op: get, responses: []func(http.ResponseWriter, *http.Request){
			reply(500, `{}`), reply(503, ``), reply(200, okItem)}, requests: 3},
		{name: "html from a proxy", op: get, responses: []func(http.ResponseWriter, *http.Request){
			reply(502, `<html><body><h1>502 Bad Gateway</h1></body></html>`, "Content-Type", "text/html")},
			is: rockety.ErrTransient, inError: "HTML page, not JSON: a proxy"},
		{name: "gives up on 500s", op: get, responses: []func(http.ResponseWriter, *http.Request){reply(500, `{"error":"boom"}`)},
			is: rockety.ErrTransient, inError: "gave up after"},
		{name: "501 is not retried", op: get, responses: []func(http.ResponseWriter, *http.Request){reply(501, ``)}, requests: 1, inError: "501"},
		{name: "POST is not retried after a 500", op: post, responses: []func(http.ResponseWriter, *http.Request){reply(500, `{}`), reply(201, okItem)},
			requests: 1, is: rockety.ErrTransient},
		{name: "POST is retried after a 429", op: post, responses: []func(http.ResponseWriter, *http.Request){reply(429, `{}`), reply(201, okItem)},
			requests: 2},
		{name: "PUT is retried after a 502", op: put, responses: []func(http.ResponseWriter, *http.Request){reply(502, ``), reply(200, okItem)},
			requests: 2},
		{name: "DELETE 204", op: del, responses: []func(http.ResponseWriter, *http.Request){reply(204, ``)}, requests: 1},
		{name: "echoed token is redacted", op: get, responses: []func(http.ResponseWriter, *http.Request){
			func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(403)
				fmt.Fprintf(w, `{"message":"token %s may not read"}`, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			}}, requests: 1, is: rockety.ErrForbidden, inError: "token [redacted] may not read"},
		{name: "oversized body", op: get, responses: []func(http.ResponseWriter, *http.Request){reply(200, `{"id":1,"x":"`+strings.Repeat("a", 2000)+`"}`)},
			requests: 1, is: rockety.ErrDecode, inError: "larger than 1024 bytes; lower ROCKETY_PAGE_SIZE"},
		{name: "item without id", op: get, responses: []func(http.ResponseWriter, *http.Request){reply(200, `{"title":"x"}`)},
			requests: 1, is: rockety.ErrDecode, inError: `decoding tasks 42`},
	}
	var log errorLog
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scripted{responses: tt.responses}
			srv := httptest.NewServer(s)
			defer srv.Close()
			c := newClient(t, srv.URL+"/api/v1", rockety.WithMaxBodyBytes(1024), rockety.WithRetry(time.Millisecond, 5*time.Millisecond, 200*time.Millisecond))
			err := log.add(tt.op(context.Background(), c))
			if tt.is == nil && tt.inError == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("no error")
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("err = %v, want one matching %v", err, tt.is)
				}
				if !strings.Contains(err.Error(), tt.inError) {
					t.Errorf("err = %q, want it to contain %q", err, tt.inError)
				}
			}
			if tt.requests > 0 && s.count() != tt.requests {
				t.Errorf("%d requests, want %d", s.count(), tt.requests)
			}
			r := s.requests[0]
			if r.Header.Get("Authorization") != "Bearer "+secretToken || !strings.HasPrefix(r.Header.Get("User-Agent"), "rockety-bridge/") {
				t.Errorf("headers = %v", r.Header)
			}
		})
	}
	log.checkNoToken(t)
}

func TestWriteResponses(t *testing.T) {
	s := &scripted{responses: []func(http.ResponseWriter, *http.Request){
		reply(201, `{"data":{"id":7,"title":"new"}}`), reply(200, `{"id":7,"title":"changed"}`), reply(204, ``)}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c := newClient(t, srv.URL+"/api/v1")
	ctx := context.Background()

	created, err := c.Create(ctx, "tasks", []byte(`{"title":"new"}`))
	if err != nil || created.StatusCode != 201 || created.Item.ID != "7" || string(created.Item.Raw) != `{"id":7,"title":"new"}` {
		t.Fatalf("create = %+v, %v", created, err)
	}
	updated, err := c.Update(ctx, "tasks", "a/b c", []byte(`{"title":"changed"}`))
	if err != nil || updated.StatusCode != 200 || updated.Item.ID != "7" {
		t.Fatalf("update = %+v, %v", updated, err)
	}
	deleted, err := c.Delete(ctx, "tasks", "7")
	if err != nil || deleted.StatusCode != 204 || len(deleted.Body) != 0 {
		t.Fatalf("delete = %+v, %v", deleted, err)
	}
	want := []string{"POST /api/v1/tasks", "PUT /api/v1/tasks/a%2Fb%20c", "DELETE /api/v1/tasks/7"}
	for i, r := range s.requests {
		if got := r.Method + " " + r.URL.EscapedPath(); got != want[i] {
			t.Errorf("request %d = %s, want %s", i, got, want[i])
		}
	}
	if s.requests[0].Header.Get("Content-Type") != "application/json" {
		t.Error("POST without Content-Type: application/json")
	}

	for _, body := range []string{``, `[1]`, `{"a":`, `"x"`} {
		if _, err := c.Create(ctx, "tasks", []byte(body)); !errors.Is(err, rockety.ErrInvalidOption) {
			t.Errorf("Create(%q) err = %v, want ErrInvalidOption", body, err)
		}
	}
	for _, resource := range []string{"", "tasks/1", "../admin", "tasks?x=1"} {
		if _, err := c.Get(ctx, resource, "1"); err == nil || !strings.Contains(err.Error(), "resource name") {
			t.Errorf("Get(%q) err = %v, want a resource name error", resource, err)
		}
	}
	if len(s.requests) != 3 {
		t.Errorf("%d requests; invalid calls must not reach the API", len(s.requests))
	}
}

func TestPostNotRetriedOnceSent(t *testing.T) {
	// The server takes the request and then drops the connection: the POST
	// may have created the item, so it must not be sent again.
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		_ = conn.Close()
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	_, err := c.Create(context.Background(), "tasks", []byte(`{"title":"x"}`))
	if err == nil || !errors.Is(err, rockety.ErrTransient) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	if posts.Load() != 1 {
		t.Errorf("the POST reached the server %d times, want 1", posts.Load())
	}
	// A GET in the same situation is retried.
	_, err = c.Get(context.Background(), "tasks", "1")
	if err == nil || posts.Load() < 3 {
		t.Errorf("GET: err = %v after %d requests; want retries", err, posts.Load()-1)
	}
}

func TestConnectionRefusedIsRetriedEvenForPost(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens any more: the POST cannot have been received
	c := newClient(t, url, rockety.WithRetry(time.Millisecond, 2*time.Millisecond, 50*time.Millisecond))
	_, err := c.Create(context.Background(), "tasks", []byte(`{"title":"x"}`))
	if err == nil || !errors.Is(err, rockety.ErrTransient) || !strings.Contains(err.Error(), "gave up after") {
		t.Fatalf("err = %v, want a transient error after retries", err)
	}
	if strings.Contains(err.Error(), "after 1 attempts") {
		t.Errorf("err = %v: a POST that never connected should be retried", err)
	}
}

func TestTimeoutIsTransient(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := newClient(t, srv.URL, rockety.WithRequestTimeout(20*time.Millisecond),
		rockety.WithRetry(time.Millisecond, time.Millisecond, 100*time.Millisecond))
	_, err := c.Get(context.Background(), "tasks", "1")
	if !errors.Is(err, rockety.ErrTransient) || !strings.Contains(err.Error(), "no response within 20ms") {
		t.Fatalf("err = %v, want a transient timeout", err)
	}
}

func TestContextCancelStopsRetrying(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer srv.Close()
	c := newClient(t, srv.URL, rockety.WithRetry(50*time.Millisecond, time.Second, time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Get(ctx, "tasks", "1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
}

func TestRetryAfterPausesTheWholeClient(t *testing.T) {
	var limited atomic.Bool
	var mu sync.Mutex
	var served []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/tasks/1" && limited.CompareAndSwap(false, true) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			return
		}
		mu.Lock()
		served = append(served, time.Now())
		mu.Unlock()
		_, _ = w.Write([]byte(`{"id":1}`))
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, rockety.WithRetry(time.Millisecond, time.Millisecond, 10*time.Second))
	start := time.Now()
	if _, err := c.Get(context.Background(), "tasks", "1"); err != nil {
		t.Fatal(err)
	}
	// Another request made during the pause waits for it too.
	if _, err := c.Get(context.Background(), "users", "1"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, at := range served {
		if at.Sub(start) < time.Second {
			t.Errorf("a request was served %s after a 429 asking for 1s", at.Sub(start))
		}
	}
}

func TestRateLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"id":1}`)) }))
	defer srv.Close()
	c := newClient(t, srv.URL, rockety.WithRateLimit(50))
	start := time.Now()
	for range 11 {
		if _, err := c.Get(context.Background(), "tasks", "1"); err != nil {
			t.Fatal(err)
		}
	}
	// 11 requests at 50/s with a burst of 5 take at least 6/50 s.
	if elapsed := time.Since(start); elapsed < 110*time.Millisecond {
		t.Errorf("11 requests took %s; the limit allows no less than 120ms", elapsed)
	}
}

func TestPagesGuardsAgainstEndlessListings(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr string
	}{
		{name: "page parameter ignored", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"data":[{"id":1},{"id":2}]}`))
		}, wantErr: "page 2 repeats page 1"},
		{name: "endless distinct pages", handler: func(w http.ResponseWriter, r *http.Request) {
			p := r.URL.Query().Get("page")
			fmt.Fprintf(w, `{"data":[{"id":"%s-a"},{"id":"%s-b"}]}`, p, p)
		}, wantErr: "more than 5 pages"},
		{name: "more pages than the metadata said", handler: func(w http.ResponseWriter, r *http.Request) {
			p := r.URL.Query().Get("page")
			pages := 3
			if p == "3" {
				pages = 2
			}
			fmt.Fprintf(w, `{"data":[{"id":"%s-a"},{"id":"%s-b"}],"meta":{"pages":%d}}`, p, p, pages)
		}, wantErr: "page 3 has 2 items but the metadata says there are only 2 pages"},
		{name: "malformed page", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("page") == "2" {
				_, _ = w.Write([]byte(`{"data":[{"id":3},`))
				return
			}
			_, _ = w.Write([]byte(`{"data":[{"id":1},{"id":2}],"meta":{"pages":2}}`))
		}, wantErr: "decoding tasks page 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c := newClient(t, srv.URL, rockety.WithPageSize(2), rockety.WithMaxPages(5))
			var err error
			for _, e := range c.Pages(context.Background(), "tasks") {
				err = e
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// A page whose answer was cut off, or that came back as the page before
// (a stale cache), is fetched again, and the traversal goes on whole.
func TestPagesFetchesABrokenPageAgain(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("page")
		mu.Lock()
		asked[p]++
		n := asked[p]
		mu.Unlock()
		switch {
		case p == "2" && n == 1:
			_, _ = w.Write([]byte(`{"data":[{"id":"2-a"},`))
			return
		case p == "3" && n <= 2:
			p = "2" // page 2 again, twice
		}
		fmt.Fprintf(w, `{"data":[{"id":"%s-a"},{"id":"%s-b"}],"meta":{"pages":4}}`, p, p)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, rockety.WithPageSize(2), rockety.WithRetry(time.Millisecond, 5*time.Millisecond, time.Second))
	var ids []string
	for page, err := range c.Pages(context.Background(), "tasks") {
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			ids = append(ids, string(it.ID))
		}
	}
	if want := []string{"1-a", "1-b", "2-a", "2-b", "3-a", "3-b", "4-a", "4-b"}; !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked["2"] != 2 || asked["3"] != 3 {
		t.Errorf("page 2 asked %d times, page 3 %d; want 2 and 3", asked["2"], asked["3"])
	}
}

func TestPagesStopsWhenTheLoopBreaks(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		p := r.URL.Query().Get("page")
		fmt.Fprintf(w, `{"data":[{"id":"%s"}],"meta":{"pages":1000}}`, p)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, rockety.WithPageSize(1), rockety.WithPageConcurrency(3))
	for page, err := range c.Pages(context.Background(), "tasks") {
		if err != nil {
			t.Fatal(err)
		}
		if page.Number == 2 {
			break
		}
	}
	// Page 1, then at most the window of three ahead of page 2.
	if n := requests.Load(); n > 5 {
		t.Errorf("%d requests after breaking at page 2", n)
	}
}

// TestQuotaLearnedFromA429 answers twelve requests, then refuses with a
// Retry-After and no rate-limit header: the budget comes down to what the
// API accepted in its window. A Retry-After beyond the cap teaches nothing.
func TestQuotaLearnedFromA429(t *testing.T) {
	for _, tt := range []struct {
		name       string
		retryAfter string
		learns     bool
	}{
		{name: "a window's Retry-After", retryAfter: "1", learns: true},
		{name: "an absurd Retry-After", retryAfter: "86400"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) > 12 {
					w.Header().Set("Retry-After", tt.retryAfter)
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				_, _ = w.Write([]byte(`{"id":1}`))
			}))
			defer srv.Close()
			var learned atomic.Value
			c, err := rockety.New(srv.URL, rockety.WithToken("t"), rockety.WithAllowInsecure(true), rockety.WithRateLimit(100),
				rockety.WithMaxRetryAfter(2*time.Second), rockety.WithRetry(time.Millisecond, time.Millisecond, 0),
				rockety.WithObserver(observerFunc(func(r rockety.RequestInfo) {
					if r.Learned > 0 {
						learned.Store(r.Learned)
					}
				})))
			if err != nil {
				t.Fatal(err)
			}
			for range 13 {
				_, _ = c.Get(context.Background(), "tasks", "1")
			}
			got := c.Budget().InForce()
			if !tt.learns {
				if got != 100 || learned.Load() != nil {
					t.Fatalf("rate in force %v, learned %v; want 100, nothing learned", got, learned.Load())
				}
				return
			}
			if got >= 100 || got <= 0 || learned.Load() != got {
				t.Fatalf("rate in force %v, reported %v; want the rate learned, below 100", got, learned.Load())
			}
			// Twelve accepted in a window of at least the Retry-After.
			if got > 0.9*12/1.0 {
				t.Fatalf("learned %v/s from 12 requests in a window of over 1 s", got)
			}
		})
	}
}
