// Package reliability holds the bridge's long-running reliability tests.
// They build rockety-bridge, rockety-sim and nats-server, run them as
// processes, and hold every change event the bridge published to the
// simulator's mutation log, read over its admin routes:
//
//   - TestKillLoop starts the bridge and SIGKILLs it again and again while
//     the API churns and commands arrive, then lets one last bridge catch
//     up and compares. With -kill.replicas 2 two replicas run side by side
//     and each kill hits the lease holder, so leases pass between live
//     processes.
//   - TestSoak runs one bridge for minutes against 100,000 items with churn
//     and API faults (500s, 429s, truncated, HTML and repeated pages),
//     sampling its event rate, memory and goroutines.
//
// Both sit behind the build tag reliability, so `go test ./...` does not run
// them. The events are judged by internal/judge, the judge every test of
// the bridge's events shares, table-tested there without the tag; the
// processes are built, started and stopped by internal/lab.
// RELIABILITY.md has the commands and the latest figures:
//
//	go test -tags reliability -run KillLoop -v -timeout 60m ./reliability -kills 50
//	go test -tags reliability -run KillLoop -v -timeout 60m ./reliability -kills 50 -kill.replicas 2
//	go test -tags reliability -run 'TestSoak$' -v -timeout 3h ./reliability -soak.duration 10m -soak.items 100000
//	go test -tags reliability -run CompactionSoak -v -timeout 30m ./reliability
package reliability
