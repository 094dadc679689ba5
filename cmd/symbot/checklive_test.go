package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/symbot/symbot/cmd/symbot/internal/config"
	"github.com/symbot/symbot/okta/oktatest"
)

// The fixes `symbot check --live` prints (cmd/symbot/run.go), asserted
// verbatim: they are what a person reads to repair the setup.
const (
	fixSlackBotToken = "set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-...) of the installed app"
	fixAssumeRole    = "check the role's trust policy (run `symbot iam-policy`): it must trust symbot's principal with the sts:ExternalId condition equal to aws.external_id"
	fixSecret        = "check the secret exists in the region, the role may secretsmanager:GetSecretValue on it (and kms:Decrypt on its key), and okta.token_json_key names a key in it"
	fixBaseCreds     = "give symbot AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, or an instance/pod role"
	fixOktaGroup     = "check the group id in the Okta admin console (Directory > Groups, the id is in the URL) and that the API token's admin role covers it"
)

func fixInvite(channel string) string {
	return "invite the bot to the channel (/invite @symbot in " + channel + "), and check the channel id in the config"
}

// liveWorld is a seeded world with the environment pointing at it (through
// t.Setenv: LoadConfig reads os.Getenv) and its config written.
type liveWorld struct {
	*world
	cfgPath string
	yml     string // the config as written
}

// MustLiveWorld starts the simulators for one `check --live` run.
func MustLiveWorld(t *testing.T) *liveWorld {
	t.Helper()
	w, cfgPath := mustWorld(t, "1h", "10m")
	for k, v := range w.env() {
		t.Setenv(k, v)
	}
	yml, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return &liveWorld{world: w, cfgPath: cfgPath, yml: string(yml)}
}

// editConfig rewrites the config with old replaced by new.
func (lw *liveWorld) editConfig(tb testing.TB, old, new string) {
	tb.Helper()
	writeFile(tb, lw.cfgPath, edit(tb, lw.yml, old, new))
}

// checkLive runs `symbot check --live` in-process and fails the test if any
// secret of the world (or extra, e.g. a wrong token the person set) shows in
// its output, or if a preflight message is left scheduled in any channel.
func (lw *liveWorld) checkLive(t *testing.T, extra ...string) (int, string) {
	t.Helper()
	code, out, errOut := cli(t, "check", "--config", lw.cfgPath, "--live")
	secrets := append([]string{
		lw.okta.Token(), lw.slack.BotToken, lw.slack.AppToken, lw.env()["AWS_SECRET_ACCESS_KEY"],
	}, extra...)
	for _, s := range secrets {
		if s == "" {
			t.Fatal("a secret to look for is empty")
		}
		if strings.Contains(out, s) || strings.Contains(errOut, s) {
			t.Errorf("a secret (%.6s...) appears in the output:\n%s%s", s, out, errOut)
		}
	}
	if left := lw.slack.ScheduledMessages(""); len(left) != 0 {
		t.Errorf("preflight left scheduled messages behind: %+v", left)
	}
	for _, ch := range []string{demoChannel, demoErrors} {
		if msgs := lw.slack.Messages(ch); len(msgs) != 0 {
			t.Errorf("preflight posted visibly in %s: %+v", ch, msgs)
		}
	}
	if errOut != "" {
		t.Errorf("stderr: got %q, want nothing", errOut)
	}
	return code, out
}

// liveLines are the lines of the live checks of the demo world, all passing.
func liveLines(lw *liveWorld) []string {
	return []string{
		"ok    slack: bot token accepted (auth.test)",
		"ok    slack: app-level token opens Socket Mode (apps.connections.open)",
		"ok    slack: bot can post in " + demoChannel + " (flow prod)",
		"ok    slack: bot can read its own messages in " + demoChannel + " (conversations.history)",
		"ok    slack: bot can post in " + demoErrors + " (errors channel)",
		"ok    slack: bot can read its own messages in " + demoErrors + " (conversations.history)",
		"ok    aws: base credentials (sts:GetCallerIdentity)",
		"ok    aws: assume " + demoRoleARN + " with the external id",
		"ok    aws: read the Okta token secret " + demoSecret,
		"ok    okta: group " + lw.groupID + " exists (target prod/prod-admin)",
	}
}

func TestCheckLivePasses(t *testing.T) {
	lw := MustLiveWorld(t)
	code, out := lw.checkLive(t)
	if code != exitOK {
		t.Fatalf("exit: got %d, want %d\n%s", code, exitOK, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if last := lines[len(lines)-1]; last != "all checks passed" {
		t.Errorf("last line: got %q, want %q", last, "all checks passed")
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "ok    ") {
			t.Errorf("line is not ok: %q", l)
		}
	}
	want := liveLines(lw)
	if len(lines) < len(want)+1 {
		t.Fatalf("got %d lines, want at least %d:\n%s", len(lines), len(want)+1, out)
	}
	if got := lines[len(lines)-1-len(want) : len(lines)-1]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("live check lines:\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The channel checks really scheduled (far ahead) and deleted a message
	// in each channel: the simulator saw both calls, per channel.
	sched, del := lw.slack.CallsTo("chat.scheduleMessage"), lw.slack.CallsTo("chat.deleteScheduledMessage")
	if len(sched) != 2 || len(del) != 2 {
		t.Fatalf("calls: %d chat.scheduleMessage and %d chat.deleteScheduledMessage, want 2 and 2", len(sched), len(del))
	}
	for i, ch := range []string{demoChannel, demoErrors} {
		if sched[i].Error != "" || sched[i].Params.Get("channel") != ch || del[i].Error != "" || del[i].Params.Get("channel") != ch {
			t.Errorf("channel %s: schedule %+v, delete %+v", ch, sched[i], del[i])
		}
	}
}

// TestCheckLiveWarnsWithoutHistoryScopes: an app installed before symbot
// asked for the history scopes passes the live checks with a warning per
// channel that says what it costs and how to fix it.
func TestCheckLiveWarnsWithoutHistoryScopes(t *testing.T) {
	lw := MustLiveWorld(t)
	lw.slack.SetScopes("commands", "chat:write", "im:write", "users:read", "users:read.email", "channels:read", "groups:read", "im:read")
	code, out := lw.checkLive(t)
	if code != exitOK {
		t.Fatalf("exit: got %d, want %d (a warning, not a failure)\n%s", code, exitOK, out)
	}
	lines := strings.Split(out, "\n")
	for _, ch := range []string{demoChannel, demoErrors} {
		i := indexPrefix(lines, "warn  slack: bot can read its own messages in "+ch+" (conversations.history): missing_scope (needed: channels:history)")
		if i < 0 {
			t.Errorf("no history warning for %s:\n%s", ch, out)
			continue
		}
		if got, want := lineAt(lines, i+1), "      fix: reinstall the Slack app with the scopes manifest.yml lists (channels:history, groups:history, im:history), and invite the bot to the channel"; got != want {
			t.Errorf("fix: got %q, want %q", got, want)
		}
	}
}

// wantFail is one failing check: the start of its FAIL line (name and
// error) and, unless "", the exact fix printed under it.
type wantFail struct {
	line string
	fix  string
}

func TestCheckLiveFailures(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, lw *liveWorld) (secrets []string)
		want  func(lw *liveWorld) []wantFail
	}{
		{
			name: "wrong external id",
			setup: func(t *testing.T, lw *liveWorld) []string {
				lw.editConfig(t, "external_id: "+demoExternalID, "external_id: symbot-demo-wrong")
				return nil
			},
			want: func(lw *liveWorld) []wantFail {
				denied := ": assume role " + demoRoleARN + " denied: check the role's trust policy allows the base principal and that aws.external_id matches the sts:ExternalId condition: "
				// Without the role nothing behind it can be reached: one
				// root cause, one failure; what depends on it is skipped.
				return []wantFail{
					{"FAIL  aws: assume " + demoRoleARN + " with the external id" + denied, fixAssumeRole},
					{"skip  aws: read the Okta token secret " + demoSecret + `: not checked, it needs "aws: assume ` + demoRoleARN + ` with the external id"`, ""},
					{"skip  okta: group " + lw.groupID + " exists (target prod/prod-admin): not checked", ""},
				}
			},
		},
		{
			name: "bot not a member of the flow channel",
			setup: func(t *testing.T, lw *liveWorld) []string {
				lw.slack.SetBotMembership(demoChannel, false)
				return nil
			},
			want: func(*liveWorld) []wantFail {
				return []wantFail{
					{"FAIL  slack: bot can post in " + demoChannel + " (flow prod): not_in_channel", fixInvite(demoChannel)},
					{"skip  slack: bot can read its own messages in " + demoChannel + " (conversations.history): not checked", ""},
				}
			},
		},
		{
			name: "okta group does not exist",
			setup: func(t *testing.T, lw *liveWorld) []string {
				lw.editConfig(t, "group_id: "+lw.groupID, "group_id: 00gNOSUCHGROUP000001")
				return nil
			},
			want: func(*liveWorld) []wantFail {
				return []wantFail{{"FAIL  okta: group 00gNOSUCHGROUP000001 exists (target prod/prod-admin): get okta group 00gNOSUCHGROUP000001: okta has no group 00gNOSUCHGROUP000001", fixOktaGroup}}
			},
		},
		{
			name: "wrong slack bot token",
			setup: func(t *testing.T, lw *liveWorld) []string {
				wrong := "xoxb-1111-2222-wrongwrongwrong"
				t.Setenv("SLACK_BOT_TOKEN", wrong)
				return []string{wrong}
			},
			want: func(*liveWorld) []wantFail {
				return []wantFail{
					{"FAIL  slack: bot token accepted (auth.test): invalid_auth", fixSlackBotToken},
					// The channel checks use the same token: skipped.
					{"skip  slack: bot can post in " + demoChannel + " (flow prod): not checked, it needs \"slack: bot token accepted (auth.test)\"", ""},
					{"skip  slack: bot can read its own messages in " + demoChannel + " (conversations.history): not checked", ""},
					{"skip  slack: bot can post in " + demoErrors + " (errors channel): not checked", ""},
					{"skip  slack: bot can read its own messages in " + demoErrors + " (conversations.history): not checked", ""},
				}
			},
		},
		{
			name: "no AWS credentials at all",
			setup: func(t *testing.T, lw *liveWorld) []string {
				t.Setenv("AWS_ACCESS_KEY_ID", "")
				t.Setenv("AWS_SECRET_ACCESS_KEY", "")
				// An instance metadata service that knows nothing: the
				// SDK falls back to IMDSv1 and warns; the warning must
				// not reach stderr.
				imds := httptest.NewServer(http.NotFoundHandler())
				t.Cleanup(imds.Close)
				t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
				t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
				return nil
			},
			want: func(lw *liveWorld) []wantFail {
				return []wantFail{
					{"FAIL  aws: base credentials (sts:GetCallerIdentity): ", fixBaseCreds},
					{"skip  aws: assume " + demoRoleARN + " with the external id: not checked, it needs \"aws: base credentials (sts:GetCallerIdentity)\"", ""},
					{"skip  aws: read the Okta token secret " + demoSecret + ": not checked", ""},
					{"skip  okta: group " + lw.groupID + " exists (target prod/prod-admin): not checked", ""},
				}
			},
		},
		{
			name: "secret does not exist",
			setup: func(t *testing.T, lw *liveWorld) []string {
				// The role may read it, so AWS answers "not found" rather
				// than "access denied".
				lw.aws.AllowSecret(demoRoleARN, "symbot/okta-token-renamed")
				lw.editConfig(t, "token_secret: "+demoSecret, "token_secret: symbot/okta-token-renamed")
				return nil
			},
			want: func(lw *liveWorld) []wantFail {
				return []wantFail{
					{`FAIL  aws: read the Okta token secret symbot/okta-token-renamed: read secret "symbot/okta-token-renamed" in region us-east-1: secret not found`, fixSecret},
					{"skip  okta: group " + lw.groupID + " exists (target prod/prod-admin): not checked", ""},
				}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lw := MustLiveWorld(t)
			extra := tt.setup(t, lw)
			code, out := lw.checkLive(t, extra...)
			if code != exitFail {
				t.Errorf("exit: got %d, want %d", code, exitFail)
			}
			want := tt.want(lw)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			var fails, skips []int
			for i, l := range lines {
				switch {
				case strings.HasPrefix(l, "FAIL  "):
					fails = append(fails, i)
				case strings.HasPrefix(l, "skip  "):
					skips = append(skips, i)
				}
			}
			wantFails := 0
			for _, wf := range want {
				if strings.HasPrefix(wf.line, "FAIL  ") {
					wantFails++
				}
			}
			if len(fails) != wantFails || len(fails)+len(skips) != len(want) {
				t.Errorf("got %d FAIL and %d skip lines, want %d in all, %d of them FAIL:\n%s", len(fails), len(skips), len(want), wantFails, out)
			}
			for _, wf := range want {
				i := indexPrefix(lines, wf.line)
				if i < 0 {
					t.Errorf("no line starts with %q:\n%s", wf.line, out)
					continue
				}
				if wf.fix == "" {
					continue
				}
				if got, want := lineAt(lines, i+1), "      fix: "+wf.fix; got != want {
					t.Errorf("fix under %q:\ngot:  %q\nwant: %q", wf.line, got, want)
				}
			}
			if got, want := lines[len(lines)-1], strconv.Itoa(wantFails)+" check(s) failed"; got != want {
				t.Errorf("last line: got %q, want %q", got, want)
			}
			// A failure stops no other check: all of them printed a line.
			ok := 0
			for _, l := range lines {
				if strings.HasPrefix(l, "ok    ") {
					ok++
				}
			}
			if got, want := ok+len(fails)+len(skips), len(OfflineChecks(&config.Config{}))+len(liveLines(lw)); got != want {
				t.Errorf("%d ok, %d FAIL and %d skip lines, want %d checks in all:\n%s", ok, len(fails), len(skips), want, out)
			}
		})
	}
}

func indexPrefix(lines []string, prefix string) int {
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}

func lineAt(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return ""
}

// The target-group checks of `check --live`, line by line: a built-in
// group fails, an app group and a group granted by two flows under
// different rules warn without failing.
func TestCheckLiveTargetGroups(t *testing.T) {
	// A second flow granting the demo group, with its own rules.
	secondFlow := func(lw *liveWorld, approver, durations, extra string) string {
		return lw.yml + `  - name: ops
    channel: ` + demoChannel + `
    approvers:
      users: [` + approver + `]
    durations: [` + durations + `]
` + extra + `    targets:
      - name: admin
        group_id: ` + lw.groupID + "\n"
	}
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, lw *liveWorld)
		code  int
		want  func(lw *liveWorld) []string // consecutive lines, exactly
		last  string
	}{
		{
			name: "the Everyone group as a target",
			setup: func(t *testing.T, lw *liveWorld) {
				g := lw.okta.AddGroup(oktatest.Group{ID: "00gEVERYONE000000001", Name: "Everyone", Type: "BUILT_IN"})
				lw.editConfig(t, "group_id: "+lw.groupID, "group_id: "+g.ID)
			},
			code: exitFail,
			want: func(*liveWorld) []string {
				return []string{
					`FAIL  okta: group 00gEVERYONE000000001 exists (target prod/prod-admin): it is Okta's built-in group "Everyone" (type BUILT_IN): every user of the org is in it, so it cannot be granted for a time`,
					"      fix: make the target an Okta group (type OKTA_GROUP) that holds only the access to grant, never a built-in group such as Everyone",
				}
			},
			last: "1 check(s) failed",
		},
		{
			name: "an app group as a target",
			setup: func(t *testing.T, lw *liveWorld) {
				g := lw.okta.AddGroup(oktatest.Group{ID: "00gAPPGROUP000000001", Name: "ad-admins", Type: "APP_GROUP"})
				lw.editConfig(t, "group_id: "+lw.groupID, "group_id: "+g.ID)
			},
			code: exitOK,
			want: func(*liveWorld) []string {
				return []string{
					`warn  okta: group 00gAPPGROUP000000001 exists (target prod/prod-admin): it is an app group "ad-admins" (type APP_GROUP): its members come from an application, which may refuse or undo symbot's changes`,
					"      fix: prefer an Okta group (type OKTA_GROUP) pushed to the application; keep the app group only if Okta lets its API token manage the membership",
				}
			},
			last: "all checks passed",
		},
		{
			name: "one group, two flows, different rules",
			setup: func(t *testing.T, lw *liveWorld) {
				writeFile(t, lw.cfgPath, secondFlow(lw, demoAlice, "8h", "    allow_self_approval: true\n"))
			},
			code: exitOK,
			want: func(lw *liveWorld) []string {
				return []string{
					"ok    okta: group " + lw.groupID + " exists (target prod/prod-admin)",
					"warn  config: okta group " + lw.groupID + " has the same rules in every flow that grants it (prod/prod-admin, ops/admin): flows prod and ops grant it with different approvers, durations, self-approval",
					"      fix: give both flows the same rules for the group, or grant it from one flow only; the laxer flow decides who gets it",
				}
			},
			last: "all checks passed",
		},
		{
			name: "one group, two flows, same flow rules, a target override differs",
			setup: func(t *testing.T, lw *liveWorld) {
				writeFile(t, lw.cfgPath, secondFlow(lw, demoBob, "1h", "")+"        approvals_required: 2\n        allow_guests: true\n")
			},
			code: exitOK,
			want: func(lw *liveWorld) []string {
				return []string{
					"ok    okta: group " + lw.groupID + " exists (target prod/prod-admin)",
					"warn  config: okta group " + lw.groupID + " has the same rules in every flow that grants it (prod/prod-admin, ops/admin): flows prod and ops grant it with different approvals required, guest access",
					"      fix: give both flows the same rules for the group, or grant it from one flow only; the laxer flow decides who gets it",
				}
			},
			last: "all checks passed",
		},
		{
			name: "one group, two flows, same rules",
			setup: func(t *testing.T, lw *liveWorld) {
				writeFile(t, lw.cfgPath, secondFlow(lw, demoBob, "1h", ""))
			},
			code: exitOK,
			want: func(lw *liveWorld) []string {
				return []string{"ok    okta: group " + lw.groupID + " exists (target prod/prod-admin)"}
			},
			last: "all checks passed",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lw := MustLiveWorld(t)
			tt.setup(t, lw)
			code, out := lw.checkLive(t)
			if code != tt.code {
				t.Errorf("exit: got %d, want %d\n%s", code, tt.code, out)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			want := tt.want(lw)
			i := indexPrefix(lines, want[0])
			if i < 0 || i+len(want) > len(lines) || strings.Join(lines[i:i+len(want)], "\n") != strings.Join(want, "\n") {
				t.Errorf("lines:\n%s\nwant among them:\n%s", out, strings.Join(want, "\n"))
			}
			warns := 0
			for _, l := range lines {
				if strings.HasPrefix(l, "warn  ") {
					warns++
				}
			}
			if wantWarns := strings.Count(strings.Join(want, "\n"), "warn  "); warns != wantWarns {
				t.Errorf("%d warn lines, want %d:\n%s", warns, wantWarns, out)
			}
			if got := lines[len(lines)-1]; got != tt.last {
				t.Errorf("last line: got %q, want %q", got, tt.last)
			}
		})
	}
}
