package layout

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// mapFolder finds the folders named in the first cell of a table row.
var mapFolder = regexp.MustCompile("`([a-z0-9_./-]+/)`")

// architectureFolders reads the folder map of ARCHITECTURE.md: the first
// column of its first table.
func architectureFolders(doc string) []string {
	var folders []string
	inTable := false
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range mapFolder.FindAllStringSubmatch(cells[1], -1) {
			folders = append(folders, m[1])
		}
	}
	return folders
}

// TestArchitectureMapIsTrue: the folder map in ARCHITECTURE.md names
// folders that exist, and every package of the module is under one of
// them, so the walk-throughs cannot drift from the tree unnoticed.
func TestArchitectureMapIsTrue(t *testing.T) {
	root := moduleRoot(t)
	watchSources(t, root)
	doc, err := os.ReadFile(filepath.Join(root, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	folders := architectureFolders(string(doc))
	if len(folders) == 0 {
		t.Fatal("ARCHITECTURE.md: no folder map (a table whose first column names folders like `poller/`)")
	}
	for _, f := range folders {
		if fi, err := os.Stat(filepath.Join(root, f)); err != nil || !fi.IsDir() {
			t.Errorf("ARCHITECTURE.md names %s, which is not a folder of the module", f)
		}
	}
	const module = "github.com/rockety-io/rockety-bridge/"
	for _, p := range modulePackages(t, root) {
		rel := strings.TrimPrefix(p.path, module) + "/"
		covered := false
		for _, f := range folders {
			covered = covered || strings.HasPrefix(rel, f)
		}
		if !covered {
			t.Errorf("package %s is in no folder of ARCHITECTURE.md's map; add a row for it", rel)
		}
	}
}

func TestArchitectureFolders(t *testing.T) {
	doc := "# x\n\ntext `not/`\n\n| folder | holds |\n|---|---|\n| `a/` | one |\n| `b/c/`, `d/` | two |\n\n| `e/` | another table |\n"
	got := strings.Join(architectureFolders(doc), " ")
	if got != "a/ b/c/ d/" {
		t.Errorf("folders = %q", got)
	}
}
