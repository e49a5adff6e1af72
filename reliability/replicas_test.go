//go:build reliability

package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rockety-io/rockety-bridge/internal/lab"
)

// replica is one of the kill loop's two bridges: an instance id and a
// metrics address kept across its restarts, and the process running now.
type replica struct {
	id   string
	addr string
	proc *lab.Process
}

// replicaProc is one process a replica ran, and its kill, if it had one.
type replicaProc struct {
	id      string
	proc    *lab.Process
	kill    int       // the kill's number, 0 if it was not killed
	killed  time.Time // when it was gone
	stopped time.Time // when it was sent SIGTERM at the end
}

// replicaPair runs two replicas of one deployment (same prefix, NATS and
// API) side by side for the kill loop. A kill hits the lease holder; the
// victim starts again under its own id while the other runs on, so a
// lease either comes back to the restarted process (still recorded under
// its id) or passes to the other one once the TTL runs out.
type replicaPair struct {
	l         *rig
	env       []string
	resources []string
	reps      [2]*replica
	last      *replica // the replica started last
	procs     []*replicaProc
}

// newReplicaPair makes pod-a, on the rig's metrics address so the
// baseline may run as pod-a, and pod-b; neither is started.
func newReplicaPair(l *rig, env, resources []string) *replicaPair {
	return &replicaPair{l: l, env: env, resources: resources, reps: [2]*replica{
		{id: "pod-a", addr: l.httpAddr}, {id: "pod-b", addr: lab.FreeAddr(l.t)}}}
}

// envOf is the environment of r's processes.
func (p *replicaPair) envOf(r *replica) []string {
	return append(slices.Clone(p.env), "BRIDGE_INSTANCE_ID="+r.id, "BRIDGE_HTTP_ADDR="+r.addr)
}

// start starts a process of r.
func (p *replicaPair) start(r *replica) {
	p.l.t.Helper()
	r.proc = p.l.startBridgeAs(r.id, p.envOf(r)...)
	p.last = r
	p.procs = append(p.procs, &replicaProc{id: r.id, proc: r.proc})
}

// other returns the replica that is not r.
func (p *replicaPair) other(r *replica) *replica {
	if r == p.reps[0] {
		return p.reps[1]
	}
	return p.reps[0]
}

// killed records that r's process was killed as kill n.
func (p *replicaPair) killed(r *replica, n int, at time.Time) {
	for _, rp := range p.procs {
		if rp.proc == r.proc {
			rp.kill, rp.killed = n, at
		}
	}
}

// checkRunning fails the test if a replica ended by itself.
func (p *replicaPair) checkRunning() {
	p.l.t.Helper()
	for _, r := range p.reps {
		if r.proc.Exited() {
			p.l.t.Fatalf("replica %s (%s) exited by itself:\n%s", r.id, r.proc.Name, r.proc.Tail(40))
		}
	}
}

// heldBy returns the resources whose lease the leases bucket records
// under id.
func (p *replicaPair) heldBy(id string) []string {
	var out []string
	for r, h := range p.l.leaseHolders(context.Background(), p.resources) {
		if h == id {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// holder returns the replica holding the most leases, and those leases;
// when neither holds one (both between leases), either.
func (p *replicaPair) holder() (*replica, []string) {
	a, b := p.heldBy(p.reps[0].id), p.heldBy(p.reps[1].id)
	switch {
	case len(a) > len(b):
		return p.reps[0], a
	case len(b) > len(a):
		return p.reps[1], b
	case p.l.rnd.IntN(2) == 0:
		return p.reps[0], a
	default:
		return p.reps[1], b
	}
}

// stop ends both replicas with SIGTERM, as a rollout does, and returns the
// cycles their last processes' logs report.
func (p *replicaPair) stop() map[string]int {
	p.l.t.Helper()
	cycles := map[string]int{}
	// A process signalled before it handles signals just dies, as any
	// process does; the release at SIGTERM is what the stop is to see.
	for _, r := range p.reps {
		lab.Wait(p.l.t, "replica "+r.id+" serving /metrics", time.Minute, func() (bool, error) {
			if r.proc.Exited() {
				return false, fmt.Errorf("replica %s (%s) exited by itself:\n%s", r.id, r.proc.Name, r.proc.Tail(40))
			}
			_, err := p.l.scrapeAt(r.addr)
			return err == nil, nil
		})
	}
	// The holder goes first, so the other replica takes over the leases
	// it releases, without waiting for their TTL.
	first, _ := p.holder()
	order := []*replica{first, p.other(first)}
	for _, r := range order {
		for _, rp := range p.procs {
			if rp.proc == r.proc {
				rp.stopped = time.Now()
			}
		}
		if code := r.proc.Stop(30 * time.Second); code != 0 {
			p.l.t.Errorf("replica %s exited %d after SIGTERM:\n%s", r.id, code, r.proc.Tail(30))
		}
		if strings.Contains(r.proc.Output(), "panic") {
			p.l.t.Errorf("replica %s panicked:\n%s", r.id, r.proc.Tail(40))
		}
		for o, n := range cycleCounts(r.proc) {
			cycles[o] += n
		}
		if r == first {
			// The other replica looks for a free lease once a second;
			// stopped at once, it would never see the released ones.
			_, _ = lab.Within(*flagKillLeaseTTL+2*time.Second, func() (bool, error) {
				return len(p.heldBy(order[1].id)) == len(p.resources), nil
			})
		}
	}
	return cycles
}

// leaseLine is a line of a bridge's log about one resource: a lease taken
// ("poll lease" with held true) or a cycle that ended.
type leaseLine struct {
	at       time.Time
	resource string
	took     time.Duration // a cycle's duration
}

// zapTime is the layout of the time the bridge's JSON log writes
// (zapcore.ISO8601TimeEncoder).
const zapTime = "2006-01-02T15:04:05.000Z0700"

// leaseLines reads a bridge's log for the leases it took and the cycles
// it ended, in the order it wrote them.
func leaseLines(proc *lab.Process) (takes, cycles []leaseLine) {
	for raw := range logLines(proc) {
		var line struct {
			Time     string  `json:"time"`
			Msg      string  `json:"msg"`
			Resource string  `json:"resource"`
			Held     *bool   `json:"held"`
			Took     float64 `json:"took"`
		}
		if json.Unmarshal(raw, &line) != nil || line.Resource == "" {
			continue
		}
		at, err := time.Parse(zapTime, line.Time)
		if err != nil {
			continue
		}
		ll := leaseLine{at: at, resource: line.Resource, took: time.Duration(line.Took * float64(time.Second))}
		switch {
		case line.Msg == "poll lease" && line.Held != nil && *line.Held:
			takes = append(takes, ll)
		case strings.HasPrefix(line.Msg, "poll cycle"), strings.HasPrefix(line.Msg, "mass-delete guard"):
			cycles = append(cycles, ll)
		}
	}
	return takes, cycles
}

// handover is a lease taken after its holder was killed.
type handover struct {
	kill     int
	resource string
	from, to string
	taken    time.Duration // from the kill until the lease was taken
	// cycled is from the kill until the taker's first cycle of the
	// resource ended, cycleStart until it began; -1 when it never ended.
	cycled, cycleStart time.Duration
}

// handoverReport is what became of the killed holders' leases.
type handoverReport struct {
	moved    []handover      // taken by the other replica
	back     []handover      // taken back by the killed replica's next process
	released []time.Duration // taken from a holder stopped with SIGTERM, after the SIGTERM
	whileLed int             // taken from a holder that was neither killed nor stopped
	// takes lists every lease taken, for leases.tsv in the work directory.
	takes []string
}

// handovers reads every replica process's log and follows each lease
// from take to take: a take that follows a killed process's is a lease
// moved to the other replica, or taken back by the restarted one.
func (p *replicaPair) handovers(kills []kill) handoverReport {
	type take struct {
		leaseLine
		rp     *replicaProc
		cycles []leaseLine
	}
	byResource := map[string][]take{}
	for _, rp := range p.procs {
		takes, cycles := leaseLines(rp.proc)
		for _, t := range takes {
			byResource[t.resource] = append(byResource[t.resource], take{leaseLine: t, rp: rp, cycles: cycles})
		}
	}
	var rep handoverReport
	for _, takes := range byResource {
		slices.SortFunc(takes, func(a, b take) int { return a.at.Compare(b.at) })
		for _, t := range takes {
			killed := "-"
			if t.rp.kill > 0 {
				killed = fmt.Sprintf("%d\t%s", t.rp.kill, t.rp.killed.Format(zapTime))
			} else {
				killed += "\t-"
			}
			rep.takes = append(rep.takes, fmt.Sprintf("%s\t%s\t%s\t%s\t%s", t.resource, t.at.Format(zapTime), t.rp.id, t.rp.proc.Name, killed))
		}
		for i := 1; i < len(takes); i++ {
			prev, cur := takes[i-1], takes[i]
			if prev.rp.proc == cur.rp.proc {
				continue // lost and taken again by the same process
			}
			if prev.rp.kill == 0 || prev.rp.killed.After(cur.at) {
				if !prev.rp.stopped.IsZero() && prev.rp.stopped.Before(cur.at) {
					rep.released = append(rep.released, cur.at.Sub(prev.rp.stopped))
				} else {
					rep.whileLed++
				}
				continue
			}
			h := handover{kill: prev.rp.kill, resource: cur.resource, from: prev.rp.id, to: cur.rp.id,
				taken: cur.at.Sub(prev.rp.killed), cycled: -1, cycleStart: -1}
			for _, c := range cur.cycles {
				if c.resource == cur.resource && !c.at.Before(cur.at) {
					h.cycled, h.cycleStart = c.at.Sub(prev.rp.killed), c.at.Add(-c.took).Sub(prev.rp.killed)
					break
				}
			}
			if h.from == h.to {
				rep.back = append(rep.back, h)
			} else {
				rep.moved = append(rep.moved, h)
			}
		}
	}
	slices.SortFunc(rep.moved, func(a, b handover) int { return a.kill - b.kill })
	return rep
}

// rows are the report rows of the two-replica loop.
func (h handoverReport) rows(kills []kill) [][2]string {
	byVictim := map[string]int{}
	holding, leases := 0, 0
	var restarts []time.Duration
	for _, k := range kills {
		byVictim[k.instance]++
		if len(k.held) > 0 {
			holding++
			leases += len(k.held)
		}
		restarts = append(restarts, k.restart)
	}
	movedKills := map[int]bool{}
	var taken, cycled, started []time.Duration
	unended := 0
	for _, m := range h.moved {
		movedKills[m.kill] = true
		taken = append(taken, m.taken)
		if m.cycled < 0 {
			unended++
			continue
		}
		cycled = append(cycled, m.cycled)
		started = append(started, m.cycleStart)
	}
	var back []time.Duration
	for _, b := range h.back {
		back = append(back, b.taken)
	}
	return [][2]string{
		{"replicas", fmt.Sprintf("2 (pod-a, pod-b), BRIDGE_LEASE_TTL %s; a killed replica started again after %s (0 to %s)",
			*flagKillLeaseTTL, spread(restarts), *flagKillRestart)},
		{"kills by victim; victims holding leases at the kill", fmt.Sprintf("pod-a %d, pod-b %d; %d holding %d leases",
			byVictim["pod-a"], byVictim["pod-b"], holding, leases)},
		{"kills that moved a lease to the other replica", fmt.Sprintf("%d (%d leases)", len(movedKills), len(h.moved))},
		{"handover: kill → the other replica took the lease", spread(taken)},
		{"handover: kill → its first cycle of the resource began / ended", fmt.Sprintf("%s / %s%s", spread(started), spread(cycled),
			map[bool]string{true: fmt.Sprintf(" (%d never ended)", unended)}[unended > 0])},
		{"leases taken back by the restarted replica: kill → taken", fmt.Sprintf("%d: %s", len(h.back), spread(back))},
		{"leases released at the end (SIGTERM) and taken by the other replica: SIGTERM → taken", fmt.Sprintf("%d: %s", len(h.released), spread(h.released))},
		{"leases that passed from a holder still running", fmt.Sprint(h.whileLed)},
	}
}

// spread formats durations as median / p90 / max.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))].Round(time.Millisecond) }
	return fmt.Sprintf("median %s, p90 %s, max %s", at(0.5), at(0.9), s[len(s)-1].Round(time.Millisecond))
}
