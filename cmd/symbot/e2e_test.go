package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
	"github.com/symbot/symbot/okta/oktatest"
)

// builtDir is the temporary directory buildSymbot built the binary in;
// TestMain removes it when the tests end.
var builtDir string

// buildSymbot builds the real binary once per test run.
var buildSymbot = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "symbot-e2e-bin-")
	if err != nil {
		return "", err
	}
	builtDir = dir
	bin := filepath.Join(dir, "symbot")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// symbotBinary returns the real binary for a test that runs it: it skips
// the test under -short and fails it when the build fails.
func symbotBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildSymbot()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// child is one `symbot run` process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	logs *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// environ is this process's environment with env added.
func environ(env map[string]string) []string {
	out := os.Environ()
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// binaryCLI returns cli(args...), which runs the built binary bin with
// --config cfgPath and env, and returns its stdout and stderr together,
// and its exit code.
func binaryCLI(t *testing.T, bin, cfgPath string, env map[string]string) func(args ...string) (string, int) {
	return func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--config", cfgPath)...)
		cmd.Env = environ(env)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("symbot %v: %v", args, err)
		}
		return string(out), 0
	}
}

func startChild(t *testing.T, bin, cfgPath string, env map[string]string, logs *lockedBuffer) *child {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Env = environ(env)
	cmd.Stdout = logs
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start symbot: %v", err)
	}
	c := &child{cmd: cmd, done: make(chan struct{}), logs: logs}
	go func() { _ = cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill symbot: %v", err)
	}
	<-c.done
}

func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop symbot: %v", err)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("symbot did not stop within 30s of SIGTERM")
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("symbot exited %d after SIGTERM\n%s", code, c.logs.String())
	}
}

// TestEndToEnd builds symbot, runs it as a child process against the three
// simulators, drives a lifecycle through Slack envelopes, and SIGKILLs it
// between approval and grant and again between expiry and removal.
func TestEndToEnd(t *testing.T) {
	bin := symbotBinary(t)
	w, cfgPath := mustWorld(t, "4s", "0")
	sock := filepath.Join(w.dir, "admin.sock")
	env := w.env()
	logs := &lockedBuffer{}
	ctx := t.Context()
	wait := waiter(t, w, logs)
	admin := admin.NewClient(sock)
	// auditHas reports whether the audit trail holds an entry whose action
	// and detail start with the given prefixes.
	auditHas := func(action, detail string) func() bool {
		return func() bool {
			es, err := admin.Audit(ctx, time.Time{})
			if err != nil {
				return false
			}
			for _, e := range es {
				if e.Action == action && strings.HasPrefix(e.Detail, detail) {
					return true
				}
			}
			return false
		}
	}

	c := startChild(t, bin, cfgPath, env, logs)
	wait("symbot to connect", w.slack.Connected)

	ref := mustApprovalMessage(t, w, wait, demoAlice, "req prod-admin 4s end-to-end <@U0BOB00002> test")

	// Crash 1: approved, the Okta add in flight, not yet applied.
	arrived, release := w.okta.Hold(oktatest.OpPutMembership)
	if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
		t.Fatalf("approve click: %v", err)
	}
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatalf("the Okta add never arrived\n%s", logs.String())
	}
	wait("the approval DM and message update to be recorded", func() bool {
		return auditHas("job:notify:ok", "approved")() && auditHas("job:update:ok", "approved")()
	})
	c.kill(t)
	waitDropped(t, w.okta, "PUT")
	release()
	if w.okta.IsMember(w.groupID, w.aliceOkta) {
		t.Fatal("the held add took effect although symbot died")
	}

	c = startChild(t, bin, cfgPath, env, logs)
	wait("alice to be added after the restart", func() bool { return w.okta.IsMember(w.groupID, w.aliceOkta) })
	wait("the granted DM", func() bool { return len(w.slack.DMs(demoAlice)) >= 2 })

	// Crash 2: expired, the Okta remove in flight, not yet applied.
	arrived, release = w.okta.Hold(oktatest.OpDelMembership)
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatalf("the Okta remove never arrived\n%s", logs.String())
	}
	wait("the expiry to be recorded", func() bool { return auditHas("job:update:ok", "expired")() })
	c.kill(t)
	waitDropped(t, w.okta, "DELETE")
	release()
	if !w.okta.IsMember(w.groupID, w.aliceOkta) {
		t.Fatal("the held remove took effect although symbot died")
	}

	c = startChild(t, bin, cfgPath, env, logs)
	wait("alice to be removed after the restart", func() bool { return !w.okta.IsMember(w.groupID, w.aliceOkta) })
	wait("the removed DM", func() bool { return len(w.slack.DMs(demoAlice)) >= 3 })
	wait("every job to finish", func() bool { return auditHas("job:notify:ok", "removed")() && auditHas("job:update:ok", "removed")() })

	// Exactly once: one add, one remove, nothing left, no duplicate DMs.
	okCalls := func(method string) int {
		n := 0
		for _, c := range w.okta.Calls() {
			if c.Method == method && strings.HasPrefix(c.Path, "/api/v1/groups/") && c.Status == 204 {
				n++
			}
		}
		return n
	}
	if got := okCalls("PUT"); got != 1 {
		t.Errorf("successful Okta adds = %d, want 1", got)
	}
	if got := okCalls("DELETE"); got != 1 {
		t.Errorf("successful Okta removes = %d, want 1", got)
	}
	if got := w.okta.Members(w.groupID); len(got) != 0 {
		t.Errorf("members left in the group: %v", got)
	}
	dms := w.slack.DMs(demoAlice)
	if len(dms) != 3 {
		var texts []string
		for _, m := range dms {
			texts = append(texts, m.Text)
		}
		t.Errorf("alice got %d DMs, want 3 (approved, granted, removed):\n%s", len(dms), strings.Join(texts, "\n"))
	}
	if posts := len(w.slack.CallsTo("chat.postMessage")); posts == 0 {
		t.Error("no messages posted")
	}
	var top int
	for _, m := range w.slack.Messages(demoChannel) {
		if m.ThreadTS == "" || m.ThreadTS == m.TS {
			top++
		}
	}
	if top != 1 {
		t.Errorf("approval messages in the channel = %d, want 1", top)
	}
	msg, _ := w.slack.Message(ref)
	if strings.Contains(msg.Text, "<@U0BOB00002>") && strings.Contains(msg.Text, "end-to-end <@") {
		t.Errorf("the reason's mention was not escaped: %s", msg.Text)
	}
	v, err := admin.VerifyAudit(ctx)
	if err != nil || !v.OK {
		t.Errorf("audit verify: %+v %v", v, err)
	}
	for _, secret := range []string{w.okta.Token(), w.slack.BotToken, w.slack.AppToken, "demo-base-secret-key"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a secret reached symbot's logs")
		}
	}
	c.stop(t)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind after a clean stop: %v", err)
	}
}

// waitDropped waits until the simulator has seen the held membership call
// of the killed process end without an answer, so that releasing the hold
// cannot apply it.
func waitDropped(t *testing.T, s *oktatest.Server, method string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range s.Calls() {
			if c.Method == method && strings.HasPrefix(c.Path, "/api/v1/groups/") && c.Status == -1 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the held %s was not dropped after the kill", method)
}
