package config

// The pagerduty section, and the rules' expressions compiled at load.

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/symbot/symbot/celrules"
)

// PagerDuty defaults.
const (
	DefaultPagerDutyURL      = "https://api.pagerduty.com"
	DefaultPagerDutyCacheTTL = time.Minute
	MaxPagerDutyCacheTTL     = 15 * time.Minute
)

// PagerDuty says where rules find who is on call. Its API token is read
// from Secrets Manager through the aws chain, like the Okta token.
type PagerDuty struct {
	TokenSecret  string // Secrets Manager secret name or ARN holding the API token
	TokenJSONKey string // key inside a JSON secret; "" = the whole secret string
	APIURL       string // default DefaultPagerDutyURL
	// Schedules and EscalationPolicies are what requester.on_call means:
	// on call now in any of the schedules, or at the first level of any
	// of the escalation policies.
	Schedules          []string
	EscalationPolicies []string
	CacheTTL           time.Duration // how long an answer is reused; default 1m
	CacheOff           bool          // cache_ttl: 0 turns the cache off
}

// Enabled reports whether the pagerduty section is set.
func (p PagerDuty) Enabled() bool { return p.TokenSecret != "" }

func (d *decoder) pagerduty(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, p string) {
		d.mapping(n, p, []field{
			{"token_secret", d.str(&c.PagerDuty.TokenSecret)},
			{"token_json_key", d.str(&c.PagerDuty.TokenJSONKey)},
			{"api_url", d.str(&c.PagerDuty.APIURL)},
			{"schedules", d.strList(&c.PagerDuty.Schedules)},
			{"escalation_policies", d.strList(&c.PagerDuty.EscalationPolicies)},
			{"cache_ttl", func(n *yaml.Node, p string) {
				var set bool
				d.duration(&c.PagerDuty.CacheTTL, &set)(n, p)
				c.PagerDuty.CacheOff = set && c.PagerDuty.CacheTTL == 0
			}},
		})
		c.pagerDutySet = true
	}
}

// pagerDutyIDRE is the shape of a PagerDuty object id, like PABC123.
var pagerDutyIDRE = regexp.MustCompile(`^[A-Z0-9]{2,32}$`)

func (c *Config) pagerDutyDefaults() {
	if c.PagerDuty.APIURL == "" {
		c.PagerDuty.APIURL = DefaultPagerDutyURL
	}
	c.PagerDuty.APIURL = strings.TrimSuffix(c.PagerDuty.APIURL, "/")
	if c.PagerDuty.CacheTTL == 0 && !c.PagerDuty.CacheOff {
		c.PagerDuty.CacheTTL = DefaultPagerDutyCacheTTL
	}
}

func (c *Config) validatePagerDuty(at func(path, format string, args ...any)) {
	if !c.pagerDutySet {
		return
	}
	pd := c.PagerDuty
	if pd.TokenSecret == "" {
		at("pagerduty.token_secret", "missing: the Secrets Manager secret (name or ARN) holding the PagerDuty REST API token")
	}
	if err := checkURL(pd.APIURL); err != nil {
		at("pagerduty.api_url", "%v", err)
	}
	if pd.CacheTTL < 0 || pd.CacheTTL > MaxPagerDutyCacheTTL {
		at("pagerduty.cache_ttl", "must be between 0s and 15m: on-call changes hands, so answers are reused only briefly")
	}
	for i, s := range pd.Schedules {
		if !pagerDutyIDRE.MatchString(s) {
			at(pathIndex("pagerduty.schedules", i), "%q is not a PagerDuty schedule id (like PABC123, from the schedule's URL)", s)
		}
	}
	for i, s := range pd.EscalationPolicies {
		if !pagerDutyIDRE.MatchString(s) {
			at(pathIndex("pagerduty.escalation_policies", i), "%q is not a PagerDuty escalation policy id (like PDEF456, from the policy's URL)", s)
		}
	}
}

// CompileRules compiles the flows' rule expressions with what the
// configuration enables (on-call needs the pagerduty section).
func (c *Config) CompileRules() (*celrules.RuleSet, []celrules.Problem) {
	return celrules.Compile(c.Flows, c.RuleOptions())
}

// RuleOptions are the rule compiler's options for this configuration.
func (c *Config) RuleOptions() celrules.Options {
	return celrules.Options{
		OnCall:        c.PagerDuty.Enabled(),
		OnCallDefault: c.PagerDuty.Enabled() && len(c.PagerDuty.Schedules)+len(c.PagerDuty.EscalationPolicies) > 0,
	}
}

// validateRules compiles every rule expression, reporting each problem at
// its line in the file (the line of the expression's text that has it).
func (c *Config) validateRules(d *decoder) {
	_, probs := c.CompileRules()
	for _, p := range probs {
		if d.reported(p.Path) {
			continue
		}
		line := d.lineOf(p.Path)
		if pos, ok := d.exprs[p.Path]; ok {
			line = pos.fileLine(p.Line)
		}
		d.add(line, p.Path, "%s", p.Message)
	}
}

func pathIndex(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }
