package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite kubernetes/rockety-bridge.yaml from the chart")

const (
	// helmCmd is the pinned Helm, run through the Go module proxy: no helm
	// binary needs to be installed. The first run downloads and builds it.
	helmCmd  = "helm.sh/helm/v3/cmd/helm@v3.22.0"
	chartDir = "helm/rockety-bridge"
	release  = "rockety-bridge"
	// The documented plain-manifest rendering (kubernetes/rockety-bridge.yaml).
	defaultNATSURL = "nats://nats:4222"
	defaultToken   = "REPLACE_ME"
	goldenFile     = "kubernetes/rockety-bridge.yaml"
	fullValues     = "testdata/values-full.yaml"
	tokenDir       = "/etc/rockety-bridge/api-token"
	natsDir        = "/etc/rockety-bridge/nats"
)

// requiredArgs are the least a rendering needs.
var requiredArgs = []string{"--set", "nats.url=" + defaultNATSURL, "--set", "rockety.apiToken=" + defaultToken}

// goldenHeader starts kubernetes/rockety-bridge.yaml; the rendering follows.
const goldenHeader = `# rockety-bridge: plain Kubernetes manifests, rendered from the Helm chart in
# deploy/helm/rockety-bridge with its default values. Generated: do not edit.
# Rendered (from the repository root) with
#
#   go run helm.sh/helm/v3/cmd/helm@v3.22.0 template rockety-bridge deploy/helm/rockety-bridge \
#     --set nats.url=nats://nats:4222 --set rockety.apiToken=REPLACE_ME
#
# and regenerated, this header included, by ` + "`cd deploy && go test ./... -update`" + `
# (` + "`go test ./...`" + ` fails while this file is out of date).
#
# Before applying:
#   - NATS_URL: point it at your NATS servers (JetStream enabled).
#   - The Secret rockety-bridge-api-token holds the placeholder REPLACE_ME.
#     Delete that document and create the Secret yourself:
#       kubectl create secret generic rockety-bridge-api-token --from-literal=token=<your token>
#   - Objects carry no namespace: kubectl apply -n <namespace> -f rockety-bridge.yaml
`

var helmHome string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "rockety-deploy-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helmHome = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// helm runs the pinned Helm in this directory, isolated from the user's
// Helm configuration.
func helm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"run", helmCmd}, args...)...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+helmHome+"/cache",
		"HELM_CONFIG_HOME="+helmHome+"/config",
		"HELM_DATA_HOME="+helmHome+"/data",
		"KUBECONFIG="+helmHome+"/no-kubeconfig",
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func render(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, stderr, err := helm(t, append([]string{"template", name, chartDir}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s %v: %v\n%s", name, args, err, stderr)
	}
	return out
}

// object is one rendered manifest, decoded strictly.
type object struct {
	APIVersion, Kind, Name, Source string
	Typed                          any            // *appsv1.Deployment, ...; nil for custom resources
	Raw                            map[string]any // the whole object
}

var kinds = map[string]func() any{
	"apps/v1/Deployment":                 func() any { return new(appsv1.Deployment) },
	"v1/Service":                         func() any { return new(corev1.Service) },
	"v1/Secret":                          func() any { return new(corev1.Secret) },
	"v1/ServiceAccount":                  func() any { return new(corev1.ServiceAccount) },
	"policy/v1/PodDisruptionBudget":      func() any { return new(policyv1.PodDisruptionBudget) },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return new(networkingv1.NetworkPolicy) },
	"v1/ConfigMap":                       func() any { return new(corev1.ConfigMap) },
}

// customKinds are CRDs (Prometheus Operator) without Go types here; they
// are checked field by field.
var customKinds = map[string]bool{
	"monitoring.coreos.com/v1/ServiceMonitor": true,
	"monitoring.coreos.com/v1/PrometheusRule": true,
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeManifest splits a multi-document manifest and decodes every object
// into its Kubernetes API type, refusing unknown fields and unknown kinds.
func decodeManifest(manifest string) ([]object, error) {
	var objs []object
	for _, doc := range docSep.Split(manifest, -1) {
		source := ""
		if m := regexp.MustCompile(`(?m)^# Source: (.*)$`).FindStringSubmatch(doc); m != nil {
			source = m[1]
		}
		j, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: not YAML: %v\n%s", source, err, doc)
		}
		if string(j) == "null" {
			continue // comments only
		}
		var raw map[string]any
		if err := json.Unmarshal(j, &raw); err != nil {
			return nil, fmt.Errorf("%s: not an object: %v", source, err)
		}
		o := object{Source: source, Raw: raw}
		o.APIVersion, _ = raw["apiVersion"].(string)
		o.Kind, _ = raw["kind"].(string)
		md, _ := raw["metadata"].(map[string]any)
		o.Name, _ = md["name"].(string)
		key := o.APIVersion + "/" + o.Kind
		switch newObj, ok := kinds[key]; {
		case ok:
			o.Typed = newObj()
			dec := json.NewDecoder(bytes.NewReader(j))
			dec.DisallowUnknownFields()
			if err := dec.Decode(o.Typed); err != nil {
				return nil, fmt.Errorf("%s: %s %s does not decode strictly: %v", source, key, o.Name, err)
			}
			if dec.More() {
				return nil, fmt.Errorf("%s: trailing data after %s %s", source, key, o.Name)
			}
		case customKinds[key]:
		default:
			return nil, fmt.Errorf("%s: unknown kind %s (%s)", source, key, o.Name)
		}
		if o.Name == "" {
			return nil, fmt.Errorf("%s: %s without a name", source, key)
		}
		if md["namespace"] != nil {
			return nil, fmt.Errorf("%s: %s %s sets metadata.namespace; the release (or kubectl -n) decides", source, key, o.Name)
		}
		objs = append(objs, o)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no objects")
	}
	return objs, nil
}

func decodeAll(t *testing.T, manifest string) []object {
	t.Helper()
	objs, err := decodeManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestStrictDecoding: the decoder the other tests rely on refuses what it
// should.
func TestStrictDecoding(t *testing.T) {
	t.Parallel()
	const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: i
`
	if _, err := decodeManifest(deployment); err != nil {
		t.Fatalf("a valid Deployment: %v", err)
	}
	for name, manifest := range map[string]string{
		"unknown field":     strings.Replace(deployment, "image: i", "image: i\n          imagePullPolicyy: Always", 1),
		"misplaced field":   strings.Replace(deployment, "  selector:", "  containers: []\n  selector:", 1),
		"wrong type":        strings.Replace(deployment, "image: i", "image: [i]", 1),
		"duplicate key":     strings.Replace(deployment, "image: i", "image: i\n          image: j", 1),
		"unknown kind":      "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"unknown version":   strings.Replace(deployment, "apps/v1", "apps/v1beta2", 1),
		"unknown CRD":       "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: x}\n",
		"no name":           strings.Replace(deployment, "  name: x\n", "", 1),
		"namespace is set":  strings.Replace(deployment, "  name: x", "  name: x\n  namespace: y", 1),
		"second doc broken": deployment + "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {portz: []}\n",
	} {
		if _, err := decodeManifest(manifest); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

type rendering struct {
	objs []object
	text string
}

func (r rendering) find(t *testing.T, kind string) []object {
	t.Helper()
	var out []object
	for _, o := range r.objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r rendering) one(t *testing.T, kind string) object {
	t.Helper()
	objs := r.find(t, kind)
	if len(objs) != 1 {
		t.Fatalf("want one %s, got %d", kind, len(objs))
	}
	return objs[0]
}

func (r rendering) deployment(t *testing.T) *appsv1.Deployment {
	return r.one(t, "Deployment").Typed.(*appsv1.Deployment)
}

func (r rendering) secret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	for _, o := range r.find(t, "Secret") {
		if o.Name == name {
			return o.Typed.(*corev1.Secret)
		}
	}
	return nil
}

func (r rendering) kinds() []string {
	var ks []string
	for _, o := range r.objs {
		ks = append(ks, o.Kind)
	}
	sort.Strings(ks)
	return ks
}

func newRendering(t *testing.T, manifest string) rendering {
	return rendering{objs: decodeAll(t, manifest), text: manifest}
}

// readmeVar is a row of the README's configuration table.
type readmeVar struct{ Name, Default string }

// readmeConfig reads every variable of the configuration table of the
// project's README, with its default where the table gives one value.
func readmeConfig(t *testing.T) []readmeVar {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no '## Configuration' section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	code := regexp.MustCompile("`([^`]*)`")
	varName := regexp.MustCompile(`^[A-Z][A-Z0-9_]+$`)
	var vars []readmeVar
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(line), "| `") {
			continue
		}
		var names, defaults []string
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			if varName.MatchString(m[1]) {
				names = append(names, m[1])
			}
		}
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			defaults = append(defaults, m[1])
		}
		for i, n := range names {
			v := readmeVar{Name: n}
			if len(defaults) == len(names) {
				v.Default = defaults[i]
			}
			vars = append(vars, v)
		}
	}
	if len(vars) < 30 {
		t.Fatalf("found only %d variables in the README's configuration table", len(vars))
	}
	return vars
}

func envMap(t *testing.T, c corev1.Container) map[string]corev1.EnvVar {
	t.Helper()
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, dup := m[e.Name]; dup {
			t.Errorf("env %s is set twice", e.Name)
		}
		m[e.Name] = e
	}
	return m
}

func bridgeContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "rockety-bridge" {
		t.Fatalf("want one container rockety-bridge, got %d", len(cs))
	}
	return cs[0]
}

// expectations of one rendering.
type want struct {
	fullname, namespace          string
	replicas                     int32
	port                         int32
	servicePort                  int32
	tokenSecret, tokenKey, token string // token: "" when the Secret is not the chart's
	env                          map[string]string
	secretEnv                    map[string][2]string // env -> secret name, key
	natsFiles                    map[string][2]string // file in natsDir -> secret name, key
	chartSecrets                 map[string][]string  // Secrets the chart renders -> keys
	kinds                        []string
}

func checkRendering(t *testing.T, r rendering, w want) {
	t.Helper()
	if got := r.kinds(); !slices.Equal(got, w.kinds) {
		t.Errorf("kinds: got %v, want %v", got, w.kinds)
	}
	d := r.deployment(t)
	pod := d.Spec.Template.Spec
	c := bridgeContainer(t, d)
	env := envMap(t, c)

	t.Run("replicas and selector", func(t *testing.T) {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != w.replicas {
			t.Errorf("replicas: got %v, want %d", d.Spec.Replicas, w.replicas)
		}
		for k, v := range d.Spec.Selector.MatchLabels {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("the selector %s=%s does not match the pod's labels", k, v)
			}
		}
		if c.Args[0] != "run" {
			t.Errorf("args: %v, want run", c.Args)
		}
	})

	t.Run("security context", func(t *testing.T) {
		psc := pod.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("pod securityContext: %+v", psc)
		}
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Fatal("no container securityContext")
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot, sc.RunAsUser == nil || *sc.RunAsUser != 65532:
			t.Errorf("container must run as non-root 65532: %+v", sc)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Error("readOnlyRootFilesystem is not true")
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Error("allowPrivilegeEscalation is not false")
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("capabilities: %+v, want drop ALL", sc.Capabilities)
		case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			t.Error("container seccompProfile is not RuntimeDefault")
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Error("the service account token is mounted; the bridge never calls the Kubernetes API")
		}
	})

	t.Run("ports, probes, service", func(t *testing.T) {
		if len(c.Ports) != 1 || c.Ports[0].Name != "http-metrics" || c.Ports[0].ContainerPort != w.port {
			t.Errorf("container ports: %+v, want http-metrics %d", c.Ports, w.port)
		}
		if got := env["BRIDGE_HTTP_ADDR"].Value; !strings.HasSuffix(got, fmt.Sprintf(":%d", w.port)) {
			t.Errorf("BRIDGE_HTTP_ADDR %q does not listen on the container port %d", got, w.port)
		}
		for name, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port.String() != "http-metrics" {
				t.Errorf("probe %s: %+v", name, p)
			}
		}
		svc := r.one(t, "Service").Typed.(*corev1.Service)
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http-metrics" || svc.Spec.Ports[0].Port != w.servicePort ||
			svc.Spec.Ports[0].TargetPort.String() != "http-metrics" {
			t.Errorf("service ports: %+v", svc.Spec.Ports)
		}
		for k, v := range svc.Spec.Selector {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("the service selector %s=%s does not match the pods", k, v)
			}
		}
	})

	t.Run("resources", func(t *testing.T) {
		for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			if rl.Cpu().IsZero() || rl.Memory().IsZero() || rl.StorageEphemeral().IsZero() {
				t.Errorf("requests and limits need cpu, memory and ephemeral-storage: %+v", c.Resources)
			}
		}
	})

	t.Run("termination grace", func(t *testing.T) {
		grace, err := time.ParseDuration(env["BRIDGE_SHUTDOWN_GRACE"].Value)
		if err != nil {
			t.Fatal(err)
		}
		if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= grace {
			t.Errorf("terminationGracePeriodSeconds %v is not above BRIDGE_SHUTDOWN_GRACE %s", pod.TerminationGracePeriodSeconds, grace)
		}
	})

	t.Run("topology spread", func(t *testing.T) {
		keys := map[string]bool{}
		for _, tsc := range pod.TopologySpreadConstraints {
			keys[tsc.TopologyKey] = true
			if tsc.WhenUnsatisfiable != corev1.ScheduleAnyway {
				t.Errorf("%s: whenUnsatisfiable %s", tsc.TopologyKey, tsc.WhenUnsatisfiable)
			}
			if tsc.LabelSelector == nil {
				t.Fatalf("%s: no labelSelector", tsc.TopologyKey)
			}
			for k, v := range tsc.LabelSelector.MatchLabels {
				if d.Spec.Template.Labels[k] != v {
					t.Errorf("%s: selector %s=%s does not match the pods", tsc.TopologyKey, k, v)
				}
			}
		}
		if !keys["kubernetes.io/hostname"] || !keys["topology.kubernetes.io/zone"] {
			t.Errorf("spread keys: %v, want hostname and zone", keys)
		}
	})

	t.Run("pod disruption budget", func(t *testing.T) {
		pdbs := r.find(t, "PodDisruptionBudget")
		if w.replicas <= 1 {
			if len(pdbs) != 0 {
				t.Error("a PodDisruptionBudget for one replica blocks every drain")
			}
			return
		}
		if len(pdbs) != 1 {
			t.Fatalf("want a PodDisruptionBudget for %d replicas", w.replicas)
		}
		pdb := pdbs[0].Typed.(*policyv1.PodDisruptionBudget)
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 || pdb.Spec.MinAvailable.IntValue() >= int(w.replicas) {
			t.Errorf("minAvailable %v with %d replicas", pdb.Spec.MinAvailable, w.replicas)
		}
		for k, v := range pdb.Spec.Selector.MatchLabels {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("PDB selector %s=%s does not match the pods", k, v)
			}
		}
	})

	t.Run("token only as a file", func(t *testing.T) {
		if _, ok := env["ROCKETY_API_TOKEN"]; ok {
			t.Error("ROCKETY_API_TOKEN is an env var; the token must only be a file")
		}
		if got := env["ROCKETY_API_TOKEN_FILE"].Value; got != tokenDir+"/token" {
			t.Errorf("ROCKETY_API_TOKEN_FILE %q", got)
		}
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if s := pod.Volumes[i].Secret; s != nil && s.SecretName == w.tokenSecret {
				vol = &pod.Volumes[i]
			}
		}
		if vol == nil {
			t.Fatalf("no volume of Secret %s", w.tokenSecret)
		}
		if len(vol.Secret.Items) != 1 || vol.Secret.Items[0].Key != w.tokenKey || vol.Secret.Items[0].Path != "token" {
			t.Errorf("token volume items: %+v", vol.Secret.Items)
		}
		if m := vol.Secret.DefaultMode; m == nil || *m != 0o440 {
			t.Errorf("token file mode %v, want 0440", m)
		}
		mounted := false
		for _, vm := range c.VolumeMounts {
			if vm.Name == vol.Name {
				mounted = vm.MountPath == tokenDir && vm.ReadOnly && vm.SubPath == ""
			}
		}
		if !mounted {
			t.Errorf("the token volume is not mounted read-only at %s without subPath (a subPath mount is never updated)", tokenDir)
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == w.tokenSecret &&
				e.ValueFrom.SecretKeyRef.Key == w.tokenKey {
				t.Errorf("env %s carries the API token", e.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil && ef.SecretRef.Name == w.tokenSecret {
				t.Errorf("envFrom imports the token Secret %s", w.tokenSecret)
			}
		}
		if w.token != "" {
			s := r.secret(t, w.tokenSecret)
			if s == nil || string(s.Data[w.tokenKey]) != w.token {
				t.Errorf("the chart's Secret %s does not hold the token", w.tokenSecret)
			}
			if strings.Contains(r.text, w.token) {
				t.Error("the token appears in clear in the rendering")
			}
			for _, e := range c.Env {
				if strings.Contains(e.Value, w.token) {
					t.Errorf("env %s carries the token", e.Name)
				}
			}
		} else if r.secret(t, w.tokenSecret) != nil {
			t.Errorf("the chart renders the existing Secret %s", w.tokenSecret)
		}
	})

	t.Run("env", func(t *testing.T) {
		if e := env["BRIDGE_INSTANCE_ID"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			t.Errorf("BRIDGE_INSTANCE_ID is not the pod name: %+v", e)
		}
		for name, v := range w.env {
			e, ok := env[name]
			switch {
			case !ok:
				t.Errorf("%s is not set", name)
			case e.ValueFrom != nil || e.Value != v:
				t.Errorf("%s=%q (valueFrom %v), want %q", name, e.Value, e.ValueFrom, v)
			}
		}
		for name, ref := range w.secretEnv {
			e := env[name]
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
				e.ValueFrom.SecretKeyRef.Name != ref[0] || e.ValueFrom.SecretKeyRef.Key != ref[1] {
				t.Errorf("%s: %+v, want secretKeyRef %s/%s", name, e, ref[0], ref[1])
			}
		}
		// Nothing else: every variable is accounted for.
		for name := range env {
			if _, ok := w.env[name]; !ok && w.secretEnv[name] == [2]string{} && name != "BRIDGE_INSTANCE_ID" {
				t.Errorf("unexpected env %s", name)
			}
		}
	})

	t.Run("NATS files", func(t *testing.T) {
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == "nats-auth" {
				vol = &pod.Volumes[i]
			}
		}
		if len(w.natsFiles) == 0 {
			if vol != nil {
				t.Error("a nats-auth volume without NATS files")
			}
			return
		}
		if vol == nil || vol.Projected == nil {
			t.Fatal("no projected nats-auth volume")
		}
		got := map[string][2]string{}
		for _, src := range vol.Projected.Sources {
			if src.Secret == nil {
				t.Fatalf("nats-auth source %+v is not a Secret", src)
			}
			for _, it := range src.Secret.Items {
				got[it.Path] = [2]string{src.Secret.Name, it.Key}
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(w.natsFiles) {
			t.Errorf("nats-auth files: got %v, want %v", got, w.natsFiles)
		}
		ok := false
		for _, vm := range c.VolumeMounts {
			if vm.Name == "nats-auth" {
				ok = vm.MountPath == natsDir && vm.ReadOnly && vm.SubPath == ""
			}
		}
		if !ok {
			t.Errorf("nats-auth is not mounted read-only at %s", natsDir)
		}
		// Every file variable names a projected file.
		for _, name := range []string{"NATS_CREDS", "NATS_NKEY_SEED_FILE", "NATS_TLS_CA", "NATS_TLS_CERT", "NATS_TLS_KEY"} {
			if v, set := env[name]; set {
				if _, ok := got[strings.TrimPrefix(v.Value, natsDir+"/")]; !ok || path.Dir(v.Value) != natsDir {
					t.Errorf("%s=%s is not a file of the nats-auth volume", name, v.Value)
				}
			}
		}
	})

	t.Run("chart secrets", func(t *testing.T) {
		var names []string
		for _, o := range r.find(t, "Secret") {
			names = append(names, o.Name)
			keys, ok := w.chartSecrets[o.Name]
			if !ok {
				t.Errorf("unexpected Secret %s", o.Name)
				continue
			}
			var got []string
			for k, v := range o.Typed.(*corev1.Secret).Data {
				got = append(got, k)
				if len(v) == 0 {
					t.Errorf("Secret %s: %s is empty", o.Name, k)
				}
			}
			sort.Strings(got)
			if !slices.Equal(got, keys) {
				t.Errorf("Secret %s keys %v, want %v", o.Name, got, keys)
			}
		}
		if len(names) != len(w.chartSecrets) {
			t.Errorf("Secrets %v, want %v", names, w.chartSecrets)
		}
	})
}

func TestDefaultRendering(t *testing.T) {
	t.Parallel()
	r := newRendering(t, render(t, release, requiredArgs...))
	w := want{
		fullname: "rockety-bridge", replicas: 2, port: 8080, servicePort: 8080,
		tokenSecret: "rockety-bridge-api-token", tokenKey: "token", token: defaultToken,
		env: map[string]string{
			"ROCKETY_API_URL": "https://app.rockety.io/api/v1", "ROCKETY_API_TOKEN_FILE": tokenDir + "/token",
			"ROCKETY_ALLOW_INSECURE": "false", "ROCKETY_RESOURCES": "projects,tasks,users", "ROCKETY_POLL_INTERVAL": "30s",
			"ROCKETY_PAGE_SIZE": "100", "ROCKETY_PAGE_CONCURRENCY": "4", "ROCKETY_RATE_LIMIT": "10", "ROCKETY_MAX_RETRY_AFTER": "5m",
			"ROCKETY_CHANGED_AT_FIELD": "updated_at", "ROCKETY_CHANGED_SINCE_LOOKBACK": "1m", "ROCKETY_FULL_SYNC_INTERVAL": "15m",
			"NATS_URL": defaultNATSURL, "BRIDGE_SUBJECT_PREFIX": "rockety", "BRIDGE_HTTP_ADDR": ":8080",
			"BRIDGE_INITIAL_SYNC": "baseline", "BRIDGE_MAX_DELETE_RATIO": "0.5", "BRIDGE_COMMANDS": "true", "BRIDGE_PPROF": "false",
			"BRIDGE_COMMAND_ALLOW": "*", "BRIDGE_COMMAND_CONCURRENCY": "16", "BRIDGE_COMMAND_MAX_AGE": "1h", "BRIDGE_DELETE_RETENTION": "24h", "BRIDGE_LEASE_TTL": "15s", "BRIDGE_SHUTDOWN_GRACE": "10s", "BRIDGE_STREAM_REPLICAS": "1",
			"LOG_LEVEL": "info", "LOG_FORMAT": "json",
		},
		chartSecrets: map[string][]string{"rockety-bridge-api-token": {"token"}},
		kinds:        []string{"Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"},
	}
	checkRendering(t, r, w)

	// The chart's defaults are the bridge's: every variable the chart sets
	// by default has the README's default.
	env := envMap(t, bridgeContainer(t, r.deployment(t)))
	for _, v := range readmeConfig(t) {
		if e, ok := env[v.Name]; ok && v.Default != "" && e.ValueFrom == nil && e.Value != v.Default && v.Name != "NATS_URL" {
			t.Errorf("%s: the chart's default %q differs from the bridge's %q", v.Name, e.Value, v.Default)
		}
	}
	if got := r.deployment(t).Spec.Template.Spec.TerminationGracePeriodSeconds; *got != 30 {
		t.Errorf("terminationGracePeriodSeconds %d, want 10s grace + 20", *got)
	}
}

func TestNonDefaultRendering(t *testing.T) {
	t.Parallel()
	r := newRendering(t, render(t, "acme", "--namespace", "acme", "-f", fullValues))
	w := want{
		fullname: "acme-bridge", namespace: "acme", replicas: 3, port: 9090, servicePort: 9090,
		tokenSecret: "acme-rockety", tokenKey: "api-token",
		env: map[string]string{
			"ROCKETY_API_URL": "http://rockety-sim.test.svc:8090/api/v1", "ROCKETY_API_TOKEN_FILE": tokenDir + "/token",
			"ROCKETY_ALLOW_INSECURE": "true", "ROCKETY_RESOURCES": "projects,tasks,users,comments",
			"ROCKETY_POLL_INTERVAL": "1m", "ROCKETY_POLL_INTERVALS": "tasks:10s,users:5m",
			"ROCKETY_PAGE_SIZE": "250", "ROCKETY_PAGE_CONCURRENCY": "8", "ROCKETY_RATE_LIMIT": "2.5", "ROCKETY_MAX_RETRY_AFTER": "2m",
			"ROCKETY_CHANGED_SINCE": "*:updated_since,users:filter[updated_at][gte]", "ROCKETY_CHANGED_AT_FIELD": "modified_at",
			"ROCKETY_CHANGED_SINCE_LOOKBACK": "2m30s", "ROCKETY_FULL_SYNC_INTERVAL": "1h", "ROCKETY_DELETED_FIELD": "deleted_at",
			"NATS_URL":  "tls://nats-0.nats.nats.svc:4222,tls://nats-1.nats.nats.svc:4222",
			"NATS_USER": "acme-bridge", "NATS_CREDS": natsDir + "/nats.creds", "NATS_NKEY_SEED_FILE": natsDir + "/nkey.seed",
			"NATS_TLS_CA": natsDir + "/ca.crt", "NATS_TLS_CERT": natsDir + "/tls.crt", "NATS_TLS_KEY": natsDir + "/tls.key",
			"BRIDGE_SUBJECT_PREFIX": "acme.rockety", "BRIDGE_DATA_DIR": "/tmp/data", "BRIDGE_HTTP_ADDR": ":9090",
			"BRIDGE_INITIAL_SYNC": "snapshot", "BRIDGE_MAX_DELETE_RATIO": "0.25", "BRIDGE_COMMANDS": "false", "BRIDGE_PPROF": "true",
			"BRIDGE_COMMAND_ALLOW": "tasks.*,projects.update", "BRIDGE_COMMAND_CONCURRENCY": "32", "BRIDGE_COMMAND_MAX_AGE": "30m", "BRIDGE_DELETE_RETENTION": "72h", "BRIDGE_LEASE_TTL": "30s", "BRIDGE_SHUTDOWN_GRACE": "45s", "BRIDGE_STREAM_REPLICAS": "3",
			"LOG_LEVEL": "debug", "LOG_FORMAT": "console", "GOMEMLIMIT": "400MiB",
		},
		secretEnv: map[string][2]string{
			"NATS_PASSWORD": {"acme-nats-password", "pw"},
			"NATS_TOKEN":    {"acme-bridge-nats", "token"},
		},
		natsFiles: map[string][2]string{
			"nats.creds": {"acme-nats-creds", "user.creds"},
			"nkey.seed":  {"acme-bridge-nats", "nkey.seed"},
			"ca.crt":     {"acme-bridge-nats", "ca.crt"},
			"tls.crt":    {"acme-nats-client-tls", "tls.crt"},
			"tls.key":    {"acme-nats-client-tls", "tls.key"},
		},
		chartSecrets: map[string][]string{"acme-bridge-nats": {"ca.crt", "nkey.seed", "token"}},
		kinds: []string{"Deployment", "NetworkPolicy", "PodDisruptionBudget", "PrometheusRule", "Secret", "Service",
			"ServiceAccount", "ServiceMonitor"},
	}
	checkRendering(t, r, w)

	d := r.deployment(t)
	env := envMap(t, bridgeContainer(t, d))
	def := envMap(t, bridgeContainer(t, newRendering(t, render(t, release, requiredArgs...)).deployment(t)))

	t.Run("every README variable is set", func(t *testing.T) {
		for _, v := range readmeConfig(t) {
			if v.Name == "ROCKETY_API_TOKEN" {
				continue // by design only ROCKETY_API_TOKEN_FILE; checked above
			}
			e, ok := env[v.Name]
			if !ok {
				t.Errorf("%s (README) is not set by the non-default values", v.Name)
				continue
			}
			// Each value moved away from its default.
			if d, ok := def[v.Name]; ok && v.Name != "ROCKETY_API_TOKEN_FILE" && v.Name != "BRIDGE_INSTANCE_ID" &&
				d.Value == e.Value && e.ValueFrom == nil {
				t.Errorf("%s=%q is the default; change it in %s", v.Name, e.Value, fullValues)
			}
		}
	})

	t.Run("pod template", func(t *testing.T) {
		pod := d.Spec.Template
		if pod.Annotations["checksum/nats-secret"] == "" {
			t.Error("no checksum of the chart's NATS Secret: changing it would not roll the pods")
		}
		if pod.Spec.ServiceAccountName != "acme-bridge-sa" || *pod.Spec.TerminationGracePeriodSeconds != 90 ||
			pod.Spec.PriorityClassName != "high-priority" || len(pod.Spec.Tolerations) != 1 || pod.Spec.Affinity == nil ||
			pod.Spec.NodeSelector["kubernetes.io/os"] != "linux" || pod.Labels["example.com/tier"] != "backend" {
			t.Errorf("pod spec does not carry the values: %+v", pod.Spec)
		}
		c := bridgeContainer(t, d)
		if c.Image != "registry.example.com/rockety/rockety-bridge@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" ||
			c.ImagePullPolicy != corev1.PullAlways {
			t.Errorf("image %s %s", c.Image, c.ImagePullPolicy)
		}
		if len(c.EnvFrom) != 1 || c.LivenessProbe.PeriodSeconds != 20 || c.ReadinessProbe.FailureThreshold != 6 {
			t.Error("envFrom or probes do not carry the values")
		}
	})

	t.Run("network policy", func(t *testing.T) {
		np := r.one(t, "NetworkPolicy").Typed.(*networkingv1.NetworkPolicy)
		if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{"Ingress", "Egress"}) {
			t.Errorf("policyTypes %v", np.Spec.PolicyTypes)
		}
		for k, v := range np.Spec.PodSelector.MatchLabels {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("podSelector %s=%s does not match the pods", k, v)
			}
		}
		egress := map[string]bool{}
		for _, rule := range np.Spec.Egress {
			for _, p := range rule.Ports {
				egress[fmt.Sprintf("%s/%s", *p.Protocol, p.Port)] = true
			}
		}
		for _, p := range []string{"UDP/53", "TCP/53", "TCP/4222", "TCP/443"} {
			if !egress[p] {
				t.Errorf("no egress to %s (got %v)", p, egress)
			}
		}
		in := np.Spec.Ingress[0]
		if len(in.Ports) != 1 || in.Ports[0].Port.String() != "http-metrics" || len(in.From) != 1 {
			t.Errorf("ingress to the metrics port: %+v", in)
		}
	})

	t.Run("service monitor", func(t *testing.T) {
		sm := r.one(t, "ServiceMonitor").Raw
		spec := sm["spec"].(map[string]any)
		svc := r.one(t, "Service").Typed.(*corev1.Service)
		for k, v := range spec["selector"].(map[string]any)["matchLabels"].(map[string]any) {
			if svc.Labels[k] != v {
				t.Errorf("ServiceMonitor selector %s=%v does not match the Service", k, v)
			}
		}
		eps := spec["endpoints"].([]any)
		ep := eps[0].(map[string]any)
		if len(eps) != 1 || ep["port"] != "http-metrics" || ep["path"] != "/metrics" || ep["interval"] != "15s" {
			t.Errorf("endpoints %v", eps)
		}
		if ns := spec["namespaceSelector"].(map[string]any)["matchNames"].([]any); len(ns) != 1 || ns[0] != "acme" {
			t.Errorf("namespaceSelector %v", ns)
		}
		if sm["metadata"].(map[string]any)["labels"].(map[string]any)["release"] != "kube-prometheus-stack" {
			t.Error("serviceMonitor.labels are not applied")
		}
		for _, key := range []string{"selector", "namespaceSelector", "endpoints"} {
			delete(spec, key)
		}
		if len(spec) != 0 {
			t.Errorf("unexpected ServiceMonitor fields %v", spec)
		}
	})

	t.Run("prometheus rule", func(t *testing.T) {
		checkPrometheusRule(t, r.one(t, "PrometheusRule").Raw, map[string]string{
			"RocketyBridgeNoSuccessfulCycle": "rockety_bridge_last_successful_cycle_timestamp_seconds",
			"RocketyBridgeMassDeleteGuard":   "rockety_bridge_mass_delete_guard_trips_total",
			"RocketyBridgeCommandsFailing":   "rockety_bridge_commands_total",
			"RocketyBridgeLeaseNotHeld":      "rockety_bridge_lease_held",
			"RocketyBridgeBudgetAlone":       "rockety_bridge_api_budget_alone",
			"RocketyBridgeAbsent":            "up",
			"RocketyBridgeApiRetries":        "rockety_bridge_api_retries_total",
		}, `job="acme-bridge"`)
	})
}

// checkPrometheusRule checks every alert's fields and parses its PromQL.
func checkPrometheusRule(t *testing.T, pr map[string]any, alerts map[string]string, selector string) {
	t.Helper()
	groups := pr["spec"].(map[string]any)["groups"].([]any)
	seen := map[string]bool{}
	for _, g := range groups {
		for _, ri := range g.(map[string]any)["rules"].([]any) {
			rule := ri.(map[string]any)
			name, _ := rule["alert"].(string)
			seen[name] = true
			for k := range rule {
				if !slices.Contains([]string{"alert", "expr", "for", "labels", "annotations"}, k) {
					t.Errorf("%s: unknown rule field %s", name, k)
				}
			}
			expr, _ := rule["expr"].(string)
			parsed, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
			if err != nil {
				t.Errorf("%s: PromQL %q: %v", name, expr, err)
				continue
			}
			metric := alerts[name]
			found := false
			parser.Inspect(parsed, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok && vs.Name == metric {
					found = true
				}
				return nil
			})
			if !found {
				t.Errorf("%s: the expression does not select %s: %s", name, metric, expr)
			}
			if name != "RocketyBridgeApiRetries" && !strings.Contains(expr, selector) {
				t.Errorf("%s: the expression does not select this release (%s): %s", name, selector, expr)
			}
			if f, ok := rule["for"].(string); ok {
				if _, err := model.ParseDuration(f); err != nil {
					t.Errorf("%s: for %q: %v", name, f, err)
				}
			}
			if sev, _ := rule["labels"].(map[string]any)["severity"].(string); sev == "" {
				t.Errorf("%s: no severity", name)
			}
			if name != "RocketyBridgeApiRetries" {
				if a, _ := rule["annotations"].(map[string]any); a["summary"] == nil || a["description"] == nil {
					t.Errorf("%s: needs a summary and a description", name)
				}
			}
		}
	}
	for name := range alerts {
		if !seen[name] {
			t.Errorf("no alert %s", name)
		}
	}
	if len(seen) != len(alerts) {
		t.Errorf("alerts %v, want %v", seen, alerts)
	}
}

// TestNoSuccessfulCycleThresholds checks the per-resource thresholds: the
// alert fires after N of that resource's own poll intervals.
func TestNoSuccessfulCycleThresholds(t *testing.T) {
	t.Parallel()
	r := newRendering(t, render(t, "acme", "--namespace", "acme", "-f", fullValues))
	var expr string
	for _, g := range r.one(t, "PrometheusRule").Raw["spec"].(map[string]any)["groups"].([]any) {
		for _, ri := range g.(map[string]any)["rules"].([]any) {
			if rule := ri.(map[string]any); rule["alert"] == "RocketyBridgeNoSuccessfulCycle" {
				expr = rule["expr"].(string)
			}
		}
	}
	// pollInterval 1m, tasks 10s, users 5m; intervals 4.
	for _, want := range []string{`resource!~"tasks|users"}) > 240)`, `resource="tasks"}) > 40)`, `resource="users"}) > 1200)`} {
		if !strings.Contains(expr, want) {
			t.Errorf("expression lacks %s:\n%s", want, expr)
		}
	}
	// Default: one threshold, 5 × 30s.
	r = newRendering(t, render(t, release, append(requiredArgs, "--set", "prometheusRule.enabled=true")...))
	pr := r.one(t, "PrometheusRule").Raw
	checkPrometheusRule(t, pr, map[string]string{
		"RocketyBridgeNoSuccessfulCycle": "rockety_bridge_last_successful_cycle_timestamp_seconds",
		"RocketyBridgeMassDeleteGuard":   "rockety_bridge_mass_delete_guard_trips_total",
		"RocketyBridgeCommandsFailing":   "rockety_bridge_commands_total",
		"RocketyBridgeLeaseNotHeld":      "rockety_bridge_lease_held",
		"RocketyBridgeBudgetAlone":       "rockety_bridge_api_budget_alone",
		"RocketyBridgeAbsent":            "up",
	}, `job="rockety-bridge", namespace="default"`)
	if !strings.Contains(fmt.Sprint(pr), `rockety_bridge_last_successful_cycle_timestamp_seconds{job="rockety-bridge", namespace="default"}) > 150`) {
		t.Errorf("default threshold is not 150s: %v", pr)
	}
}

// TestSubSecondPollInterval: poll intervals from 100ms up render (the
// bridge accepts them too: TestBridgeAcceptsChartConfig), and the alert
// threshold follows them.
func TestSubSecondPollInterval(t *testing.T) {
	t.Parallel()
	r := newRendering(t, render(t, release, append(slices.Clone(requiredArgs), "--set", "config.pollInterval=150ms",
		"--set", "config.pollIntervals.tasks=150ms", "--set", "prometheusRule.enabled=true")...))
	env := envMap(t, bridgeContainer(t, r.deployment(t)))
	if got := env["ROCKETY_POLL_INTERVAL"].Value; got != "150ms" {
		t.Errorf("ROCKETY_POLL_INTERVAL=%q, want 150ms", got)
	}
	if got := env["ROCKETY_POLL_INTERVALS"].Value; got != "tasks:150ms" {
		t.Errorf("ROCKETY_POLL_INTERVALS=%q, want tasks:150ms", got)
	}
	// 5 intervals of 150ms.
	if expr := fmt.Sprint(r.one(t, "PrometheusRule").Raw); !strings.Contains(expr, `resource!~"tasks"}) > 0.75)`) ||
		!strings.Contains(expr, `resource="tasks"}) > 0.75)`) {
		t.Errorf("the no-successful-cycle threshold is not 0.75s:\n%s", expr)
	}
}

// TestLargestPageSize: ROCKETY_PAGE_SIZE=max, the largest page the API
// grants, renders as the bridge reads it; another word is refused.
func TestLargestPageSize(t *testing.T) {
	t.Parallel()
	r := newRendering(t, render(t, release, append(slices.Clone(requiredArgs), "--set", "config.pageSize=max")...))
	if got := envMap(t, bridgeContainer(t, r.deployment(t)))["ROCKETY_PAGE_SIZE"].Value; got != "max" {
		t.Errorf("ROCKETY_PAGE_SIZE=%q, want max", got)
	}
	r = newRendering(t, render(t, release, append(slices.Clone(requiredArgs), "--set", "config.pageSize=250")...))
	if got := envMap(t, bridgeContainer(t, r.deployment(t)))["ROCKETY_PAGE_SIZE"].Value; got != "250" {
		t.Errorf("ROCKETY_PAGE_SIZE=%q, want 250", got)
	}
}

func TestSingleReplicaHasNoPDB(t *testing.T) {
	t.Parallel()
	r := newRendering(t, render(t, release, append(requiredArgs, "--set", "replicaCount=1")...))
	if len(r.find(t, "PodDisruptionBudget")) != 0 {
		t.Error("a PodDisruptionBudget with minAvailable 1 for one replica blocks every drain")
	}
}

// TestRefusals: renderings the chart must refuse, with a message that says
// what to do.
func TestRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no nats.url", []string{"--set", "rockety.apiToken=x"},
			"nats.url is required: set it to your NATS servers"},
		{"no token", []string{"--set", "nats.url=nats://nats:4222"},
			"the Rockety API token is missing"},
		{"two tokens", append(requiredArgs, "--set", "rockety.existingSecret=s"),
			"rockety.apiToken and rockety.existingSecret are both set"},
		{"http without allowInsecure", append(requiredArgs, "--set", "config.apiUrl=http://sim:8090/api/v1"),
			"uses http://"},
		{"a page size that is neither a number nor max", append(slices.Clone(requiredArgs), "--set", "config.pageSize=huge"),
			"pageSize"},
		{"grace too short", append(requiredArgs, "--set", "terminationGracePeriodSeconds=10"),
			"terminationGracePeriodSeconds 10 must be larger than config.shutdownGrace"},
		{"tls cert without key", append(requiredArgs, "--set", "nats.tls.cert.existingSecret=tls"),
			"nats.tls.cert and nats.tls.key go together"},
		{"password without user", append(requiredArgs, "--set", "nats.password.value=pw"),
			"nats.password is set without nats.user"},
		{"interval of an unknown resource", append(requiredArgs, "--set", "config.pollIntervals.comments=10s"),
			`config.pollIntervals: "comments" is not in config.resources`},
		{"changed since of an unknown resource", append(slices.Clone(requiredArgs), "--set", "config.changedSince.comments=updated_since"),
			`config.changedSince: "comments" is not in config.resources`},
		{"PDB blocking drains", append(requiredArgs, "--set", "podDisruptionBudget.minAvailable=2"),
			"podDisruptionBudget.minAvailable 2 with replicaCount 2 would block every drain"},
		// values.schema.json
		{"log level", append(requiredArgs, "--set", "config.logLevel=verbose"), "logLevel"},
		{"log format", append(requiredArgs, "--set", "config.logFormat=text"), "logFormat"},
		{"initial sync", append(requiredArgs, "--set", "config.initialSync=full"), "initialSync"},
		{"misspelt key", append(requiredArgs, "--set", "config.pollIntervall=10s"), "pollIntervall"},
		{"bad duration", append(requiredArgs, "--set", "config.leaseTTL=15"), "leaseTTL"},
		{"bad command max age", append(requiredArgs, "--set", "config.commandMaxAge=1"), "commandMaxAge"},
		{"bad max retry-after", append(requiredArgs, "--set", "config.maxRetryAfter=soon"), "maxRetryAfter"},
		{"changed-since parameter with a space", append(slices.Clone(requiredArgs), "--set", "config.changedSince.tasks=updated since"),
			"changedSince"},
		{"changed-since parameter with a query", append(slices.Clone(requiredArgs), "--set", "config.changedSince.tasks=a&b=c"),
			"changedSince"},
		{"empty changed-at field", append(slices.Clone(requiredArgs), "--set", "config.changedAtField="), "changedAtField"},
		{"bad lookback", append(slices.Clone(requiredArgs), "--set", "config.changedSinceLookback=60"), "changedSinceLookback"},
		{"bad full sync interval", append(slices.Clone(requiredArgs), "--set", "config.fullSyncInterval=hourly"), "fullSyncInterval"},
		{"changed since as extraEnv", append(slices.Clone(requiredArgs), "--set", "extraEnv[0].name=ROCKETY_CHANGED_SINCE",
			"--set", "extraEnv[0].value=*:updated_since"), "extraEnv"},
		{"token as extraEnv", append(requiredArgs, "--set", "extraEnv[0].name=ROCKETY_API_TOKEN", "--set", "extraEnv[0].value=x"),
			"extraEnv"},
		{"ratio above 1", append(requiredArgs, "--set", "config.maxDeleteRatio=1.5"), "maxDeleteRatio"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := helm(t, append([]string{"template", release, chartDir}, tc.args...)...)
			if err == nil {
				t.Fatalf("rendered; want a refusal with %q\n%s", tc.want, out)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("error does not say %q:\n%s", tc.want, stderr)
			}
		})
	}
}

func TestLint(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"default":     requiredArgs,
		"non-default": {"-f", fullValues},
		"try-out":     {"-f", "examples/values-try-out.yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := helm(t, append([]string{"lint", "--strict", chartDir}, args...)...)
			if err != nil {
				t.Errorf("helm lint --strict: %v\n%s%s", err, out, stderr)
			}
		})
	}
}

// TestTryOutValues renders the try-out values: the bridge pointed at the
// simulator of kubernetes/rockety-sim.yaml.
func TestTryOutValues(t *testing.T) {
	t.Parallel()
	r := newRendering(t, render(t, release, "-f", "examples/values-try-out.yaml"))
	env := envMap(t, bridgeContainer(t, r.deployment(t)))
	sim := newRendering(t, readFile(t, "kubernetes/rockety-sim.yaml"))
	svc := sim.one(t, "Service").Typed.(*corev1.Service)
	wantURL := fmt.Sprintf("http://%s:%d/api/v1", svc.Name, svc.Spec.Ports[0].Port)
	if env["ROCKETY_API_URL"].Value != wantURL || env["ROCKETY_ALLOW_INSECURE"].Value != "true" {
		t.Errorf("try-out API %s (insecure %s), want %s", env["ROCKETY_API_URL"].Value, env["ROCKETY_ALLOW_INSECURE"].Value, wantURL)
	}
	simArgs := checkSimulator(t, sim)
	token := r.secret(t, "rockety-bridge-api-token")
	if token == nil || !strings.Contains(simArgs, "-token "+string(token.Data["token"])) {
		t.Errorf("the try-out token does not match the simulator's -token (%s)", simArgs)
	}
}

// checkSimulator checks kubernetes/rockety-sim.yaml and returns the simulator's
// arguments joined by spaces.
func checkSimulator(t *testing.T, sim rendering) string {
	t.Helper()
	d := sim.deployment(t)
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("want one simulator container")
	}
	c := d.Spec.Template.Spec.Containers[0]
	args := strings.Join(append(slices.Clone(c.Command), c.Args...), " ")
	for _, want := range []string{"rockety-sim", "-addr 0.0.0.0:8090", "-churn "} {
		if !strings.Contains(args, want) {
			t.Errorf("simulator command %q lacks %q", args, want)
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil ||
		*sc.AllowPrivilegeEscalation || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("simulator securityContext %+v", sc)
	}
	svc := sim.one(t, "Service").Typed.(*corev1.Service)
	if svc.Spec.Ports[0].Port != 8090 || len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8090 {
		t.Errorf("simulator ports: service %+v, container %+v", svc.Spec.Ports, c.Ports)
	}
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("simulator service selector %s=%s does not match its pods", k, v)
		}
	}
	return args
}

// TestPlainManifests: kubernetes/rockety-bridge.yaml is the chart rendered
// with the documented command (golden; -update rewrites it).
func TestPlainManifests(t *testing.T) {
	t.Parallel()
	want := goldenHeader + render(t, release, requiredArgs...)
	if *update {
		if err := os.WriteFile(goldenFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readFile(t, goldenFile)
	if got != want {
		t.Errorf("%s is not the chart's current rendering; run `cd deploy && go test ./... -update`\n%s", goldenFile, firstDiff(got, want))
	}
	newRendering(t, got)
	for _, doc := range []string{"README.md", goldenFile} {
		text := readFile(t, doc)
		for _, part := range []string{helmCmd + " template rockety-bridge deploy/helm/rockety-bridge",
			"--set nats.url=" + defaultNATSURL + " --set rockety.apiToken=" + defaultToken} {
			if !strings.Contains(text, part) {
				t.Errorf("%s does not document the rendering command (%s)", doc, part)
			}
		}
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  file:   %q\n  chart:  %q", i+1, x, y)
		}
	}
	return ""
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The documented install (deploy/README.md, "Deploying with Helm", on the
// 3-node NATS of examples/nats-values.yaml) gives the streams and buckets
// three replicas: its helm install line is rendered as written.
func TestDocumentedInstallGivesThreeReplicas(t *testing.T) {
	t.Parallel()
	readme := readFile(t, "README.md")
	start := strings.Index(readme, "helm install acme deploy/helm/rockety-bridge -n rockety \\\n")
	if start < 0 {
		t.Fatal("README.md: no helm install line for the bridge under \"Deploying with Helm\"")
	}
	var args []string
	for _, line := range strings.Split(readme[start:], "\n")[1:] {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		more := strings.HasSuffix(line, "\\")
		args = append(args, strings.Fields(strings.TrimSuffix(line, "\\"))...)
		if !more {
			break
		}
	}
	if !slices.Contains(args, "config.streamReplicas=3") {
		t.Fatalf("the documented install sets no config.streamReplicas=3: %q", args)
	}
	r := newRendering(t, render(t, "acme", args...))
	env := envMap(t, bridgeContainer(t, r.deployment(t)))
	if got := env["BRIDGE_STREAM_REPLICAS"].Value; got != "3" {
		t.Errorf("the documented install renders BRIDGE_STREAM_REPLICAS=%q, want 3", got)
	}
	if !strings.Contains(readFile(t, "examples/nats-values.yaml"), "replicas: 3") {
		t.Error("examples/nats-values.yaml is not the 3-node cluster the install is for")
	}
}
