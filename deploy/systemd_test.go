package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// unitFile is a systemd unit: section -> key -> values, in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	var section string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot parse %q", path, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func TestSystemdUnit(t *testing.T) {
	path := filepath.Join(repoRoot, "deploy", "systemd", "symbot.service")
	u := parseUnit(t, path)
	svc := u["Service"]
	want := map[string]string{
		"DynamicUser":             "yes",
		"StateDirectory":          "symbot",
		"EnvironmentFile":         "/etc/symbot/symbot.env",
		"ProtectSystem":           "strict",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"KillSignal":              "SIGTERM",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
	}
	for k, v := range want {
		if got := svc[k]; len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s=%q, want %q", k, got, v)
		}
	}
	if f := svc["SystemCallFilter"]; !slices.Contains(f, "@system-service") {
		t.Errorf("SystemCallFilter %q lacks @system-service", f)
	}
	exec := strings.Fields(strings.Join(svc["ExecStart"], ""))
	if len(exec) < 2 || exec[0] != "/usr/local/bin/symbot" || exec[1] != "run" || !slices.Contains(exec, "--config") {
		t.Fatalf("ExecStart %q: want /usr/local/bin/symbot run --config FILE", exec)
	}
	if code, out := symbotCmd(t, nil, "help", exec[1]); code != 0 {
		t.Errorf("ExecStart runs %q, not a symbot command: %s", exec[1], out)
	}
}

// TestSystemdAnalyze runs `systemd-analyze verify` on the unit (with the
// binary the test built in ExecStart's place) and reports the exposure
// score of `systemd-analyze security`, which must stay "OK" or better.
func TestSystemdAnalyze(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd)")
	}
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "systemd", "symbot.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "symbot.service")
	text := strings.ReplaceAll(string(data), "/usr/local/bin/symbot", mustBinary(t))
	if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", unit).CombinedOutput()
	if err != nil || strings.Contains(string(out), "symbot.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = exec.Command(tool, "security", "--offline=yes", unit).CombinedOutput()
	if err != nil && strings.Contains(string(out), "--offline") {
		t.Skipf("this systemd-analyze cannot assess a unit file offline: %s", out)
	}
	m := regexp.MustCompile(`Overall exposure level for symbot.service: ([0-9.]+) (\w+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("systemd-analyze security: %v, no exposure level in:\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
	if score > 2.0 {
		t.Errorf("exposure %s %s: the sandboxing got weaker (it was 1.1 OK)", m[1], m[2])
	}
}
