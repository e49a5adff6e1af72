package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/command"
	"github.com/rockety-io/rockety-bridge/consumer"
	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/internal/lab"
	"github.com/rockety-io/rockety-bridge/internal/natstest"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/rockety"
	"github.com/rockety-io/rockety-bridge/rockety/model"
	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// BenchmarkCommandUnderFullTraversal measures a command's latency, sent
// to its result, while a full traversal of 5,000 tasks in pages of ten
// spends the whole budget (50 requests a second): with lanes (commands
// first) and without (every request in order of arrival), in one run;
// and, as the baseline, with no traversal (the budget idle).
// One op is one command, sent every 200 ms; p50 and p99 are reported.
//
//	go test ./internal/app -run '^$' -bench CommandUnderFullTraversal -benchtime 100x -count 3
func BenchmarkCommandUnderFullTraversal(b *testing.B) {
	for _, mode := range []string{"idle", "lanes", "arrival-order"} {
		b.Run(mode, func(b *testing.B) {
			s := lab.NewSim(b, sim.Options{Seed: 4, SeedItems: 5000, Resources: []string{"tasks"}})
			budget := rockety.NewBudget(50)
			if mode == "arrival-order" {
				budget.WithoutLanes()
			}
			var resources []app.Resource
			if mode != "idle" {
				resources = []app.Resource{{Name: "tasks", Interval: 100 * time.Millisecond}}
			}
			client := lab.Serve(b, s, rockety.WithBudget(budget), rockety.WithPageSize(10))
			ns := natstest.Start(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			metrics := app.NewMetrics("bench")
			br, err := app.New(ctx, app.Options{
				Client: client, Conn: ns.Connect(b), Subjects: subjects, InitialSync: poller.SyncBaseline, MaxDeleteRatio: 0.5,
				InstanceID: "bench", LeaseTTL: 2 * time.Second, ShutdownGrace: time.Second, Metrics: metrics,
				Resources: resources,
				Commands:  &app.Commands{Writer: client, Allow: consumer.Allow{"*"}},
			})
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- br.Run(ctx) }()
			defer func() { cancel(); <-done }()
			cmds, err := command.New(ns.Connect(b), subjects)
			if err != nil {
				b.Fatal(err)
			}
			// The traversal is under way and the budget spent before the
			// first command.
			if mode != "idle" {
				lab.WaitFor(b, "the budget spent by the traversal", 30*time.Second, func() bool { return budget.Granted() > 100 })
			}

			type result struct {
				took time.Duration
				err  error
			}
			results := make(chan result, b.N)
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			b.ResetTimer()
			for i := range b.N {
				<-tick.C
				go func() {
					cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
					defer ccancel()
					start := time.Now()
					res, err := cmds.Do(cctx, command.Request{Resource: "tasks", Action: events.ActionUpdate,
						Command: events.Command{ID: model.ID(fmt.Sprint(i%5000 + 1)), Data: json.RawMessage(fmt.Sprintf(`{"title":"bench %d"}`, i))}})
					if err == nil && res.Status != events.StatusSucceeded {
						err = fmt.Errorf("command %d: %s: %s", i, res.Status, res.Error)
					}
					results <- result{time.Since(start), err}
				}()
			}
			took := make([]time.Duration, 0, b.N)
			for range b.N {
				r := <-results
				if r.err != nil {
					b.Fatal(r.err)
				}
				took = append(took, r.took)
			}
			b.StopTimer()
			slices.Sort(took)
			q := func(f float64) float64 { return took[min(len(took)-1, int(f*float64(len(took))))].Seconds() * 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(0, "ns/op") // the op is paced at 200 ms; its time says nothing
		})
	}
}
