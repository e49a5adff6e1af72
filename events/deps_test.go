package events_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/rockety-io/rockety-bridge"

// forbidden are the packages a subscriber must not compile just to decode
// events: the API client drags in HTTP retries and a rate limiter, and the
// embedded server is for the bridge and its tests only.
var forbidden = []struct {
	name  string
	match func(path string) bool
}{
	{"the Rockety API client", func(p string) bool { return p == module+"/rockety" }},
	{"backoff", func(p string) bool { return strings.HasPrefix(p, "github.com/cenkalti/backoff") }},
	{"x/time/rate", func(p string) bool { return p == "golang.org/x/time/rate" }},
	{"nats-server", func(p string) bool { return strings.HasPrefix(p, "github.com/nats-io/nats-server") }},
	{"the bridge's internals", func(p string) bool {
		// Only the contract and the models it is made of are for others.
		return strings.HasPrefix(p, module+"/") && p != module+"/events" && p != module+"/events/follow" && p != module+"/rockety/model"
	}},
}

// TestSubscriberPackagesStayLeaves reads the build graph rather than the
// import lines, so a forbidden package reached through any chain of
// imports fails too.
func TestSubscriberPackagesStayLeaves(t *testing.T) {
	tests := []struct {
		name string
		pkg  string
		// stdlibOnly: the models are plain data, so even nats.go is too much.
		stdlibOnly bool
	}{
		{name: "events", pkg: module + "/events"},
		{name: "follow", pkg: module + "/events/follow"},
		{name: "models", pkg: module + "/rockety/model", stdlibOnly: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, dep := range deps(t, tt.pkg) {
				if dep.path == tt.pkg {
					continue
				}
				for _, f := range forbidden {
					if f.match(dep.path) {
						t.Errorf("%s depends on %s (%s)", tt.pkg, dep.path, f.name)
						break
					}
				}
				if tt.stdlibOnly && !dep.standard {
					t.Errorf("%s depends on %s, which is not in the standard library", tt.pkg, dep.path)
				}
			}
		})
	}
}

type dep struct {
	path     string
	standard bool
}

// deps lists every package pkg compiles, test files excluded: a subscriber
// never builds our tests.
func deps(t *testing.T, pkg string) []dep {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", pkg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr.Bytes())
	}
	var list []dep
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		path, std, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("go list -deps %s: unexpected line %q", pkg, sc.Text())
		}
		list = append(list, dep{path: path, standard: std == "true"})
	}
	if len(list) == 0 {
		t.Fatalf("go list -deps %s listed nothing", pkg)
	}
	return list
}
