package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// BenchmarkCommands runs updates end to end — a service's command.Do, the
// commands stream, the consumer (with its idempotency records and
// write-through), the API write, the result back — beside the same updates
// made directly with the API client, at 1 and 16 at a time, against the
// simulator answering after 1ms and after 20ms (a remote API is nearer
// the second). The consumer runs 16 commands at once. It reports commands
// per second and the p50 and p99 latency of one command.
func BenchmarkCommands(b *testing.B) {
	// Many items, so that the bridge's one-at-a-time order per item does
	// not serialise what the direct calls run side by side.
	seedItems = 2000
	defer func() { seedItems = 20 }()
	h := newHarness(b, consumer.Allow{"*"})
	var seq atomic.Int64
	update := func() (string, json.RawMessage) {
		n := seq.Add(1)
		return fmt.Sprint(n%2000 + 1), json.RawMessage(fmt.Sprintf(`{"description":"run %d"}`, n))
	}
	direct := func(ctx context.Context) error {
		id, data := update()
		_, err := h.client.Update(ctx, "tasks", rockety.ID(id), data)
		return err
	}
	viaBridge := func(ctx context.Context) error {
		id, data := update()
		res, err := h.cmd.Do(ctx, command.Request{Resource: "tasks", Action: events.ActionUpdate,
			Command: events.Command{ID: rockety.ID(id), Data: data}})
		if err == nil && res.Status != events.StatusSucceeded {
			err = fmt.Errorf("%s: %s", res.Status, res.Error)
		}
		return err
	}
	for _, latency := range []time.Duration{time.Millisecond, 20 * time.Millisecond} {
		if err := h.sim.SetFaults(sim.Faults{Latency: latency}); err != nil {
			b.Fatal(err)
		}
		for _, conc := range []int{1, 16} {
			for _, way := range []struct {
				name string
				fn   func(context.Context) error
			}{{"direct", direct}, {"bridge", viaBridge}} {
				b.Run(fmt.Sprintf("latency=%s/%s-c%d", latency, way.name, conc), func(b *testing.B) {
					runConcurrent(b, conc, way.fn)
				})
			}
		}
	}
}

func runConcurrent(b *testing.B, conc int, op func(context.Context) error) {
	ctx := context.Background()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		next      atomic.Int64
		wg        sync.WaitGroup
	)
	b.ResetTimer()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				start := time.Now()
				if err := op(ctx); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(latencies)
	if len(latencies) == 0 {
		return
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}
