package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rockety-io/rockety-bridge/rockety/sim"
)

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "flag provided but not defined: -nope"},
		{"bad number", []string{"-churn", "x"}, `invalid value "x" for flag -churn`},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
		{"error rate above 1", []string{"-error-rate", "1.5"}, "-error-rate 1.5: want between 0 and 1"},
		{"negative drift", []string{"-drift", "-1"}, "-drift -1: want 0 or more"},
		{"negative log limit", []string{"-log-limit", "-1"}, "-log-limit -1: want 0 or more"},
		{"repeat page rate above 1", []string{"-repeat-page-rate", "2"}, "-repeat-page-rate 2: want between 0 and 1"},
		{"negative changes lag", []string{"-changes-lag", "-1s"}, "-changes-lag -1s: want 0 or more"},
		{"changes lag without a unit", []string{"-changes-lag", "5"}, `invalid value "5" for flag -changes-lag`},
		{"soft delete with a value", []string{"-soft-delete=maybe"}, `invalid boolean value "maybe" for -soft-delete`},
		{"bad style", []string{"-style", "xml"}, `-style: sim: invalid: style "xml"`},
		{"fail page without page", []string{"-fail-page", "tasks"}, "want resource:page[:status[:times]]"},
		{"fail page bad number", []string{"-fail-page", "tasks:x"}, `page "x" is not a number`},
		{"fail page bad status", []string{"-fail-page", "tasks:2:200"}, "fail page status 200"},
		{"bad resource", []string{"-resources", "Tasks"}, `resource name "Tasks"`},
		{"quota without a window", []string{"-quota", "100"}, `-quota: sim: invalid: quota "100": want N/D, such as 100/10s`},
		{"quota window without a unit", []string{"-quota", "100/10"}, `-quota: sim: invalid: quota "100/10": window "10": want a duration such as 10s`},
		{"quota of fractional seconds", []string{"-quota", "100/1500ms"}, `-quota: sim: invalid: quota "100/1500ms": window 1.5s: want a whole number of seconds >= 1s`},
		{"quota requests not a number", []string{"-quota", "many/10s"}, `requests "many": want a whole number >= 0`},
		{"bad rate-limit headers", []string{"-quota", "10/1s", "-ratelimit-headers", "github"}, `-ratelimit-headers: sim: invalid: rate-limit headers "github": want ietf, x or none`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			out := stderr.String()
			if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "rockety-sim: ") || !strings.Contains(out, tt.want) {
				t.Errorf("stderr %q, want one line containing %q", out, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("exit %d", code)
	}
	if out := stderr.String(); !strings.Contains(out, "-fail-page") || !strings.Contains(out, "-changes-lag") || !strings.Contains(out, "-soft-delete") ||
		!strings.Contains(out, "-quota") || !strings.Contains(out, "-ratelimit-headers") {
		t.Errorf("usage %q", stderr.String())
	}
}

func TestQuotaFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want sim.Quota
	}{
		{"off by default", nil, sim.Quota{}},
		{"off with 0", []string{"-quota", "0"}, sim.Quota{}},
		{"headers alone do nothing", []string{"-ratelimit-headers", "x"}, sim.Quota{}},
		{"ietf by default", []string{"-quota", "100/10s"}, sim.Quota{Limit: 100, Window: 10 * time.Second, Headers: sim.QuotaHeadersIETF}},
		{"x", []string{"-quota", "5/1m", "-ratelimit-headers", "x"}, sim.Quota{Limit: 5, Window: time.Minute, Headers: sim.QuotaHeadersX}},
		{"none", []string{"-quota", "5/1s", "-ratelimit-headers", "none"}, sim.Quota{Limit: 5, Window: time.Second, Headers: sim.QuotaHeadersNone}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, io.Discard)
			if err != nil || c.opts.Faults.Quota != tt.want {
				t.Errorf("quota %+v, %v; want %+v", c.opts.Faults.Quota, err, tt.want)
			}
		})
	}
}

func TestDefaultLogLimit(t *testing.T) {
	c, err := parseFlags(nil, io.Discard)
	if err != nil || c.opts.LogLimit != defaultLogLimit {
		t.Errorf("log limit %d, %v", c.opts.LogLimit, err)
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{
		"-addr", ":0", "-token", "", "-seed-items", "5", "-seed", "9", "-resources", "tasks, widgets",
		"-churn", "0.5", "-latency", "20ms", "-error-rate", "0.1", "-rate-limit-rate", "0.2",
		"-retry-after", "3s", "-fail-page", "tasks:3:503:2", "-drift", "4", "-style", "items",
		"-repeat-page-rate", "0.25", "-log-limit", "20",
		"-changes-lag", "3s", "-ignore-changed-since", "-soft-delete",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := sim.Options{
		Seed: 9, SeedItems: 5, Resources: []string{"tasks", "widgets"}, Style: sim.StyleItemsPagination,
		Churn: 0.5, LogLimit: 20,
		Faults: sim.Faults{
			Latency: 20 * time.Millisecond, ErrorRate: 0.1, RateLimitRate: 0.2, RetryAfter: 3 * time.Second,
			FailPage:     sim.FailPage{Resource: "tasks", Page: 3, Status: 503, Times: 2},
			DriftInserts: 4, RepeatPageRate: 0.25,
			ChangesLag: 3 * time.Second, IgnoreChangedSince: true, SoftDelete: true,
		},
	}
	got, err := json.Marshal(c.opts)
	exp, err2 := json.Marshal(want)
	if err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
	if c.addr != ":0" || string(got) != string(exp) {
		t.Errorf("options\n%s\nwant\n%s", got, exp)
	}
}

// TestRunServesAndShutsDown starts the real server, fetches a page and stops
// it with SIGTERM as a container runtime would.
func TestRunServesAndShutsDown(t *testing.T) {
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-addr", "127.0.0.1:0", "-seed-items", "3", "-churn", "50"}, outW, &stderr)
		outW.Close()
	}()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	first := <-lines
	m := regexp.MustCompile(`^Rockety simulator on (http://127\.0\.0\.1:\d+/api/v1) \(token dev-token\)$`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("first line %q", first)
	}
	if curl := <-lines; !strings.Contains(curl, "curl -H 'Authorization: Bearer dev-token' '"+m[1]+"/projects?") {
		t.Errorf("second line %q", curl)
	}
	req, _ := http.NewRequest(http.MethodGet, m[1]+"/tasks", nil)
	req.Header.Set("Authorization", "Bearer dev-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"meta":{"page":1,"per_page":100,"total":`)) {
		t.Errorf("GET tasks: %d %s", resp.StatusCode, body)
	}

	// The admin routes: churn at 50/s shows in the log, and stops for good.
	admin := <-lines
	root := strings.TrimSuffix(m[1], sim.BasePath)
	if admin != "  admin (ground truth, churn, faults): "+root+sim.AdminPath+"/" {
		t.Errorf("third line %q", admin)
	}
	rem := sim.NewRemote(root, "dev-token")
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if last, err := rem.LastSeq(ctx); err != nil {
			t.Fatal(err)
		} else if last >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("churn at 50/s made no 5 mutations in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped, err := rem.SetChurn(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	muts, err := rem.MutationsSince(ctx, 0)
	if err != nil || len(muts) != int(stopped) || muts[len(muts)-1].Seq != stopped {
		t.Errorf("%d mutations up to churn's stop at %d; %v", len(muts), stopped, err)
	}

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d, stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	for range lines {
	}
}
