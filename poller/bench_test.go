package poller_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// BenchmarkCycle runs steady cycles over 100,000 tasks (1,000 pages of 100)
// with 1% of them changed before each cycle (updates, plus a few creates
// and deletes), against the simulator over loopback HTTP and an embedded
// NATS server, beside the client's bare traversal of the same pages. It
// reports the API requests each cycle makes. Without added latency the run
// is bound by the two cores that the simulator, NATS, the client and the
// poller share; with a millisecond per request, as a remote API has at the
// least, by the API.
func BenchmarkCycle(b *testing.B) {
	const n = 100_000
	s := lab.NewSim(b, sim.Options{Seed: 1, SeedItems: n, Resources: []string{"tasks"}})
	client := lab.Serve(b, s, rockety.WithPageConcurrency(4))
	ns := natstest.Start(b)
	nc := ns.Connect(b)
	js, _ := jetstream.New(nc)
	res, err := publisher.Provision(context.Background(), js, publisher.Config{Subjects: subjects})
	if err != nil {
		b.Fatal(err)
	}
	pub, _ := publisher.NewPublisher(nc)
	store := publisher.NewStateStore(js, res.State)
	p, err := poller.New(poller.Config{Resource: "tasks"}, poller.Deps{
		Lister: client, Mirror: store, Checkpoints: publisher.NewCheckpoints(res.Checkpoints, res.State),
		Sink: publisher.EventSink{Publisher: pub, Subjects: subjects, APIBaseURL: client.BaseURL()}, Journal: publisher.NewJournal(js, subjects),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.RunOnce(ctx); err != nil { // baseline
		b.Fatal(err)
	}

	round := 0
	change := func(b *testing.B) (deleted int) {
		b.Helper()
		round++
		ids := s.IDs("tasks")
		for i := round % 100; i < len(ids); i += 100 {
			var err error
			switch {
			case i%10_000 == round%100: // a few deletes and creates among the updates
				err = s.Delete("tasks", ids[i])
				deleted++
				if err == nil {
					_, err = s.Create("tasks", map[string]any{"title": "new"})
				}
			default:
				err = s.Update("tasks", ids[i], map[string]any{"status": "review"})
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		return deleted
	}

	for _, latency := range []time.Duration{0, time.Millisecond} {
		if err := s.SetFaults(sim.Faults{Latency: latency}); err != nil {
			b.Fatal(err)
		}
		prefix := "latency=" + latency.String() + "/"
		b.Run(prefix+"bare-traversal", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				change(b)
				b.StartTimer()
				items := 0
				for page, err := range client.Pages(ctx, "tasks") {
					if err != nil {
						b.Fatal(err)
					}
					items += len(page.Items)
				}
				if items != n {
					b.Fatalf("%d items", items)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
		})
		// The bare traversal saw changes the poller has not: catch up untimed.
		if _, err := p.RunOnce(ctx); err != nil {
			b.Fatal(err)
		}
		b.Run(prefix+"poller-cycle", func(b *testing.B) {
			var requests, pages, suspects, changes int
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				change(b)
				s.ResetStats()
				b.StartTimer()
				stats, err := p.RunOnce(ctx)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				requests += s.Stats().Total
				pages += stats.Pages
				suspects += stats.Suspected
				changes += stats.Created + stats.Updated + stats.Deleted
				if stats.Updated < n/100-n/10_000*2 || stats.Deleted == 0 {
					b.Fatalf("cycle stats %+v: the changes were not found", stats)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
			b.ReportMetric(float64(requests)/float64(b.N), "requests/cycle")
			b.ReportMetric(float64(pages+suspects)/float64(b.N), "pages+suspects/cycle")
			b.ReportMetric(float64(changes)/float64(b.N), "events/cycle")
		})
	}
}

// BenchmarkIncrementalCycle runs incremental cycles over 1,000,000 tasks
// with 10 of them changed before each, beside the bare fetch of the same
// filtered list (a plain Pages call with the filter, what any client of the
// API would do). The simulator's clock moves 5 s a round, as between two
// polls, so each list holds that round's changes. The difference is what the
// bridge adds to a cycle: the diff, the lookups, publishing, commits and the
// bookmark write. It reports the requests each cycle makes.
func BenchmarkIncrementalCycle(b *testing.B) {
	const n = 1_000_000
	var clockMu sync.Mutex
	apiNow := time.Now().UTC().Truncate(time.Second)
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return apiNow }
	s := lab.NewSim(b, sim.Options{Seed: 1, SeedItems: n, Resources: []string{"tasks"}, Clock: clock})
	client := lab.Serve(b, s, rockety.WithPageConcurrency(4), rockety.WithMaxPageSize())
	ns := natstest.Start(b)
	nc := ns.Connect(b)
	js, _ := jetstream.New(nc)
	res, err := publisher.Provision(context.Background(), js, publisher.Config{Subjects: subjects})
	if err != nil {
		b.Fatal(err)
	}
	pub, _ := publisher.NewPublisher(nc)
	store := publisher.NewStateStore(js, res.State)
	p, err := poller.New(poller.Config{Resource: "tasks", ChangedSince: "updated_since", FullEvery: time.Hour},
		poller.Deps{Lister: client, Mirror: store, Checkpoints: publisher.NewCheckpoints(res.Checkpoints, res.State),
			Sink: publisher.EventSink{Publisher: pub, Subjects: subjects, APIBaseURL: client.BaseURL()}, Journal: publisher.NewJournal(js, subjects)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.RunOnce(ctx); err != nil { // baseline: a full traversal
		b.Fatal(err)
	}
	ids := s.IDs("tasks")
	round := 0
	// change moves the API's clock on and changes 10 items; it returns the
	// time of the round before, from which the poller's filter asks.
	change := func(b *testing.B) time.Time {
		b.Helper()
		round++
		clockMu.Lock()
		prev := apiNow
		apiNow = apiNow.Add(5 * time.Second)
		clockMu.Unlock()
		for i := range 10 {
			if err := s.Update("tasks", ids[(round*7919+i*104729)%len(ids)], map[string]any{"status": "review", "round": round}); err != nil {
				b.Fatal(err)
			}
		}
		return prev
	}
	b.Run("bare-filtered-fetch", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			since := change(b).Add(time.Second).Format(time.RFC3339)
			b.StartTimer()
			items := 0
			for page, err := range client.Pages(ctx, "tasks", rockety.Filter{Param: "updated_since", Value: since}) {
				if err != nil {
					b.Fatal(err)
				}
				items += len(page.Items)
			}
			if items != 10 {
				b.Fatalf("%d items", items)
			}
		}
	})
	if _, err := p.RunOnce(ctx); err != nil { // what the bare fetch saw, untimed
		b.Fatal(err)
	}
	b.Run("poller-cycle", func(b *testing.B) {
		var requests, events int
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			change(b)
			s.ResetStats()
			b.StartTimer()
			stats, err := p.RunOnce(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if stats.Kind != poller.KindIncremental || stats.Updated != 10 {
				b.Fatalf("cycle %+v, want an incremental one with the 10 updates", stats)
			}
			requests += s.Stats().Total
			events += stats.Updated
			b.StartTimer()
		}
		b.ReportMetric(float64(requests)/float64(b.N), "requests/cycle")
		b.ReportMetric(float64(events)/float64(b.N), "events/cycle")
	})
}
