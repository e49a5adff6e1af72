package deploy

import (
	"bufio"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBridgeAcceptsChartConfig runs `rockety-bridge config` with the
// environment of the chart's renderings: the bridge itself checks every
// value the chart produces.
func TestBridgeAcceptsChartConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rockety-bridge; skipped with -short")
	}
	t.Parallel()
	bin := buildBinaries(t).bridge
	for name, args := range map[string][]string{
		"default":     {release, chartDir},
		"non-default": {"acme", chartDir, "-f", fullValues},
		"try-out":     {release, chartDir, "-f", "examples/values-try-out.yaml"},
		// Poll intervals from 100ms up are accepted.
		"sub-second": append([]string{release, chartDir, "--set", "config.pollInterval=150ms",
			"--set", "config.pollIntervals.tasks=150ms"}, requiredArgs...),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if name == "default" {
				args = append(args, requiredArgs...)
			}
			out, stderr, err := helm(t, append([]string{"template"}, args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			c := bridgeContainer(t, newRendering(t, out).deployment(t))
			// Files the pod would have, under a temporary root.
			root := t.TempDir()
			env := []string{"PATH=" + os.Getenv("PATH")}
			want := map[string]string{}
			for _, e := range c.Env {
				v := e.Value
				switch {
				case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
					v = "pod-0"
				case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
					v = "secret-from-" + e.ValueFrom.SecretKeyRef.Name
				case strings.HasPrefix(v, "/etc/rockety-bridge/"):
					v = filepath.Join(root, v)
					if err := os.MkdirAll(filepath.Dir(v), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(v, []byte("a-token\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				env = append(env, e.Name+"="+v)
				want[e.Name] = v
			}
			cmd := exec.Command(bin, "config")
			cmd.Env = env
			got, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("rockety-bridge config refuses the chart's configuration: %v\n%s", err, got)
			}
			printed := map[string]string{}
			for _, line := range strings.Split(string(got), "\n") {
				if k, v, ok := strings.Cut(line, " "); ok {
					printed[k] = strings.TrimSpace(v)
				}
			}
			for _, k := range []string{"ROCKETY_API_URL", "ROCKETY_RESOURCES", "NATS_URL", "NATS_USER", "BRIDGE_SUBJECT_PREFIX",
				"BRIDGE_HTTP_ADDR", "BRIDGE_INITIAL_SYNC", "BRIDGE_COMMAND_ALLOW", "BRIDGE_INSTANCE_ID", "LOG_LEVEL", "LOG_FORMAT",
				"ROCKETY_API_TOKEN_FILE", "NATS_CREDS", "NATS_TLS_CA", "ROCKETY_PAGE_SIZE", "ROCKETY_RATE_LIMIT", "BRIDGE_MAX_DELETE_RATIO",
				"ROCKETY_CHANGED_AT_FIELD", "ROCKETY_DELETED_FIELD"} {
				if w, ok := want[k]; ok && printed[k] != w {
					t.Errorf("%s: the chart sets %q, the bridge reads %q", k, w, printed[k])
				}
			}
			// Durations are printed in Go's canonical form (1h0m0s).
			for _, k := range []string{"ROCKETY_POLL_INTERVAL", "BRIDGE_LEASE_TTL", "BRIDGE_SHUTDOWN_GRACE", "BRIDGE_COMMAND_MAX_AGE",
				"ROCKETY_CHANGED_SINCE_LOOKBACK", "ROCKETY_FULL_SYNC_INTERVAL", "ROCKETY_MAX_RETRY_AFTER"} {
				w, err := time.ParseDuration(want[k])
				if err != nil {
					t.Errorf("%s: the chart sets %q: %v", k, want[k], err)
					continue
				}
				if p, err := time.ParseDuration(printed[k]); err != nil || p != w {
					t.Errorf("%s: the chart sets %q, the bridge reads %q", k, want[k], printed[k])
				}
			}
			// The bridge prints ROCKETY_CHANGED_SINCE with "*" spread over
			// the resources, so it is compared as it expands.
			if name == "non-default" {
				const w = "comments:updated_since,projects:updated_since,tasks:updated_since,users:filter[updated_at][gte]"
				if printed["ROCKETY_CHANGED_SINCE"] != w {
					t.Errorf("ROCKETY_CHANGED_SINCE: the chart sets %q, the bridge reads %q, want %q", want["ROCKETY_CHANGED_SINCE"], printed["ROCKETY_CHANGED_SINCE"], w)
				}
			} else if printed["ROCKETY_CHANGED_SINCE"] != "" {
				t.Errorf("ROCKETY_CHANGED_SINCE: the bridge reads %q; the chart's default is off", printed["ROCKETY_CHANGED_SINCE"])
			}
			if printed["ROCKETY_API_TOKEN"] != "" {
				t.Errorf("the bridge sees ROCKETY_API_TOKEN %q; the chart must pass only the file", printed["ROCKETY_API_TOKEN"])
			}
		})
	}
}

// bridgeVariables reads the variables rockety-bridge reads: the envconfig
// tags of the env struct in cmd/rockety-bridge/config.go.
func bridgeVariables(t *testing.T) []string {
	t.Helper()
	const file = "../cmd/rockety-bridge/config.go"
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var vars []string
	found := false
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "env" {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			t.Fatalf("%s: env is not a struct", file)
		}
		found = true
		for _, field := range st.Fields.List {
			if field.Tag == nil {
				continue
			}
			tag, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				t.Fatal(err)
			}
			if v := reflect.StructTag(tag).Get("envconfig"); v != "" {
				vars = append(vars, v)
			}
		}
		return false
	})
	if !found || len(vars) < 30 {
		t.Fatalf("%s: found only %d variables in the env struct", file, len(vars))
	}
	sort.Strings(vars)
	return vars
}

// TestChartKnowsEveryBridgeVariable: every variable the bridge reads is in
// the README's configuration table (which TestNonDefaultRendering requires
// the chart to set) and among the names values.schema.json refuses in
// extraEnv, and neither lists a variable the bridge does not read.
func TestChartKnowsEveryBridgeVariable(t *testing.T) {
	t.Parallel()
	vars := bridgeVariables(t)
	var readme []string
	for _, v := range readmeConfig(t) {
		readme = append(readme, v.Name)
	}
	var schema struct {
		Properties struct {
			ExtraEnv struct {
				Items struct {
					Properties struct {
						Name struct {
							Not struct {
								Enum []string `json:"enum"`
							} `json:"not"`
						} `json:"name"`
					} `json:"properties"`
				} `json:"items"`
			} `json:"extraEnv"`
		} `json:"properties"`
	}
	if err := json.Unmarshal([]byte(readFile(t, chartDir+"/values.schema.json")), &schema); err != nil {
		t.Fatal(err)
	}
	for name, list := range map[string][]string{
		"the README's configuration table":       readme,
		"values.schema.json's extraEnv refusals": schema.Properties.ExtraEnv.Items.Properties.Name.Not.Enum,
	} {
		list = slices.Clone(list)
		sort.Strings(list)
		for _, v := range vars {
			if !slices.Contains(list, v) {
				t.Errorf("%s, which the bridge reads, is not in %s", v, name)
			}
		}
		for _, v := range list {
			if !slices.Contains(vars, v) {
				t.Errorf("%s is in %s, but the bridge does not read it", v, name)
			}
		}
		if len(slices.Compact(list)) != len(list) {
			t.Errorf("%s lists a variable twice: %v", name, list)
		}
	}
}

// TestSimulatorManifestArgs starts rockety-sim with the arguments of
// kubernetes/rockety-sim.yaml (on a loopback port instead of 0.0.0.0:8090).
func TestSimulatorManifestArgs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rockety-sim; skipped with -short")
	}
	t.Parallel()
	bin := buildBinaries(t).sim
	c := newRendering(t, readFile(t, "kubernetes/rockety-sim.yaml")).deployment(t).Spec.Template.Spec.Containers[0]
	if len(c.Command) != 1 || c.Command[0] != "/usr/local/bin/rockety-sim" {
		t.Errorf("command %v, want the image's /usr/local/bin/rockety-sim", c.Command)
	}
	args := append([]string(nil), c.Args...)
	for i, a := range args {
		if a == "0.0.0.0:8090" {
			args[i] = "127.0.0.1:0"
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if !strings.Contains(l, "Rockety simulator on http://127.0.0.1:") || !strings.Contains(l, "token dev-token") {
			t.Errorf("rockety-sim %v: %q %s", args, l, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("rockety-sim %v did not start: %s", args, stderr.String())
	}
}
