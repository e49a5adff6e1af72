// Command rockety-sim serves the in-memory Rockety API simulator (package
// rockety/sim) on its own, for trying the bridge without a Rockety account:
//
//	rockety-sim -seed-items 500 -churn 5
//	ROCKETY_API_URL=http://127.0.0.1:8090/api/v1 ROCKETY_API_TOKEN=dev-token \
//	  ROCKETY_ALLOW_INSECURE=true rockety-bridge run
//
// Every list answers ?updated_since=<RFC 3339> with the items changed since
// then; -changes-lag, -ignore-changed-since and -soft-delete make that API
// lag, lack the filter, or keep deleted items with a deleted_at, to try the
// bridge's incremental polling against each (package sim says how).
//
// -quota 100/10s enforces a real rate limit of 100 requests per 10-second
// window (fixed windows from the first request): the 101st is answered 429
// with Retry-After, and every answer carries rate-limit headers in the
// style -ratelimit-headers names (ietf: RateLimit and RateLimit-Policy; x:
// X-RateLimit-Limit, -Remaining, -Reset; none).
//
// Exit status: 0 after a clean shutdown on SIGINT or SIGTERM, 1 when the
// server cannot run, 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

// shutdownTimeout bounds how long in-flight requests may take to finish.
const shutdownTimeout = 5 * time.Second

// defaultLogLimit keeps a long-running simulator's mutation log from
// growing without end, while keeping enough for a test that reads it
// through the admin routes now and then; a test that needs all of it sets
// -log-limit 0.
const defaultLogLimit = 100000

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type config struct {
	addr  string
	opts  sim.Options
	style string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("rockety-sim", flag.ContinueOnError)
	// The flag package would print the error and the whole usage; one line
	// that says what is wrong is easier to read, so errors are printed by run.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8090", "listen address")
	fs.StringVar(&c.opts.Token, "token", "dev-token", "bearer token clients must send; empty disables auth")
	fs.IntVar(&c.opts.SeedItems, "seed-items", 1000, "items each resource starts with")
	fs.Int64Var(&c.opts.Seed, "seed", 1, "seed of the generated data, churn and fault decisions")
	resources := fs.String("resources", strings.Join(sim.DefaultResources, ","), "comma-separated resources to seed and churn")
	fs.Float64Var(&c.opts.Churn, "churn", 2, "background mutations per second; 0 for none")
	fs.DurationVar(&c.opts.Faults.Latency, "latency", 0, "latency added to every request")
	fs.Float64Var(&c.opts.Faults.ErrorRate, "error-rate", 0, "fraction of requests answered 500, 0 to 1")
	fs.Float64Var(&c.opts.Faults.RateLimitRate, "rate-limit-rate", 0, "fraction of requests answered 429, 0 to 1")
	fs.DurationVar(&c.opts.Faults.RetryAfter, "retry-after", sim.DefaultRetryAfter, "Retry-After of injected 429s")
	failPage := fs.String("fail-page", "", "fail list requests of one page: resource:page[:status[:times]]")
	fs.IntVar(&c.opts.Faults.DriftInserts, "drift", 0, "items inserted at the front of a resource after each page served")
	fs.Float64Var(&c.opts.Faults.TruncateRate, "truncate-rate", 0, "fraction of list responses whose JSON is cut in half, 0 to 1")
	fs.Float64Var(&c.opts.Faults.HTMLRate, "html-rate", 0, "fraction of list requests answered 502 with an HTML page, 0 to 1")
	fs.IntVar(&c.opts.Faults.PagesUnderreport, "pages-underreport", 0, "report this many pages fewer in list metadata")
	fs.Float64Var(&c.opts.Faults.RepeatPageRate, "repeat-page-rate", 0, "fraction of list requests for page N > 1 answered with page N-1, 0 to 1")
	fs.DurationVar(&c.opts.Faults.ChangesLag, "changes-lag", 0, "a change shows in lists filtered by "+sim.SinceParam+" only this long after its updated_at (an eventually consistent index)")
	fs.BoolVar(&c.opts.Faults.IgnoreChangedSince, "ignore-changed-since", false, "ignore "+sim.SinceParam+" and answer the whole list, as an API without the filter does")
	fs.BoolVar(&c.opts.Faults.SoftDelete, "soft-delete", false, "DELETE sets deleted_at and keeps the item listed; PUT {\"deleted_at\":null} restores it")
	quota := fs.String("quota", "", "a real rate limit, N requests per window D of whole seconds (100/10s), fixed windows from the first request; empty or 0 for none")
	quotaHeaders := fs.String("ratelimit-headers", string(sim.QuotaHeadersIETF), "rate-limit headers of -quota on every answer: ietf (RateLimit, RateLimit-Policy), x (X-RateLimit-Limit, -Remaining, -Reset) or none")
	fs.StringVar(&c.style, "style", "data", "list envelope: data, items or nometa")
	fs.IntVar(&c.opts.LogLimit, "log-limit", defaultLogLimit, "mutations the log keeps for "+sim.AdminPath+"/mutations; 0 keeps all")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "Usage: rockety-sim [flags]")
			fs.PrintDefaults()
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	f := c.opts.Faults
	for _, check := range []struct {
		bad  bool
		flag string
		val  any
		want string
	}{
		{c.opts.SeedItems < 0, "-seed-items", c.opts.SeedItems, "0 or more"},
		{c.opts.LogLimit < 0, "-log-limit", c.opts.LogLimit, "0 or more"},
		{c.opts.Churn < 0, "-churn", c.opts.Churn, "0 or more"},
		{f.Latency < 0, "-latency", f.Latency, "0 or more"},
		{f.ErrorRate < 0 || f.ErrorRate > 1, "-error-rate", f.ErrorRate, "between 0 and 1"},
		{f.RateLimitRate < 0 || f.RateLimitRate > 1, "-rate-limit-rate", f.RateLimitRate, "between 0 and 1"},
		{f.DriftInserts < 0, "-drift", f.DriftInserts, "0 or more"},
		{f.TruncateRate < 0 || f.TruncateRate > 1, "-truncate-rate", f.TruncateRate, "between 0 and 1"},
		{f.HTMLRate < 0 || f.HTMLRate > 1, "-html-rate", f.HTMLRate, "between 0 and 1"},
		{f.PagesUnderreport < 0, "-pages-underreport", f.PagesUnderreport, "0 or more"},
		{f.RepeatPageRate < 0 || f.RepeatPageRate > 1, "-repeat-page-rate", f.RepeatPageRate, "between 0 and 1"},
		{f.ChangesLag < 0, "-changes-lag", f.ChangesLag, "0 or more"},
	} {
		if check.bad {
			return c, fmt.Errorf("%s %v: want %s", check.flag, check.val, check.want)
		}
	}
	for r := range strings.SplitSeq(*resources, ",") {
		if r = strings.TrimSpace(r); r != "" {
			c.opts.Resources = append(c.opts.Resources, r)
		}
	}
	style, err := sim.ParseStyle(c.style)
	if err != nil {
		return c, fmt.Errorf("-style: %w", err)
	}
	c.opts.Style = style
	q, err := sim.ParseQuota(*quota)
	if err != nil {
		return c, fmt.Errorf("-quota: %w", err)
	}
	if q.Headers, err = sim.ParseQuotaHeaders(*quotaHeaders); err != nil {
		return c, fmt.Errorf("-ratelimit-headers: %w", err)
	}
	if q.Limit > 0 {
		c.opts.Faults.Quota = q
	}
	if *failPage != "" {
		fp, err := parseFailPage(*failPage)
		if err != nil {
			return c, fmt.Errorf("-fail-page: %w", err)
		}
		c.opts.Faults.FailPage = fp
	}
	return c, nil
}

func parseFailPage(s string) (sim.FailPage, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 4 || parts[0] == "" {
		return sim.FailPage{}, fmt.Errorf("%q: want resource:page[:status[:times]]", s)
	}
	fp := sim.FailPage{Resource: parts[0]}
	nums := []*int{&fp.Page, &fp.Status, &fp.Times}
	names := []string{"page", "status", "times"}
	for i, p := range parts[1:] {
		n, err := strconv.Atoi(p)
		if err != nil {
			return sim.FailPage{}, fmt.Errorf("%q: %s %q is not a number", s, names[i], p)
		}
		*nums[i] = n
	}
	return fp, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "rockety-sim: %v\n", err)
		return 2
	}
	srv, err := sim.New(c.opts)
	if err != nil {
		fmt.Fprintf(stderr, "rockety-sim: %v\n", err)
		return 2
	}
	defer srv.Close()
	// Signals are caught before the address is printed, so whoever reads
	// that line may signal at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		fmt.Fprintf(stderr, "rockety-sim: %v\n", err)
		return 1
	}
	base := "http://" + ln.Addr().String() + sim.BasePath
	auth := "no auth"
	curlAuth := ""
	if c.opts.Token != "" {
		auth = "token " + c.opts.Token
		curlAuth = "-H 'Authorization: Bearer " + c.opts.Token + "' "
	}
	fmt.Fprintf(stdout, "Rockety simulator on %s (%s)\n", base, auth)
	first := c.opts.Resources
	if len(first) == 0 {
		first = sim.DefaultResources
	}
	fmt.Fprintf(stdout, "  try: curl %s'%s/%s?page=1&per_page=2'\n", curlAuth, base, first[0])
	fmt.Fprintf(stdout, "  admin (ground truth, churn, faults): http://%s%s/\n", ln.Addr(), sim.AdminPath)

	if err := srv.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "rockety-sim: %v\n", err)
		return 1
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	select {
	case err := <-serveErr:
		fmt.Fprintf(stderr, "rockety-sim: serving: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		fmt.Fprintf(stderr, "rockety-sim: shutdown: %v\n", err)
		return 1
	}
	<-serveErr // Serve has returned ErrServerClosed; wait so nothing outlives run.
	return 0
}
