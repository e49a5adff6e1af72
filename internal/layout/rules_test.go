package layout

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

const module = "github.com/rockety-io/rockety-bridge"

// row is one line of DESIGN.md's Layout table.
type row struct {
	folder string   // "rockety/sim", without the trailing slash
	terms  []string // the "may import" cell, split: "plan", "nats.go", "all"
}

// A term naming a library, or a package by what it holds, matches these
// import paths. A term that is a folder of the table needs no entry here.
var libraries = map[string]func(path string) bool{
	// nats.go's row covers its jetstream package too: it is one client.
	"nats.go":     under("github.com/nats-io/nats.go"),
	"backoff":     under("github.com/cenkalti/backoff/v4"),
	"x/time/rate": under("golang.org/x/time/rate"),
	// events' row names the models by what they are; they live here.
	"the resource models": under(module + "/rockety/model"),
}

func under(root string) func(string) bool {
	return func(p string) bool { return p == root || strings.HasPrefix(p, root+"/") }
}

var (
	folderCell = regexp.MustCompile("^`([^`]+)`")
	aside      = regexp.MustCompile(`\s*\([^)]*\)`)
)

// parseLayout reads the table under the "## Layout" heading.
func parseLayout(r io.Reader) ([]row, error) {
	var rows []row
	in := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			in = strings.HasPrefix(line, "## Layout")
			continue
		}
		if !in || !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 3 {
			return nil, fmt.Errorf("layout row %q has %d cells, want 3 (folder, owns, may import)", line, len(cells))
		}
		m := folderCell.FindStringSubmatch(strings.TrimSpace(cells[0]))
		if m == nil {
			continue // the header and its rule
		}
		r := row{folder: strings.TrimSuffix(m[1], "/")}
		for _, t := range strings.Split(aside.ReplaceAllString(cells[2], ""), ",") {
			if t = strings.TrimSpace(t); t != "" {
				r.terms = append(r.terms, t)
			}
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no Layout table found under a \"## Layout\" heading")
	}
	return rows, nil
}

// pkg is one package of the module and what its non-test files import:
// tests may reach for anything that helps them test.
type pkg struct {
	path    string
	imports []string
}

// rules decides, for each package of the module, which imports the table
// allows it.
type rules struct {
	rows []row
}

// rowOf is the row a package follows: its folder's own, else the nearest
// parent folder's (rockety/model follows rockety).
func (r rules) rowOf(path string) (row, bool) {
	rel, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return row{}, false
	}
	best, found := row{}, false
	for _, w := range r.rows {
		if (rel == w.folder || strings.HasPrefix(rel, w.folder+"/")) && len(w.folder) >= len(best.folder) {
			best, found = w, true
		}
	}
	if !found && strings.HasPrefix(rel, "internal/") {
		// Wiring shared by the binaries and test helpers: what a binary
		// may import, they may (DESIGN.md names internal/app as such a
		// package without giving it a row).
		return row{folder: "internal", terms: []string{"all"}}, true
	}
	return best, found
}

// validate fails on a term the check cannot map to import paths: such a
// term would allow nothing and blame the code for a gap in the check.
func (r rules) validate() error {
	for _, w := range r.rows {
		for _, t := range w.terms {
			_, lib := libraries[t]
			folder := slices.ContainsFunc(r.rows, func(x row) bool { return x.folder == t })
			if !lib && !folder && t != "all" && t != "stdlib" && t != "—" {
				return fmt.Errorf("the row of %s/ may import %q, which names neither a folder of the table nor a library this check knows", w.folder, t)
			}
		}
	}
	return nil
}

// allows reports whether a package of row w may import imp; the terms are
// validated.
func (r rules) allows(w row, imp string, std bool) bool {
	if imp == module+"/internal/app" {
		// The wiring is the binaries' own: a library that reached into it
		// would depend on everything at once.
		return strings.HasPrefix(w.folder, "cmd/")
	}
	if std {
		return true
	}
	target, inModule := r.rowOf(imp)
	if inModule && target.folder == w.folder {
		return true // within one folder, its job is its own business
	}
	for _, t := range w.terms {
		if t == "all" {
			return true
		}
		if match, ok := libraries[t]; ok && match(imp) {
			return true
		}
		// A folder's term covers its sub-packages that have no row of
		// their own (rockety covers rockety/model, not rockety/sim).
		if inModule && target.folder == t {
			return true
		}
	}
	return false
}

// noRow stands for "this package has no row" in a violation's import.
const noRow = "(no row in the Layout table)"

type violation struct {
	pkg string // relative to the module: "poller"
	imp string // the import path, or noRow
	row row    // the row it breaks
}

func (v violation) String() string {
	if v.imp == noRow {
		return v.pkg + " has no row in DESIGN.md's Layout table"
	}
	return fmt.Sprintf("%s imports %s, which the row of %s/ does not allow (may import: %s)",
		v.pkg, v.imp, v.row.folder, strings.Join(v.row.terms, ", "))
}

// check returns every import the table does not allow, and every package it
// has no row for.
func (r rules) check(pkgs []pkg) ([]violation, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	var out []violation
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.path, module+"/")
		w, ok := r.rowOf(p.path)
		if !ok {
			out = append(out, violation{pkg: rel, imp: noRow})
			continue
		}
		for _, imp := range p.imports {
			if !r.allows(w, imp, standard(imp)) {
				out = append(out, violation{pkg: rel, imp: imp, row: w})
			}
		}
	}
	return out, nil
}

// standard reports whether an import path is in the standard library: Go
// keeps every path whose first element has no dot for it, and a module's
// path must have one.
func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}
