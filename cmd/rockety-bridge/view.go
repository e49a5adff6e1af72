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
	"github.com/rockety-io/rockety-bridge/rockety"
)

// view prints change events for a person: one line each with the time, the
// subject and, for updates, every changed field as old → new.
type view struct {
	w     io.Writer
	color bool

	mu       sync.Mutex
	counts   map[string]map[events.Op]int
	outcomes map[events.Status]int
	// trips are the commands whose write-through event is still to come.
	trips []*trip
	// cyclesPrefix is P.cycles., for telling reports from events.
	cyclesPrefix string
}

func newView(w io.Writer) *view {
	return &view{w: w, color: isTerminal(w) && os.Getenv("NO_COLOR") == "",
		counts: map[string]map[events.Op]int{}, outcomes: map[events.Status]int{}}
}

// trip is a command on its way: sent, then its write-through event and its
// result, in whichever order they come. The event is published before the
// result, but it reaches the view through the stream while the result
// reaches the sender, so either may be shown first.
type trip struct {
	commandID string
	resource  string
	action    events.Action
	// id is the item's; a create learns it from its result.
	id string
	// fields are what the command set: the event of its write carries
	// them, which tells it from a poll's event for the same item.
	fields map[string]json.RawMessage
	sent   time.Time
}

// op is the event a successful write of the trip publishes.
func (t *trip) op() events.Op {
	switch t.action {
	case events.ActionCreate:
		return events.OpCreated
	case events.ActionDelete:
		return events.OpDeleted
	}
	return events.OpUpdated
}

// carries reports whether e is the change event of t's write.
func (t *trip) carries(e events.Event) bool {
	if e.Resource != t.resource || e.Op != t.op() || (t.id != "" && e.ID != t.id) {
		return false
	}
	if t.id == "" && len(t.fields) == 0 {
		return false // a create with nothing to recognise it by
	}
	var after map[string]json.RawMessage
	if len(t.fields) > 0 && json.Unmarshal(e.After, &after) != nil {
		return false
	}
	for k, want := range t.fields {
		if !sameJSON(after[k], want) {
			return false
		}
	}
	return true
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y bytes.Buffer
	return json.Compact(&x, a) == nil && json.Compact(&y, b) == nil && bytes.Equal(x.Bytes(), y.Bytes())
}

// tripTTL bounds how long a trip waits for its event: a write whose event
// a poll published first under the same id, or that changed nothing, has
// none of its own.
const tripTTL = time.Minute

// sent shows a command leaving and waits for its event.
func (v *view) sent(t *trip, subject string, cmd events.Command) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.trips = append(v.trips, t)
	what := t.resource + "." + string(t.action)
	if t.id != "" {
		what += " " + t.id
	}
	if len(cmd.Data) > 0 {
		what += " " + shortN(cmd.Data, 96)
	}
	fmt.Fprintln(v.w, v.paint(ansiDim, t.sent.Local().Format("15:04:05.000"))+"  "+
		v.paint(ansiBlue, "→ command")+" "+what+"  "+v.paint(ansiDim, "(command id "+t.commandID+", on "+subject+")"))
}

// result shows a command's outcome, or that none came.
func (v *view) result(t *trip, subject string, res events.Result, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	line := v.paint(ansiDim, now.Local().Format("15:04:05.000")) + "  " + v.paint(ansiBlue, "← result ") + " " + t.commandID + " "
	switch {
	case err != nil:
		v.outcomes["no result"]++
		v.dropTrip(t)
		line += v.paint(ansiRed, "no result") + ": " + err.Error()
	default:
		v.outcomes[res.Status]++
		status := string(res.Status)
		if res.HTTPStatus != 0 {
			status += fmt.Sprintf(" (HTTP %d)", res.HTTPStatus)
		}
		if res.Status == events.StatusSucceeded {
			line += v.paint(ansiGreen, status)
			if t.action == events.ActionCreate {
				var item struct {
					ID rockety.ID `json:"id"`
				}
				if json.Unmarshal(res.Data, &item) == nil && item.ID != "" {
					t.id = string(item.ID)
					line += ", id " + t.id
				}
			}
		} else {
			v.dropTrip(t)
			line += v.paint(ansiRed, status) + ": " + res.Error
		}
		line += fmt.Sprintf(" in %s  %s", now.Sub(t.sent).Round(time.Millisecond), v.paint(ansiDim, subject))
	}
	fmt.Fprintln(v.w, line)
}

func (v *view) dropTrip(t *trip) {
	v.trips = slices.DeleteFunc(v.trips, func(x *trip) bool { return x == t })
}

// tripOf takes the trip whose write e reports, if any.
func (v *view) tripOf(e events.Event) *trip {
	v.trips = slices.DeleteFunc(v.trips, func(t *trip) bool { return time.Since(t.sent) > tripTTL })
	for i, t := range v.trips {
		if t.carries(e) {
			v.trips = slices.Delete(v.trips, i, i+1)
			return t
		}
	}
	return nil
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
	if t := v.tripOf(e); t != nil {
		line += "  " + v.paint(ansiBlue, "⇠ write-through of "+t.commandID)
	}
	fmt.Fprintln(v.w, line)
}

// cycle writes one cycle report.
func (v *view) cycle(r events.CycleReport) {
	v.mu.Lock()
	defer v.mu.Unlock()
	color := ansiDim
	if r.Outcome != events.CycleComplete {
		color = ansiRed
	}
	line := v.paint(ansiDim, r.FinishedAt.Local().Format("15:04:05.000")) + "  " +
		v.paint(color, fmt.Sprintf("%-8s", "cycle")) + " " +
		fmt.Sprintf("%s %s %s in %s by %s: %d items, %d pages, %d requests; %d created, %d updated, %d deleted, %d snapshot",
			r.Resource, r.Kind, r.Outcome, r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond), r.Instance,
			r.Items, r.Pages, r.Requests, r.Created, r.Updated, r.Deleted, r.Snapshot)
	if r.GuardTripped {
		line += "; mass-delete guard tripped"
	}
	if r.ResyncID != "" {
		line += "; resync " + r.ResyncID
	}
	if r.Error != "" {
		line += ": " + r.Error
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

func short(raw json.RawMessage) string { return shortN(raw, 48) }

// shortN is raw compacted, cut to about n bytes.
func shortN(raw json.RawMessage, n int) string {
	if raw == nil {
		return "(none)"
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	s := b.String()
	if len(s) > n {
		s = s[:n-3] + "..."
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
	if n := v.outcomes[events.StatusSucceeded] + v.outcomes[events.StatusFailed] + v.outcomes[events.StatusRejected] + v.outcomes["no result"]; n > 0 {
		fmt.Fprintf(w, "%d commands: %d succeeded, %d failed, %d rejected, %d without a result\n", n,
			v.outcomes[events.StatusSucceeded], v.outcomes[events.StatusFailed], v.outcomes[events.StatusRejected], v.outcomes["no result"])
	}
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
