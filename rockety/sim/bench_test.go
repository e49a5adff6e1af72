package sim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// discard is a ResponseWriter that keeps nothing, so the benchmark measures
// the handler and not a recorder's buffer.
type discard struct {
	h      http.Header
	status int
}

func newDiscard() *discard { return &discard{h: http.Header{}} }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(status int)      { d.status = status }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) reset()                      { clear(d.h); d.status = 0 }

func reportPages(b *testing.B, pages int64) {
	b.ReportMetric(float64(pages)/b.Elapsed().Seconds(), "pages/s")
}

func benchServer(b *testing.B, n int) *sim.Server {
	b.Helper()
	s, err := sim.New(sim.Options{Token: testToken, SeedItems: n, Resources: []string{"tasks"}})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

const benchItems = 100_000 // 1,000 pages of 100

// BenchmarkServePage serves 100-item pages of tasks straight through the
// handler, cycling over all 1,000 pages.
func BenchmarkServePage(b *testing.B) {
	s := benchServer(b, benchItems)
	reqs := make([]*http.Request, benchItems/100)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, sim.BasePath+"/tasks?per_page=100&page="+strconv.Itoa(i+1), nil)
		reqs[i].Header.Set("Authorization", "Bearer "+testToken)
	}
	w := newDiscard()
	b.ReportAllocs()
	var pages int64
	for b.Loop() {
		w.reset()
		s.ServeHTTP(w, reqs[pages%int64(len(reqs))])
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
		pages++
	}
	reportPages(b, pages)
}

// BenchmarkServePageHTTP fetches the same pages over loopback HTTP with
// keep-alive connections, from parallel clients as the poller does.
func BenchmarkServePageHTTP(b *testing.B) {
	s := benchServer(b, benchItems)
	ts := httptest.NewServer(s)
	defer ts.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var pages atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := pages.Add(1)
			req, _ := http.NewRequest(http.MethodGet, ts.URL+sim.BasePath+"/tasks?per_page=100&page="+strconv.FormatInt(1+n%(benchItems/100), 10), nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	reportPages(b, pages.Load())
}

// BenchmarkListChangedSince serves lists filtered by updated_since from
// 1,000,000 seeded tasks through the handler:
//
//   - few: the one page of the 10 tasks changed since a moment, what an
//     incremental cycle asks for; it must not cost a scan of the million;
//   - deep: page 2,500 of 200 of a filter that every task passes, to show
//     that a page deep in a large filtered set is found, not walked to;
//   - update: a write while the index is kept, against unindexed, the
//     same write on a server that never served a filtered list.
//
// The index is built by a first request before the timer starts.
func BenchmarkListChangedSince(b *testing.B) {
	const n = 1_000_000
	s := benchServer(b, n)
	plain := benchServer(b, n)
	since := time.Now().UTC()
	for i := range 10 {
		if err := s.Update("tasks", strconv.Itoa(1+i*99_991), map[string]any{"status": "done"}); err != nil {
			b.Fatal(err)
		}
	}
	get := func(query string) *http.Request {
		req := httptest.NewRequest(http.MethodGet, sim.BasePath+"/tasks?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		return req
	}
	few := get(sim.SinceParam + "=" + url.QueryEscape(since.Format(time.RFC3339Nano)) + "&per_page=100")
	deep := get(sim.SinceParam + "=2000-01-01T00:00:00Z&per_page=200&page=2500")
	start := time.Now()
	for _, req := range []*http.Request{few, deep} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		var p struct {
			Data []json.RawMessage   `json:"data"`
			Meta struct{ Total int } `json:"meta"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Code != http.StatusOK {
			b.Fatalf("%s: %d %v", req.URL, rec.Code, err)
		}
		if req == few && (len(p.Data) != 10 || p.Meta.Total != 10) || req == deep && (len(p.Data) != 200 || p.Meta.Total != n) {
			b.Fatalf("%s: %d items, total %d", req.URL, len(p.Data), p.Meta.Total)
		}
	}
	b.Logf("the first filtered list of %d tasks, which builds the index, and one more: %s", n, time.Since(start))
	serve := func(req *http.Request) func(b *testing.B) {
		return func(b *testing.B) {
			w := newDiscard()
			b.ReportAllocs()
			var pages int64
			for b.Loop() {
				w.reset()
				s.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
				pages++
			}
			reportPages(b, pages)
		}
	}
	b.Run("few", serve(few))
	b.Run("deep", serve(deep))
	update := func(s *sim.Server) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := s.Update("tasks", strconv.Itoa(1+(i*7919)%n), map[string]any{"status": "done"}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("update", update(s))
	b.Run("update-unindexed", update(plain))
}
