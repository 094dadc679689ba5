package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
	"github.com/symbot/symbot/okta/oktatest"
)

// reloadWorld runs the built binary against a seeded world with info logs,
// and returns the world, the config's path and text, the child and its
// logs, and wait.
func reloadWorld(t *testing.T) (*world, string, string, *child, *lockedBuffer, func(string, func() bool)) {
	t.Helper()
	bin := symbotBinary(t)
	w, cfgPath := mustWorld(t, "1h", "0")
	yml, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(yml), "level: warn", "level: info", 1)
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	c := startChild(t, bin, cfgPath, w.env(), logs)
	wait := waiter(t, w, logs)
	wait("symbot to connect", func() bool {
		return strings.Contains(logs.String(), `msg="symbot running"`) && w.slack.Connections() > 0
	})
	return w, cfgPath, text, c, logs, wait
}

// sighup sends SIGHUP and waits until the n-th reload outcome is logged.
func sighup(t *testing.T, c *child, logs *lockedBuffer, wait func(string, func() bool), n int) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait(fmt.Sprintf("reload %d to be logged", n), func() bool {
		s := logs.String()
		return strings.Count(s, `msg="config reloaded"`)+strings.Count(s, `msg="config reload refused: symbot keeps running`) >= n
	})
	select {
	case <-c.done:
		t.Fatalf("symbot exited after SIGHUP\n%s", logs.String())
	default:
	}
}

// requestsJSON lists the daemon's pending and approved requests over the
// admin socket at socket.
func requestsJSON(t *testing.T, socket string) []admin.RequestJSON {
	t.Helper()
	bin := symbotBinary(t)
	out, err := exec.Command(bin, "requests", "--json", "--socket", socket).CombinedOutput()
	if err != nil {
		t.Fatalf("symbot requests --socket %s: %v\n%s", socket, err, out)
	}
	var rs []admin.RequestJSON
	if err := json.Unmarshal(out, &rs); err != nil {
		t.Fatalf("requests --json: %v\n%s", err, out)
	}
	return rs
}

// TestSIGHUPAddsAFlow: a flow added to the file is refused before SIGHUP
// and takes requests after it, without a restart, the admin socket still
// answering; the reload is logged and audited with what changed.
func TestSIGHUPAddsAFlow(t *testing.T) {
	w, cfgPath, text, c, logs, wait := reloadWorld(t)
	socket := filepath.Join(w.dir, "admin.sock")
	gid := w.okta.AddGroup(oktatest.Group{Name: "ops-pager"}).ID
	ack, err := w.slack.SlashCommand(demoAlice, "/sym", "req ops/pager 1h page me", demoChannel)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ack.Payload), "ops") {
		t.Fatalf("before the reload, a request for ops/pager was answered %s, want a refusal naming the flow", ack.Payload)
	}

	text += fmt.Sprintf(`  - name: ops
    channel: %s
    approvers:
      users: [%s]
    durations: [1h]
    targets:
      - name: pager
        group_id: %s
`, demoChannel, demoBob, gid)
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	sighup(t, c, logs, wait, 1)
	if !strings.Contains(logs.String(), `changes="flows added: ops"`) {
		t.Errorf("the reload does not say what changed:\n%s", logs.String())
	}

	ref := mustApprovalMessage(t, w, wait, demoAlice, "req ops/pager 1h page me")
	rs := requestsJSON(t, socket)
	if len(rs) != 1 || rs[0].Flow != "ops" || rs[0].Target != "pager" {
		t.Fatalf("requests after the reload = %+v, want one for ops/pager", rs)
	}
	if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
		t.Fatal(err)
	}
	wait("the grant of the new flow's group", func() bool { return w.okta.IsMember(gid, w.aliceOkta) })

	bin := symbotBinary(t)
	out, err := exec.Command(bin, "audit", "--socket", socket).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "admin:config-reload") || !strings.Contains(string(out), "flows added: ops") {
		t.Errorf("audit after the reload: %v\n%s", err, out)
	}
}

// TestSIGHUPWithBrokenConfigKeepsOldOne: an invalid file is refused whole,
// each problem logged at its file:line and the errors channel told; the old
// flows keep working. A valid file that also changes a setting that needs a
// restart (admin.socket) is applied except for that setting, which is
// logged as needing a restart: the socket stays where it was.
func TestSIGHUPWithBrokenConfigKeepsOldOne(t *testing.T) {
	w, cfgPath, text, c, logs, wait := reloadWorld(t)
	socket := filepath.Join(w.dir, "admin.sock")

	broken := strings.Replace(text, "durations: [1h]", "durations: [1h, 99x]", 1)
	broken = strings.Replace(broken, "flows:\n", "bogus_key: 1\nflows:\n", 1)
	if broken == text || !strings.Contains(broken, "99x") {
		t.Fatalf("could not break the config:\n%s", text)
	}
	lineOf := func(sub string) int {
		for i, l := range strings.Split(broken, "\n") {
			if strings.Contains(l, sub) {
				return i + 1
			}
		}
		t.Fatalf("%q not in the config", sub)
		return 0
	}
	if err := os.WriteFile(cfgPath, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	sighup(t, c, logs, wait, 1)
	for _, want := range []string{
		fmt.Sprintf("%s:%d: ", cfgPath, lineOf("bogus_key")),
		fmt.Sprintf("%s:%d: ", cfgPath, lineOf("99x")),
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the refused reload's log lacks a problem at %s\n%s", want, logs.String())
		}
	}
	wait("the errors channel to be told", func() bool {
		for _, m := range w.slack.Messages(demoErrors) {
			if strings.Contains(m.Text, "Config reload refused") && strings.Contains(m.Text, "2 problems") {
				return true
			}
		}
		return false
	})
	if strings.Contains(logs.String(), `msg="config reloaded"`) {
		t.Fatalf("a broken config was applied:\n%s", logs.String())
	}
	mustApprovalMessage(t, w, wait, demoAlice, "req prod-admin 1h still works")

	// Valid again, with a new admin socket path: applied, but the socket
	// needs a restart and stays where it is.
	moved := strings.Replace(text, socket, filepath.Join(w.dir, "other.sock"), 1)
	moved = strings.Replace(moved, "durations: [1h]", "durations: [1h, 2h]", 1)
	if err := os.WriteFile(cfgPath, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}
	sighup(t, c, logs, wait, 2)
	if !strings.Contains(logs.String(), `msg="config reloaded"`) || !strings.Contains(logs.String(), "needs_restart=admin.socket") {
		t.Errorf("the reload does not say admin.socket needs a restart:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(w.dir, "other.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a reload opened the new admin socket: %v", err)
	}
	if rs := requestsJSON(t, socket); len(rs) != 1 {
		t.Errorf("requests over the old socket after the reload = %+v, want the one pending", rs)
	}
	c.stop(t)
	if _, err := os.Stat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the admin socket was left behind after reloads and a clean stop: %v", err)
	}
}

// TestSIGHUPRemovingATargetLeavesItsRequestUndecidable: a pending request
// whose target a reload removed is listed in the reload's warning, and an
// approval click says the target is no longer configured (not "can't find
// that request") and changes nothing; the new target takes requests.
func TestSIGHUPRemovingATargetLeavesItsRequestUndecidable(t *testing.T) {
	w, cfgPath, text, c, logs, wait := reloadWorld(t)
	socket := filepath.Join(w.dir, "admin.sock")
	ref := mustApprovalMessage(t, w, wait, demoAlice, "req prod-admin 1h deploy")
	rs := requestsJSON(t, socket)
	if len(rs) != 1 {
		t.Fatalf("requests = %+v, want one", rs)
	}
	id := rs[0].ID

	gid := w.okta.AddGroup(oktatest.Group{Name: "prod-admin-v2"}).ID
	renamed := strings.Replace(text, "- name: prod-admin\n", "- name: prod-admin-v2\n", 1)
	renamed = strings.Replace(renamed, "group_id: "+w.groupID, "group_id: "+gid, 1)
	if renamed == text {
		t.Fatalf("could not rename the target:\n%s", text)
	}
	if err := os.WriteFile(cfgPath, []byte(renamed), 0o600); err != nil {
		t.Fatal(err)
	}
	sighup(t, c, logs, wait, 1)
	wait("the reload to list the request", func() bool {
		return strings.Contains(logs.String(), "no longer configured") && strings.Contains(logs.String(), id+" (pending, prod/prod-admin)")
	})

	if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
		t.Fatal(err)
	}
	wait("the approver to be told", func() bool {
		for _, m := range w.slack.Ephemerals(demoBob) {
			if strings.Contains(m.Text, "target `prod-admin` of flow `prod`") && strings.Contains(m.Text, "no longer in symbot's configuration") {
				return true
			}
		}
		return false
	})
	if w.okta.IsMember(w.groupID, w.aliceOkta) || w.okta.IsMember(gid, w.aliceOkta) {
		t.Error("an approval of a request whose target was removed granted access")
	}
	if rs := requestsJSON(t, socket); len(rs) != 1 || rs[0].State != "pending" {
		t.Errorf("requests after the refused approval = %+v, want the one still pending", rs)
	}
	if _, err := w.slack.SlashCommand(demoAlice, "/sym", "req prod-admin-v2 1h deploy", demoChannel); err != nil {
		t.Fatal(err)
	}
	wait("a request for the new target", func() bool { return len(requestsJSON(t, socket)) == 2 })
}
