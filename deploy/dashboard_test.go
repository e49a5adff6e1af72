package deploy

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	promql "github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
)

const dashboardFile = "helm/rockety-bridge/dashboards/rockety-bridge.json"

type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// Every panel's PromQL parses and selects only metrics the bridge
// exports, and the dashboard has a panel for each thing an operator asks
// about first.
func TestDashboardQueriesNameExportedMetrics(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	exported := bridgeMetrics(t)
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			// label_values(metric{...}, label) is Grafana's, not PromQL: its
			// first argument is.
			inner := strings.TrimSuffix(strings.TrimPrefix(q["query"].(string), "label_values("), ")")
			if i := strings.LastIndex(inner, ","); i > 0 {
				exprs = append(exprs, inner[:i])
			}
		}
	}
	selected := map[string]bool{}
	for _, expr := range exprs {
		parsed, err := promql.NewParser(promql.Options{}).ParseExpr(expr)
		if err != nil {
			t.Errorf("PromQL %q: %v", expr, err)
			continue
		}
		promql.Inspect(parsed, func(n promql.Node, _ []promql.Node) error {
			if vs, ok := n.(*promql.VectorSelector); ok {
				selected[vs.Name] = true
				if !exported[vs.Name] {
					t.Errorf("%q selects %s, which the bridge does not export", expr, vs.Name)
				}
			}
			return nil
		})
	}
	for _, want := range []string{
		"rockety_bridge_poll_cycles_total", "rockety_bridge_poll_cycle_duration_seconds_bucket", "rockety_bridge_items_tracked",
		"rockety_bridge_events_published_total", "rockety_bridge_api_requests_total", "rockety_bridge_api_retries_total",
		"rockety_bridge_delete_confirmations_total", "rockety_bridge_mass_delete_guard_trips_total", "rockety_bridge_commands_total",
		"rockety_bridge_command_duration_seconds_bucket", "rockety_bridge_lease_held",
	} {
		if !selected[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard needs a uid and a title")
	}
}

// bridgeMetrics reads the names of the metrics the bridge registers: the
// Name of every prometheus ...Opts literal in internal/app/metrics.go,
// under the namespace rockety_bridge, histograms with their series.
func bridgeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	const file = "../internal/app/metrics.go"
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		sel, ok := lit.Type.(*ast.SelectorExpr)
		if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
			return true
		}
		for _, el := range lit.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok || kv.Key.(*ast.Ident).Name != "Name" {
				continue
			}
			b, ok := kv.Value.(*ast.BasicLit)
			if !ok {
				continue
			}
			name, _ := strconv.Unquote(b.Value)
			name = "rockety_bridge_" + name
			out[name] = true
			if sel.Sel.Name == "HistogramOpts" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					out[name+s] = true
				}
			}
		}
		return true
	})
	if len(out) < 20 || !out["rockety_bridge_poll_cycles_total"] {
		t.Fatalf("%s: read %d metric names, which is not the bridge's list; did the file change shape?", file, len(out))
	}
	return out
}

// The chart ships the dashboard as a ConfigMap for Grafana's sidecar, off
// by default, byte for byte the file.
func TestDashboardConfigMap(t *testing.T) {
	t.Parallel()
	if r := newRendering(t, render(t, release, requiredArgs...)); len(r.find(t, "ConfigMap")) != 0 {
		t.Error("the dashboard is rendered by default; it is to be off")
	}
	r := newRendering(t, render(t, release, append(slices.Clone(requiredArgs), "--set", "grafanaDashboard.enabled=true",
		"--set", "grafanaDashboard.annotations.grafana_folder=Rockety")...))
	cm := r.one(t, "ConfigMap").Typed.(*corev1.ConfigMap)
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["rockety-bridge.json"]; strings.TrimSpace(got) != strings.TrimSpace(string(raw)) {
		t.Errorf("the ConfigMap's dashboard differs from %s", dashboardFile)
	}
	if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "Rockety" {
		t.Errorf("ConfigMap labels %v, annotations %v", cm.Labels, cm.Annotations)
	}
}
