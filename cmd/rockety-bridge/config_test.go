package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// clearEnv unsets every variable of the bridge for the test.
func clearEnv(t *testing.T) {
	t.Helper()
	ty := reflect.TypeOf(env{})
	for i := 0; i < ty.NumField(); i++ {
		name := ty.Field(i).Tag.Get("envconfig")
		t.Setenv(name, "")
		_ = os.Unsetenv(name)
	}
}

func TestConfigReportsEveryProblemNamingTheVariable(t *testing.T) {
	clearEnv(t)
	for k, v := range map[string]string{
		"ROCKETY_API_URL":          "http://api.example.com/v1",
		"ROCKETY_POLL_INTERVAL":    "often",
		"ROCKETY_POLL_INTERVALS":   "tasks:10s,widgets:5s,users",
		"ROCKETY_PAGE_SIZE":        "0",
		"ROCKETY_RATE_LIMIT":       "-1",
		"BRIDGE_MAX_DELETE_RATIO":  "2",
		"BRIDGE_INITIAL_SYNC":      "everything",
		"BRIDGE_COMMAND_ALLOW":     "tasks.frobnicate",
		"BRIDGE_SUBJECT_PREFIX":    "a..b",
		"BRIDGE_LEASE_TTL":         "10ms",
		"LOG_FORMAT":               "xml",
		"NATS_TLS_CERT":            "/nonexistent/cert.pem",
		"ROCKETY_ALLOW_INSECURE":   "maybe",
		"ROCKETY_PAGE_CONCURRENCY": "x",
	} {
		t.Setenv(k, v)
	}
	_, err := loadConfig(true)
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	want := []string{
		"BRIDGE_COMMAND_ALLOW:", "BRIDGE_INITIAL_SYNC:", "BRIDGE_LEASE_TTL:", "BRIDGE_MAX_DELETE_RATIO:",
		"BRIDGE_SUBJECT_PREFIX:", "LOG_FORMAT:", "NATS_TLS_CERT:", "ROCKETY_ALLOW_INSECURE:", "ROCKETY_API_TOKEN:",
		"ROCKETY_API_URL:", "ROCKETY_PAGE_CONCURRENCY:", "ROCKETY_PAGE_SIZE:", "ROCKETY_POLL_INTERVAL:",
		"ROCKETY_POLL_INTERVALS:", "ROCKETY_RATE_LIMIT:",
	}
	lines := strings.Split(err.Error(), "\n")
	for _, w := range want {
		found := false
		for _, l := range lines {
			found = found || strings.HasPrefix(l, w)
		}
		if !found {
			t.Errorf("no line for %s in:\n%s", w, err)
		}
	}
	for _, l := range lines {
		if !strings.Contains(l, ":") || strings.Count(l, "\n") > 0 {
			t.Errorf("line %q does not name its variable", l)
		}
	}
}

func TestConfigDefaultsAndTokenFile(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenPath, []byte("s3cr3t-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ROCKETY_API_TOKEN_FILE", tokenPath)
	t.Setenv("ROCKETY_POLL_INTERVALS", "tasks:10s")
	c, err := loadConfig(true)
	if err != nil {
		t.Fatal(err)
	}
	if c.APIURL != "https://app.rockety.io/api/v1" || strings.Join(c.Resources, ",") != "projects,tasks,users" ||
		c.Interval("tasks") != 10*time.Second || c.Interval("users") != 30*time.Second || c.PageSize != 100 ||
		c.PageConcurrency != 4 || c.RateLimit != 10 || c.Subjects.EventsStream() != "ROCKETY_EVENTS" ||
		c.HTTPAddr != ":8080" || c.InitialSync != "baseline" || c.MaxDeleteRatio != 0.5 || !c.Commands ||
		c.LeaseTTL != 15*time.Second || c.InstanceID == "" || c.LogFormat != "json" {
		t.Errorf("defaults = %+v", c)
	}

	tf := &tokenFile{path: tokenPath}
	if tok, err := tf.Token(); err != nil || tok != "s3cr3t-from-file" {
		t.Fatalf("token = %q, %v", tok, err)
	}
	// A rotated secret is picked up without a restart.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(tokenPath, []byte("rotated-token-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, _ := tf.Token(); tok != "rotated-token-value" {
		t.Errorf("after rotation token = %q", tok)
	}

	t.Setenv("ROCKETY_API_TOKEN_FILE", filepath.Join(dir, "missing"))
	_, err = loadConfig(true)
	if err == nil || !strings.Contains(err.Error(), "ROCKETY_API_TOKEN_FILE: cannot read the token file") {
		t.Errorf("missing token file: %v", err)
	}
}

func TestConfigCommandRedactsSecretsAndUsageListsEveryVariable(t *testing.T) {
	clearEnv(t)
	t.Setenv("ROCKETY_API_TOKEN", "tok-should-not-print")
	t.Setenv("NATS_USER", "bridge")
	t.Setenv("NATS_PASSWORD", "pw-should-not-print")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"config"}, &out, &errOut); code != 0 {
		t.Fatalf("config exit %d: %s", code, errOut.String())
	}
	if strings.Contains(out.String(), "should-not-print") || !strings.Contains(out.String(), "[redacted]") {
		t.Errorf("config output leaks a secret or redacts nothing:\n%s", out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"-h"}, &out, &errOut); code != 0 {
		t.Fatal(code)
	}
	ty := reflect.TypeOf(env{})
	for i := 0; i < ty.NumField(); i++ {
		if name := ty.Field(i).Tag.Get("envconfig"); !strings.Contains(out.String(), name) {
			t.Errorf("-h does not list %s", name)
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"-version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "rockety-bridge ") {
		t.Errorf("-version: %d %q", code, out.String())
	}
	errOut.Reset()
	t.Setenv("ROCKETY_API_TOKEN", "")
	t.Setenv("ROCKETY_PAGE_SIZE", "-3")
	if code := run(context.Background(), []string{"run"}, &out, &errOut); code != 2 {
		t.Errorf("run with a bad configuration exit %d, want 2", code)
	}
	for _, want := range []string{"configuration: ROCKETY_API_TOKEN: missing", "configuration: ROCKETY_PAGE_SIZE:"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Errorf("unknown command exit %d", code)
	}
}

func TestTailSubject(t *testing.T) {
	c := Config{}
	clearEnv(t)
	c, _ = (env{SubjectPrefix: "rockety"}).parse(false)
	for filter, want := range map[string]string{
		"":              "rockety.events.>",
		"*":             "rockety.events.>",
		"tasks":         "rockety.events.tasks.>",
		"tasks.updated": "rockety.events.tasks.updated.*",
		"*.deleted":     "rockety.events.*.deleted.*",
		"ta sks":        "error",
		"tasks.renamed": "error",
	} {
		got, err := tailSubject(c.Subjects, filter)
		if (err != nil) != (want == "error") || (err == nil && got != want) {
			t.Errorf("tailSubject(%q) = %q, %v; want %s", filter, got, err, want)
		}
	}
}

// FuzzConfig feeds arbitrary values to every variable: parsing never
// panics, and every problem it reports names a variable.
func FuzzConfig(f *testing.F) {
	f.Add("https://app.rockety.io/api/v1", "tasks:10s", "0.5", "tasks.*", "15s")
	f.Add("http://x", "tasks", "2", "*.frob", "1ms")
	f.Add("", ":,:", "NaN", ".", "-1s")
	f.Fuzz(func(t *testing.T, url, intervals, ratio, allow, ttl string) {
		e := env{APIURL: url, APIToken: "t", Resources: "tasks,users", PollInterval: "30s", PollIntervals: intervals,
			PageSize: "100", PageConcurrency: "4", RateLimit: "10", SubjectPrefix: "rockety", DataDir: "d", HTTPAddr: ":8080",
			InitialSync: "baseline", MaxDeleteRatio: ratio, Commands: "true", CommandAllow: allow, InstanceID: "i",
			LeaseTTL: ttl, StreamReplicas: "1", ShutdownGrace: "10s", LogLevel: "info", LogFormat: "json", AllowInsecure: "false"}
		_, err := e.parse(true)
		if err == nil {
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			name, _, ok := strings.Cut(line, ":")
			if !ok || strings.ToUpper(name) != name || !strings.ContainsAny(name, "_") {
				t.Fatalf("problem %q does not start with a variable name", line)
			}
		}
	})
}
