package sim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// TestConcurrentReadersAndWriters runs page readers (filtered by
// updated_since too), API writers, Go-side writers, churn, drift and fault
// changes (soft deletes on and off) at once. Under -race it proves the
// locking; afterwards the log must still replay to the final state.
func TestConcurrentReadersAndWriters(t *testing.T) {
	resources := []string{"projects", "tasks", "users"}
	e := newEnv(t, sim.Options{Token: testToken, Seed: 9, SeedItems: 300, Churn: 300})
	initial := snapshot(e.sim, resources)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := e.sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// do calls t.Fatalf, which must not run off the test goroutine: workers
	// report through errs instead.
	errs := make(chan error, 100)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	get := func(path string) (int, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var raw json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&raw)
		return resp.StatusCode, raw, err
	}
	var wg sync.WaitGroup
	// The first filtered list of a seeded resource builds its index while
	// the others read and write.
	since := url.QueryEscape(time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano))
	for w := range 3 {
		wg.Go(func() {
			res := resources[w%len(resources)]
			for p := 1; ctx.Err() == nil; p = p%4 + 1 {
				status, body, err := get(fmt.Sprintf("/%s?updated_since=%s&per_page=20&page=%d", res, since, p))
				if ctx.Err() != nil {
					return
				}
				if err != nil || status != 200 {
					report(fmt.Errorf("%s filtered page %d: %d %v", res, p, status, err))
					return
				}
				var pg page
				if err := json.Unmarshal(body, &pg); err != nil {
					report(fmt.Errorf("page body: %w", err))
					return
				}
				// A page is read at one instant, so it is in order.
				var prevAt time.Time
				var prevID int64
				for i, it := range pg.Data {
					var v struct {
						ID        int64
						UpdatedAt time.Time `json:"updated_at"`
					}
					if json.Unmarshal(it, &v) != nil {
						report(fmt.Errorf("%s filtered page %d: bad item %s", res, p, it))
						return
					}
					if c := v.UpdatedAt.Compare(prevAt); i > 0 && (c < 0 || c == 0 && v.ID <= prevID) {
						report(fmt.Errorf("%s filtered page %d: %d at %s after %d at %s", res, p, v.ID, v.UpdatedAt, prevID, prevAt))
						return
					}
					prevAt, prevID = v.UpdatedAt, v.ID
				}
			}
		})
	}
	for w := range 6 {
		wg.Go(func() {
			res := resources[w%len(resources)]
			for p := 1; ctx.Err() == nil; p = p%8 + 1 {
				status, body, err := get(fmt.Sprintf("/%s?per_page=50&page=%d", res, p))
				if ctx.Err() != nil {
					return
				}
				if err != nil || status != 200 {
					report(fmt.Errorf("%s page %d: %d %v", res, p, status, err))
					return
				}
				var pg page
				if err := json.Unmarshal(body, &pg); err != nil {
					report(fmt.Errorf("page body: %w", err))
					return
				}
				seen := map[string]bool{}
				for _, it := range pg.Data {
					var v struct{ ID json.Number }
					if json.Unmarshal(it, &v) != nil || seen[v.ID.String()] {
						report(fmt.Errorf("%s page %d: bad or repeated item %s", res, p, it))
						return
					}
					seen[v.ID.String()] = true
				}
			}
		})
	}
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				id, err := e.sim.Create("tasks", map[string]any{"title": fmt.Sprintf("w%d-%d", w, i)})
				if err != nil {
					report(err)
					return
				}
				_ = e.sim.Update("tasks", id, map[string]any{"status": "done"})
				if raw, ok := e.sim.Get("tasks", id); ok && i%3 == 0 {
					_ = e.sim.SetRaw("tasks", id, append([]byte(" "), raw...))
				}
				if i%2 == 0 {
					_ = e.sim.Delete("tasks", id)
				}
				_ = e.sim.IDs("users")
				_ = e.sim.MutationsSince(e.sim.LastSeq() - 5)
			}
		})
	}
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			body := strings.NewReader(`{"role":"admin","active":` + strconv.FormatBool(i%2 == 0) + `}`)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, e.base+"/users/"+strconv.Itoa(1+i%300), body)
			req.Header.Set("Authorization", "Bearer "+testToken)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	})
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			_ = e.sim.SetFaults(sim.Faults{DriftInserts: i % 2, SoftDelete: i%3 == 0, ChangesLag: time.Duration(i%2) * time.Millisecond})
			_ = e.sim.Stats()
			if i%10 == 0 {
				e.sim.ResetStats()
			}
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	// Handlers of requests whose clients gave up may still be writing (a
	// drift insert, say); closing the server waits for them.
	e.srv.Close()
	if err := e.sim.Close(); err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	muts := e.sim.Mutations()
	if len(muts) < 100 {
		t.Errorf("only %d mutations: the workers did not run", len(muts))
	}
	checkReplay(t, e.sim, initial, muts, resources)
}
