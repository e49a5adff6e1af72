package rockety_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

const (
	benchItems   = 100_000
	benchPerPage = 100
	benchToken   = "bench-token"
)

// BenchmarkTraverse reads 100,000 tasks (1,000 pages of 100) from the
// simulator over loopback HTTP: the client at page concurrency 1 and 4 beside
// a plain net/http + encoding/json loop over the same pages. Without added
// latency it measures the client's own cost; with latency, as a real API has,
// what parallel page fetching buys.
func BenchmarkTraverse(b *testing.B) {
	s, err := sim.New(sim.Options{Token: benchToken, Seed: 1, SeedItems: benchItems, Resources: []string{"tasks"}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	base := srv.URL + "/api/v1"

	for _, latency := range []time.Duration{0, time.Millisecond} {
		if err := s.SetFaults(sim.Faults{Latency: latency}); err != nil {
			b.Fatal(err)
		}
		prefix := "latency=" + latency.String()
		b.Run(prefix+"/plain-loop", func(b *testing.B) {
			hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
			runTraversals(b, func() int { return plainLoop(b, hc, base) })
		})
		for _, conc := range []int{1, 4} {
			b.Run(prefix+"/client-c"+strconv.Itoa(conc), func(b *testing.B) {
				c, err := rockety.New(base, rockety.WithToken(benchToken), rockety.WithAllowInsecure(true),
					rockety.WithPageSize(benchPerPage), rockety.WithPageConcurrency(conc))
				if err != nil {
					b.Fatal(err)
				}
				runTraversals(b, func() int {
					n := 0
					for page, err := range c.Pages(context.Background(), "tasks") {
						if err != nil {
							b.Fatal(err)
						}
						n += len(page.Items)
					}
					return n
				})
			})
		}
	}
}

func runTraversals(b *testing.B, traverse func() int) {
	b.ReportAllocs()
	items := 0
	for b.Loop() {
		n := traverse()
		if n != benchItems {
			b.Fatalf("traversal returned %d items, want %d", n, benchItems)
		}
		items += n
	}
	b.ReportMetric(float64(items)/b.Elapsed().Seconds(), "items/s")
}

// plainLoop is the baseline: the least code that reads every page, with no
// retries, guards or id extraction.
func plainLoop(b *testing.B, hc *http.Client, base string) int {
	n := 0
	for page := 1; ; page++ {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/tasks?page=%d&per_page=%d", base, page, benchPerPage), nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+benchToken)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var body struct {
			Data []json.RawMessage `json:"data"`
			Meta struct {
				Pages int `json:"pages"`
			} `json:"meta"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		n += len(body.Data)
		if page >= body.Meta.Pages {
			return n
		}
	}
}
