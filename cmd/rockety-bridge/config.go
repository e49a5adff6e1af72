package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/rockety-io/rockety-bridge/events"
	"github.com/rockety-io/rockety-bridge/poller"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// env is every variable of the bridge as it is written. envconfig fills
// it (it cannot fail on strings), then parse checks every field and
// reports every problem at once, each naming its variable.
type env struct {
	APIURL          string `envconfig:"ROCKETY_API_URL" default:"https://app.rockety.io/api/v1" desc:"API base URL"`
	APIToken        string `envconfig:"ROCKETY_API_TOKEN" desc:"bearer token (or use ROCKETY_API_TOKEN_FILE)" secret:"true"`
	APITokenFile    string `envconfig:"ROCKETY_API_TOKEN_FILE" desc:"file holding the token, re-read when it changes"`
	AllowInsecure   string `envconfig:"ROCKETY_ALLOW_INSECURE" default:"false" desc:"allow an http:// base URL"`
	Resources       string `envconfig:"ROCKETY_RESOURCES" default:"projects,tasks,users" desc:"resources to poll"`
	PollInterval    string `envconfig:"ROCKETY_POLL_INTERVAL" default:"30s" desc:"default poll interval (jittered)"`
	PollIntervals   string `envconfig:"ROCKETY_POLL_INTERVALS" desc:"per resource, e.g. tasks:10s,users:5m"`
	PageSize        string `envconfig:"ROCKETY_PAGE_SIZE" default:"100" desc:"per_page, 1 to 10000, or max for the largest page the API grants"`
	PageConcurrency string `envconfig:"ROCKETY_PAGE_CONCURRENCY" default:"4" desc:"pages fetched in parallel"`
	RateLimit       string `envconfig:"ROCKETY_RATE_LIMIT" default:"10" desc:"API requests per second, 0 = unlimited"`
	MaxRetryAfter   string `envconfig:"ROCKETY_MAX_RETRY_AFTER" default:"5m" desc:"a longer Retry-After or rate-limit reset is cut to this, with a warning (1s to 24h)"`
	ChangedSince    string `envconfig:"ROCKETY_CHANGED_SINCE" desc:"incremental polling: resource:parameter pairs, * for every resource, e.g. *:updated_since"`
	ChangedAtField  string `envconfig:"ROCKETY_CHANGED_AT_FIELD" default:"updated_at" desc:"the item field (RFC 3339) that says when it last changed"`
	Lookback        string `envconfig:"ROCKETY_CHANGED_SINCE_LOOKBACK" default:"1m" desc:"the filter asks from the cursor minus this (0 to 24h)"`
	FullSync        string `envconfig:"ROCKETY_FULL_SYNC_INTERVAL" default:"15m" desc:"in incremental mode, a full traversal at least this often (100ms to 168h)"`
	DeletedField    string `envconfig:"ROCKETY_DELETED_FIELD" desc:"a field that marks a soft-deleted item (true, or a non-null time)"`
	NATSURL         string `envconfig:"NATS_URL" desc:"NATS servers; empty = embedded server with JetStream"`
	NATSCreds       string `envconfig:"NATS_CREDS" desc:"NATS credentials file"`
	NATSNKeySeed    string `envconfig:"NATS_NKEY_SEED_FILE" desc:"NATS nkey seed file"`
	NATSUser        string `envconfig:"NATS_USER" desc:"NATS user"`
	NATSPassword    string `envconfig:"NATS_PASSWORD" desc:"NATS password" secret:"true"`
	NATSToken       string `envconfig:"NATS_TOKEN" desc:"NATS token" secret:"true"`
	NATSTLSCA       string `envconfig:"NATS_TLS_CA" desc:"CA file to verify the NATS server"`
	NATSTLSCert     string `envconfig:"NATS_TLS_CERT" desc:"client certificate file"`
	NATSTLSKey      string `envconfig:"NATS_TLS_KEY" desc:"client key file"`
	SubjectPrefix   string `envconfig:"BRIDGE_SUBJECT_PREFIX" default:"rockety" desc:"subject, stream and bucket prefix"`
	DataDir         string `envconfig:"BRIDGE_DATA_DIR" default:"./data" desc:"embedded NATS storage"`
	HTTPAddr        string `envconfig:"BRIDGE_HTTP_ADDR" default:":8080" desc:"/metrics, /healthz, /readyz"`
	Pprof           string `envconfig:"BRIDGE_PPROF" default:"false" desc:"also serve Go's profiles at /debug/pprof/ on BRIDGE_HTTP_ADDR"`
	InitialSync     string `envconfig:"BRIDGE_INITIAL_SYNC" default:"baseline" desc:"baseline or snapshot"`
	MaxDeleteRatio  string `envconfig:"BRIDGE_MAX_DELETE_RATIO" default:"0.5" desc:"mass-delete guard"`
	Commands        string `envconfig:"BRIDGE_COMMANDS" default:"true" desc:"run the command consumer"`
	CommandAllow    string `envconfig:"BRIDGE_COMMAND_ALLOW" default:"*" desc:"allowed resource.action patterns, e.g. tasks.*,projects.update"`
	CommandConc     string `envconfig:"BRIDGE_COMMAND_CONCURRENCY" default:"16" desc:"commands executed at once by one replica (1 to 256)"`
	InstanceID      string `envconfig:"BRIDGE_INSTANCE_ID" desc:"this replica's identity in leases (default: the host name)"`
	LeaseTTL        string `envconfig:"BRIDGE_LEASE_TTL" default:"15s" desc:"a dead holder's lease passes on after this"`
	StreamReplicas  string `envconfig:"BRIDGE_STREAM_REPLICAS" default:"1" desc:"replicas of the streams and buckets in a NATS cluster (1 to 5)"`
	ShutdownGrace   string `envconfig:"BRIDGE_SHUTDOWN_GRACE" default:"10s" desc:"how long a poll cycle may run on after SIGTERM before it is cut short"`
	CommandMaxAge   string `envconfig:"BRIDGE_COMMAND_MAX_AGE" default:"1h" desc:"a command older than this is rejected as expired, not executed (1s to 24h)"`
	DeleteRetention string `envconfig:"BRIDGE_DELETE_RETENTION" default:"24h" desc:"delete markers of items deleted longer ago are dropped from the mirror; 0 keeps them for ever (0, or 10s to 8760h)"`
	LogLevel        string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat       string `envconfig:"LOG_FORMAT" default:"json" desc:"json or console"`
}

// Config is the checked configuration.
type Config struct {
	APIURL        string
	APIToken      string
	APITokenFile  string
	AllowInsecure bool
	Resources     []string
	PollInterval  time.Duration
	PollIntervals map[string]time.Duration
	PageSize      int
	// PageSizeMax: ROCKETY_PAGE_SIZE=max, the largest page the API grants.
	PageSizeMax     bool
	PageConcurrency int
	RateLimit       float64
	MaxRetryAfter   time.Duration
	// ChangedSince maps each incrementally polled resource to its filter
	// parameter (ROCKETY_CHANGED_SINCE).
	ChangedSince     map[string]string
	ChangedAtField   string
	Lookback         time.Duration
	FullSyncInterval time.Duration
	DeletedField     string
	NATS             NATSConfig
	Subjects         events.Subjects
	DataDir          string
	HTTPAddr         string
	Pprof            bool
	InitialSync      poller.InitialSync
	MaxDeleteRatio   float64
	Commands         bool
	CommandAllow     []string
	CommandConc      int
	InstanceID       string
	LeaseTTL         time.Duration
	StreamReplicas   int
	ShutdownGrace    time.Duration
	CommandMaxAge    time.Duration
	DeleteRetention  time.Duration
	LogLevel         string
	LogFormat        string
}

// NATSConfig is how to reach NATS.
type NATSConfig struct {
	URL, Creds, NKeySeedFile, User, Password, Token, TLSCA, TLSCert, TLSKey string
}

// Poll intervals: sub-second ones are what tests, demos and small
// resources use (the rate limit, not the interval, protects the API); a
// week is longer than anyone means.
const (
	minPollInterval = 100 * time.Millisecond
	maxPollInterval = 7 * 24 * time.Hour
)

// loadConfig reads the environment. needToken is false for commands that
// never call the API.
func loadConfig(needToken bool) (Config, error) {
	var e env
	if err := envconfig.Process("", &e); err != nil {
		return Config{}, err
	}
	return e.parse(needToken)
}

// configError lists every problem with the configuration, one per line.
type configError []string

func (e configError) Error() string { return strings.Join(e, "\n") }

func (e env) parse(needToken bool) (Config, error) {
	c := Config{
		APIURL: strings.TrimSpace(e.APIURL), APIToken: strings.TrimSpace(e.APIToken), APITokenFile: e.APITokenFile,
		DataDir: e.DataDir, HTTPAddr: e.HTTPAddr,
		NATS: NATSConfig{URL: e.NATSURL, Creds: e.NATSCreds, NKeySeedFile: e.NATSNKeySeed, User: e.NATSUser,
			Password: e.NATSPassword, Token: e.NATSToken, TLSCA: e.NATSTLSCA, TLSCert: e.NATSTLSCert, TLSKey: e.NATSTLSKey},
	}
	var k checker
	k.api(e, &c, needToken)
	k.polling(e, &c)
	k.incremental(e, &c)
	k.bridge(e, &c)
	k.commands(e, &c)
	k.logging(e, &c)
	k.nats(&c)
	if len(k.problems) > 0 {
		sort.Strings(k.problems)
		return c, k.problems
	}
	return c, nil
}

// checker gathers every problem of a configuration, each naming its
// variable, so that one start reports them all.
type checker struct{ problems configError }

func (k *checker) bad(v, format string, args ...any) {
	k.problems = append(k.problems, v+": "+fmt.Sprintf(format, args...))
}

func (k *checker) boolVar(v, s string, dst *bool) {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		k.bad(v, "%q is not true or false", s)
	}
	*dst = b
}

func (k *checker) durVar(v, s string, lo, hi time.Duration, dst *time.Duration) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	switch {
	case err != nil:
		k.bad(v, "%q is not a duration such as 30s or 5m", s)
	case d < lo:
		k.bad(v, "%s is too short; the least is %s", d, lo)
	case d > hi:
		k.bad(v, "%s is too long; the most is %s", d, hi)
	}
	*dst = d
}

func (k *checker) intVar(v, s string, lo, hi int, dst *int) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < lo || n > hi {
		k.bad(v, "%q: want a whole number from %d to %d", s, lo, hi)
	}
	*dst = n
}

// api: ROCKETY_API_URL, ROCKETY_ALLOW_INSECURE and the token.
func (k *checker) api(e env, c *Config, needToken bool) {
	k.boolVar("ROCKETY_ALLOW_INSECURE", e.AllowInsecure, &c.AllowInsecure)
	if _, err := rockety.ParseBaseURL(c.APIURL, c.AllowInsecure); err != nil {
		msg, _ := strings.CutPrefix(err.Error(), "ROCKETY_API_URL")
		k.bad("ROCKETY_API_URL", "%s", strings.TrimLeft(msg, " :"))
	}
	switch {
	case c.APIToken != "" && c.APITokenFile != "":
		k.bad("ROCKETY_API_TOKEN", "set either ROCKETY_API_TOKEN or ROCKETY_API_TOKEN_FILE, not both")
	case c.APITokenFile != "":
		if _, err := readTokenFile(c.APITokenFile); err != nil {
			k.bad("ROCKETY_API_TOKEN_FILE", "%v", err)
		}
	case c.APIToken == "" && needToken:
		k.bad("ROCKETY_API_TOKEN", "missing: set ROCKETY_API_TOKEN, or ROCKETY_API_TOKEN_FILE to a file holding the token")
	}
}

// polling: the resources, their intervals, pages and the rate limit.
func (k *checker) polling(e env, c *Config) {
	var err error
	seen := map[string]bool{}
	for _, r := range strings.Split(e.Resources, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if err := events.ValidResource(r); err != nil {
			k.bad("ROCKETY_RESOURCES", "%q: only letters, digits, '_' and '-' are allowed", r)
			continue
		}
		if !seen[r] {
			c.Resources = append(c.Resources, r)
			seen[r] = true
		}
	}
	if len(c.Resources) == 0 {
		k.bad("ROCKETY_RESOURCES", "no resources; list at least one, e.g. projects,tasks,users")
	}
	k.durVar("ROCKETY_POLL_INTERVAL", e.PollInterval, minPollInterval, maxPollInterval, &c.PollInterval)
	c.PollIntervals = map[string]time.Duration{}
	for _, pair := range strings.Split(e.PollIntervals, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, d, ok := strings.Cut(pair, ":")
		if !ok {
			k.bad("ROCKETY_POLL_INTERVALS", "%q: want resource:duration, e.g. tasks:10s", pair)
			continue
		}
		if !seen[name] {
			k.bad("ROCKETY_POLL_INTERVALS", "%q is not in ROCKETY_RESOURCES", name)
			continue
		}
		var dur time.Duration
		k.durVar("ROCKETY_POLL_INTERVALS", d, minPollInterval, maxPollInterval, &dur)
		c.PollIntervals[name] = dur
	}
	if strings.EqualFold(strings.TrimSpace(e.PageSize), "max") {
		c.PageSize = rockety.MaxPageSize
		c.PageSizeMax = true
	} else {
		k.intVar("ROCKETY_PAGE_SIZE", e.PageSize, 1, rockety.MaxPageSize, &c.PageSize)
	}
	k.intVar("ROCKETY_PAGE_CONCURRENCY", e.PageConcurrency, 1, 64, &c.PageConcurrency)
	k.durVar("ROCKETY_MAX_RETRY_AFTER", e.MaxRetryAfter, time.Second, 24*time.Hour, &c.MaxRetryAfter)
	if c.RateLimit, err = strconv.ParseFloat(strings.TrimSpace(e.RateLimit), 64); err != nil || c.RateLimit < 0 {
		k.bad("ROCKETY_RATE_LIMIT", "%q: want requests per second, 0 or more (0 = unlimited)", e.RateLimit)
	}
}

// filterParam: a query parameter name as APIs spell them, such as
// updated_since, updatedSince or filter[updated_at][gte].
var filterParam = regexp.MustCompile(`^[A-Za-z0-9_.\-\[\]]+$`)

// incremental: ROCKETY_CHANGED_SINCE and what goes with it.
func (k *checker) incremental(e env, c *Config) {
	c.ChangedSince = map[string]string{}
	wildcard := ""
	inResources := map[string]bool{}
	for _, r := range c.Resources {
		inResources[r] = true
	}
	for _, pair := range strings.Split(e.ChangedSince, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		name, param, ok := strings.Cut(pair, ":")
		name, param = strings.TrimSpace(name), strings.TrimSpace(param)
		switch {
		case !ok || name == "" || param == "":
			k.bad("ROCKETY_CHANGED_SINCE", "%q: want resource:parameter, e.g. tasks:updated_since, or *:updated_since for every resource", pair)
			continue
		case !filterParam.MatchString(param):
			k.bad("ROCKETY_CHANGED_SINCE", "%q: the parameter %q may hold only letters, digits and _ . - [ ]", pair, param)
			continue
		case param == "page" || param == "per_page":
			k.bad("ROCKETY_CHANGED_SINCE", "%q: %s is the bridge's own paging parameter; name the API's changed-since filter", pair, param)
			continue
		case name == "*":
			if wildcard != "" {
				k.bad("ROCKETY_CHANGED_SINCE", "* is given twice")
			}
			wildcard = param
			continue
		case !inResources[name]:
			k.bad("ROCKETY_CHANGED_SINCE", "%q is not in ROCKETY_RESOURCES", name)
			continue
		case c.ChangedSince[name] != "":
			k.bad("ROCKETY_CHANGED_SINCE", "%q is given twice", name)
			continue
		}
		c.ChangedSince[name] = param
	}
	if wildcard != "" {
		for _, r := range c.Resources {
			if c.ChangedSince[r] == "" {
				c.ChangedSince[r] = wildcard
			}
		}
	}
	if c.ChangedAtField = strings.TrimSpace(e.ChangedAtField); c.ChangedAtField == "" {
		k.bad("ROCKETY_CHANGED_AT_FIELD", "empty; name the item field that says when it last changed, e.g. updated_at")
	}
	k.durVar("ROCKETY_CHANGED_SINCE_LOOKBACK", e.Lookback, 0, 24*time.Hour, &c.Lookback)
	k.durVar("ROCKETY_FULL_SYNC_INTERVAL", e.FullSync, minPollInterval, maxPollInterval, &c.FullSyncInterval)
	c.DeletedField = strings.TrimSpace(e.DeletedField)
}

// bridge: subjects, storage, endpoints, the first sync, the delete guard,
// the replica's identity and lease, shutdown.
func (k *checker) bridge(e env, c *Config) {
	var err error
	if c.Subjects, err = events.NewSubjects(strings.TrimSpace(e.SubjectPrefix)); err != nil {
		k.bad("BRIDGE_SUBJECT_PREFIX", "%q: want dot-separated tokens of letters, digits, '_' and '-'", e.SubjectPrefix)
	}
	if c.NATS.URL == "" && strings.TrimSpace(c.DataDir) == "" {
		k.bad("BRIDGE_DATA_DIR", "empty; the embedded NATS server needs a directory")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		k.bad("BRIDGE_HTTP_ADDR", "%q is not host:port, e.g. :8080", c.HTTPAddr)
	}
	switch c.InitialSync = poller.InitialSync(strings.TrimSpace(e.InitialSync)); c.InitialSync {
	case poller.SyncBaseline, poller.SyncSnapshot:
	default:
		k.bad("BRIDGE_INITIAL_SYNC", "%q: want baseline or snapshot", e.InitialSync)
	}
	if c.MaxDeleteRatio, err = strconv.ParseFloat(strings.TrimSpace(e.MaxDeleteRatio), 64); err != nil || c.MaxDeleteRatio <= 0 || c.MaxDeleteRatio > 1 {
		k.bad("BRIDGE_MAX_DELETE_RATIO", "%q: want a fraction above 0 and at most 1, e.g. 0.5", e.MaxDeleteRatio)
	}
	c.InstanceID = strings.TrimSpace(e.InstanceID)
	if c.InstanceID == "" {
		if c.InstanceID, err = os.Hostname(); err != nil || c.InstanceID == "" {
			k.bad("BRIDGE_INSTANCE_ID", "empty, and the host name is unknown; set it")
		}
	}
	k.durVar("BRIDGE_LEASE_TTL", e.LeaseTTL, time.Second, time.Hour, &c.LeaseTTL)
	k.durVar("BRIDGE_SHUTDOWN_GRACE", e.ShutdownGrace, 0, time.Hour, &c.ShutdownGrace)
	k.intVar("BRIDGE_STREAM_REPLICAS", e.StreamReplicas, 1, 5, &c.StreamReplicas)
	k.durVar("BRIDGE_DELETE_RETENTION", e.DeleteRetention, 0, 8760*time.Hour, &c.DeleteRetention)
	if c.DeleteRetention > 0 && c.DeleteRetention < 10*time.Second {
		k.bad("BRIDGE_DELETE_RETENTION", "%s is too short; the least is 10s, or 0 to keep delete markers for ever", c.DeleteRetention)
	}
}

// commands: the consumer, what it allows, how many at once, how old.
func (k *checker) commands(e env, c *Config) {
	k.boolVar("BRIDGE_COMMANDS", e.Commands, &c.Commands)
	k.boolVar("BRIDGE_PPROF", e.Pprof, &c.Pprof)
	for _, pat := range strings.Split(e.CommandAllow, ",") {
		pat = strings.TrimSpace(pat)
		if pat == "" {
			continue
		}
		if err := checkAllowPattern(pat); err != nil {
			k.bad("BRIDGE_COMMAND_ALLOW", "%v", err)
			continue
		}
		c.CommandAllow = append(c.CommandAllow, pat)
	}
	// The results bucket keeps executed command ids 24 h: a command valid
	// for longer could be delivered again after its record expired and be
	// executed twice.
	k.durVar("BRIDGE_COMMAND_MAX_AGE", e.CommandMaxAge, time.Second, 24*time.Hour, &c.CommandMaxAge)
	k.intVar("BRIDGE_COMMAND_CONCURRENCY", e.CommandConc, 1, 256, &c.CommandConc)
}

// logging: LOG_LEVEL and LOG_FORMAT.
func (k *checker) logging(e env, c *Config) {
	switch c.LogLevel = strings.ToLower(strings.TrimSpace(e.LogLevel)); c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		k.bad("LOG_LEVEL", "%q: want debug, info, warn or error", e.LogLevel)
	}
	switch c.LogFormat = strings.ToLower(strings.TrimSpace(e.LogFormat)); c.LogFormat {
	case "json", "console":
	default:
		k.bad("LOG_FORMAT", "%q: want json or console", e.LogFormat)
	}
}

// nats: the NATS credentials and TLS files go together and exist.
func (k *checker) nats(c *Config) {
	if (c.NATS.TLSCert == "") != (c.NATS.TLSKey == "") {
		k.bad("NATS_TLS_CERT", "NATS_TLS_CERT and NATS_TLS_KEY go together; set both or neither")
	}
	if c.NATS.Password != "" && c.NATS.User == "" {
		k.bad("NATS_USER", "missing: NATS_PASSWORD is set without NATS_USER")
	}
	for v, path := range map[string]string{"NATS_CREDS": c.NATS.Creds, "NATS_NKEY_SEED_FILE": c.NATS.NKeySeedFile,
		"NATS_TLS_CA": c.NATS.TLSCA, "NATS_TLS_CERT": c.NATS.TLSCert, "NATS_TLS_KEY": c.NATS.TLSKey} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			k.bad(v, "cannot read %s: %v", path, errors.Unwrap(err))
		}
	}
}

// checkAllowPattern accepts resource.action with * for either part.
func checkAllowPattern(p string) error {
	if p == "*" {
		return nil
	}
	res, act, ok := strings.Cut(p, ".")
	if !ok || res == "" || act == "" {
		return fmt.Errorf("%q: want resource.action, e.g. tasks.update or tasks.*", p)
	}
	if res != "*" && events.ValidResource(res) != nil {
		return fmt.Errorf("%q: %q is not a resource name", p, res)
	}
	if act != "*" && !events.Action(act).Valid() {
		return fmt.Errorf("%q: %q is not an action (create, update, delete or *)", p, act)
	}
	return nil
}

// Interval is the poll interval of resource.
func (c Config) Interval(resource string) time.Duration {
	if d, ok := c.PollIntervals[resource]; ok {
		return d
	}
	return c.PollInterval
}

// pairsText writes resource:value pairs sorted by resource.
func pairsText(m map[string]string) string {
	pairs := make([]string, 0, len(m))
	for r, v := range m {
		pairs = append(pairs, r+":"+v)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

func pageSizeText(c Config) string {
	if c.PageSizeMax {
		return "max"
	}
	return strconv.Itoa(c.PageSize)
}

// printConfig writes the effective configuration, secrets redacted.
func printConfig(w io.Writer, c Config) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	secret := func(s string) string {
		if s == "" {
			return ""
		}
		return "[redacted]"
	}
	intervals := map[string]string{}
	for r, d := range c.PollIntervals {
		intervals[r] = d.String()
	}
	nats := c.NATS.URL
	if nats == "" {
		nats = "(embedded, 127.0.0.1:4222)"
	}
	rows := [][2]string{
		{"ROCKETY_API_URL", rockety.RedactURL(c.APIURL)}, {"ROCKETY_API_TOKEN", secret(c.APIToken)},
		{"ROCKETY_API_TOKEN_FILE", c.APITokenFile}, {"ROCKETY_ALLOW_INSECURE", strconv.FormatBool(c.AllowInsecure)},
		{"ROCKETY_RESOURCES", strings.Join(c.Resources, ",")}, {"ROCKETY_POLL_INTERVAL", c.PollInterval.String()},
		{"ROCKETY_POLL_INTERVALS", pairsText(intervals)}, {"ROCKETY_PAGE_SIZE", pageSizeText(c)},
		{"ROCKETY_PAGE_CONCURRENCY", strconv.Itoa(c.PageConcurrency)}, {"ROCKETY_RATE_LIMIT", strconv.FormatFloat(c.RateLimit, 'f', -1, 64)},
		{"ROCKETY_MAX_RETRY_AFTER", c.MaxRetryAfter.String()},
		{"ROCKETY_CHANGED_SINCE", pairsText(c.ChangedSince)}, {"ROCKETY_CHANGED_AT_FIELD", c.ChangedAtField},
		{"ROCKETY_CHANGED_SINCE_LOOKBACK", c.Lookback.String()}, {"ROCKETY_FULL_SYNC_INTERVAL", c.FullSyncInterval.String()},
		{"ROCKETY_DELETED_FIELD", c.DeletedField},
		{"NATS_URL", rockety.RedactURL(nats)}, {"NATS_CREDS", c.NATS.Creds}, {"NATS_NKEY_SEED_FILE", c.NATS.NKeySeedFile},
		{"NATS_USER", c.NATS.User}, {"NATS_PASSWORD", secret(c.NATS.Password)}, {"NATS_TOKEN", secret(c.NATS.Token)},
		{"NATS_TLS_CA", c.NATS.TLSCA}, {"NATS_TLS_CERT", c.NATS.TLSCert}, {"NATS_TLS_KEY", c.NATS.TLSKey},
		{"BRIDGE_SUBJECT_PREFIX", c.Subjects.Prefix()}, {"BRIDGE_DATA_DIR", c.DataDir}, {"BRIDGE_HTTP_ADDR", c.HTTPAddr},
		{"BRIDGE_PPROF", strconv.FormatBool(c.Pprof)},
		{"BRIDGE_INITIAL_SYNC", string(c.InitialSync)}, {"BRIDGE_MAX_DELETE_RATIO", strconv.FormatFloat(c.MaxDeleteRatio, 'f', -1, 64)},
		{"BRIDGE_COMMANDS", strconv.FormatBool(c.Commands)}, {"BRIDGE_COMMAND_ALLOW", strings.Join(c.CommandAllow, ",")},
		{"BRIDGE_COMMAND_CONCURRENCY", strconv.Itoa(c.CommandConc)},
		{"BRIDGE_INSTANCE_ID", c.InstanceID}, {"BRIDGE_LEASE_TTL", c.LeaseTTL.String()},
		{"BRIDGE_STREAM_REPLICAS", strconv.Itoa(c.StreamReplicas)}, {"BRIDGE_SHUTDOWN_GRACE", c.ShutdownGrace.String()},
		{"BRIDGE_COMMAND_MAX_AGE", c.CommandMaxAge.String()}, {"BRIDGE_DELETE_RETENTION", c.DeleteRetention.String()},
		{"LOG_LEVEL", c.LogLevel}, {"LOG_FORMAT", c.LogFormat},
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	_ = tw.Flush()
}

// printUsage lists every variable with its default.
func printUsage(w io.Writer) {
	fmt.Fprintln(w, `rockety-bridge: Rockety API changes as NATS JetStream events, and NATS commands as API writes.

Usage:
  rockety-bridge [run]          poll Rockety and serve commands, configured by the environment
  rockety-bridge demo           everything in one process: NATS, a simulated Rockety, the bridge and a live view
  rockety-bridge tail [filter]  print events from the stream (NATS_URL), e.g. tail tasks.updated
  rockety-bridge command <resource> <action> [id] [json]
                                send one command through NATS (NATS_URL) and print its result,
                                e.g. command tasks update 42 '{"status":"done"}'
  rockety-bridge resync <resource> [--snapshot]
                                ask the bridge for a full traversal now (with --snapshot, one
                                snapshot event per item) and print its cycle report
  rockety-bridge config         print the effective configuration, secrets redacted
  rockety-bridge -version       print the version

Environment:`)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	t := reflect.TypeOf(env{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Tag.Get("envconfig"), f.Tag.Get("default"), f.Tag.Get("desc"))
	}
	_ = tw.Flush()
}
