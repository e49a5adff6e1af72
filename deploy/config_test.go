package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
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
				"ROCKETY_API_TOKEN_FILE", "NATS_CREDS", "NATS_TLS_CA", "ROCKETY_PAGE_SIZE", "ROCKETY_RATE_LIMIT", "BRIDGE_MAX_DELETE_RATIO"} {
				if w, ok := want[k]; ok && printed[k] != w {
					t.Errorf("%s: the chart sets %q, the bridge reads %q", k, w, printed[k])
				}
			}
			if printed["ROCKETY_API_TOKEN"] != "" {
				t.Errorf("the bridge sees ROCKETY_API_TOKEN %q; the chart must pass only the file", printed["ROCKETY_API_TOKEN"])
			}
		})
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
