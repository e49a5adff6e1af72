// Command rockety-bridge polls the Rockety API and publishes every change as
// a typed event to NATS JetStream, and turns command messages on NATS into
// API writes. Run it with -h for the commands and every variable.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version the toolchain recorded is used.
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit code. Exit 2 is a usage or
// configuration error, 1 a failure while running.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	// demo, tail, command and resync have flags of their own, and their
	// own -h.
	if ownFlags := cmd == "demo" || cmd == "tail" || cmd == "command" || cmd == "resync"; len(args) > 0 && !ownFlags {
		switch args[0] {
		case "-h", "-help", "--help":
			printUsage(stdout)
			return 0
		case "-version", "--version":
			fmt.Fprintln(stdout, "rockety-bridge", buildVersion())
			return 0
		}
	}
	var err error
	switch cmd {
	case "help":
		printUsage(stdout)
		return 0
	case "version":
		fmt.Fprintln(stdout, "rockety-bridge", buildVersion())
		return 0
	case "config":
		cfg, cerr := loadConfig(false)
		if cerr != nil {
			return configFailure(stderr, cerr)
		}
		printConfig(stdout, cfg)
		return 0
	case "run":
		if len(args) > 0 {
			fmt.Fprintf(stderr, "rockety-bridge: run takes no arguments (got %q); it is configured by the environment, see -h\n", args[0])
			return 2
		}
		cfg, cerr := loadConfig(true)
		if cerr != nil {
			return configFailure(stderr, cerr)
		}
		log, lerr := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
		if lerr != nil {
			fmt.Fprintln(stderr, "rockety-bridge:", lerr)
			return 2
		}
		defer func() { _ = log.Sync() }()
		err = runBridge(ctx, cfg, log)
		if err != nil {
			log.Error("rockety-bridge stopped", zap.Error(err))
			return 1
		}
		log.Info("rockety-bridge stopped")
		return 0
	case "demo":
		err = runDemo(ctx, args, stdout, stderr)
	case "tail":
		err = runTail(ctx, args, stdout, stderr)
	case "command":
		err = runCommand(ctx, args, stdout, stderr)
	case "resync":
		err = runResync(ctx, args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "rockety-bridge: unknown command %q; the commands are run, demo, tail, command, resync and config (see -h)\n", cmd)
		return 2
	}
	var usage usageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, "rockety-bridge:", err)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "rockety-bridge:", err)
		return 1
	}
	return 0
}

// usageError is a bad flag or argument: exit 2.
type usageError struct{ error }

func configFailure(stderr io.Writer, err error) int {
	var problems configError
	if errors.As(err, &problems) {
		for _, p := range problems {
			fmt.Fprintln(stderr, "rockety-bridge: configuration:", p)
		}
	} else {
		fmt.Fprintln(stderr, "rockety-bridge: configuration:", err)
	}
	return 2
}

func newLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.Set(level); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "time"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var encoder zapcore.Encoder
	if format == "console" {
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	} else {
		encoder = zapcore.NewJSONEncoder(enc)
	}
	return zap.New(zapcore.NewCore(encoder, zapcore.AddSync(w), lvl)), nil
}
