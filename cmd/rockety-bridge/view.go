package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rockety-io/rockety-bridge/events"
)

// view prints change events for a person: one line each with the time, the
// subject and, for updates, every changed field as old → new.
type view struct {
	w     io.Writer
	color bool

	mu     sync.Mutex
	counts map[string]map[events.Op]int
}

func newView(w io.Writer) *view {
	return &view{w: w, color: isTerminal(w) && os.Getenv("NO_COLOR") == "", counts: map[string]map[events.Op]int{}}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

const (
	ansiReset  = "\x1b[0m"
	ansiDim    = "\x1b[2m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiRed    = "\x1b[31m"
	ansiBlue   = "\x1b[34m"
)

func (v *view) paint(code, s string) string {
	if !v.color {
		return s
	}
	return code + s + ansiReset
}

func opColor(op events.Op) string {
	switch op {
	case events.OpCreated:
		return ansiGreen
	case events.OpUpdated:
		return ansiYellow
	case events.OpDeleted:
		return ansiRed
	}
	return ansiBlue
}

// print writes one event.
func (v *view) print(subject string, e events.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.counts[e.Resource] == nil {
		v.counts[e.Resource] = map[events.Op]int{}
	}
	v.counts[e.Resource][e.Op]++
	line := v.paint(ansiDim, e.DetectedAt.Local().Format("15:04:05.000")) + "  " +
		v.paint(opColor(e.Op), fmt.Sprintf("%-8s", e.Op)) + " " + subject
	if detail := describe(e); detail != "" {
		line += "  " + detail
	}
	fmt.Fprintln(v.w, line)
}

// describe summarises an event: the changed fields of an update, else the
// item's name.
func describe(e events.Event) string {
	switch e.Op {
	case events.OpUpdated:
		var before, after map[string]json.RawMessage
		_ = json.Unmarshal(e.Before, &before)
		_ = json.Unmarshal(e.After, &after)
		parts := make([]string, 0, len(e.Changed))
		for _, f := range e.Changed {
			parts = append(parts, fmt.Sprintf("%s: %s → %s", f, short(before[f]), short(after[f])))
		}
		return strings.Join(parts, ", ")
	case events.OpDeleted:
		return label(e.Before)
	default:
		return label(e.After)
	}
}

// label picks the field a person would recognise an item by.
func label(raw json.RawMessage) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return ""
	}
	for _, k := range []string{"title", "name", "email"} {
		if v, ok := fields[k]; ok {
			return k + "=" + short(v)
		}
	}
	return ""
}

func short(raw json.RawMessage) string {
	if raw == nil {
		return "(none)"
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	s := b.String()
	if len(s) > 48 {
		s = s[:45] + "..."
	}
	return s
}

// summary writes the counts of what was printed.
func (v *view) summary(w io.Writer, took time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	total := 0
	resources := make([]string, 0, len(v.counts))
	for r, byOp := range v.counts {
		resources = append(resources, r)
		for _, n := range byOp {
			total += n
		}
	}
	slices.Sort(resources)
	fmt.Fprintf(w, "\n%d events in %s\n", total, took.Round(time.Second))
	if total == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "resource\tcreated\tupdated\tdeleted\tsnapshot\t")
	for _, r := range resources {
		c := v.counts[r]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", r, c[events.OpCreated], c[events.OpUpdated], c[events.OpDeleted], c[events.OpSnapshot])
	}
	_ = tw.Flush()
}
