package sim_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"

	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// dump serves every page of every resource through the handler and returns
// the bytes, so two servers can be compared exactly as a client sees them.
func dump(t *testing.T, s *sim.Server, resources []string) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, res := range resources {
		for page := 1; ; page++ {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, sim.BasePath+"/"+res+"?per_page=500&page="+strconv.Itoa(page), nil)
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("%s page %d: %d", res, page, rec.Code)
			}
			out.Write(rec.Body.Bytes())
			if bytes.HasPrefix(rec.Body.Bytes(), []byte(`{"data":[]`)) {
				break
			}
		}
	}
	return out.Bytes()
}

func TestSeedingIsDeterministic(t *testing.T) {
	resources := []string{"projects", "tasks", "users", "widgets"}
	build := func(seed int64, n int) []byte {
		s, err := sim.New(sim.Options{Seed: seed, SeedItems: n, Resources: resources})
		if err != nil {
			t.Fatal(err)
		}
		return dump(t, s, resources)
	}
	a, b := build(42, 300), build(42, 300)
	if !bytes.Equal(a, b) {
		t.Error("same seed gave different data")
	}
	if bytes.Equal(a, build(43, 300)) {
		t.Error("different seeds gave the same data")
	}

	// Large seeds are built in parallel; the split must not show in the data.
	big := build(42, 30000)
	prev := runtime.GOMAXPROCS(1)
	single := build(42, 30000)
	runtime.GOMAXPROCS(prev)
	if !bytes.Equal(big, single) {
		t.Error("parallel seeding differs from serial seeding")
	}

	// Listing another resource leaves the others' data as it was.
	s, err := sim.New(sim.Options{Seed: 42, SeedItems: 300, Resources: []string{"tasks"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := sim.New(sim.Options{Seed: 42, SeedItems: 300, Resources: []string{"tasks", "gizmos"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dump(t, s, []string{"tasks"}), dump(t, other, []string{"tasks"})) {
		t.Error("adding a resource changed another resource's data")
	}
}

func TestSeedMillionItems(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million items")
	}
	s, err := sim.New(sim.Options{SeedItems: 1_000_000, Resources: []string{"tasks"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Count("tasks"); n != 1_000_000 {
		t.Fatalf("count %d", n)
	}
	raw, ok := s.Get("tasks", "1000000")
	if !ok || idOf(t, raw) != "1000000" {
		t.Errorf("last item %s", raw)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, sim.BasePath+"/tasks?page=10000&per_page=100", nil))
	p := decode[page](t, rec.Body.Bytes())
	if got := ids(t, p.Data); len(got) != 100 || got[0] != "999901" || p.Meta.Pages != 10000 {
		t.Errorf("last page: %v... meta %+v", got[:1], p.Meta)
	}
}
