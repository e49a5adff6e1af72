package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// knownExceptions are the imports that break the Layout table today. Each
// says which issue removes it. The test fails when one no longer happens,
// so that its line is deleted with the fix and the list only shrinks.
var knownExceptions = []struct {
	pkg, imp string
	issue    string
}{
	// Issue 13 (item 8) moves every retry loop onto backoff/v4, as
	// STYLE.md asks; publisher's row has to name backoff, or the
	// retries leave publisher.
	{pkg: "publisher", imp: "github.com/cenkalti/backoff/v4", issue: "13"},
	// The same for the consumer: its restarts and the recording of a
	// result retry through backoff/v4; its row has to name backoff.
	{pkg: "consumer", imp: "github.com/cenkalti/backoff/v4", issue: "13"},
	// Issue 13: the state store's batched lookup uses Synadia's
	// jetstreamext (an extension of nats.go, not nats.go itself) and the
	// Libraries list does not name it; the row names it or the lookup
	// goes back to nats.go.
	{pkg: "publisher", imp: "github.com/synadia-io/orbit.go/jetstreamext", issue: "13"},
	// Issue 13: schemas embeds a validator and prints its messages in
	// English; the row says only events. The row names them or
	// validation moves out of the package.
	{pkg: "schemas", imp: "github.com/santhosh-tekuri/jsonschema/v6", issue: "13"},
	{pkg: "schemas", imp: "github.com/santhosh-tekuri/jsonschema/v6/kind", issue: "13"},
	{pkg: "schemas", imp: "golang.org/x/text/language", issue: "13"},
	{pkg: "schemas", imp: "golang.org/x/text/message", issue: "13"},
	// Issue 13 (item 10): the folder map must cover every folder; the
	// command client for services and the reliability suites have none.
	{pkg: "command", imp: noRow, issue: "13"},
	{pkg: "reliability", imp: noRow, issue: "13"},
}

// TestImportsFollowTheLayoutTable holds every package of the module to
// the "may import" column of DESIGN.md, read from the file on each run.
func TestImportsFollowTheLayoutTable(t *testing.T) {
	root := moduleRoot(t)
	// DESIGN.md lives beside the checkout, not in it: CI places it there.
	design := filepath.Join(filepath.Dir(root), "shared", "DESIGN.md")
	f, err := os.Open(design)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("DESIGN.md is not beside the checkout (../shared/DESIGN.md): the rules are read from it, so there is nothing to hold the imports to")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := parseLayout(f)
	if err != nil {
		t.Fatalf("DESIGN.md: %v", err)
	}

	watchSources(t, root)
	got, err := rules{rows: rows}.check(modulePackages(t, root))
	if err != nil {
		t.Fatalf("DESIGN.md: %v", err)
	}
	for _, v := range got {
		if !slices.ContainsFunc(knownExceptions, func(e struct{ pkg, imp, issue string }) bool {
			return e.pkg == v.pkg && e.imp == v.imp
		}) {
			t.Errorf("%s", v)
		}
	}
	for _, e := range knownExceptions {
		if !slices.ContainsFunc(got, func(v violation) bool { return e.pkg == v.pkg && e.imp == v.imp }) {
			t.Errorf("known exception %s %s (issue %s) no longer happens: delete it from knownExceptions", e.pkg, e.imp, e.issue)
		}
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod)
}

// watchSources reads every folder of the module that Go builds from. The
// imports come from go list, a child process the test cache cannot see:
// without this, a cached pass would be replayed after an import changed.
// Reading a folder makes the cache key on its entries' sizes and times.
func watchSources(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || path == root {
			return err
		}
		name := d.Name()
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" {
			return filepath.SkipDir // the go tool ignores these
		}
		if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
			return filepath.SkipDir // another module (deploy)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading the module's folders: %v", err)
	}
}

// modulePackages lists the module's packages with their non-test imports.
func modulePackages(t *testing.T, root string) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Error", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list ./...: %v", err)
		}
		if p.Error != nil {
			// Imports of a package that does not load are unknown, and
			// an unknown import cannot be allowed.
			t.Fatalf("go list ./...: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, pkg{path: p.ImportPath, imports: p.Imports})
	}
	if len(pkgs) == 0 {
		t.Fatal("go list ./... listed no packages")
	}
	return pkgs
}

// table is a Layout section shaped like DESIGN.md's, for the rule tests.
const table = "# Design\n\n## Layout (one folder, one job)\n\n" +
	"| folder | owns | may import |\n|---|---|---|\n" +
	"| `rockety/` | the client | stdlib, backoff, x/time/rate |\n" +
	"| `rockety/sim/` | a simulator | rockety |\n" +
	"| `events/` | the contract | the resource models (a leaf), nats.go (headers) |\n" +
	"| `plan/` (name it for what it holds) | the rule | events |\n" +
	"| `poller/` | the loop | plan, events, rockety |\n" +
	"| `cmd/rockety-bridge/` | the binary | all |\n" +
	"| `cmd/rockety-sim/` | the simulator binary | rockety/sim |\n" +
	"| `deploy/` | manifests | — |\n" +
	"\nWiring may live in internal/app.\n\n## Next section\n\n| `poller/` | not | layout |\n"

func TestParseLayout(t *testing.T) {
	rows, err := parseLayout(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{"rockety", []string{"stdlib", "backoff", "x/time/rate"}},
		{"rockety/sim", []string{"rockety"}},
		{"events", []string{"the resource models", "nats.go"}},
		{"plan", []string{"events"}},
		{"poller", []string{"plan", "events", "rockety"}},
		{"cmd/rockety-bridge", []string{"all"}},
		{"cmd/rockety-sim", []string{"rockety/sim"}},
		{"deploy", []string{"—"}},
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows %v, want %d", len(rows), rows, len(want))
	}
	for i := range want {
		if rows[i].folder != want[i].folder || !slices.Equal(rows[i].terms, want[i].terms) {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
	if _, err := parseLayout(strings.NewReader("# Design\n\nNo table.\n")); err == nil {
		t.Error("a document without a Layout table parsed")
	}
}

func TestCheck(t *testing.T) {
	rows, err := parseLayout(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	m := func(rel string) string { return module + "/" + rel }
	tests := []struct {
		name    string
		pkg     string
		imports []string
		want    []string // offending imports, or noRow
	}{
		{name: "stdlib is always allowed", pkg: m("plan"), imports: []string{"encoding/json", "net/http"}},
		{name: "a folder term", pkg: m("plan"), imports: []string{m("events")}},
		{name: "a folder not named", pkg: m("plan"), imports: []string{m("rockety"), m("poller")}, want: []string{m("rockety"), m("poller")}},
		{name: "libraries by their short names", pkg: m("rockety"), imports: []string{"github.com/cenkalti/backoff/v4", "golang.org/x/time/rate"}},
		{name: "a library not named", pkg: m("rockety"), imports: []string{"github.com/nats-io/nats.go"}, want: []string{"github.com/nats-io/nats.go"}},
		{name: "nats.go covers its jetstream package", pkg: m("events"), imports: []string{"github.com/nats-io/nats.go/jetstream"}},
		{name: "the models by what they hold", pkg: m("events"), imports: []string{m("rockety/model")}},
		{name: "the models are not the client", pkg: m("events"), imports: []string{m("rockety")}, want: []string{m("rockety")}},
		{name: "a sub-package without a row follows its parent's", pkg: m("rockety/model"), imports: []string{"github.com/nats-io/nats.go"}, want: []string{"github.com/nats-io/nats.go"}},
		{name: "a sub-package with its own row follows it", pkg: m("rockety/sim"), imports: []string{m("rockety"), "golang.org/x/time/rate"}, want: []string{"golang.org/x/time/rate"}},
		{name: "a folder term covers sub-packages without a row", pkg: m("poller"), imports: []string{m("rockety/model")}},
		{name: "but not those with a row of their own", pkg: m("poller"), imports: []string{m("rockety/sim")}, want: []string{m("rockety/sim")}},
		{name: "within one folder", pkg: m("rockety"), imports: []string{m("rockety/model")}},
		{name: "all", pkg: m("cmd/rockety-bridge"), imports: []string{"go.uber.org/zap", m("internal/app"), m("poller")}},
		{name: "the simulator binary", pkg: m("cmd/rockety-sim"), imports: []string{m("rockety/sim"), m("poller")}, want: []string{m("poller")}},
		{name: "internal packages may import what a binary may", pkg: m("internal/natstest"), imports: []string{"github.com/nats-io/nats-server/v2/server"}},
		{name: "only binaries import the wiring", pkg: m("internal/natstest"), imports: []string{m("internal/app")}, want: []string{m("internal/app")}},
		{name: "a library may not reach the wiring", pkg: m("poller"), imports: []string{m("internal/app")}, want: []string{m("internal/app")}},
		{name: "a folder without a row", pkg: m("command"), imports: []string{m("events")}, want: []string{noRow}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rules{rows: rows}.check([]pkg{{path: tt.pkg, imports: tt.imports}})
			if err != nil {
				t.Fatal(err)
			}
			var imps []string
			for _, v := range got {
				imps = append(imps, v.imp)
			}
			if !slices.Equal(imps, tt.want) {
				t.Errorf("violations = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckRefusesTermsItCannotMap(t *testing.T) {
	r := rules{rows: []row{
		{folder: "events", terms: []string{"nats.go"}},
		{folder: "plan", terms: []string{"events", "sql drivers"}},
	}}
	// No package imports anything: a term is checked even where no import
	// needs it, so a typo in DESIGN.md cannot sit there unnoticed.
	_, err := r.check([]pkg{{path: module + "/events"}})
	if err == nil || !strings.Contains(err.Error(), `may import "sql drivers"`) {
		t.Fatalf("err = %v, want one naming the term", err)
	}
}
