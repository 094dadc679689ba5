package bot

import (
	"errors"
	"os"
	"regexp"
	"testing"
)

// TestExamplesNameExampleTargets: the request examples people see (help,
// a missing reason) name a flow/target that symbot.example.yml defines, so
// trying them out on the example config works.
func TestExamplesNameExampleTargets(t *testing.T) {
	example, err := os.ReadFile("../symbot.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	_, usageErr := parseCommand("req prod/admin 1h", "/sym")
	var ue *UsageError
	if !errors.As(usageErr, &ue) {
		t.Fatalf("req without a reason: got %v, want a *UsageError", usageErr)
	}
	exRE := regexp.MustCompile("req ([a-z0-9_-]+)/([a-z0-9_-]+) 1h")
	for name, text := range map[string]string{"help": helpText("/sym"), "missing reason": ue.Problem} {
		m := exRE.FindStringSubmatch(text)
		if m == nil {
			t.Errorf("%s: no `req flow/target 1h` example in %q", name, text)
			continue
		}
		for _, key := range []string{m[1], m[2]} {
			if !regexp.MustCompile(`(?m)^\s*- name: ` + key + `\b`).Match(example) {
				t.Errorf("%s: the example names %q, which symbot.example.yml does not define", name, key)
			}
		}
	}
}
