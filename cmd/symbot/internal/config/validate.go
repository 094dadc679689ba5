package config

// Defaults and validation: what the environment adds, the defaults, and the
// checks of each value, with the AWS and Okta rules taken from the awsauth
// and okta packages.

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/awsauth"
	"github.com/symbot/symbot/okta"
)

func (c *Config) env(d *decoder, getenv func(string) string) {
	c.Slack.BotToken = strings.TrimSpace(getenv("SLACK_BOT_TOKEN"))
	c.Slack.AppToken = strings.TrimSpace(getenv("SLACK_APP_TOKEN"))
	c.Slack.APIURL = strings.TrimSpace(getenv("SLACK_API_URL"))
	if u := strings.TrimSpace(getenv(EnvDatabaseURL)); u != "" {
		c.Store.URL = u
		c.storeURLFromEnv = true
	}
	// As in every AWS tool, the region may come from the environment.
	if c.AWS.Region == "" {
		c.AWS.Region = strings.TrimSpace(getenv("AWS_REGION"))
	}
	if c.AWS.Region == "" {
		c.AWS.Region = strings.TrimSpace(getenv("AWS_DEFAULT_REGION"))
	}
	// Never echo a token value: only say what shape it should have.
	if t := c.Slack.BotToken; t != "" && !strings.HasPrefix(t, "xoxb-") {
		d.add(0, "env SLACK_BOT_TOKEN", "is not a bot token: it must start with xoxb- (OAuth & Permissions > Bot User OAuth Token)")
	}
	if t := c.Slack.AppToken; t != "" && !strings.HasPrefix(t, "xapp-") {
		d.add(0, "env SLACK_APP_TOKEN", "is not an app-level token: it must start with xapp- (Basic Information > App-Level Tokens, scope connections:write)")
	}
	if u := c.Slack.APIURL; u != "" {
		if err := checkURL(u); err != nil {
			d.add(0, "env SLACK_API_URL", "%v", err)
		} else if !strings.HasSuffix(u, "/") {
			c.Slack.APIURL = u + "/"
		}
	}
}

func (c *Config) applyDefaults(dir string) {
	if c.Slack.Command == "" {
		c.Slack.Command = DefaultSlashCommand
	}
	if c.AWS.SessionDuration == 0 {
		c.AWS.SessionDuration = DefaultSessionDuration
	}
	if c.AWS.SessionName == "" {
		c.AWS.SessionName = DefaultSessionName
	}
	if c.AWS.Region == "" {
		if r, ok := awsauth.SecretRegion(c.Okta.TokenSecret); ok {
			c.AWS.Region = r
		}
	}
	if c.Okta.TokenCacheTTL == 0 {
		c.Okta.TokenCacheTTL = DefaultTokenCacheTTL
	}
	c.Okta.OrgURL = strings.TrimSuffix(c.Okta.OrgURL, "/")
	c.storePathSet = c.Store.Path != ""
	if c.Store.Path == "" && c.Store.URL == "" {
		c.Store.Path = DefaultStorePath
	}
	if c.Admin.Socket == "" {
		c.Admin.Socket = DefaultAdminSocket
	}
	if c.Reconcile.Interval == 0 {
		c.Reconcile.Interval = DefaultReconcileInterval
	}
	if c.Runtime.CredentialCheckInterval == 0 {
		c.Runtime.CredentialCheckInterval = DefaultCredentialCheckInterval
	}
	if c.Runtime.GrantCheckTTL == 0 && !c.Runtime.GrantCheckOff {
		c.Runtime.GrantCheckTTL = DefaultGrantCheckTTL
	}
	if c.Runtime.JobWorkers == 0 {
		c.Runtime.JobWorkers = DefaultJobWorkers
	}
	if c.Store.Path != "" && !filepath.IsAbs(c.Store.Path) {
		c.Store.Path = filepath.Join(dir, c.Store.Path)
	}
	if !filepath.IsAbs(c.Admin.Socket) {
		c.Admin.Socket = filepath.Join(dir, c.Admin.Socket)
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	for i := range c.Flows {
		c.Flows[i].ApplyDefaults()
	}
}

var (
	commandRE = regexp.MustCompile(`^/[a-z0-9_-]{1,31}$`)
	// channelIDRE is the shape of a Slack channel id: C (public) or G
	// (private), then upper-case letters and digits. Channel names are
	// lower case, so a name never matches.
	channelIDRE = regexp.MustCompile(`^[CG][A-Z0-9]{5,}$`)
)

// checkChannelID says what is wrong with a channel given by name instead of
// by id, and how to find the id.
func checkChannelID(s string) error {
	if channelIDRE.MatchString(s) {
		return nil
	}
	return fmt.Errorf("%q is not a Slack channel id (like C0123ABCDEF): the config needs the id, not the name; in Slack open the channel, click its name, and copy the Channel ID at the bottom of the About tab", s)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkURL accepts https URLs, and http only for loopback hosts.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL: use a form like https://example.okta.com", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("must use https (plain http is only allowed for 127.0.0.1 or localhost)")
		}
	default:
		return fmt.Errorf("must be an https:// URL, not %q", u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("must not contain credentials")
	}
	return nil
}

func dirExists(path string) error {
	st, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("directory %s does not exist: create it first", filepath.Dir(path))
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", filepath.Dir(path))
	}
	return nil
}

// awsFields maps the fields of awsauth's problems to the config's keys.
var awsFields = map[string]string{
	"region":           "aws.region",
	"role_arn":         "aws.role_arn",
	"external_id":      "aws.external_id",
	"session_name":     "aws.session_name",
	"session_duration": "aws.session_duration",
	"secret_id":        "okta.token_secret",
	"secret_ttl":       "okta.token_cache_ttl",
}

func (c *Config) validate(d *decoder) {
	at := func(path, format string, args ...any) {
		if !d.reported(path) {
			d.add(d.lineOf(path), path, format, args...)
		}
	}

	c.validateAudit(at)
	c.validatePagerDuty(at)

	// slack
	switch {
	case c.Slack.ErrorsChannel == "":
		at("slack.errors_channel", "missing: the channel where symbot reports failures (stuck revocations); invite the bot to it")
	default:
		if err := checkChannelID(c.Slack.ErrorsChannel); err != nil {
			at("slack.errors_channel", "%v", err)
		}
	}
	if !commandRE.MatchString(c.Slack.Command) {
		at("slack.command", "%q is not a slash command: use a form like /sym (lowercase, starting with /)", c.Slack.Command)
	}

	// aws and the secret: symbot needs the runtime connector role and its
	// external id; the AWS rules for every value are awsauth's.
	if c.AWS.RoleARN == "" {
		at("aws.role_arn", "missing: the runtime connector role symbot assumes, like arn:aws:iam::123456789012:role/symbot-runtime")
	}
	if c.AWS.ExternalID == "" {
		at("aws.external_id", "missing: the external id in the role's trust policy (run `symbot iam-policy` to see it)")
	}
	if c.AWS.Region == "" {
		at("aws.region", "missing: the AWS region of the secret, like us-east-1 (or set AWS_REGION)")
	}
	if c.Okta.TokenSecret == "" {
		at("okta.token_secret", "missing: the Secrets Manager secret (name or ARN) holding the Okta API token")
	}
	for _, p := range c.AWSAuth().Problems() {
		path, ok := awsFields[p.Field]
		if !ok {
			path = "aws." + p.Field // hop_roles[i]
		}
		if path == "okta.token_secret" && c.Okta.TokenSecret == "" {
			continue // reported as missing above
		}
		at(path, "%s", p.Problem)
	}

	// okta
	if c.Okta.OrgURL == "" {
		at("okta.org_url", "missing: your Okta org URL, like https://example.okta.com")
	} else if err := okta.ValidateOrgURL(c.Okta.OrgURL); err != nil {
		at("okta.org_url", "%s", fieldProblem(err))
	}
	for k, v := range c.Okta.UserOverrides {
		if err := okta.ValidateOverride(k, v); err != nil {
			at("okta.user_overrides."+k, "%s", fieldProblem(err))
		}
	}

	// store, admin, http, log
	urlKey := "store.url"
	if c.storeURLFromEnv {
		urlKey = "env " + EnvDatabaseURL
	}
	switch {
	case c.Store.URL != "" && c.storePathSet:
		at("store.path", "store.path (bbolt) and a PostgreSQL URL (%s) are both set: keep one; to move a bbolt store to PostgreSQL run symbot migrate --from %s", urlKey, c.Store.Path)
	case c.Store.URL != "":
		if err := checkDatabaseURL(c.Store.URL); err != nil {
			at(urlKey, "%v", err)
		}
	default:
		if err := dirExists(c.Store.Path); err != nil {
			at("store.path", "%v", err)
		}
	}
	if err := dirExists(c.Admin.Socket); err != nil {
		at("admin.socket", "%v", err)
	} else if len(c.Admin.Socket) > 88 {
		at("admin.socket", "path %s is %d bytes long; unix socket paths must be at most 88: use a shorter path", c.Admin.Socket, len(c.Admin.Socket))
	}
	if c.Store.Path != "" && c.Admin.Socket == c.Store.Path {
		at("admin.socket", "must differ from store.path")
	}
	if l := c.HTTP.Listen; l != "" {
		if _, port, err := net.SplitHostPort(l); err != nil || port == "" {
			at("http.listen", "%q is not host:port: use a form like 127.0.0.1:9090 or :9090", l)
		}
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		at("log.format", "%q: use text or json", c.Log.Format)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		at("log.level", "%q: use debug, info, warn or error", c.Log.Level)
	}

	// flows: the domain's rules, then the ids that Slack and Okta define
	if err := symbot.ValidateFlows(c.Flows); err != nil {
		var ve *symbot.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				at(p.Path, "%s", p.Problem)
			}
		} else {
			at("flows", "%v", err)
		}
	}
	for i, f := range c.Flows {
		p := fmt.Sprintf("flows[%d]", i)
		if f.Channel != "" {
			if err := checkChannelID(f.Channel); err != nil {
				at(p+".channel", "%v", err)
			}
		}
		if f.Escalation != nil {
			for j, st := range f.Escalation.Steps {
				if st.Channel != "" {
					if err := checkChannelID(st.Channel); err != nil {
						at(fmt.Sprintf("%s.escalation.steps[%d].channel", p, j), "%v", err)
					}
				}
			}
		}
		if f.BreakGlass != nil && f.BreakGlass.Channel != "" {
			if err := checkChannelID(f.BreakGlass.Channel); err != nil {
				at(p+".break_glass.channel", "%v", err)
			}
		}
		if g := f.Approvers.OktaGroup; g != "" {
			if err := okta.ValidateGroupID(g); err != nil {
				at(p+".approvers.okta_group", "%s", fieldProblem(err))
			}
		}
		for j, t := range f.Targets {
			if t.GroupID != "" {
				if err := okta.ValidateGroupID(t.GroupID); err != nil {
					at(fmt.Sprintf("%s.targets[%d].group_id", p, j), "%s", fieldProblem(err))
				}
			}
		}
		if f.ExpiryWarning > 0 && f.MaxDuration() > 0 && f.ExpiryWarning >= f.MaxDuration() {
			at(p+".expiry_warning", "%s is not shorter than the longest duration %s: shorten it or set 0 to turn it off",
				symbot.FormatDuration(f.ExpiryWarning), symbot.FormatDuration(f.MaxDuration()))
		}
	}
}

// AWSAuth is the AWS chain's view of the config, for its rules and for
// the wiring.
func (c *Config) AWSAuth() awsauth.Config {
	return awsauth.Config{
		Region:          c.AWS.Region,
		RoleARN:         c.AWS.RoleARN,
		ExternalID:      c.AWS.ExternalID,
		HopRoles:        c.AWS.HopRoles,
		SessionName:     c.AWS.SessionName,
		SessionDuration: c.AWS.SessionDuration,
		SecretID:        c.Okta.TokenSecret,
		SecretJSONKey:   c.Okta.TokenJSONKey,
		SecretTTL:       c.Okta.TokenCacheTTL,
	}
}

// fieldProblem returns the problem text of an okta.FieldError (the key is
// already named by the config path).
func fieldProblem(err error) string {
	var fe *okta.FieldError
	if errors.As(err, &fe) {
		return fe.Problem
	}
	return err.Error()
}

// closest returns the known key nearest to s by edit distance, if near.
func closest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// checkDatabaseURL checks the shape of a PostgreSQL URL without repeating
// it: it may hold a password.
func checkDatabaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" && u.Query().Get("host") == "" {
		return errors.New("is not a PostgreSQL URL: use postgres://USER:PASSWORD@HOST:5432/DATABASE?sslmode=verify-full (the value is not repeated here because it may hold a password)")
	}
	return nil
}
