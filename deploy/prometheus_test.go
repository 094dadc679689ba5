package deploy_test

import (
	"log/slog"

	"github.com/prometheus/common/model"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// exportedMetrics scrapes a running symbot and returns every series name
// it exports (a histogram's _bucket, _sum and _count). A labelled counter
// appears in a scrape only after its first increment, which an idle symbot
// never makes; those come from the README's metrics table, and only if
// they are labelled there (cmd/symbot's tests check that table against
// the registry).
func exportedMetrics(t *testing.T, s *runningSymbot) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `(symbot_\\w+_total)\\{[\\w,]+\\}` \\| counter \\|").FindAllStringSubmatch(string(readme), -1) {
		names[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`).FindAllStringSubmatch(s.get(t, "/metrics"), -1) {
		switch m[2] {
		case "histogram":
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[m[1]+suffix] = true
			}
		case "counter":
			names[m[1]] = true
			if !strings.HasSuffix(m[1], "_total") {
				names[m[1]+"_total"] = true // OpenMetrics family names drop _total
			}
		default:
			names[m[1]] = true
		}
	}
	return names
}

// TestPrometheusRules loads the rules with Prometheus's own parser and
// checks that every expression selects only metrics a running symbot
// exports, that the alerts the runbook promises exist, and that each links
// to its section of docs/operations.md.
func TestPrometheusRules(t *testing.T) {
	path := filepath.Join(repoRoot, "deploy", "prometheus", "symbot-rules.yml")
	groups, errs := rulefmt.ParseFile(path, false, model.LegacyValidation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", path, errs)
	}
	exported := exportedMetrics(t, startSymbot(t))
	if !exported["symbot_build_info"] || !exported["symbot_revoke_lag_seconds_bucket"] {
		t.Fatalf("the scrape lacks known metrics: %v", exported)
	}
	runbook, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#{2,4} (.+)$`).FindAllStringSubmatch(string(runbook), -1) {
		anchors[strings.ToLower(strings.Join(strings.Fields(regexp.MustCompile(`[^\w\- ]`).ReplaceAllString(m[1], "")), "-"))] = true
	}

	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			alerts = append(alerts, name)
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			var selected int
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				selected++
				if !exported[vs.Name] {
					t.Errorf("%s: %s is not a metric symbot exports", name, vs.Name)
				}
				return nil
			})
			if selected == 0 {
				t.Errorf("%s: the expression selects no metric", name)
			}
			link := r.Annotations["runbook"]
			anchor, ok := strings.CutPrefix(link, "docs/operations.md#")
			if !ok || !anchors[anchor] {
				t.Errorf("%s: runbook %q does not link to a section of docs/operations.md", name, link)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: want a severity label and a summary", name)
			}
		}
	}
	for _, want := range []string{
		"SymbotAbsent", "SymbotSocketModeDisconnected", "SymbotRemovalStuck",
		"SymbotRevokeLagHigh", "SymbotOktaRateLimited", "SymbotGrantFailures",
		"SymbotCredentialRefused", "SymbotConfigReloadRefused", "SymbotStoreDown",
	} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
}
