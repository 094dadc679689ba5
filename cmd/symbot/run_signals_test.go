package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestRunSignalsAndStartLogs runs the binary built with the -ldflags
// deploy/build.sh sets (the rest of that build is tested in deploy/) against the simulators and checks what an
// operator relies on: the start-up logs name the config file and the store;
// `symbot version` and symbot_build_info say the same; `symbot healthcheck`
// answers from outside the process; SIGHUP does not stop it; SIGTERM stops
// it cleanly.
func TestRunSignalsAndStartLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "symbot")
	const (
		wantVersion = "v9.8.7-test"
		wantCommit  = "0123456789abcdef0123456789abcdef01234567"
		wantDate    = "2026-12-01T10:00:00Z"
	)
	ldflags := fmt.Sprintf("-X main.version=%s -X main.commit=%s -X main.date=%s", wantVersion, wantCommit, wantDate)
	// Only the link differs from buildSymbot's build, so this one is cheap.
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("symbot version: %v", err)
	}
	for _, want := range []string{"symbot " + wantVersion + "\n", "commit:     " + wantCommit + "\n", "build date: " + wantDate + "\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("symbot version lacks %q:\n%s", want, out)
		}
	}

	w, cfgPath := mustWorld(t, "1h", "0")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	yml, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	yml = []byte(strings.Replace(string(yml), "level: warn", "level: info", 1) + "http:\n  listen: " + addr + "\n")
	if err := os.WriteFile(cfgPath, yml, 0o600); err != nil {
		t.Fatal(err)
	}

	logs := &lockedBuffer{}
	c := startChild(t, bin, cfgPath, w.env(), logs)
	wait := waiter(t, w, logs)
	cli := binaryCLI(t, bin, cfgPath, w.env())
	healthcheck := func(args ...string) (int, string) {
		out, code := cli(append([]string{"healthcheck"}, args...)...)
		return code, out
	}
	wait("symbot to be ready", func() bool { code, _ := healthcheck("--ready"); return code == 0 })

	for _, re := range []string{
		`msg="symbot starting" version=` + wantVersion + ` commit=` + wantCommit,
		`msg="config loaded" file=` + regexp.QuoteMeta(cfgPath) + ` flows=1`,
		`msg="store opened" .*kind=bbolt path=` + regexp.QuoteMeta(filepath.Join(w.dir, "symbot.db")),
	} {
		if !regexp.MustCompile(re).MatchString(logs.String()) {
			t.Errorf("start-up logs lack /%s/:\n%s", re, logs.String())
		}
	}

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	info := regexp.MustCompile(`(?m)^symbot_build_info\{(.*)\} 1$`).FindSubmatch(metrics)
	if info == nil {
		t.Fatalf("no symbot_build_info sample in /metrics:\n%s", metrics)
	}
	for _, want := range []string{`version="` + wantVersion + `"`, `commit="` + wantCommit + `"`, `build_date="` + wantDate + `"`, `go_version="go1.`} {
		if !strings.Contains(string(info[1]), want) {
			t.Errorf("symbot_build_info{%s} lacks %s", info[1], want)
		}
	}

	if !regexp.MustCompile(`(?m)^symbot_socket_connected 1$`).Match(metrics) {
		t.Errorf("symbot_socket_connected is not 1 while ready:\n%s", metrics)
	}

	// SIGHUP, twice, with the file unchanged: each time symbot reloads it,
	// finds nothing changed and keeps serving.
	for i := range 2 {
		if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		wait(fmt.Sprintf("SIGHUP %d to be logged", i+1), func() bool {
			return strings.Count(logs.String(), `msg="config reloaded"`) == i+1
		})
	}
	if !strings.Contains(logs.String(), `changes="no change"`) {
		t.Errorf("a reload of an unchanged file does not say so:\n%s", logs.String())
	}
	select {
	case <-c.done:
		t.Fatalf("symbot exited after SIGHUP\n%s", logs.String())
	default:
	}
	if code, out := healthcheck(); code != 0 {
		t.Errorf("healthcheck after SIGHUP: exit %d: %s", code, out)
	}
	c.stop(t)
	if !strings.Contains(logs.String(), "symbot stopped") {
		t.Errorf("no clean stop logged:\n%s", logs.String())
	}
	if code, out := healthcheck(); code != exitFail || !strings.Contains(out, "not answering") {
		t.Errorf("healthcheck after stop: exit %d: %s", code, out)
	}
}
