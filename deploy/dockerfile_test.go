package deploy

import (
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// No Docker engine runs where these tests run, so the Dockerfile is not
// built here. These tests check its instructions and .dockerignore, and run
// the build stage's go build command as the Dockerfile writes it.

// instructions reads a Dockerfile: comments dropped, continuation lines
// joined, one instruction per entry.
func instructions(t *testing.T, text string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, strings.Join(strings.Fields(s), " "))
		}
		cur.Reset()
	}
	return out
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	ins := instructions(t, readFile(t, "Dockerfile"))
	has := func(want string) bool {
		return slices.ContainsFunc(ins, func(s string) bool { return strings.Contains(s, want) })
	}
	for _, want := range []string{
		"ARG GO_VERSION=1.26",
		"FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build",
		"COPY go.mod go.sum ./",
		`CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ ./cmd/rockety-bridge ./cmd/rockety-sim`,
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"COPY --from=build /out/rockety-bridge /out/rockety-sim /usr/local/bin/",
		"USER 65532:65532",
		"EXPOSE 8080",
		`ENTRYPOINT ["/usr/local/bin/rockety-bridge"]`,
		`CMD ["run"]`,
	} {
		if !has(want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, label := range []string{"title", "description", "source", "version", "revision", "created"} {
		if !has("org.opencontainers.image." + label + "=") {
			t.Errorf("no OCI label org.opencontainers.image.%s", label)
		}
	}
	// The final stage ends with USER, EXPOSE, ENTRYPOINT, CMD.
	if n := len(ins); n < 4 || !strings.HasPrefix(ins[n-1], "CMD") || !strings.HasPrefix(ins[n-2], "ENTRYPOINT") {
		t.Errorf("the image should end with ENTRYPOINT and CMD: %v", ins[max(0, n-4):])
	}
	// The build image's Go is the module's.
	gomod := readFile(t, "../go.mod")
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if m == nil || m[1] != "1.26" {
		t.Errorf("go.mod wants Go %v; the Dockerfile builds with golang:1.26", m)
	}
	// The chart runs the image as the Dockerfile's user.
	if !strings.Contains(readFile(t, chartDir+"/values.yaml"), "runAsUser: 65532") {
		t.Error("the chart's runAsUser is not the image's USER 65532")
	}
}

// dockerignoreMatch reports whether a .dockerignore pattern excludes the
// path (slash-separated, relative to the context) or one of its parents.
func dockerignoreMatch(pattern, path string) bool {
	pattern = strings.TrimSuffix(strings.TrimPrefix(pattern, "/"), "/")
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '*' && i+1 < len(pattern) && pattern[i+1] == '*':
			re.WriteString(".*")
			i++
			if i+1 < len(pattern) && pattern[i+1] == '/' {
				re.WriteString("/?")
				i++
			}
		case c == '*':
			re.WriteString("[^/]*")
		case c == '?':
			re.WriteString("[^/]")
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	r := regexp.MustCompile(re.String())
	parts := strings.Split(path, "/")
	for i := range parts {
		if r.MatchString(strings.Join(parts[:i+1], "/")) {
			return true
		}
	}
	return false
}

func TestDockerignore(t *testing.T) {
	t.Parallel()
	var patterns []string
	for _, line := range strings.Split(readFile(t, "../.dockerignore"), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			if strings.HasPrefix(line, "!") {
				t.Fatalf("exceptions (%s) are not understood by this test", line)
			}
			patterns = append(patterns, line)
		}
	}
	excluded := func(p string) string {
		for _, pat := range patterns {
			if dockerignoreMatch(pat, p) {
				return pat
			}
		}
		return ""
	}
	// Sanity of the matcher.
	for p, want := range map[string]bool{".git/config": true, "rockety-bridge": true, "cmd/rockety-bridge/main.go": false,
		"poller/poller.test": true, "deploy/Dockerfile": true, "schemas/event.json": false, "data/x": true} {
		if got := excluded(p) != ""; got != want {
			t.Errorf("matcher: %s excluded=%v, want %v", p, got, want)
		}
	}
	// Everything the build needs is in the context: go.mod, go.sum, every
	// Go file of the module and the files it embeds (schemas/*.json).
	need := []string{"go.mod", "go.sum"}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" || rel == "deploy" || strings.HasSuffix(rel, "/testdata") || rel == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if (strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go")) || strings.HasPrefix(rel, "schemas/") && strings.HasSuffix(rel, ".json") {
			need = append(need, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range need {
		if pat := excluded(p); pat != "" {
			t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", pat, p)
		}
	}
}

type binaries struct{ bridge, sim string }

var (
	buildOnce sync.Once
	built     binaries
	buildErr  error
	buildOut  []byte
	buildDir  string
)

// buildBinaries builds rockety-bridge and rockety-sim from the repository
// root with the Dockerfile's build-stage command (once per test run).
func buildBinaries(t *testing.T) binaries {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "rockety-deploy-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=v0.0.0-deploytest",
			"-o", buildDir+"/", "./cmd/rockety-bridge", "./cmd/rockety-sim")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		buildOut, buildErr = cmd.CombinedOutput()
		built = binaries{bridge: filepath.Join(buildDir, "rockety-bridge"), sim: filepath.Join(buildDir, "rockety-sim")}
	})
	if buildErr != nil {
		t.Fatalf("building the binaries as the Dockerfile does: %v\n%s", buildErr, buildOut)
	}
	return built
}

func TestBuildStage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds rockety-bridge and rockety-sim; skipped with -short")
	}
	b := buildBinaries(t)
	out, err := exec.Command(b.bridge, "-version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "v0.0.0-deploytest") {
		t.Errorf("rockety-bridge -version: %v %s; want the version from -X main.version", err, out)
	}
	for _, bin := range []string{b.bridge, b.sim} {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked; distroless/static needs a static binary", filepath.Base(bin))
			}
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s keeps its symbol table; -s strips it", filepath.Base(bin))
		}
		f.Close()
	}
}
