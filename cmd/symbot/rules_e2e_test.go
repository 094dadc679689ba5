package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/symbot/symbot/bot/slacktest"
	"github.com/symbot/symbot/okta/oktatest"
	"github.com/symbot/symbot/pagerduty/pdtest"
)

const (
	demoCarol  = "U0CAROL004"
	pdSecret   = "symbot/pagerduty"
	pdSchedule = "PSRE001"
)

// rulesWorld is the demo world plus PagerDuty (alice is on call in
// PSRE001, through policy PPROD01), a second target, carol, and a config
// whose flow has three rules.
type rulesWorld struct {
	*world
	pd        *pdtest.Server
	roGroup   string
	logsGroup string
	cfgPath   string
	carolOkta string
}

// write replaces the world's config file with yml.
func (rw *rulesWorld) write(t *testing.T, yml string) {
	t.Helper()
	if err := os.WriteFile(rw.cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs a daemon on the world's config, its log kept, and waits for
// it to connect; it returns the daemon, the waiter on its world and the log.
func (rw *rulesWorld) start(t *testing.T) (*daemon, func(what string, cond func() bool), *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	d := mustOpenDaemon(t, rw.world, rw.cfgPath, nil)
	d.log = newLogger(d.cfg.Log, logs)
	runDaemon(t, d)
	wait := waiter(t, rw.world, logs)
	wait("symbot to connect", d.bot.Connected)
	return d, wait, logs
}

// config returns the text of the world's config file.
func (rw *rulesWorld) config(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(rw.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustRulesWorld(t *testing.T) *rulesWorld {
	t.Helper()
	w, cfgPath := mustWorld(t, "1h", "0")
	pd := pdtest.New("pd-secret-token-42")
	t.Cleanup(pd.Close)
	pd.AddUser("PALICE1", "Alice", "alice@example.com")
	pd.AddUser("PCAROL1", "Carol", "carol@example.com")
	pd.SetSchedule(pdSchedule, "SRE primary", "PALICE1")
	pd.AddEscalationPolicy("PPROD01", "Production", []string{pdSchedule})
	w.aws.PutSecret(pdSecret, fmt.Sprintf(`{"token": %q}`, pd.Token()))
	w.aws.AllowSecret(demoRoleARN, pdSecret)
	w.slack.AddUser(slacktest.User{ID: demoCarol, Name: "carol", RealName: "Carol Example", Email: "carol@example.com"})
	rwCarol := w.okta.AddUser(oktatest.User{Login: "carol@example.com", FirstName: "Carol", LastName: "Example"}).ID
	ro := w.okta.AddGroup(oktatest.Group{Name: "prod-ro", Description: "Production read-only"}).ID
	logsGroup := w.okta.AddGroup(oktatest.Group{Name: "prod-logs", Description: "Production logs"}).ID
	sre := w.okta.AddGroup(oktatest.Group{Name: "sre", Description: "Site reliability engineers"}).ID
	w.okta.AddMember(sre, rwCarol)

	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	yml := edit(t, string(b), "flows:\n", fmt.Sprintf(`pagerduty:
  token_secret: %s
  token_json_key: token
  api_url: %s
  schedules: [%s]
  cache_ttl: 0s
flows:
`, pdSecret, pd.URL(), pdSchedule))
	yml = edit(t, yml, "    durations: [1h]\n", fmt.Sprintf(`    durations: [1h, 4h]
    rules:
      - name: no-weekend-work
        when: request.reason.contains("weekend")
        refuse: "Weekend work needs break-glass, not a request"
      - name: two-for-long
        when: request.duration > duration("1h")
        require:
          approvals: 2
          approvers:
            users: [%s, %s]
      - name: on-call
        when: requester.on_call
        approve: true
`, demoBob, demoMallory))
	yml += fmt.Sprintf(`      - name: prod-ro
        group_id: %s
      - name: prod-logs
        group_id: %s
        rules:
          - name: sre-members
            when: '%q in requester.groups'
            approve: true
`, ro, logsGroup, sre)
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return &rulesWorld{world: w, pd: pd, roGroup: ro, logsGroup: logsGroup, cfgPath: cfgPath, carolOkta: rwCarol}
}

// replies is everything Slack showed user in answer to their commands.
func replies(t *testing.T, w *world, user string, acks ...slacktest.Ack) string {
	var b strings.Builder
	for _, a := range acks {
		b.Write(a.Payload)
	}
	for _, m := range w.slack.Ephemerals(user) {
		b.WriteString(m.Text)
		if m.Blocks != nil {
			b.WriteString(blockTexts(t, m.Blocks))
		}
	}
	return b.String()
}

func messageWith(w *world, text string) (slacktest.Message, bool) {
	for _, m := range w.slack.Messages(demoChannel) {
		if strings.Contains(m.Text, text) {
			return m, true
		}
	}
	return slacktest.Message{}, false
}

// TestRulesThroughTheBot drives the real bot (slacktest), Okta (oktatest),
// AWS (awstest: the PagerDuty token's secret) and PagerDuty (pdtest):
// an on-call requester is approved by the rule, a refusal shows the rule's
// message, a long request needs the rule's two approvers, and with
// PagerDuty down the request waits for manual approval with a note.
func TestRulesThroughTheBot(t *testing.T) {
	rw := mustRulesWorld(t)
	w := rw.world
	_, wait, logs := rw.start(t)

	t.Run("on-call rule approves", func(t *testing.T) {
		if _, err := w.slack.SlashCommand(demoAlice, "/sym", `req prod/prod-admin 1h "deploy the fix"`, demoChannel); err != nil {
			t.Fatal(err)
		}
		wait("the grant", func() bool { return w.okta.IsMember(w.groupID, w.aliceOkta) })
		var msg slacktest.Message
		wait("the message naming the rule", func() bool {
			m, ok := messageWith(w, "deploy the fix")
			if !ok {
				for _, m2 := range w.slack.Messages(demoChannel) {
					if strings.Contains(blockTexts(t, m2.Blocks), "deploy the fix") {
						m, ok = m2, true
					}
				}
			}
			msg = m
			return ok && strings.Contains(blockTexts(t, m.Blocks), "approved by rule `on-call`")
		})
		if txt := blockTexts(t, msg.Blocks); strings.Contains(txt, "<@rule") || strings.Contains(txt, "sym_approve") {
			t.Errorf("the rule is rendered as a person, or buttons remain: %s", txt)
		}
		wait("the DM naming the rule", func() bool {
			for _, m := range w.slack.DMs(demoAlice) {
				if strings.Contains(m.Text+blockTexts(t, m.Blocks), "approved by rule `on-call`") {
					return true
				}
			}
			return false
		})
		out, code := configCLI(t, rw.cfgPath)("audit", "--since", "1h")
		if code != 0 || !strings.Contains(out, "rule:on-call") {
			t.Errorf("audit (exit %d) does not record rule:on-call as the approver:\n%s", code, out)
		}
	})

	t.Run("refuse rule shows its message", func(t *testing.T) {
		ack, err := w.slack.SlashCommand(demoMallory, "/sym", `req prod/prod-admin 1h "weekend maintenance"`, demoChannel)
		if err != nil {
			t.Fatal(err)
		}
		wait("the refusal", func() bool {
			return strings.Contains(replies(t, w, demoMallory, ack), "Weekend work needs break-glass, not a request")
		})
		if _, ok := messageWith(w, "weekend maintenance"); ok {
			t.Error("a refused request was posted for approval")
		}
	})

	t.Run("require rule needs its two approvers", func(t *testing.T) {
		ref := mustApprovalMessage(t, w, wait, demoCarol, `req prod/prod-admin 4h "database migration"`)
		m, _ := w.slack.Message(ref)
		if txt := blockTexts(t, m.Blocks); !strings.Contains(txt, "Rule `two-for-long` requires 2 approvals from <@"+demoBob+">, <@"+demoMallory+">") || !strings.Contains(txt, "0 of 2") {
			t.Fatalf("approval message does not show the rule's requirement:\n%s", txt)
		}
		if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
			t.Fatal(err)
		}
		wait("one approval of two", func() bool {
			m, _ := w.slack.Message(ref)
			return strings.Contains(blockTexts(t, m.Blocks), "1 of 2")
		})
		if _, err := w.slack.ClickButton(demoMallory, ref, "sym_approve"); err != nil {
			t.Fatal(err)
		}
		wait("carol's grant after the second approval", func() bool { return w.okta.IsMember(w.groupID, rw.carolOkta) })
	})

	t.Run("target rule on Okta groups replaces the flow's", func(t *testing.T) {
		// carol is in sre: approved by the target's rule, without PagerDuty.
		calls := len(rw.pd.Calls())
		if _, err := w.slack.SlashCommand(demoCarol, "/sym", `req prod/prod-logs 1h "read the logs"`, demoChannel); err != nil {
			t.Fatal(err)
		}
		wait("carol's logs grant", func() bool { return w.okta.IsMember(rw.logsGroup, rw.carolOkta) })
		if got := len(rw.pd.Calls()); got != calls {
			t.Errorf("PagerDuty asked %d times for a target whose rules do not read on-call", got-calls)
		}
		// mallory is not: no rule matches, the flow's approvers decide.
		ref := mustApprovalMessage(t, w, wait, demoMallory, `req prod/prod-logs 1h "curious"`)
		m, _ := w.slack.Message(ref)
		if txt := blockTexts(t, m.Blocks); !strings.Contains(txt, "Waiting for approval") {
			t.Fatalf("mallory's request is not waiting for approval:\n%s", txt)
		}
	})

	t.Run("PagerDuty down means manual approval with a note", func(t *testing.T) {
		rw.pd.SetDown(503)
		if _, err := w.slack.SlashCommand(demoAlice, "/sym", `req prod/prod-ro 1h "tail the ro logs"`, demoChannel); err != nil {
			t.Fatal(err)
		}
		var m slacktest.Message
		wait("the approval message", func() bool {
			for _, x := range w.slack.Messages(demoChannel) {
				if txt := blockTexts(t, x.Blocks); strings.Contains(txt, "tail the ro logs") && strings.Contains(txt, "Approve") {
					m = x
					return true
				}
			}
			return false
		})
		ref := m.Ref()
		txt := blockTexts(t, m.Blocks)
		if !strings.Contains(txt, "rule on-call could not be evaluated") || !strings.Contains(txt, "503") || !strings.Contains(txt, "manual approval needed") {
			t.Fatalf("approval message lacks the note saying why:\n%s", txt)
		}
		if w.okta.IsMember(rw.roGroup, w.aliceOkta) {
			t.Fatal("granted while PagerDuty was down")
		}
		if strings.Contains(txt, rw.pd.Token()) || strings.Contains(logs.String(), rw.pd.Token()) {
			t.Fatal("the PagerDuty token leaked into Slack or the log")
		}
		rw.pd.SetDown(0)
		if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
			t.Fatal(err)
		}
		wait("the manual grant", func() bool { return w.okta.IsMember(rw.roGroup, w.aliceOkta) })
	})
}

// TestExplain: symbot explain shows each rule, what it saw and the
// decision, offline with --on-call, or asking PagerDuty (through the AWS
// chain) when a rule reached needs it.
func TestExplain(t *testing.T) {
	rw := mustRulesWorld(t)
	for k, v := range rw.env() {
		t.Setenv(k, v)
	}
	cli := configCLI(t, rw.cfgPath)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"offline, on call", []string{"--as", "carol@example.com", "--duration", "1h", "--reason", "deploy", "--on-call", "all"}, []string{
			"1.  no-weekend-work  no     request.reason.contains(\"weekend\")",
			"3.  on-call          MATCH  requester.on_call",
			"requester.on_call=true",
			`decision: approved at once by rule on-call (recorded as the approver "rule:on-call")`,
		}},
		{"refused", []string{"--as", "carol@example.com", "--duration", "1h", "--reason", "weekend fix", "--on-call", "none"}, []string{
			"decision: refused by rule no-weekend-work: Weekend work needs break-glass, not a request",
			"-   two-for-long: not reached",
		}},
		{"require", []string{"--as", "carol@example.com", "--duration", "4h", "--reason", "migration", "--on-call", "none"}, []string{
			"decision: rule two-for-long requires 2 approval(s) from " + demoBob + ", " + demoMallory,
		}},
		{"live PagerDuty", []string{"--as", "alice@example.com", "--duration", "1h", "--reason", "deploy", "--at", "2026-12-05 10:00", "--tz", "Europe/Berlin"}, []string{
			"at Sat 2026-12-05 10:00 CET (2026-12-05T09:00:00Z)",
			"asked live: PagerDuty",
			"decision: approved at once by rule on-call",
		}},
		{"nobody matched", []string{"--as", "carol@example.com", "--duration", "1h", "--reason", "deploy"}, []string{
			"requester.on_call=false",
			"decision: no rule matched: manual approval (1 approval(s) from " + demoBob + ")",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := cli(append([]string{"explain", "prod/prod-admin"}, tc.args...)...)
			t.Log(out)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	rw.pd.SetDown(503)
	out, code := cli("explain", "prod/prod-admin", "--as", "alice@example.com", "--duration", "1h", "--reason", "deploy")
	if code != 0 || !strings.Contains(out, "ERROR") || !strings.Contains(out, "decision: manual approval (1 approval(s) from "+demoBob+"): rule on-call could not be evaluated") {
		t.Fatalf("PagerDuty down: exit %d:\n%s", code, out)
	}
	if out, code := cli("explain", "prod/nope", "--as", "a@example.com", "--duration", "1h", "--reason", "x"); code != exitUsage || !strings.Contains(out, "no target \"prod/nope\"; the targets are: prod/prod-admin, prod/prod-ro") {
		t.Fatalf("unknown target: exit %d:\n%s", code, out)
	}
}

// TestCheckReportsRuleTypeErrorsAtFileLine: symbot check compiles the rules
// and names the file and line of an expression that does not type-check.
func TestCheckReportsRuleTypeErrorsAtFileLine(t *testing.T) {
	rw := mustRulesWorld(t)
	b := rw.config(t)
	lines := strings.Split(b, "\n")
	line := 0
	for i, l := range lines {
		if strings.Contains(l, `when: request.duration > duration("1h")`) {
			line = i + 1
			lines[i] = `        when: request.duration > 2`
		}
	}
	rw.write(t, strings.Join(lines, "\n"))
	for k, v := range rw.env() {
		t.Setenv(k, v)
	}
	out, code := configCLI(t, rw.cfgPath)("check")
	want := fmt.Sprintf("symbot.yml:%d: flows[0].rules[1].when: found no matching overload for '_>_' applied to '(duration, int)'", line)
	if code == 0 || !strings.Contains(out, want) {
		t.Fatalf("check (exit %d) lacks %q:\n%s", code, want, out)
	}
}

// TestCheckLivePagerDuty: check --live reads the PagerDuty key through the
// AWS chain and finds a schedule a rule names that does not exist.
func TestCheckLivePagerDuty(t *testing.T) {
	rw := mustRulesWorld(t)
	for k, v := range rw.env() {
		t.Setenv(k, v)
	}
	b := rw.config(t)
	yml := edit(t, b, "        when: requester.on_call\n", "        when: requester.on_call || on_call(\"PNOPE99\")\n")
	rw.write(t, yml)
	out, code := configCLI(t, rw.cfgPath)("check", "--live")
	for _, want := range []string{
		"ok    pagerduty: read the API key secret " + pdSecret,
		"ok    pagerduty: schedule " + pdSchedule + " exists",
		"FAIL  pagerduty: schedule PNOPE99 exists",
	} {
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("check --live (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	if strings.Contains(out, rw.pd.Token()) {
		t.Error("the PagerDuty key is in check's output")
	}
}

// TestBreakGlassRefuseRulesThroughTheBot: the refuse rules of a flow hold
// for /sym breakglass too (the person is told which rule refused, with the
// message escaped, and the refusal is audited), a refuse rule written
// with !request.break_glass lets break-glass through, and approve and
// require rules do not apply to it.
func TestBreakGlassRefuseRulesThroughTheBot(t *testing.T) {
	rw := mustRulesWorld(t)
	w := rw.world
	b := rw.config(t)
	yml := edit(t, b, "    rules:\n", `    break_glass:
      max_duration: 4h
    rules:
      - name: no-contractor-break-glass
        when: request.break_glass && requester.email.startsWith("mallory")
        refuse: "Contractors (mallory & co) may not break glass: <ask #sre>"
`)
	yml = edit(t, yml, `        when: request.reason.contains("weekend")`, `        when: '!request.break_glass && request.reason.contains("weekend")'`)
	rw.write(t, yml)
	d, wait, _ := rw.start(t)

	ack, err := w.slack.SlashCommand(demoMallory, "/sym", `breakglass prod/prod-admin 1h "weekend outage"`, demoChannel)
	if err != nil {
		t.Fatal(err)
	}
	wait("the refusal naming the rule", func() bool {
		return strings.Contains(replies(t, w, demoMallory, ack), "refused by rule no-contractor-break-glass: Contractors (mallory &amp; co) may not break glass: &lt;ask #sre&gt;")
	})
	if got := replies(t, w, demoMallory, ack); strings.Contains(got, "<ask") {
		t.Errorf("the rule's message reached Slack unescaped: %s", got)
	}
	out, code := configCLI(t, rw.cfgPath)("audit", "--since", "1h")
	if code != 0 || !strings.Contains(out, "refused:breakglass") || !strings.Contains(out, "no-contractor-break-glass") {
		t.Errorf("audit (exit %d) does not record the refusal and its rule:\n%s", code, out)
	}

	// carol: "weekend" does not refuse break-glass (the rule says
	// !request.break_glass), and 4h, which two-for-long would send to two
	// approvers, is granted at once.
	if _, err := w.slack.SlashCommand(demoCarol, "/sym", `breakglass prod/prod-admin 4h "weekend outage, db down"`, demoChannel); err != nil {
		t.Fatal(err)
	}
	wait("carol's break-glass grant", func() bool { return w.okta.IsMember(w.groupID, rw.carolOkta) })
	if got := w.okta.Members(w.groupID); len(got) != 1 || got[0] != rw.carolOkta {
		t.Errorf("members of the group = %v, want carol only: break-glass a rule refused was granted", got)
	}
	rs, err := d.engine.ListForUser(t.Context(), demoMallory)
	if err != nil || len(rs) != 0 {
		t.Errorf("mallory's requests = %v (%v), want none recorded for a refused break-glass", rs, err)
	}
}

// TestExplainBreakGlass: explain --break-glass evaluates only the refuse
// rules, with request.break_glass true, and says which do not apply.
func TestExplainBreakGlass(t *testing.T) {
	rw := mustRulesWorld(t)
	b := rw.config(t)
	yml := edit(t, b, "    rules:\n", "    break_glass:\n      max_duration: 2h\n    rules:\n")
	yml = edit(t, yml, `        when: request.reason.contains("weekend")`, `        when: 'request.reason.contains("weekend") && !request.break_glass'`)
	yml += `          - name: no-logs-break-glass
            when: request.break_glass
            refuse: "no break-glass into the logs"
`
	rw.write(t, yml)
	cli := configCLI(t, rw.cfgPath)
	tests := []struct {
		name   string
		target string
		args   []string
		want   []string
	}{
		{"granted", "prod/prod-admin", []string{"--duration", "2h", "--reason", "weekend outage"}, []string{
			"break-glass request: prod/prod-admin",
			"rules (flow prod): 3, of which 1 apply to break-glass (its refuse rules)",
			`1.  no-weekend-work  no  request.reason.contains("weekend") && !request.break_glass  request.break_glass=true request.reason="weekend outage"`,
			"-   two-for-long: does not apply to break-glass (require)",
			"-   on-call: does not apply to break-glass (approve)",
			"decision: break-glass: granted at once without approval",
		}},
		{"refused by a rule", "prod/prod-logs", []string{"--duration", "1h", "--reason", "outage"}, []string{
			"2.  no-logs-break-glass  MATCH  request.break_glass  request.break_glass=true",
			"-   sre-members: does not apply to break-glass (approve)",
			"decision: refused by rule no-logs-break-glass: no break-glass into the logs",
		}},
		{"over the cap", "prod/prod-admin", []string{"--duration", "4h", "--reason", "outage"}, []string{
			"refused before the rules: duration: break-glass access in flow prod lasts at most 2h;",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := cli(append([]string{"explain", tc.target, "--break-glass", "--as", "carol@example.com", "--groups", ""}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestCheckWarnsOfRefuseRulesThatHoldForBreakGlass: a refuse rule of a
// break-glass flow that does not read request.break_glass now refuses
// break-glass too; symbot check says so, once the rule reads it not.
func TestCheckWarnsOfRefuseRulesThatHoldForBreakGlass(t *testing.T) {
	rw := mustRulesWorld(t)
	for k, v := range rw.env() {
		t.Setenv(k, v)
	}
	b := rw.config(t)
	cfg := edit(t, b, "    rules:\n", "    break_glass:\n      max_duration: 1h\n    rules:\n")
	write := func(yml string) {
		rw.write(t, yml)
	}
	write(cfg)
	out, _ := configCLI(t, rw.cfgPath)("check")
	if want := "warn  rules: 4 compiled and type-checked: refuse rules apply to break-glass requests too, and these do not read request.break_glass: prod/no-weekend-work"; !strings.Contains(out, want) {
		t.Errorf("check lacks %q:\n%s", want, out)
	}
	write(edit(t, cfg, `        when: request.reason.contains("weekend")`, `        when: '!request.break_glass && request.reason.contains("weekend")'`))
	if out, _ := configCLI(t, rw.cfgPath)("check"); !strings.Contains(out, "ok    rules: 4 compiled") {
		t.Errorf("check still warns with the rule reading request.break_glass:\n%s", out)
	}
}

// TestWhoamiShowsWhoApprovesUnderTheRules: /sym whoami says, per flow or
// per target, who would have to approve the person's request under the
// rules that can be decided before it (Okta groups, email), and names the
// rules that depend on the request itself (reason, duration, on-call).
func TestWhoamiShowsWhoApprovesUnderTheRules(t *testing.T) {
	rw := mustRulesWorld(t)
	w := rw.world
	b := rw.config(t)
	// prod-ro: people other than carol need two approvals from bob and
	// mallory, whatever they ask.
	yml := edit(t, b, "      - name: prod-ro\n        group_id: "+rw.roGroup+"\n", fmt.Sprintf(`      - name: prod-ro
        group_id: %s
        rules:
          - name: others-need-two
            when: '!requester.email.startsWith("carol@")'
            require:
              approvals: 2
              approvers:
                users: [%s, %s]
`, rw.roGroup, demoBob, demoMallory))
	rw.write(t, yml)
	_, wait, _ := rw.start(t)

	whoami := func(user string) string {
		t.Helper()
		before := len(w.slack.Ephemerals(user))
		if _, err := w.slack.SlashCommand(user, "/sym", "whoami", demoChannel); err != nil {
			t.Fatal(err)
		}
		var got string
		wait("whoami's answer", func() bool {
			es := w.slack.Ephemerals(user)
			if len(es) <= before {
				return false
			}
			got = blockTexts(t, es[len(es)-1].Blocks)
			return true
		})
		return got
	}
	calls := len(rw.pd.Calls())
	carol := whoami(demoCarol)
	for _, want := range []string{
		"Your requests would need:",
		"• `prod/prod-admin`: depends on rules `no-weekend-work`, `two-for-long`, `on-call`; otherwise 1 approval from <@" + demoBob + ">",
		"• `prod/prod-ro`: 1 approval from <@" + demoBob + ">",       // its rules replace the flow's; others-need-two does not match carol
		"• `prod/prod-logs`: approved at once by rule `sre-members`", // carol is in sre
	} {
		if !strings.Contains(carol, want) {
			t.Errorf("carol's whoami lacks %q:\n%s", want, carol)
		}
	}
	mallory := whoami(demoMallory)
	for _, want := range []string{
		"• `prod/prod-ro`: 2 approvals from <@" + demoBob + ">, <@" + demoMallory + "> (rule `others-need-two`)",
		"• `prod/prod-logs`: 1 approval from <@" + demoBob + ">", // not in sre
	} {
		if !strings.Contains(mallory, want) {
			t.Errorf("mallory's whoami lacks %q:\n%s", want, mallory)
		}
	}
	if got := len(rw.pd.Calls()); got != calls {
		t.Errorf("whoami asked PagerDuty %d times; on-call depends on the time of the request", got-calls)
	}
}
