package publisher_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/plan"
	"github.com/rockety-io/rockety-bridge/publisher"
)

const benchEvents = 100_000

var benchRun atomic.Int64

// BenchmarkPublish sends 100,000 change events of about 1 KiB, each with its
// Nats-Msg-Id, to the events stream of an embedded server: through the
// Publisher beside a raw jetstream PublishMsgAsync loop with the same window.
func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	const window = publisher.DefaultWindow
	// Each side gets a fresh server: a stream that has stored and purged
	// millions of messages is slower than a new one, which would favour
	// whichever side runs first.
	setup := func(b *testing.B) (*nats.Conn, publisher.Resources) {
		srv := natstest.Start(b)
		nc := srv.Connect(b)
		js, _ := jetstream.New(nc)
		res, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects})
		if err != nil {
			b.Fatal(err)
		}
		return nc, res
	}

	run := func(b *testing.B, res publisher.Resources, publish func(msgs []*nats.Msg)) {
		b.ReportAllocs()
		var bytes int64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if err := res.Events.Purge(ctx); err != nil {
				b.Fatal(err)
			}
			// Ids unique across runs: a repeat would be dropped as a duplicate.
			msgs := eventMsgs(b, benchEvents, fmt.Sprintf("%s-%d", b.Name(), benchRun.Add(1)))
			for _, m := range msgs {
				bytes += int64(len(m.Data))
			}
			b.StartTimer()
			publish(msgs)
		}
		b.StopTimer()
		info, _ := res.Events.Info(ctx)
		if info.State.Msgs != benchEvents {
			b.Fatalf("stream holds %d messages, want %d", info.State.Msgs, benchEvents)
		}
		b.ReportMetric(float64(benchEvents*b.N)/b.Elapsed().Seconds(), "events/s")
		b.SetBytes(bytes / int64(b.N))
	}

	rawLoop := func(b *testing.B, maxPending int) {
		nc, res := setup(b)
		raw, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPending))
		if err != nil {
			b.Fatal(err)
		}
		run(b, res, func(msgs []*nats.Msg) {
			for _, m := range msgs {
				if _, err := raw.PublishMsgAsync(m); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-raw.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("acks did not arrive within a minute")
			}
		})
	}
	// The same window as the publisher; and the client's default window,
	// which the publisher does not use (it would hold 4,000 events of memory
	// per poller in flight).
	b.Run("raw-publishasync", func(b *testing.B) { rawLoop(b, window) })
	b.Run("raw-publishasync-window-4000", func(b *testing.B) { rawLoop(b, 4000) })
	b.Run("publisher", func(b *testing.B) {
		nc, res := setup(b)
		p, err := publisher.NewPublisher(nc, publisher.WithWindow(window))
		if err != nil {
			b.Fatal(err)
		}
		run(b, res, func(msgs []*nats.Msg) {
			acked := 0
			if err := p.Publish(ctx, msgs, func(int, *jetstream.PubAck) { acked++ }); err != nil {
				b.Fatal(err)
			}
			if acked != len(msgs) {
				b.Fatalf("acked %d of %d", acked, len(msgs))
			}
		})
	})
}

// BenchmarkLoadState loads 1,000,000 mirror entries of one resource, as a
// bridge does at start. Run it with -benchtime=1x: filling the bucket takes
// longer than loading it.
func BenchmarkLoadState(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("BENCH_STATE_ITEMS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	srv := natstest.Start(b)
	nc := srv.Connect(b)
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
	res, err := publisher.Provision(ctx, js, publisher.Config{Subjects: subjects})
	if err != nil {
		b.Fatal(err)
	}
	// Fill the bucket the way the KV protocol stores puts, in bulk.
	value := []byte(`{"id":0,"project_id":17,"title":"Review the onboarding checklist","description":"` +
		strings.Repeat("lorem ipsum ", 12) + `","status":"open","priority":"high","tags":["docs","q4"],` +
		`"created_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-20T08:30:00Z"}`)
	for i := range n {
		if _, err := js.PublishAsync("$KV."+res.State.Bucket()+".tasks."+strconv.Itoa(i), value); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	store := publisher.NewStateStore(js, res.State)
	runtime.GC()

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		loaded := 0
		if err := store.Load(ctx, "tasks", nil, func(e plan.State) error {
			loaded++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if loaded != n {
			b.Fatalf("loaded %d of %d", loaded, n)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/load")
	if hwm := peakRSS(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	}
}

// peakRSS is the process's high-water resident set (Linux), server included.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
