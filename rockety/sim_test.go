package rockety_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

func startSim(t *testing.T, opts sim.Options) (*sim.Server, string) {
	t.Helper()
	if opts.Token == "" {
		opts.Token = secretToken
	}
	s, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL + sim.BasePath
}

func traverse(t *testing.T, c *rockety.Client, resource string) ([]rockety.ID, error) {
	t.Helper()
	var ids []rockety.ID
	for page, err := range c.Pages(context.Background(), resource) {
		if err != nil {
			return ids, err
		}
		for _, it := range page.Items {
			ids = append(ids, it.ID)
		}
	}
	return ids, nil
}

func TestTraversalOfTheSimulatorReturnsEachItemOnceInOrder(t *testing.T) {
	tests := []struct {
		name    string
		style   sim.Style
		perPage int
		conc    int
	}{
		{"data+meta, sequential", sim.StyleDataMeta, 100, 1},
		{"data+meta, 4 in parallel", sim.StyleDataMeta, 100, 4},
		{"partial last page, 4 in parallel", sim.StyleDataMeta, 37, 4},
		{"items+pagination", sim.StyleItemsPagination, 100, 4},
		{"no metadata", sim.StyleNoMeta, 100, 4},
		{"no metadata, partial last page", sim.StyleNoMeta, 37, 1},
		// ROCKETY_PAGE_SIZE=max: the simulator grants 500 of the 10,000 asked.
		{"largest granted page, data+meta", sim.StyleDataMeta, 0, 4},
		{"largest granted page, no metadata", sim.StyleNoMeta, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, url := startSim(t, sim.Options{Seed: 7, SeedItems: 10_000, Resources: []string{"tasks"}, Style: tt.style})
			size := rockety.WithPageSize(tt.perPage)
			if tt.perPage == 0 {
				size, tt.perPage = rockety.WithMaxPageSize(), sim.MaxPerPage
			}
			c := newClient(t, url, size, rockety.WithPageConcurrency(tt.conc))
			got, err := traverse(t, c, "tasks")
			if err != nil {
				t.Fatal(err)
			}
			want := s.IDs("tasks")
			if len(got) != len(want) || len(want) != 10_000 {
				t.Fatalf("got %d ids, the simulator has %d", len(got), len(want))
			}
			for i := range want {
				if string(got[i]) != want[i] {
					t.Fatalf("item %d is %s, want %s", i, got[i], want[i])
				}
			}
			pages := (10_000 + tt.perPage - 1) / tt.perPage
			if tt.style == sim.StyleNoMeta && 10_000%tt.perPage == 0 {
				pages++ // without metadata only an empty page ends a list that fills its last page
			}
			if n := s.Stats().Total; n != pages {
				t.Errorf("%d requests, want %d", n, pages)
			}
		})
	}
}

func TestTransientlyFailingPageIsRetried(t *testing.T) {
	s, url := startSim(t, sim.Options{SeedItems: 1000, Resources: []string{"tasks"},
		Faults: sim.Faults{FailPage: sim.FailPage{Resource: "tasks", Page: 3, Status: 503, Times: 2}}})
	c := newClient(t, url)
	got, err := traverse(t, c, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 {
		t.Errorf("got %d items, want 1000", len(got))
	}
	if n := s.Stats().Pages[sim.PageRequest{Resource: "tasks", Page: 3}]; n != 3 {
		t.Errorf("page 3 requested %d times, want 3 (two failures, one success)", n)
	}
}

func TestPageFailingForGoodEndsTheTraversalWithAnError(t *testing.T) {
	_, url := startSim(t, sim.Options{SeedItems: 1000, Resources: []string{"tasks"},
		Faults: sim.Faults{FailPage: sim.FailPage{Resource: "tasks", Page: 5}}})
	c := newClient(t, url, rockety.WithRetry(time.Millisecond, 5*time.Millisecond, 100*time.Millisecond))
	got, err := traverse(t, c, "tasks")
	if !errors.Is(err, rockety.ErrTransient) || !strings.Contains(err.Error(), "page=5") {
		t.Fatalf("err = %v, want a transient error naming page 5", err)
	}
	if len(got) != 400 {
		t.Errorf("got %d items before the failing page, want the 400 of pages 1-4", len(got))
	}
}

func TestWrongTokenFailsAtOnce(t *testing.T) {
	s, url := startSim(t, sim.Options{SeedItems: 10, Resources: []string{"tasks"}})
	c, err := rockety.New(url, rockety.WithToken("not-"+secretToken), rockety.WithAllowInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	_, err = traverse(t, c, "tasks")
	if !errors.Is(err, rockety.ErrUnauthorized) || !strings.Contains(err.Error(), "ROCKETY_API_TOKEN") {
		t.Fatalf("err = %v, want ErrUnauthorized naming ROCKETY_API_TOKEN", err)
	}
	if strings.Contains(err.Error(), secretToken) {
		t.Errorf("the token appears in %q", err)
	}
	if n := s.Stats().Total; n != 1 {
		t.Errorf("%d requests, want 1: a 401 is not retried", n)
	}
}

func TestRateLimitedPageWaitsAsTold(t *testing.T) {
	s, url := startSim(t, sim.Options{SeedItems: 300, Resources: []string{"tasks"},
		Faults: sim.Faults{RetryAfter: time.Second, FailPage: sim.FailPage{Resource: "tasks", Page: 2, Status: 429, Times: 1}}})
	c := newClient(t, url, rockety.WithPageConcurrency(1))
	start := time.Now()
	got, err := traverse(t, c, "tasks")
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("traversal took %s; the 429 asked for 1s", elapsed)
	}
	if len(got) != 300 || s.Stats().ByStatus[429] != 1 {
		t.Errorf("got %d items and %d 429s", len(got), s.Stats().ByStatus[429])
	}
}

func TestWritesReachTheSimulator(t *testing.T) {
	s, url := startSim(t, sim.Options{SeedItems: 5, Resources: []string{"projects", "tasks", "users"}})
	c := newClient(t, url)
	ctx := context.Background()
	created, err := c.Create(ctx, "tasks", []byte(`{"title":"From the client","project_id":1,"custom":{"x":1}}`))
	if err != nil || created.StatusCode != 201 || created.Item.ID == "" {
		t.Fatalf("create = %+v, %v", created, err)
	}
	got, err := c.Get(ctx, "tasks", created.Item.ID)
	if err != nil || !strings.Contains(string(got.Raw), `"custom":{"x":1}`) {
		t.Fatalf("get = %s, %v", got.Raw, err)
	}
	task, err := rockety.DecodeItem[rockety.Task](got)
	if err != nil || task.Title != "From the client" {
		t.Errorf("task = %+v, %v", task, err)
	}
	if _, err := c.Update(ctx, "tasks", created.Item.ID, []byte(`{"status":"done"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, "tasks", created.Item.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "tasks", created.Item.ID); !errors.Is(err, rockety.ErrNotFound) {
		t.Errorf("get after delete = %v, want ErrNotFound", err)
	}
	if _, err := c.Create(ctx, "tasks", []byte(`{"status":"open"}`)); !errors.Is(err, rockety.ErrBadRequest) ||
		!strings.Contains(err.Error(), "title") {
		t.Errorf("create without title = %v, want ErrBadRequest naming title", err)
	}
	var ops []string
	for _, m := range s.Mutations() {
		ops = append(ops, m.Op)
	}
	if strings.Join(ops, ",") != "created,updated,deleted" {
		t.Errorf("mutation log = %v", ops)
	}
}

// TestQuotaHeadersHoldRequestsInFlight spends what the API's headers say
// is left with requests sent all at once: those beyond it wait for the
// reset instead of meeting a 429. Once the quota is shown, no request is
// refused.
func TestQuotaHeadersHoldRequestsInFlight(t *testing.T) {
	for _, style := range []sim.QuotaHeaders{sim.QuotaHeadersIETF, sim.QuotaHeadersX} {
		t.Run(string(style), func(t *testing.T) {
			_, url := startSim(t, sim.Options{SeedItems: 3, Resources: []string{"tasks"},
				Faults: sim.Faults{Quota: sim.Quota{Limit: 5, Window: time.Second, Headers: style}}})
			var refused atomic.Int32
			c, err := rockety.New(url, rockety.WithToken(secretToken), rockety.WithAllowInsecure(true),
				rockety.WithObserver(observerFunc(func(r rockety.RequestInfo) {
					if r.Status == 429 {
						refused.Add(1)
					}
				})))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := c.Get(ctx, "tasks", "1"); err != nil { // the quota shows: 4 left
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 12 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := c.Get(ctx, "tasks", "1"); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if n := refused.Load(); n != 0 {
				t.Fatalf("%d requests refused with 429 after the headers showed the quota", n)
			}
		})
	}
}

type observerFunc func(rockety.RequestInfo)

func (f observerFunc) ObserveRequest(r rockety.RequestInfo) { f(r) }
