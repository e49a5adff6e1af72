package main

import "runtime/debug"

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
