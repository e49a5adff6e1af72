package sim_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

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
