package app

import (
	"errors"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/publisher"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// Metrics are the bridge's Prometheus series. They observe the pollers and
// the API client; the token never reaches a label.
type Metrics struct {
	Registry *prometheus.Registry

	cycles        *prometheus.CounterVec
	cycleDuration *prometheus.HistogramVec
	itemsSeen     *prometheus.GaugeVec
	tracked       *prometheus.GaugeVec
	ids           *prometheus.GaugeVec
	compacted     *prometheus.CounterVec
	published     *prometheus.CounterVec
	apiRequests   *prometheus.CounterVec
	apiRetries    *prometheus.CounterVec
	apiPauses     *prometheus.CounterVec
	apiPaused     prometheus.Counter
	confirmations *prometheus.CounterVec
	guardTrips    *prometheus.CounterVec
	fallbacks     *prometheus.CounterVec
	missed        *prometheus.CounterVec
	cursorAge     *prometheus.GaugeVec
	leaseHeld     *prometheus.GaugeVec
	lastSuccess   *prometheus.GaugeVec
	commands      *prometheus.CounterVec
	commandTime   *prometheus.HistogramVec
	budgetWait    *prometheus.HistogramVec

	// commandResources are the resources whose names may be labels of the
	// command series; set once by InitCommands, before commands run.
	commandResources map[string]bool
}

// otherLabel stands for every resource or action that is not configured:
// a label never takes a value straight from a subject, so made-up
// subjects cannot grow the series.
const otherLabel = "other"

// NewMetrics registers every series on a fresh registry, with the Go and
// process collectors and build information.
func NewMetrics(version string) *Metrics {
	const ns = "rockety_bridge"
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "poll_cycles_total",
			Help: "Poll cycles by resource, kind (full, incremental, snapshot; none: failed before it began to read) and outcome (ok, incomplete, error, lease_lost; refused: the API refused the request with a 4xx that retrying will not heal)."}, []string{"resource", "kind", "outcome"}),
		cycleDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "poll_cycle_duration_seconds",
			Help: "Wall time of poll cycles.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}, []string{"resource"}),
		itemsSeen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "poll_items_seen",
			Help: "Distinct items the last cycle saw."}, []string{"resource"}),
		tracked: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "items_tracked",
			Help: "Live items the poller knows."}, []string{"resource"}),
		ids: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "ids_tracked",
			Help: "Ids the poller keeps: live items, and deleted ones whose delete markers BRIDGE_DELETE_RETENTION still keeps."}, []string{"resource"}),
		compacted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "delete_markers_compacted_total",
			Help: "Delete markers dropped from the mirror, with their ids, once older than BRIDGE_DELETE_RETENTION."}, []string{"resource"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_published_total",
			Help: "Change events acknowledged by JetStream, by resource and op."}, []string{"resource", "op"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_requests_total",
			Help: "Rockety API requests by method, resource and status (0: no response)."}, []string{"method", "resource", "status"}),
		apiRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_retries_total",
			Help: "Rockety API requests that were retries of an earlier attempt."}, []string{"method", "resource"}),
		apiPauses: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_pauses_total",
			Help: "Answers that held every API request (a 429's Retry-After, or rate-limit headers saying the budget is spent), by whether ROCKETY_MAX_RETRY_AFTER cut the wait (capped: true or false)."}, []string{"capped"}),
		apiPaused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "api_paused_seconds_total",
			Help: "Seconds of those pauses, as applied."}),
		confirmations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "delete_confirmations_total",
			Help: "GETs confirming suspected deletes, by outcome (deleted, present, failed)."}, []string{"resource", "outcome"}),
		guardTrips: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "mass_delete_guard_trips_total",
			Help: "Cycles whose deletes were held back by BRIDGE_MAX_DELETE_RATIO."}, []string{"resource"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "incremental_fallbacks_total",
			Help: "Times the API was found ignoring the ROCKETY_CHANGED_SINCE filter; the resource is then polled by full traversals until restart."}, []string{"resource"}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "incremental_missed_total",
			Help: "Changes a full traversal found that an incremental cycle should have seen: the filter checked against the truth."}, []string{"resource"}),
		cursorAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "incremental_cursor_age_seconds",
			Help: "Age of the incremental cursor (the newest changed-at value committed) at the end of the last cycle; absent without ROCKETY_CHANGED_SINCE."}, []string{"resource"}),
		leaseHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "lease_held",
			Help: "1 while this instance holds the resource's poll lease."}, []string{"resource"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "last_successful_cycle_timestamp_seconds",
			Help: "Unix time of the last complete cycle."}, []string{"resource"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "commands_total",
			Help: "Commands by resource, action and status (succeeded, failed, rejected)."}, []string{"resource", "action", "status"}),
		commandTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "command_duration_seconds",
			Help: "Time from a command's receipt to its result.", Buckets: prometheus.DefBuckets}, []string{"resource", "action"}),
	}
	m.budgetWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "api_budget_wait_seconds",
		Help:    "How long an API request waited for its turn in the API budget (ROCKETY_RATE_LIMIT), by lane: command, incremental, full.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, []string{"lane"})
	for _, l := range rockety.Lanes() {
		m.budgetWait.WithLabelValues(l.String())
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
		Help: "Build information; always 1."}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.apiPauses.WithLabelValues("false")
	m.apiPauses.WithLabelValues("true")
	r.MustRegister(m.cycles, m.cycleDuration, m.itemsSeen, m.tracked, m.ids, m.compacted, m.published, m.apiRequests, m.apiRetries, m.apiPauses, m.apiPaused,
		m.confirmations, m.guardTrips, m.fallbacks, m.missed, m.cursorAge, m.leaseHeld, m.lastSuccess, m.commands, m.commandTime, m.budgetWait, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// InitResource creates a resource's series at zero, so dashboards and
// alerts see them before the first event.
func (m *Metrics) InitResource(resource string) {
	m.guardTrips.WithLabelValues(resource)
	m.fallbacks.WithLabelValues(resource)
	m.missed.WithLabelValues(resource)
	m.compacted.WithLabelValues(resource)
	m.apiRetries.WithLabelValues("GET", resource)
	m.leaseHeld.WithLabelValues(resource)
	for _, o := range []string{"deleted", "present", "failed"} {
		m.confirmations.WithLabelValues(resource, o)
	}
	for _, op := range events.Ops {
		m.published.WithLabelValues(resource, string(op))
	}
}

// InitCommands names the resources commands may carry as labels and
// creates their series at zero. Call it before commands run.
func (m *Metrics) InitCommands(resources []string) {
	m.commandResources = map[string]bool{}
	for _, r := range resources {
		m.commandResources[r] = true
		for _, a := range []events.Action{events.ActionCreate, events.ActionUpdate, events.ActionDelete} {
			for _, s := range []events.Status{events.StatusSucceeded, events.StatusFailed, events.StatusRejected} {
				m.commands.WithLabelValues(r, string(a), string(s))
			}
			m.commandTime.WithLabelValues(r, string(a))
		}
	}
	m.commands.WithLabelValues(otherLabel, otherLabel, string(events.StatusRejected))
	m.commandTime.WithLabelValues(otherLabel, otherLabel)
}

// CommandDone counts a command's outcome and time, with a resource or an
// action that is not configured counted as "other".
func (m *Metrics) CommandDone(resource, action string, status events.Status, took time.Duration) {
	if !m.commandResources[resource] {
		resource = otherLabel
	}
	if !events.Action(action).Valid() {
		action = otherLabel
	}
	switch status {
	case events.StatusSucceeded, events.StatusFailed, events.StatusRejected:
	default:
		status = otherLabel
	}
	m.commands.WithLabelValues(resource, action, string(status)).Inc()
	m.commandTime.WithLabelValues(resource, action).Observe(took.Seconds())
}

// ObserveRequest implements rockety.Observer.
func (m *Metrics) ObserveRequest(r rockety.RequestInfo) {
	resource := r.Resource
	m.apiRequests.WithLabelValues(r.Method, resource, strconv.Itoa(r.Status)).Inc()
	if r.Attempt > 1 {
		m.apiRetries.WithLabelValues(r.Method, resource).Inc()
	}
	if r.Pause > 0 {
		m.apiPauses.WithLabelValues(strconv.FormatBool(r.PauseAsked > 0)).Inc()
		m.apiPaused.Add(r.Pause.Seconds())
	}
	m.budgetWait.WithLabelValues(r.Lane.String()).Observe(r.BudgetWait.Seconds())
}

// WatchBudget adds the series of the API budget: what this replica was
// granted, and, when it is shared, the replicas it is shared with and
// whether this one spends an equal share alone because NATS is away.
func (m *Metrics) WatchBudget(budget *rockety.Budget, shared *publisher.SharedBudget) {
	const ns = "rockety_bridge"
	collectors := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "api_budget_rate",
			Help: "The API budget of the whole deployment in force, in requests per second: ROCKETY_RATE_LIMIT, or a lower rate learned from an API without rate-limit headers that refused a request for its quota."},
			budget.InForce),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "api_budget_granted_per_second",
			Help: "Turns this replica was granted per second, over the last ten seconds."},
			budget.GrantedRate),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "api_budget_granted_total",
			Help: "Turns this replica was granted."},
			func() float64 { return float64(budget.Granted()) }),
	}
	if shared != nil {
		collectors = append(collectors,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "api_budget_replicas",
				Help: "Replicas sharing the API budget, at the last count."},
				func() float64 { return float64(shared.Stats().Replicas) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "api_budget_alone",
				Help: "1 while NATS cannot be reached and this replica spends an equal share of the budget alone (ROCKETY_RATE_LIMIT / replicas)."},
				func() float64 {
					if shared.Stats().Alone {
						return 1
					}
					return 0
				}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "api_budget_fallbacks_total",
				Help: "Times this replica began to spend an equal share alone because NATS could not be reached."},
				func() float64 { return float64(shared.Stats().Fallbacks) }),
		)
	}
	for _, c := range collectors {
		if err := m.Registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				panic(err) // a series of ours that clashes is a bug
			}
		}
	}
}

// CycleDone records one cycle.
func (m *Metrics) CycleDone(resource string, s poller.CycleStats, took time.Duration, err error, tracked, ids int) {
	kind := string(s.Kind)
	if kind == "" {
		kind = "none"
	}
	m.cycles.WithLabelValues(resource, kind, outcome(err, s)).Inc()
	m.cycleDuration.WithLabelValues(resource).Observe(took.Seconds())
	m.tracked.WithLabelValues(resource).Set(float64(tracked))
	m.ids.WithLabelValues(resource).Set(float64(ids))
	if s.Compacted > 0 {
		m.compacted.WithLabelValues(resource).Add(float64(s.Compacted))
	}
	for op, n := range map[events.Op]int{events.OpCreated: s.Created, events.OpUpdated: s.Updated,
		events.OpDeleted: s.Deleted, events.OpSnapshot: s.Snapshot} {
		if n > 0 {
			m.published.WithLabelValues(resource, string(op)).Add(float64(n))
		}
	}
	for outcome, n := range map[string]int{"deleted": s.Confirmed, "present": s.StillThere,
		"failed": s.Suspected - s.Confirmed - s.StillThere} {
		if n > 0 && !s.GuardTripped {
			m.confirmations.WithLabelValues(resource, outcome).Add(float64(n))
		}
	}
	if s.GuardTripped {
		m.guardTrips.WithLabelValues(resource).Inc()
	}
	if s.Distrusted != "" {
		m.fallbacks.WithLabelValues(resource).Inc()
	}
	if s.Missed > 0 {
		m.missed.WithLabelValues(resource).Add(float64(s.Missed))
	}
	if !s.Cursor.IsZero() {
		m.cursorAge.WithLabelValues(resource).Set(time.Since(s.Cursor).Seconds())
	}
	if err == nil && s.Complete {
		m.itemsSeen.WithLabelValues(resource).Set(float64(s.Seen))
		m.lastSuccess.WithLabelValues(resource).SetToCurrentTime()
	}
}

// LeaseHeld records whether this instance holds a resource's lease.
func (m *Metrics) LeaseHeld(resource string, held bool) {
	v := 0.0
	if held {
		v = 1
	}
	m.leaseHeld.WithLabelValues(resource).Set(v)
}

// PublishedWriteThrough counts an event published for a command's write.
func (m *Metrics) PublishedWriteThrough(resource string, op events.Op) {
	m.published.WithLabelValues(resource, string(op)).Inc()
}

func outcome(err error, s poller.CycleStats) string {
	switch {
	case err == nil && !s.Complete:
		return "incomplete"
	case err == nil:
		return "ok"
	case errors.Is(err, poller.ErrLeaseLost):
		return "lease_lost"
	case errors.Is(err, rockety.ErrPermanent):
		return "refused"
	case errors.Is(err, poller.ErrIncomplete):
		return "incomplete"
	}
	return "error"
}
