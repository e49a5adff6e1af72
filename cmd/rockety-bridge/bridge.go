package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/rockety-io/rockety-bridge/internal/app"
	"github.com/rockety-io/rockety-bridge/rockety"
)

// runBridge is `rockety-bridge run`: HTTP endpoints first (so a pod is
// alive and says why it is not ready), then NATS, then the pollers and the
// consumer until ctx ends.
func runBridge(ctx context.Context, cfg Config, log *zap.Logger) error {
	metrics := app.NewMetrics(buildVersion())
	var readiness atomic.Pointer[func() error]
	notYet := func() error { return errors.New("starting: waiting for NATS and the streams") }
	readiness.Store(&notYet)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("BRIDGE_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: httpHandler(metrics, func() error { return (*readiness.Load())() }, cfg.Pprof), ReadHeaderTimeout: 5 * time.Second}
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server", zap.Error(err))
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
		<-httpDone
	}()
	log.Info("rockety-bridge starting", zap.String("version", buildVersion()), zap.String("http", ln.Addr().String()),
		zap.Strings("resources", cfg.Resources), zap.String("instance", cfg.InstanceID))

	natsURL := cfg.NATS.URL
	if natsURL == "" {
		ns, err := startEmbedded(cfg.DataDir, embeddedPort)
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		natsURL = ns.ClientURL()
		log.Info("embedded NATS server with JetStream", zap.String("url", natsURL), zap.String("data_dir", cfg.DataDir))
	}
	nc, err := connect(natsURL, cfg.NATS, "rockety-bridge "+cfg.InstanceID, log)
	if err != nil {
		return err
	}
	defer func() {
		// Drain last: whatever is in flight is flushed before the close.
		// A connection that is down has nothing to flush.
		if nc.IsConnected() && nc.Drain() == nil {
			for deadline := time.Now().Add(time.Second); nc.IsDraining() && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
		}
		nc.Close()
	}()

	if !nc.IsConnected() {
		log.Warn("NATS is not reachable yet; the bridge waits for it and is not ready meanwhile",
			zap.String("nats_url", rockety.RedactURL(natsURL)))
	}
	client, err := newClient(cfg, pauseLog{Observer: metrics, log: log})
	if err != nil {
		return err
	}
	opts := app.Options{
		Client: client, Conn: nc, Subjects: cfg.Subjects, InitialSync: cfg.InitialSync,
		MaxDeleteRatio: cfg.MaxDeleteRatio, InstanceID: cfg.InstanceID, LeaseTTL: cfg.LeaseTTL,
		Logger: log, Metrics: metrics, ShutdownGrace: max(cfg.ShutdownGrace, time.Millisecond), Replicas: cfg.StreamReplicas,
		CommandMaxAge: cfg.CommandMaxAge, DeleteRetention: cfg.DeleteRetention,
		Incremental: app.Incremental{ChangedAtField: cfg.ChangedAtField, Lookback: cfg.Lookback,
			FullEvery: cfg.FullSyncInterval, DeletedField: cfg.DeletedField},
	}
	for _, r := range cfg.Resources {
		opts.Resources = append(opts.Resources, app.Resource{Name: r, Interval: cfg.Interval(r), ChangedSince: cfg.ChangedSince[r]})
	}
	opts.Commands = commands(cfg, client)

	bridge, err := startBridge(ctx, opts, log)
	if err != nil || bridge == nil {
		return err
	}
	ready := bridge.Ready
	readiness.Store(&ready)
	log.Info("rockety-bridge running")
	gcCtx, stopGC := context.WithCancel(ctx)
	defer stopGC()
	go tuneGCOnceReady(gcCtx, os.Getenv, bridge.Ready)
	return runUntilGrace(ctx, bridge.Run, cfg.ShutdownGrace+time.Second)
}

// runUntilGrace runs work until it returns, or until limit after ctx
// ends: every part of the bridge bounds its own shutdown by the grace,
// and this makes sure that something stuck (a call without a deadline)
// cannot keep the process from exiting when Kubernetes expects it to.
// What is cut short is recovered at the next start.
func runUntilGrace(ctx context.Context, work func(context.Context) error, limit time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- work(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("shutdown took longer than BRIDGE_SHUTDOWN_GRACE and 1s (%s); exiting with work in flight, which the next start recovers", limit)
	}
}

// startBridge provisions the streams, waiting for NATS as long as it takes:
// a bridge started before its NATS server is not an error, only not ready.
func startBridge(ctx context.Context, opts app.Options, log *zap.Logger) (*app.Bridge, error) {
	var b *app.Bridge
	err := backoff.RetryNotify(func() error {
		var err error
		b, err = app.New(ctx, opts)
		return err
	}, backoff.WithContext(slowRetry(), ctx), func(err error, wait time.Duration) {
		log.Warn("cannot provision the NATS streams yet; retrying", zap.Error(err), zap.Duration("retry_in", wait))
	})
	if err != nil {
		return nil, nil // ctx ended
	}
	return b, nil
}

// slowRetry waits 1s, then ever longer up to 30s, for ever: for what only
// comes back when NATS does.
func slowRetry() backoff.BackOff {
	return backoff.NewExponentialBackOff(backoff.WithInitialInterval(time.Second),
		backoff.WithMaxInterval(30*time.Second), backoff.WithMaxElapsedTime(0))
}

// pauseLog warns when the API asks for a longer wait than
// ROCKETY_MAX_RETRY_AFTER allows, beside the metrics.
type pauseLog struct {
	rockety.Observer
	log *zap.Logger
}

func (p pauseLog) ObserveRequest(r rockety.RequestInfo) {
	p.Observer.ObserveRequest(r)
	if r.Learned > 0 {
		p.log.Warn("the Rockety API refused a request for its quota and sends no rate-limit headers; the budget of every replica is lowered to what it accepted in its window, with a margin, for "+rockety.LearnedRateFor.String()+". Set ROCKETY_RATE_LIMIT at or below the quota to avoid this",
			zap.String("resource", r.Resource), zap.Float64("requests_per_second", r.Learned))
	}
	if r.PauseAsked > 0 {
		p.log.Warn("the Rockety API asked every request to wait longer than ROCKETY_MAX_RETRY_AFTER; the wait is cut to it",
			zap.String("resource", r.Resource), zap.Int("status", r.Status), zap.Duration("asked", r.PauseAsked), zap.Duration("waiting", r.Pause))
	}
}

func newClient(cfg Config, obs rockety.Observer) (*rockety.Client, error) {
	opts := []rockety.Option{
		rockety.WithAllowInsecure(cfg.AllowInsecure),
		rockety.WithRateLimit(cfg.RateLimit),
		rockety.WithMaxRetryAfter(cfg.MaxRetryAfter),
		rockety.WithPageSize(cfg.PageSize),
		rockety.WithPageConcurrency(cfg.PageConcurrency),
		rockety.WithUserAgent("rockety-bridge/" + buildVersion()),
		rockety.WithObserver(obs),
	}
	if cfg.PageSizeMax {
		opts = append(opts, rockety.WithMaxPageSize())
	}
	if cfg.APITokenFile != "" {
		tf := &tokenFile{path: cfg.APITokenFile}
		opts = append(opts, rockety.WithTokenFunc(tf.Token))
	} else {
		opts = append(opts, rockety.WithToken(cfg.APIToken))
	}
	return rockety.New(cfg.APIURL, opts...)
}

func httpHandler(m *app.Metrics, ready func() error, profiles bool) http.Handler {
	mux := http.NewServeMux()
	if profiles {
		// Off by default: a profile shows item data in its labels and
		// costs CPU while it is taken.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// commands configures the command consumer to run beside the pollers, or
// nil when BRIDGE_COMMANDS is false.
func commands(cfg Config, client *rockety.Client) *app.Commands {
	if !cfg.Commands {
		return nil
	}
	return &app.Commands{Writer: client, Resources: cfg.Resources, Allow: cfg.CommandAllow,
		Concurrency: cfg.CommandConc, MaxAge: cfg.CommandMaxAge}
}
