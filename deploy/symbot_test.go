package deploy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Build stamps the tests give deploy/build.sh.
const (
	testVersion = "v0.0.0-deploytest"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
	testDate    = "2026-12-01T10:00:00Z"
)

// repoRoot is the symbot repository (this module lives in its deploy/).
var repoRoot = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Dir(wd)
}()

var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// symbotBinary builds symbot once with deploy/build.sh, the build every
// artefact uses, and returns its path.
var symbotBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "symbot-deploy-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "symbot")
	cmd := exec.Command("sh", filepath.Join(repoRoot, "deploy", "build.sh"), bin)
	cmd.Env = append(os.Environ(), "VERSION="+testVersion, "COMMIT="+testCommit, "DATE="+testDate)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("deploy/build.sh: %v\n%s", err, out)
	}
	return bin, nil
})

func mustBinary(t *testing.T) string {
	t.Helper()
	bin, err := symbotBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// symbotCmd runs the built symbot with args and returns its exit code and
// combined output.
func symbotCmd(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(mustBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("symbot %s: %v", strings.Join(args, " "), err)
		}
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// testConfig is a complete symbot.yml; extra is appended as is.
func testConfig(t *testing.T, dir, aws, extra string) string {
	t.Helper()
	if aws == "" {
		aws = "  region: us-east-1\n  role_arn: arn:aws:iam::123456789012:role/symbot-runtime-connector\n  external_id: symbot-deploy-test\n"
	}
	yml := "slack:\n  errors_channel: C0SYMBOTERR\naws:\n" + aws + `okta:
  org_url: http://127.0.0.1:1
  token_secret: symbot/okta-api-token
flows:
  - name: prod
    channel: C0ACCESS01
    approvers:
      users: [U0APPROVER1]
    durations: [1h]
    targets:
      - name: admin
        group_id: 00g1abcdefghijklmno7
` + extra
	path := filepath.Join(dir, "symbot.yml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// shortTempDir is a temporary directory with a short path: the config's
// admin socket (default: beside the config) must fit a unix socket path.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "symd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// runningSymbot is a `symbot run` whose Slack never answers (127.0.0.1:1):
// it serves /healthz and /metrics but is never ready.
type runningSymbot struct {
	addr    string // http.listen
	cfgPath string
	env     []string
}

func startSymbot(t *testing.T) *runningSymbot {
	t.Helper()
	bin := mustBinary(t)
	dir := shortTempDir(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := testConfig(t, dir, "", fmt.Sprintf("store:\n  path: %s\nadmin:\n  socket: %s\nhttp:\n  listen: %s\n",
		filepath.Join(dir, "symbot.db"), filepath.Join(dir, "symbot.sock"), addr))
	env := []string{
		"SLACK_BOT_TOKEN=xoxb-deploy-test", "SLACK_APP_TOKEN=xapp-deploy-test", "SLACK_API_URL=http://127.0.0.1:1/",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ACCESS_KEY_ID=", "AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none"),
		"SYMBOT_DATABASE_URL=",
	}
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Env = append(os.Environ(), env...)
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var logText strings.Builder
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			mu.Lock()
			logText.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// /healthz answers from the first moment, before the store is open;
	// the daemon runs (and exports the store's gauges) once /readyz no
	// longer says it is starting.
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), "not ready: starting") {
				break
			}
		}
		select {
		case <-done:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("symbot run exited:\n%s", logText.String())
		case <-ctx.Done():
			t.Fatalf("symbot never served /readyz past starting on %s", addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return &runningSymbot{addr: addr, cfgPath: cfg, env: env}
}

// get returns the body of GET path on the running symbot.
func (s *runningSymbot) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
