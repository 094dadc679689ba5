package config

import (
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

const rulesYAML = `    rules:
      - name: on-call
        when: requester.on_call && request.duration <= duration("1h")
        approve: true
      - name: weekend
        when: local.weekday in ["Sat", "Sun"]
        refuse: "No access at weekends: use break-glass"
      - name: admins-need-two
        when: |
          request.target == "admin"
        require:
          approvals: 2
          approvers:
            okta_group: 00gAPPROVERS00000001
    durations:`

const pagerDutyYAML = `pagerduty:
  token_secret: symbot/pagerduty
  schedules: [PSCHED1]
  escalation_policies: [PPOLICY]
flows:`

func TestConfigRules(t *testing.T) {
	yml := edit(t, edit(t, baseYAML, "    durations:", rulesYAML), "flows:", pagerDutyYAML)
	yml = edit(t, yml, "        group_id: 00gADMIN000000000001\n", "        group_id: 00gADMIN000000000001\n        rules: []\n")
	cfg := MustParse(t, yml)
	f := cfg.Flows[0]
	if len(f.Rules) != 3 {
		t.Fatalf("rules = %+v", f.Rules)
	}
	if r := f.Rules[0]; r.Name != "on-call" || r.Action != symbot.RuleApprove || !strings.Contains(r.When, "requester.on_call") {
		t.Errorf("rule 0 = %+v", r)
	}
	if r := f.Rules[1]; r.Action != symbot.RuleRefuse || r.Message != "No access at weekends: use break-glass" {
		t.Errorf("rule 1 = %+v", r)
	}
	if r := f.Rules[2]; r.Action != symbot.RuleRequire || r.Approvals != 2 || r.Approvers == nil || r.Approvers.OktaGroup != "00gAPPROVERS00000001" {
		t.Errorf("rule 2 = %+v", r)
	}
	if tr := f.Targets[0].Rules; tr == nil || len(tr) != 0 {
		t.Errorf("target rules = %#v, want empty (lifting the flow's)", tr)
	}
	pd := cfg.PagerDuty
	if pd.TokenSecret != "symbot/pagerduty" || pd.APIURL != DefaultPagerDutyURL || pd.CacheTTL != time.Minute || pd.Schedules[0] != "PSCHED1" || pd.EscalationPolicies[0] != "PPOLICY" {
		t.Errorf("pagerduty = %+v", pd)
	}
	if _, probs := cfg.CompileRules(); len(probs) > 0 {
		t.Errorf("CompileRules: %v", probs)
	}
}

// TestConfigRuleErrorsAtFileLine: expressions are type-checked when the
// file loads, each problem at the line of the expression that has it.
func TestConfigRuleErrorsAtFileLine(t *testing.T) {
	bad := `    rules:
      - name: typo
        when: request.duraton <= duration("1h")
        approve: true
      - name: not-bool
        when: request.reason
        approve: true
      - name: multi
        when: |
          request.target == "admin" &&
          requester.groups.size() > "2"
        approve: true
      - name: two-outcomes
        when: "true"
        approve: true
        refuse: "no"
      - name: oc
        when: requester.on_call
        approve: true
    durations:`
	_, err := parse(t, edit(t, baseYAML, "    durations:", bad), env())
	for _, w := range []string{
		"symbot.yml:18: flows[0].rules[0].when: undefined field 'duraton'",
		"symbot.yml:21: flows[0].rules[1].when: gives string, not a bool",
		"symbot.yml:26: flows[0].rules[2].when: found no matching overload for '_>_'",
		"symbot.yml:28: flows[0].rules[3]: has approve and refuse: give a rule exactly one outcome",
		"symbot.yml:33: flows[0].rules[4].when: reads on-call status, but PagerDuty is not set up",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error = %v\nwant it to contain %q", err, w)
		}
	}
}

func TestConfigPagerDutyProblems(t *testing.T) {
	yml := edit(t, baseYAML, "flows:", `pagerduty:
  api_url: http://pagerduty.example.com
  schedules: [sched-1]
  cache_ttl: 1h
flows:`)
	_, err := parse(t, yml, env())
	for _, w := range []string{
		"pagerduty.token_secret: missing",
		"pagerduty.api_url: must use https",
		`pagerduty.schedules[0]: "sched-1" is not a PagerDuty schedule id`,
		"pagerduty.cache_ttl: must be between 0s and 15m",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error = %v\nwant it to contain %q", err, w)
		}
	}
}
