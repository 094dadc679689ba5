package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/yaml"
)

var chartDir = filepath.Join(repoRoot, "deploy", "helm", "symbot")

// object is one rendered Kubernetes object.
type object map[string]any

// get follows a path of map keys and list indexes ("spec", "template", 0).
func (o object) get(path ...any) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			cur = l[k]
		}
	}
	return cur
}

// renderChart lints the chart with vals and renders it as `helm template`
// would, returning the objects by kind.
func renderChart(t *testing.T, vals map[string]any) (map[string]object, error) {
	t.Helper()
	// A current cluster: the chart needs Kubernetes 1.25 or newer
	// (policy/v1, seccompProfile); the SDK's default is older.
	kube, err := chartutil.ParseKubeVersion("v1.31.0")
	if err != nil {
		t.Fatal(err)
	}
	lint := action.NewLint()
	lint.Strict = true
	lint.KubeVersion = kube
	res := lint.Run([]string{chartDir}, vals)
	for _, msg := range res.Messages {
		if msg.Severity > 1 { // warnings and errors; info (icon) is fine
			t.Logf("helm lint: %s", msg)
		}
	}
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	install := action.NewInstall(&action.Configuration{})
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = "symbot"
	install.Namespace = "access"
	install.KubeVersion = kube
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, err
	}
	if len(res.Errors) > 0 {
		t.Errorf("helm lint: %v", res.Errors)
	}
	objs := map[string]object{}
	for _, doc := range strings.Split(rel.Manifest, "\n---") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered manifest: %v\n%s", err, doc)
		}
		if o == nil {
			continue
		}
		kind, _ := o["kind"].(string)
		if _, dup := objs[kind]; dup {
			t.Fatalf("two %s objects", kind)
		}
		objs[kind] = o
	}
	return objs, nil
}

func mustRender(t *testing.T, vals map[string]any) map[string]object {
	t.Helper()
	objs, err := renderChart(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return objs
}

// envVar finds the container's env entry name.
func envVar(dep object, name string) object {
	env, _ := dep.get("spec", "template", "spec", "containers", 0, "env").([]any)
	for _, e := range env {
		if m, _ := e.(map[string]any); m["name"] == name {
			return m
		}
	}
	return nil
}

// renderedConfig checks the rendered symbot.yml with the real symbot (the
// chart's config must be one symbot accepts) and returns it.
func renderedConfig(t *testing.T, objs map[string]object, env ...string) map[string]any {
	t.Helper()
	text, _ := objs["ConfigMap"].get("data", "symbot.yml").(string)
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("symbot.yml: %v\n%s", err, text)
	}
	// Rewrite the pod's paths to a local directory and load it.
	dir := shortTempDir(t)
	local := strings.NewReplacer("/var/lib/symbot", dir, "/var/run/symbot", dir).Replace(text)
	path := filepath.Join(dir, "symbot.yml")
	if err := os.WriteFile(path, []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := symbotCmd(t, env, "iam-policy", "--config", path); code != 0 {
		t.Errorf("symbot does not accept the chart's symbot.yml: %s\n%s", out, text)
	}
	return cfg
}

// TestHelmChartDefault checks the default install against what the README
// promises: one replica on bbolt with a PersistentVolumeClaim and the
// Recreate strategy, tokens from a Secret, probes on /healthz and /readyz,
// non-root with a read-only root filesystem, no ServiceMonitor.
func TestHelmChartDefault(t *testing.T) {
	objs := mustRender(t, nil)
	for _, kind := range []string{"ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"} {
		if objs[kind] == nil {
			t.Errorf("no %s", kind)
		}
	}
	for _, kind := range []string{"ServiceMonitor", "PodDisruptionBudget", "PrometheusRule"} {
		if objs[kind] != nil {
			t.Errorf("a %s by default", kind)
		}
	}
	dep := objs["Deployment"]
	if got := dep.get("spec", "replicas"); got != float64(1) {
		t.Errorf("replicas %v, want 1", got)
	}
	if got := dep.get("spec", "strategy", "type"); got != "Recreate" {
		t.Errorf("strategy %v, want Recreate (bbolt: one process at a time)", got)
	}
	pod := object(dep.get("spec", "template", "spec").(map[string]any))
	if pod.get("securityContext", "runAsNonRoot") != true || pod.get("securityContext", "runAsUser") != float64(65532) {
		t.Errorf("pod securityContext %v: want runAsNonRoot and the image's uid 65532", pod.get("securityContext"))
	}
	c := object(pod.get("containers", 0).(map[string]any))
	if c.get("securityContext", "readOnlyRootFilesystem") != true || c.get("securityContext", "allowPrivilegeEscalation") != false ||
		!slices.Equal(anyStrings(c.get("securityContext", "capabilities", "drop")), []string{"ALL"}) {
		t.Errorf("container securityContext %v: want a read-only root, no privilege escalation, no capabilities", c.get("securityContext"))
	}
	if c.get("livenessProbe", "httpGet", "path") != "/healthz" || c.get("readinessProbe", "httpGet", "path") != "/readyz" {
		t.Errorf("probes: liveness %v, readiness %v", c.get("livenessProbe"), c.get("readinessProbe"))
	}
	args := anyStrings(c.get("args"))
	if len(args) == 0 {
		t.Fatal("no args")
	}
	if code, out := symbotCmd(t, nil, "help", args[0]); code != 0 {
		t.Errorf("args %v: not a symbot command: %s", args, out)
	}
	for _, name := range []string{"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"} {
		e := envVar(dep, name)
		if object(e).get("valueFrom", "secretKeyRef", "name") != "symbot-tokens" {
			t.Errorf("%s: %v, want it from the Secret symbot-tokens", name, e)
		}
	}
	if envVar(dep, "SYMBOT_DATABASE_URL") != nil {
		t.Error("SYMBOT_DATABASE_URL set on the bbolt install")
	}
	var mounted bool
	for _, m := range anyList(c.get("volumeMounts")) {
		mounted = mounted || m.get("name") == "data" && m.get("mountPath") == "/var/lib/symbot"
	}
	var claimed bool
	for _, v := range anyList(pod.get("volumes")) {
		claimed = claimed || v.get("name") == "data" && v.get("persistentVolumeClaim", "claimName") == objs["PersistentVolumeClaim"].get("metadata", "name")
	}
	if !mounted || !claimed {
		t.Errorf("the PVC is not mounted at /var/lib/symbot (mounted %v, claimed %v)", mounted, claimed)
	}
	if got := objs["PersistentVolumeClaim"].get("spec", "resources", "requests", "storage"); got != "1Gi" {
		t.Errorf("PVC size %v, want 1Gi", got)
	}
	cfg := renderedConfig(t, objs)
	if got := object(cfg).get("store", "path"); got != "/var/lib/symbot/symbot.db" {
		t.Errorf("store.path %v, want /var/lib/symbot/symbot.db", got)
	}
	if got := object(cfg).get("http", "listen"); got != "0.0.0.0:9090" {
		t.Errorf("http.listen %v, want 0.0.0.0:9090", got)
	}
}

// TestHelmChartHA checks HA mode: 2-3 replicas, no volume, the PostgreSQL
// URL from a Secret, a rolling update and a disruption budget.
func TestHelmChartHA(t *testing.T) {
	vals := map[string]any{
		"replicaCount": 3,
		"ha":           map[string]any{"enabled": true, "databaseURLSecret": map[string]any{"name": "symbot-db"}},
		"metrics":      map[string]any{"serviceMonitor": map[string]any{"enabled": true}},
	}
	objs := mustRender(t, vals)
	dep := objs["Deployment"]
	if got := dep.get("spec", "replicas"); got != float64(3) {
		t.Errorf("replicas %v, want 3", got)
	}
	if got := dep.get("spec", "strategy", "type"); got != "RollingUpdate" {
		t.Errorf("strategy %v, want RollingUpdate", got)
	}
	if objs["PersistentVolumeClaim"] != nil {
		t.Error("a PVC in HA mode: the replicas share PostgreSQL")
	}
	e := object(envVar(dep, "SYMBOT_DATABASE_URL"))
	if e.get("valueFrom", "secretKeyRef", "name") != "symbot-db" || e.get("valueFrom", "secretKeyRef", "key") != "database-url" {
		t.Errorf("SYMBOT_DATABASE_URL %v: want it from the Secret symbot-db, key database-url", e)
	}
	if objs["PodDisruptionBudget"] == nil {
		t.Error("no PodDisruptionBudget")
	}
	sm := objs["ServiceMonitor"]
	if sm == nil || sm.get("spec", "endpoints", 0, "port") != "metrics" || sm.get("spec", "endpoints", 0, "path") != "/metrics" {
		t.Errorf("ServiceMonitor %v: want the metrics port's /metrics", sm)
	}
	cfg := renderedConfig(t, objs, "SYMBOT_DATABASE_URL=postgres://symbot:x@127.0.0.1:1/symbot")
	if _, ok := cfg["store"]; ok {
		t.Errorf("store %v in HA mode: the URL comes from SYMBOT_DATABASE_URL", cfg["store"])
	}
}

// TestHelmChartPrometheusRule checks that metrics.prometheusRule.enabled
// renders a PrometheusRule holding exactly the rules of
// deploy/prometheus/symbot-rules.yml (the file Prometheus's parser checks
// in TestPrometheusRules), with the labels a ruleSelector needs.
func TestHelmChartPrometheusRule(t *testing.T) {
	objs := mustRender(t, map[string]any{"metrics": map[string]any{
		"serviceMonitor": map[string]any{"enabled": true},
		"prometheusRule": map[string]any{"enabled": true, "labels": map[string]any{"release": "kube-prometheus-stack"}},
	}})
	pr := objs["PrometheusRule"]
	if pr == nil {
		t.Fatal("no PrometheusRule with metrics.prometheusRule.enabled")
	}
	if got := pr.get("apiVersion"); got != "monitoring.coreos.com/v1" {
		t.Errorf("apiVersion %v, want monitoring.coreos.com/v1", got)
	}
	if pr.get("metadata", "labels", "release") != "kube-prometheus-stack" || pr.get("metadata", "labels", "app.kubernetes.io/name") != "symbot" {
		t.Errorf("labels %v: want the chart's and metrics.prometheusRule.labels", pr.get("metadata", "labels"))
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "prometheus", "symbot-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if got, want := pr.get("spec"), any(file); !reflect.DeepEqual(got, want) {
		t.Errorf("PrometheusRule spec differs from deploy/prometheus/symbot-rules.yml:\ngot  %v\nwant %v", got, want)
	}
	// The job label the rules select on is the one the ServiceMonitor gives.
	if got := objs["ServiceMonitor"].get("spec", "jobLabel"); got != "app.kubernetes.io/name" || objs["Service"].get("metadata", "labels", "app.kubernetes.io/name") != "symbot" {
		t.Errorf("ServiceMonitor jobLabel %v: the rules expect job=\"symbot\"", got)
	}
}

// TestHelmChartRefuses checks that settings that would lose or duplicate
// work do not render, with a message saying what to do.
func TestHelmChartRefuses(t *testing.T) {
	tests := []struct {
		name string
		vals map[string]any
		want string
	}{
		{name: "two replicas on bbolt", vals: map[string]any{"replicaCount": 2}, want: "without ha.enabled (PostgreSQL) run exactly 1 replica"},
		{name: "four replicas", vals: map[string]any{"replicaCount": 4, "ha": map[string]any{"enabled": true, "databaseURLSecret": map[string]any{"name": "db"}}}, want: "run 2 or 3 replicas"},
		{name: "HA without the URL secret", vals: map[string]any{"replicaCount": 2, "ha": map[string]any{"enabled": true}}, want: "ha.enabled needs ha.databaseURLSecret.name"},
		{name: "store in config", vals: map[string]any{"config": map[string]any{"store": map[string]any{"path": "/x"}}}, want: "config.store: the chart sets store itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderChart(t, tt.vals)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestHelmValuesInREADME checks the README's table of chart values against
// the chart's defaults, and that every top-level value is in it.
func TestHelmValuesInREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "### Helm")
	if !ok {
		t.Fatal("README has no ### Helm section")
	}
	section, _, _ = strings.Cut(section, "\n### ")
	rows := regexp.MustCompile("(?m)^\\| `([\\w.]+)` \\| (`([^`]*)`)? *\\|").FindAllStringSubmatch(section, -1)
	if len(rows) < 5 {
		t.Fatalf("the Helm section has %d value rows", len(rows))
	}
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals := chartutil.Values(chrt.Values)
	documented := map[string]bool{}
	for _, r := range rows {
		key, want := r[1], r[3]
		documented[strings.Split(key, ".")[0]] = true
		if r[2] == "" {
			continue // described, no single default
		}
		v, err := vals.PathValue(key)
		if err != nil {
			if tbl, terr := vals.Table(key); terr == nil {
				v = map[string]any(tbl)
			} else {
				t.Errorf("README documents %s, which the chart does not have", key)
				continue
			}
		}
		got := fmt.Sprint(v)
		if m, ok := v.(map[string]any); ok && len(m) == 0 {
			got = "{}"
		}
		if v == nil || got == "" {
			got = `""`
		}
		if got != want {
			t.Errorf("README says %s defaults to %s; the chart has %s", key, want, got)
		}
	}
	for k := range chrt.Values {
		if !documented[k] {
			t.Errorf("value %s is not in the README's Helm table", k)
		}
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func anyList(v any) []object {
	var out []object
	l, _ := v.([]any)
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
