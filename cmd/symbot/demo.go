package main

// `symbot demo`: the simulated world (Slack, Okta and AWS simulators on
// 127.0.0.1, seeded with one small company) and the scripted walk through
// one request, approval, grant, warning and expiry; the e2e test reuses it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/awsauth/awstest"
	"github.com/symbot/symbot/bot/slacktest"
	"github.com/symbot/symbot/okta/oktatest"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// world is the three simulators seeded with one small company: the demo
// and the end-to-end test run a real symbot against it.
type world struct {
	slack *slacktest.Server
	okta  *oktatest.Server
	aws   *awstest.Server
	dir   string // temporary directory: config, store, admin socket

	aliceOkta string // Okta user id of the requester
	groupID   string // the Okta group the demo grants
}

// Demo people, channel, role and secret.
const (
	demoAlice      = "U0ALICE001"
	demoBob        = "U0BOB00002"
	demoMallory    = "U0MALLORY3"
	demoChannel    = "C0ACCESS01"
	demoErrors     = "C0SYMERRS1"
	demoRoleARN    = "arn:aws:iam::123456789012:role/SymRuntimeConnector"
	demoExternalID = "symbot-demo-7f3c9a2e"
	demoSecret     = "symbot/okta-api-token"
	demoBaseKey    = "AKIADEMOSYMBOTBASE01"
)

// newWorld starts and seeds the simulators, in dir.
func newWorld(dir string) (*world, error) {
	w := &world{dir: dir}
	w.slack = slacktest.NewServer()
	w.okta = oktatest.NewServer()
	w.aws = awstest.NewServer()

	for _, u := range []slacktest.User{
		{ID: demoAlice, Name: "alice", RealName: "Alice Example", Email: "alice@example.com"},
		{ID: demoBob, Name: "bob", RealName: "Bob Approver", Email: "bob@example.com"},
		{ID: demoMallory, Name: "mallory", RealName: "Mallory Bystander", Email: "mallory@example.com"},
	} {
		w.slack.AddUser(u)
	}
	w.slack.AddChannel(slacktest.Channel{ID: demoChannel, Name: "access-requests", Members: []string{demoAlice, demoBob, demoMallory}, BotIsMember: true})
	w.slack.AddChannel(slacktest.Channel{ID: demoErrors, Name: "symbot-errors", Members: []string{demoBob}, BotIsMember: true})

	w.aliceOkta = w.okta.AddUser(oktatest.User{Login: "alice@example.com", FirstName: "Alice", LastName: "Example"}).ID
	w.okta.AddUser(oktatest.User{Login: "bob@example.com", FirstName: "Bob", LastName: "Approver"})
	w.okta.AddUser(oktatest.User{Login: "mallory@example.com", FirstName: "Mallory", LastName: "Bystander"})
	w.groupID = w.okta.AddGroup(oktatest.Group{Name: "prod-admin", Description: "Production administrators"}).ID

	w.aws.AddUser(demoBaseKey, "demo-base-secret-key")
	w.aws.AddRole(awstest.Role{ARN: demoRoleARN, ExternalID: demoExternalID, TrustedPrincipals: []string{demoBaseKey}})
	w.aws.PutSecret(demoSecret, fmt.Sprintf(`{"okta_api_token": %q}`, w.okta.Token()))
	w.aws.AllowSecret(demoRoleARN, demoSecret)
	for _, f := range []string{"aws-config", "aws-credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			w.close()
			return nil, err
		}
	}
	return w, nil
}

func (w *world) close() {
	w.slack.Close()
	w.okta.Close()
	w.aws.Close()
}

// env is the environment a symbot process needs to reach the simulators,
// as the standard variables every AWS tool and symbot read.
func (w *world) env() map[string]string {
	return map[string]string{
		"SLACK_BOT_TOKEN":                  w.slack.BotToken,
		"SLACK_APP_TOKEN":                  w.slack.AppToken,
		"SLACK_API_URL":                    w.slack.APIURL(),
		"AWS_ACCESS_KEY_ID":                demoBaseKey,
		"AWS_SECRET_ACCESS_KEY":            "demo-base-secret-key",
		"AWS_SESSION_TOKEN":                "",
		"AWS_PROFILE":                      "",
		"AWS_REGION":                       "us-east-1",
		"AWS_ENDPOINT_URL":                 "",
		"AWS_ENDPOINT_URL_STS":             w.aws.URL(),
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": w.aws.URL(),
		"AWS_EC2_METADATA_DISABLED":        "true",
		"AWS_CONFIG_FILE":                  filepath.Join(w.dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE":      filepath.Join(w.dir, "aws-credentials"),
		"OKTA_CLIENT_TOKEN":                "",
		"OKTA_CLIENT_ORGURL":               "",
	}
}

// config writes a symbot.yml for the world with the given access duration
// and expiry warning, and returns its path.
func (w *world) config(duration, warning string) (string, error) {
	yml := fmt.Sprintf(`# symbot demo configuration (simulators on 127.0.0.1)
slack:
  command: /sym
  errors_channel: %s
aws:
  region: us-east-1
  role_arn: %s
  external_id: %s
  session_duration: 1h
okta:
  org_url: %s
  token_secret: %s
  token_json_key: okta_api_token
store:
  path: %s
admin:
  socket: %s
log:
  level: %s
flows:
  - name: prod
    label: Production
    channel: %s
    approvers:
      users: [%s]
    durations: [%s]
    expiry_warning: %s
    targets:
      - name: prod-admin
        label: Production admin (Okta group prod-admin)
        group_id: %s
`, demoErrors, demoRoleARN, demoExternalID, w.okta.URL(), demoSecret,
		filepath.Join(w.dir, "symbot.db"), filepath.Join(w.dir, "admin.sock"),
		"warn", demoChannel, demoBob, duration, warning, w.groupID)
	path := filepath.Join(w.dir, "symbot.yml")
	return path, os.WriteFile(path, []byte(yml), 0o600)
}

// transcript prints what each party saw and did, with the time since start.
type transcript struct {
	w     io.Writer
	start time.Time
}

func (t *transcript) say(who, format string, args ...any) {
	msg := rendered(fmt.Sprintf(format, args...))
	lines := strings.Split(strings.TrimRight(msg, "\n"), "\n")
	fmt.Fprintf(t.w, "[%5.1fs] %-8s %s\n", time.Since(t.start).Seconds(), who, lines[0])
	for _, l := range lines[1:] {
		fmt.Fprintf(t.w, "%s%s\n", strings.Repeat(" ", 18), l)
	}
}

// demoCmd is `symbot demo`: the whole flow against built-in simulators.
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", "", stderr)
	duration := fs.Duration("duration", 12*time.Second, "how long the demo grant lasts")
	warning := fs.Duration("warning", 6*time.Second, "expiry warning before the end")
	verbose := fs.Bool("verbose", false, "show symbot's own log lines")
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	if *warning >= *duration {
		fmt.Fprintf(stderr, "symbot demo: --warning %s is not shorter than --duration %s: lower --warning or raise --duration\n", *warning, *duration)
		return exitUsage
	}
	if err := runDemo(ctx, stdout, stderr, *duration, *warning, *verbose, demoHooks{}); err != nil {
		fmt.Fprintf(stdout, "\nDEMO FAILED: %v\n", err)
		return exitFail
	}
	return exitOK
}

// demoHooks are the demo's test seam: a test changes the world the demo
// runs in, to prove that the demo fails when a step is missing or replaced.
type demoHooks struct {
	tune       func(*config.Config)                                  // changes the config before symbot starts
	afterGrant func(ctx context.Context, d *daemon, id string) error // runs once the grant is in effect
}

// demoEvent is what one step of the demo waits for, by kind: an entry of
// the audit trail, which names every state change and every job done, a
// DM by its event ("warning to U..."), so that one DM cannot pass for
// another.
type demoEvent struct {
	what   string // in words, for the failure
	action string // the audit action, like "job:notify:ok"
	detail string // how its detail starts, like "warning to U0ALICE001"
}

func (ev demoEvent) matches(e symbot.AuditEntry) bool {
	return e.Action == ev.action && strings.HasPrefix(e.Detail, ev.detail)
}

// demoPath are the states the demo's request goes through; reaching
// another (revoked, failed, ...) fails the step being waited for at once.
var demoPath = map[string]bool{"state:approved": true, "state:active": true, "state:expired": true}

func runDemo(ctx context.Context, stdout, stderr io.Writer, duration, warning time.Duration, verbose bool, hooks demoHooks) error {
	dir, err := os.MkdirTemp("", "symbot-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	w, err := newWorld(dir)
	if err != nil {
		return err
	}
	defer w.close()
	for k, v := range w.env() {
		if v == "" {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, v)
		}
	}
	cfgPath, err := w.config(duration.String(), warning.String())
	if err != nil {
		return err
	}
	t := &transcript{w: stdout, start: time.Now()}
	fmt.Fprintln(stdout, "symbot demo: a real symbot against Slack, Okta and AWS simulators on 127.0.0.1")
	fmt.Fprintf(stdout, "  slack %s   okta %s   aws %s\n", w.slack.APIURL(), w.okta.URL(), w.aws.URL())
	fmt.Fprintf(stdout, "  config %s (a temporary store; %s access, warning %s before the end)\n\n", cfgPath, duration, warning)

	cfg, err := config.Load(cfgPath, os.Getenv)
	if err != nil {
		return fmt.Errorf("load demo config: %w", err)
	}
	if err := cfg.RequireTokens(); err != nil {
		return err
	}
	if hooks.tune != nil {
		hooks.tune(cfg)
	}
	logOut := io.Discard
	if verbose {
		logOut = stderr
		cfg.Log.Level = "debug"
	}
	d, err := openDaemon(ctx, cfg, newLogger(cfg.Log, logOut))
	if err != nil {
		return fmt.Errorf("start symbot: %w", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- d.run(runCtx) }()
	defer func() {
		stop()
		<-runErr
	}()

	step := func(what string, timeout time.Duration, cond func() bool) error {
		sctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := w.slack.WaitFor(sctx, cond); err != nil {
			return fmt.Errorf("%s: did not happen within %s", what, timeout)
		}
		return nil
	}
	wait := 10 * time.Second
	// expect waits for the event ev. It fails at once when the request
	// leaves the demo's path, or when one of the events that must come
	// after ev comes first: then ev is missing, and the error says what
	// came instead.
	var last symbot.AuditEntry // the entry of the last event expect saw
	expect := func(ev demoEvent, timeout time.Duration, after ...demoEvent) error {
		var instead string
		var found bool
		err := step(ev.what, timeout, func() bool {
			es, err := d.engine.AuditSince(ctx, time.Time{})
			if err != nil {
				return false
			}
			// The trail is in order: whichever comes first decides.
			for _, e := range es {
				if ev.matches(e) {
					last, found = e, true
					return true
				}
				if strings.HasPrefix(e.Action, "state:") && !demoPath[e.Action] {
					instead = fmt.Sprintf("the request went to %s instead (%s)", strings.TrimPrefix(e.Action, "state:"), e.Detail)
					return true
				}
				for _, a := range after {
					if a.matches(e) {
						instead = a.what + " came first"
						return true
					}
				}
			}
			return false
		})
		switch {
		case found:
			return nil
		case instead != "":
			return fmt.Errorf("%s: did not happen: %s", ev.what, instead)
		}
		return err
	}
	var (
		evActive   = demoEvent{"the grant (state active)", "state:active", ""}
		evGrantDM  = demoEvent{"the access-granted DM to alice", "job:notify:ok", "granted to " + demoAlice}
		evWarning  = demoEvent{"the expiry warning DM to alice", "job:notify:ok", "warning to " + demoAlice}
		evExpired  = demoEvent{"the expiry (state expired)", "state:expired", ""}
		evRevoke   = demoEvent{"the Okta removal job", "job:revoke:ok", ""}
		evRemoveDM = demoEvent{"the access-removed DM to alice", "job:notify:ok", "removed to " + demoAlice}
		evUpdated  = demoEvent{"the approval message and thread updated for the removal", "job:update:ok", "removed"}
	)

	if err := step("symbot connects over Socket Mode", wait, d.bot.Connected); err != nil {
		return err
	}
	t.say("symbot", "connected to Slack over Socket Mode (%d connection)", w.slack.Connections())

	reason := "Investigating INC-4211: checkout errors. <!channel> please look"
	cmd := "req prod-admin " + duration.String() + " " + reason
	t.say("alice", "types: /sym %s", cmd)
	ack, err := w.slack.SlashCommand(demoAlice, "/sym", cmd, demoChannel)
	if err != nil {
		return fmt.Errorf("slash command: %w", err)
	}
	t.say("slack", "symbot acknowledged the command in %s", ack.Latency.Round(time.Microsecond))
	var ref slacktest.MessageRef
	if err := step("the approval message is posted", wait, func() bool {
		var ok bool
		ref, ok = w.slack.FindButton(demoChannel, "sym_approve")
		return ok
	}); err != nil {
		return err
	}
	msg := latest(w.slack.Messages(demoChannel), ref.TS)
	t.say("#access", "symbot posts:\n%s", shown(msg))
	if strings.Contains(shown(msg), "<!channel>") {
		return errors.New("the reason was not escaped: <!channel> would ping the channel")
	}
	t.say("#access", "(symbot sent the reason's <!channel> escaped, as &amp;lt;!channel&amp;gt;: Slack shows it as text and pings nobody)")

	t.say("mallory", "clicks Approve (mallory is not an approver)")
	if _, err := w.slack.ClickButton(demoMallory, ref, "sym_approve"); err != nil {
		return fmt.Errorf("mallory's click: %w", err)
	}
	if err := step("mallory is told no", wait, func() bool { return len(w.slack.Ephemerals(demoMallory)) > 0 }); err != nil {
		return err
	}
	eph := w.slack.Ephemerals(demoMallory)
	t.say("mallory", "sees (only to her): %s", eph[len(eph)-1].Text)
	if w.okta.IsMember(w.groupID, w.aliceOkta) {
		return errors.New("access was granted after a refused click")
	}

	t.say("bob", "clicks Approve")
	if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
		return fmt.Errorf("bob's click: %w", err)
	}
	if err := step("alice is added to the Okta group", wait, func() bool { return w.okta.IsMember(w.groupID, w.aliceOkta) }); err != nil {
		return err
	}
	if err := expect(evActive, wait); err != nil {
		return err
	}
	id := last.RequestID
	for _, c := range w.aws.Calls() {
		switch {
		case c.Action == "AssumeRole":
			t.say("aws", "sts:AssumeRole %s with ExternalId %q as %s -> %s", c.RoleArn, c.ExternalID, c.Caller, orOK(c.Err))
		case c.Action == "GetSecretValue":
			t.say("aws", "secretsmanager:GetSecretValue %s as %s -> %s (the token is never logged)", c.SecretID, c.Caller, orOK(c.Err))
		}
	}
	if n, _ := w.aws.CountCalls("AssumeRole"); n == 0 {
		return errors.New("no AssumeRole call reached AWS")
	}
	for _, c := range w.okta.Calls() {
		if c.Method == "PUT" {
			t.say("okta", "PUT %s -> %d (alice added to prod-admin)", c.Path, c.Status)
		}
	}
	if err := expect(evGrantDM, wait); err != nil {
		return err
	}
	// showDMs shows alice's DMs from the seen-th on and returns how many
	// she has; a DM event (checked above by kind) must have reached Slack.
	showDMs := func(seen int) (int, error) {
		dms := w.slack.DMs(demoAlice)
		if len(dms) <= seen {
			return seen, fmt.Errorf("%s: recorded as sent, but no new DM reached alice in Slack", last.Detail)
		}
		for _, m := range dms[seen:] {
			t.say("alice", "DM from symbot:\n%s", shown(m))
		}
		return len(dms), nil
	}
	seen, err := showDMs(0)
	if err != nil {
		return err
	}
	msg = latest(w.slack.Messages(demoChannel), ref.TS)
	t.say("#access", "approval message now reads:\n%s", shown(msg))
	if hooks.afterGrant != nil {
		if err := hooks.afterGrant(ctx, d, id); err != nil {
			return err
		}
	}

	// The warning comes before the end of the grant: an expiry (or any
	// other end) first means it is missing, whatever DMs came.
	if err := expect(evWarning, duration+wait, evExpired, evRevoke, evRemoveDM); err != nil {
		return err
	}
	if seen, err = showDMs(seen); err != nil {
		return err
	}

	if err := expect(evExpired, duration+wait); err != nil {
		return err
	}
	if err := expect(evRevoke, wait); err != nil {
		return err
	}
	if w.okta.IsMember(w.groupID, w.aliceOkta) {
		return errors.New("the Okta removal job is done but alice is still in the Okta group")
	}
	for _, c := range w.okta.Calls() {
		if c.Method == "DELETE" {
			t.say("okta", "DELETE %s -> %d (alice removed from prod-admin)", c.Path, c.Status)
		}
	}
	if err := expect(evRemoveDM, wait); err != nil {
		return err
	}
	if _, err := showDMs(seen); err != nil {
		return err
	}
	if err := expect(evUpdated, wait); err != nil {
		return err
	}
	if m := latest(w.slack.Messages(demoChannel), ref.TS); m.Updates == 0 || strings.Contains(string(m.Blocks), "sym_revoke") || strings.Contains(string(m.Blocks), "sym_approve") {
		return errors.New("the approval message shows the end: it still has buttons after its update for the removal")
	}
	msg = latest(w.slack.Messages(demoChannel), ref.TS)
	t.say("#access", "approval message finally reads:\n%s", shown(msg))
	for _, m := range w.slack.Thread(demoChannel, ref.TS) {
		if m.TS != ref.TS {
			t.say("#access", "  thread: %s", m.Text)
		}
	}

	adds, removes := w.okta.CountCalls("PUT", "/api/v1/groups/"), w.okta.CountCalls("DELETE", "/api/v1/groups/")
	if adds != 1 || removes != 1 {
		return fmt.Errorf("okta saw %d adds and %d removes, want exactly one of each", adds, removes)
	}
	admin := admin.NewClient(cfg.Admin.Socket)
	v, err := admin.VerifyAudit(ctx)
	if err != nil {
		return fmt.Errorf("audit verify over the admin socket: %w", err)
	}
	if !v.OK {
		return fmt.Errorf("audit chain broken: %+v", v)
	}
	t.say("admin", "symbot audit verify: %d entries, hash chain intact", v.Entries)
	fmt.Fprintln(stdout, "\ndemo passed: request, refused click, approval, role chain, secret, Okta add, warning, expiry, Okta remove and DMs all happened")
	return nil
}

func orOK(errCode string) string {
	if errCode == "" {
		return "ok"
	}
	return errCode
}

// latest returns the message with ts from msgs (the channel history).
func latest(msgs []slacktest.Message, ts string) slacktest.Message {
	for _, m := range msgs {
		if m.TS == ts {
			return m
		}
	}
	return slacktest.Message{}
}

// shown renders a message as people see it: the text of its blocks, with
// buttons as [label]; the fallback text when it has no blocks.
func shown(m slacktest.Message) string {
	var blocks []struct {
		Type     string                  `json:"type"`
		Text     *struct{ Text string }  `json:"text"`
		Fields   []struct{ Text string } `json:"fields"`
		Elements []struct {
			Type string          `json:"type"`
			Text json.RawMessage `json:"text"`
		} `json:"elements"`
	}
	if len(m.Blocks) == 0 || json.Unmarshal(m.Blocks, &blocks) != nil {
		return m.Text
	}
	var lines []string
	for _, b := range blocks {
		switch b.Type {
		case "section", "header":
			if b.Text != nil {
				lines = append(lines, b.Text.Text)
			}
			for _, f := range b.Fields {
				lines = append(lines, f.Text)
			}
		case "context":
			for _, e := range b.Elements {
				var s string
				if json.Unmarshal(e.Text, &s) == nil {
					lines = append(lines, s)
				}
			}
		case "actions":
			var labels []string
			for _, e := range b.Elements {
				var t struct{ Text string }
				if e.Type == "button" && json.Unmarshal(e.Text, &t) == nil {
					labels = append(labels, "["+t.Text+"]")
				}
			}
			lines = append(lines, strings.Join(labels, " "))
		}
	}
	if len(lines) == 0 {
		return m.Text
	}
	return strings.Join(lines, "\n")
}

var (
	slackDate    = regexp.MustCompile(`<!date\^\d+\^[^|>]*\|([^>]*)>`)
	slackMention = regexp.MustCompile(`<@(U[A-Z0-9]+)>`)
	demoNames    = map[string]string{demoAlice: "@alice", demoBob: "@bob", demoMallory: "@mallory"}
)

// rendered shows Slack mrkdwn roughly as the Slack client displays it:
// dates in words, mentions as names, escaped text as the characters people
// see (so an escaped <!channel> reads as plain text, which pings nobody).
func rendered(s string) string {
	s = slackDate.ReplaceAllString(s, "$1")
	s = slackMention.ReplaceAllStringFunc(s, func(m string) string {
		if n, ok := demoNames[m[2:len(m)-1]]; ok {
			return n
		}
		return m
	})
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}
