package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot/slacktest"
	"github.com/symbot/symbot/okta/oktatest"
)

// messagesWith returns the texts of msgs that contain sub.
func messagesWith(msgs []slacktest.Message, sub string) []string {
	var out []string
	for _, m := range msgs {
		if strings.Contains(m.Text, sub) {
			out = append(out, m.Text)
		}
	}
	return out
}

// TestEndToEndReconcile runs the real binary against the simulators: a
// membership added by hand in the Okta admin console is alerted (and
// removed once the target's policy is remove, and the person told by DM); a membership removed by hand
// during an active grant ends the grant with a DM; `symbot reconcile`,
// `symbot show` and `symbot standing` answer through the admin socket.
func TestEndToEndReconcile(t *testing.T) {
	bin := symbotBinary(t)
	w, cfgPath := mustWorld(t, "1h", "0")
	env := w.env()
	logs := &lockedBuffer{}
	wait := waiter(t, w, logs)
	cli := binaryCLI(t, bin, cfgPath, env)
	// A standing member from before symbot: recorded at the first pass.
	carol := w.okta.AddUser(oktatest.User{Login: "carol@example.com", FirstName: "Carol", LastName: "Standing"}).ID
	w.okta.AddMember(w.groupID, carol)

	c := startChild(t, bin, cfgPath, env, logs)
	wait("symbot to connect", w.slack.Connected)
	wait("the standing summary alert", func() bool {
		return len(messagesWith(w.slack.Messages(demoErrors), "carol@example.com")) == 1
	})
	if out, code := cli("standing"); code != 0 || !strings.Contains(out, "carol@example.com") {
		t.Fatalf("standing: exit %d\n%s", code, out)
	}

	// Someone adds mallory by hand: alerted, not removed (default policy).
	mallory := w.okta.AddUser(oktatest.User{Login: "mallory@example.com", FirstName: "Mallory", LastName: "Hand"}).ID
	w.okta.AddMember(w.groupID, mallory)
	out, code := cli("reconcile", "--dry-run")
	if code != 0 || !strings.Contains(out, "would alert") || !strings.Contains(out, "mallory@example.com") {
		t.Fatalf("reconcile --dry-run: exit %d\n%s", code, out)
	}
	out, code = cli("reconcile")
	if code != 0 || !strings.Contains(out, "unmanaged 1") || !strings.Contains(out, "mallory@example.com") {
		t.Fatalf("reconcile: exit %d\n%s", code, out)
	}
	wait("the unmanaged member alert", func() bool {
		return len(messagesWith(w.slack.Messages(demoErrors), "mallory@example.com")) == 1
	})
	if !w.okta.IsMember(w.groupID, mallory) {
		t.Fatal("the alert policy removed mallory")
	}
	if strings.Contains(out, "carol") {
		t.Errorf("the standing member was reported again:\n%s", out)
	}

	// A grant whose membership is removed by hand ends with a DM.
	ref := mustApprovalMessage(t, w, wait, demoAlice, "req prod-admin 1h e2e reconcile")
	if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
		t.Fatal(err)
	}
	wait("alice to be added", func() bool { return w.okta.IsMember(w.groupID, w.aliceOkta) })
	// The membership is in Okta before the grant is recorded as active.
	id := ""
	wait("the grant to be listed", func() bool {
		out, _ := cli("grants")
		for _, f := range strings.Fields(out) {
			if strings.HasPrefix(f, "SYM-") {
				id = f
			}
		}
		return id != ""
	})
	w.okta.RemoveMember(w.groupID, w.aliceOkta)
	out, code = cli("reconcile")
	if code != 0 || !strings.Contains(out, "vanished 1") {
		t.Fatalf("reconcile after the hand removal: exit %d\n%s", code, out)
	}
	wait("the removed-outside DM", func() bool {
		return len(messagesWith(w.slack.DMs(demoAlice), "removed outside symbot")) == 1
	})
	out, code = cli("show", strings.ToLower(id))
	if code != 0 || !strings.Contains(out, "removed_outside") || !strings.Contains(out, "state:removed_outside") {
		t.Fatalf("show %s: exit %d\n%s", id, code, out)
	}

	// Under unmanaged_members: remove, a hand-made membership is taken away.
	c.stop(t)
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	yml := strings.Replace(string(raw), "        group_id: "+w.groupID+"\n", "        group_id: "+w.groupID+"\n        unmanaged_members: remove\n", 1)
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	bob := w.okta.AddUser(oktatest.User{Login: "erin@example.com", FirstName: "Erin", LastName: "Hand"}).ID
	w.okta.AddMember(w.groupID, bob)
	startChild(t, bin, cfgPath, env, logs)
	wait("bob's hand-made membership to be removed at start", func() bool { return !w.okta.IsMember(w.groupID, bob) })
	wait("the removal alert", func() bool {
		return len(messagesWith(w.slack.Messages(demoErrors), "was removed (unmanaged_members: remove)")) >= 1
	})
	// Mallory, alerted about before, is removed too, and told by DM (found
	// by her Okta email in Slack); erin has no Slack account to tell.
	wait("mallory's hand-made membership to be removed", func() bool { return !w.okta.IsMember(w.groupID, mallory) })
	wait("the DM telling mallory", func() bool {
		return len(messagesWith(w.slack.DMs(demoMallory), "symbot removed you from *Production admin")) == 1
	})
	if !w.okta.IsMember(w.groupID, carol) {
		t.Error("the standing member was removed")
	}
}

// TestDaemonRemovalPendingThenAllClear: an Okta DELETE that keeps failing
// shows in `symbot grants` as an ended grant whose removal is pending, with
// its attempts and last error; once Okta answers again the removal is done
// and the errors channel gets an all-clear after the stuck alert.
func TestDaemonRemovalPendingThenAllClear(t *testing.T) {
	w, cfgPath := mustWorld(t, "4s", "0")
	d := mustOpenDaemon(t, w, cfgPath, nil)
	d.retryBase = 20 * time.Millisecond
	d.engine.Runtime.RevokeRetryMax = 200 * time.Millisecond
	d.engine.Runtime.RevokeAlertAfter = 2
	runDaemon(t, d)
	wait := waiter(t, w, nil)
	cli := configCLI(t, cfgPath)
	wait("symbot to connect", d.bot.Connected)
	ref := mustApprovalMessage(t, w, wait, demoAlice, "req prod-admin 4s short")
	if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
		t.Fatal(err)
	}
	wait("alice to be added", func() bool { return w.okta.IsMember(w.groupID, w.aliceOkta) })
	// Okta stops accepting symbot's token (rotated in Okta, not yet in the
	// secret): every DELETE fails, quickly.
	good := w.okta.Token()
	w.okta.SetToken("00rotated-elsewhere-token")
	wait("the stuck-removal alert", func() bool {
		return len(messagesWith(w.slack.Messages(demoErrors), "still being retried")) == 1
	})
	out, code := cli("grants")
	if code != 0 || !strings.Contains(out, "no active grants") || !strings.Contains(out, "OKTA REMOVAL PENDING") || !strings.Contains(out, "expired") || !strings.Contains(out, "remove user from group") {
		t.Fatalf("grants while the removal fails: exit %d\n%s", code, out)
	}
	if !w.okta.IsMember(w.groupID, w.aliceOkta) {
		t.Fatal("alice is gone although every DELETE failed")
	}
	w.okta.SetToken(good)
	wait("alice to be removed", func() bool { return !w.okta.IsMember(w.groupID, w.aliceOkta) })
	wait("the all-clear", func() bool {
		return len(messagesWith(w.slack.Messages(demoErrors), "All clear")) == 1
	})
	wait("nothing pending", func() bool {
		out, _ := cli("grants")
		return !strings.Contains(out, "REMOVAL PENDING")
	})
	var ended []*symbot.Request
	ended, _ = d.engine.ListByState(t.Context(), symbot.StateExpired)
	if len(ended) != 1 || !ended[0].Removed {
		t.Errorf("expired grants = %+v, want one, removed", ended)
	}
}

// TestEndToEndRestore: backup -> new request -> restore -> new request. The
// request made after the restore gets a fresh id, the old message's buttons
// are refused as out of date and change nothing, restore refuses while the
// daemon runs, and the first start after it reconciles and says so.
func TestEndToEndRestore(t *testing.T) {
	bin := symbotBinary(t)
	w, cfgPath := mustWorld(t, "1h", "0")
	env := w.env()
	logs := &lockedBuffer{}
	wait := waiter(t, w, logs)
	cli := binaryCLI(t, bin, cfgPath, env)
	request := func(user, text string) slacktest.MessageRef {
		t.Helper()
		before := len(w.slack.Messages(demoChannel))
		if _, err := w.slack.SlashCommand(user, "/sym", text, demoChannel); err != nil {
			t.Fatal(err)
		}
		var ref slacktest.MessageRef
		wait("the approval message", func() bool {
			ms := w.slack.Messages(demoChannel)
			for _, m := range ms[min(before, len(ms)):] {
				if strings.Contains(m.Text, "request SYM-") && (m.ThreadTS == "" || m.ThreadTS == m.TS) {
					ref = slacktest.MessageRef{Channel: m.Channel, TS: m.TS}
					return true
				}
			}
			return false
		})
		return ref
	}
	idOf := func(ref slacktest.MessageRef) string {
		m, _ := w.slack.Message(ref)
		i := strings.Index(m.Text, "request SYM-")
		return strings.Fields(m.Text[i+len("request "):])[0]
	}

	c := startChild(t, bin, cfgPath, env, logs)
	wait("symbot to connect", w.slack.Connected)
	request(demoAlice, "req prod-admin 1h before the backup")
	backup := w.dir + "/backup.db"
	if out, code := cli("backup", backup); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	old := request(demoMallory, "req prod-admin 1h after the backup")
	oldID := idOf(old)
	if out, code := cli("restore", backup); code == 0 || !strings.Contains(out, "the daemon holds") {
		t.Fatalf("restore with the daemon running: exit %d\n%s", code, out)
	}
	c.stop(t)
	if out, code := cli("restore", backup); code != 0 || !strings.Contains(out, "audit chain checked") {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	startChild(t, bin, cfgPath, env, logs)
	wait("symbot to connect again", w.slack.Connected)
	wait("the restore summary", func() bool {
		return len(messagesWith(w.slack.Messages(demoErrors), "restored from backup.db")) == 1
	})
	fresh := request(demoMallory, "req prod-admin 1h after the restore")
	freshID := idOf(fresh)
	if freshID == oldID || !strings.HasPrefix(freshID, strings.Join(strings.Split(oldID, "-")[:2], "-")+"-") {
		t.Fatalf("after the restore the new request is %s; the one from before the restore was %s: want the same sequence, another id", freshID, oldID)
	}
	if _, err := w.slack.ClickButton(demoBob, old, "sym_approve"); err != nil {
		t.Fatal(err)
	}
	wait("the out-of-date answer", func() bool {
		for _, m := range w.slack.Ephemerals(demoBob) {
			if strings.Contains(m.Text, "out of date") {
				return true
			}
		}
		return false
	})
	out, _ := cli("requests")
	if !strings.Contains(out, freshID) || !strings.Contains(out, "pending") {
		t.Fatalf("requests after the stale click:\n%s", out)
	}
	if out, _ := cli("grants"); strings.Contains(out, freshID) {
		t.Fatalf("the stale click granted %s:\n%s", freshID, out)
	}
}
