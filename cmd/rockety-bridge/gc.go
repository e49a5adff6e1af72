package main

import (
	"context"
	"runtime/debug"
	"time"
)

// defaultGCPercent is the garbage collector's target when GOGC is not set.
// Nearly all of the bridge's live heap is its index, one pointer-free slice
// (24 bytes an item) that the collector never has to scan: collecting at
// half the default headroom costs little CPU and keeps the headroom, which
// grows with the index, at half its size (BENCHMARKS.md, "A million items,
// as processes").
const defaultGCPercent = 50

// tuneGC sets defaultGCPercent unless GOGC says otherwise; it reports the
// percent in force when it set one.
func tuneGC(getenv func(string) string) (percent int, set bool) {
	if getenv("GOGC") != "" {
		return 0, false
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent, true
}

// tuneGCOnceReady calls tuneGC once ready reports nil (every resource had a
// complete cycle): a start loads the whole index from the mirror, and
// collecting sooner while it streams in a million values made the load a
// third slower, for a peak that the load no longer has.
func tuneGCOnceReady(ctx context.Context, getenv func(string) string, ready func() error) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for ready() != nil {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	tuneGC(getenv)
}
