package poller

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// benchItems builds n task-like items of about 300 bytes, ids 1..n.
func benchItems(n int, variant string) []rockety.Item {
	out := make([]rockety.Item, n)
	for i := range out {
		id := strconv.Itoa(i + 1)
		raw := fmt.Sprintf(`{"id":%s,"project_id":%d,"title":"Review the onboarding checklist %s","description":"Walk through every step with the new team and note what is unclear","status":"open","priority":"high","assignee_id":%d,"due_date":"2026-12-%02d","tags":["docs","q4"],"created_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-20T08:30:00Z"}`,
			id, i%50+1, variant, i%200+1, i%28+1)
		out[i] = rockety.Item{ID: rockety.ID(id), Raw: []byte(raw)}
	}
	return out
}

// BenchmarkDiff compares 1,000,000 items, in pages of 100, with an index
// that knows them all, 1% changed: the in-memory cost of one cycle's diff
// and delete detection, no I/O. It also reports the index's memory per
// tracked item.
func BenchmarkDiff(b *testing.B) {
	const n = 1_000_000
	known := benchItems(n, "v1")
	current := benchItems(n, "v1")
	changedItems := benchItems(n, "v2")
	for i := 0; i < n; i += 100 {
		current[i] = changedItems[i] // 1% changed
	}
	changedItems = nil

	var before, after runtime.MemStats
	runtime.GC()
	debug.FreeOSMemory()
	rssBefore := rss()
	runtime.ReadMemStats(&before)
	ix := NewIndex(0)
	for _, it := range known {
		h, err := plan.Hash(it.Raw)
		if err != nil {
			b.Fatal(err)
		}
		ix.Load(string(it.ID), h, plan.RawHash(it.Raw), uint64(len(it.ID)), false)
	}
	runtime.GC()
	debug.FreeOSMemory()
	runtime.ReadMemStats(&after)
	perItem := float64(after.HeapAlloc-before.HeapAlloc) / n
	rssPerItem := float64(rss()-rssBefore) / n
	runtime.KeepAlive(known)
	known = nil

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cycle := uint32(i + 1)
		changed := 0
		for p := 0; p < n; p += 100 {
			changes, _, err := ix.Diff(cycle, current[p:p+100])
			if err != nil {
				b.Fatal(err)
			}
			changed += len(changes)
		}
		if missing := ix.Missing(cycle); len(missing) != 0 || changed != n/100 {
			b.Fatalf("%d changed, %d missing; want %d and 0", changed, len(missing), n/100)
		}
	}
	b.StopTimer()
	b.ReportMetric(perItem, "index-B/item")
	b.ReportMetric(rssPerItem, "RSS-B/item")
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
	runtime.KeepAlive(ix)
}

// rss is the process's resident set in bytes (Linux).
func rss() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkCanonicalHash hashes one ~300-byte item.
func BenchmarkCanonicalHash(b *testing.B) {
	it := benchItems(1, "v1")[0]
	b.SetBytes(int64(len(it.Raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := plan.Hash(it.Raw); err != nil {
			b.Fatal(err)
		}
	}
}
