package main

// `symbot run`, and the `check --live` preflight (Slack tokens and
// channels, the AWS chain and the secret, every Okta group).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slack-go/slack"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
	"github.com/symbot/symbot/okta"
)

// runCmd is `symbot run`.
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", "", stderr)
	cfgPath := configFlag(fs)
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	// SIGHUP's default action kills the process; from here on it is a
	// request to reload instead (see daemon.reload).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, ok := loadConfig("run", *cfgPath, stderr)
	if !ok {
		return exitFail
	}
	if err := cfg.RequireTokens(); err != nil {
		fmt.Fprintf(stderr, "symbot run: %v\n", err)
		return exitFail
	}
	log, level := newLevelLogger(cfg.Log, stderr)
	b := currentBuild()
	file := cfg.File
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	log.Info("symbot starting", "version", b.Version, "commit", b.Commit, "go", b.GoVersion, "pid", os.Getpid())
	log.Info("config loaded", "file", file, "flows", len(cfg.Flows))
	// /healthz, /readyz and /metrics answer from now on: while the
	// database cannot be reached, /readyz says so.
	m := NewMetrics()
	var web *webServer
	if cfg.HTTP.Listen != "" {
		ln, err := ListenHTTP(cfg.HTTP.Listen)
		if err != nil {
			fmt.Fprintf(stderr, "symbot run: %v\n", err)
			return exitFail
		}
		log.Info("http listening", "addr", ln.Addr().String())
		web = startWeb(ln, m, log.With("component", "http"))
		defer web.stop()
	}
	// Nothing is connected to Slack until the daemon runs.
	m.SetSocketConnected(func() bool { return false })
	d, err := openDaemonWith(ctx, cfg, log, m, func(ctx context.Context) (symbot.Store, error) {
		return waitForStore(ctx, cfg, log.With("component", "store"), func(attempt int, err error) {
			reason := unreachableReason(cfg, attempt, err)
			if web != nil {
				web.setReady(func(context.Context) error { return NotReady(reason, err) })
			}
		})
	})
	if err != nil {
		if ctx.Err() != nil { // stopped (SIGTERM, SIGINT) while waiting for the database
			log.Info("symbot stopped before the store opened")
			return exitOK
		}
		fmt.Fprintf(stderr, "symbot run: %v\n", err)
		return exitFail
	}
	d.web = web
	d.hup = hup
	d.logLevel = level
	if err := d.run(ctx); err != nil {
		fmt.Fprintf(stderr, "symbot run: %v\n", err)
		return exitFail
	}
	return exitOK
}

// liveChecks returns the `check --live` preflight: Slack tokens and
// channels, the AWS chain and the secret, and every Okta group. It does not
// open the store (a running daemon holds it).
// Names of the live checks that others depend on.
const (
	slackAuthCheck = "slack: bot token accepted (auth.test)"
	awsBaseCheck   = "aws: base credentials (sts:GetCallerIdentity)"
)

func liveChecks(ctx context.Context, cfg *config.Config, stderr io.Writer) ([]Check, error) {
	api := slackClient(cfg)
	src, dir, err := newDirectory(ctx, cfg, newLogger(config.Log{Level: "error"}, stderr))
	if err != nil {
		return nil, err
	}
	secretCheck := "aws: read the Okta token secret " + cfg.Okta.TokenSecret
	checks := []Check{
		{
			Name: slackAuthCheck,
			Run: func(ctx context.Context) error {
				_, err := api.AuthTestContext(ctx)
				return err
			},
			Fix: "set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-...) of the installed app",
		},
		{
			Name: "slack: app-level token opens Socket Mode (apps.connections.open)",
			Run: func(ctx context.Context) error {
				_, _, err := api.StartSocketModeContext(ctx)
				return err
			},
			Fix: "set SLACK_APP_TOKEN to an app-level token (xapp-...) with the connections:write scope, and enable Socket Mode in the app settings",
		},
	}
	channels := map[string][]string{}
	var order []string
	for _, f := range cfg.Flows {
		if _, ok := channels[f.Channel]; !ok {
			order = append(order, f.Channel)
		}
		channels[f.Channel] = append(channels[f.Channel], "flow "+f.Name)
		if x := f.Escalation; x != nil {
			for _, st := range x.Steps {
				if st.Channel == "" {
					continue
				}
				if _, ok := channels[st.Channel]; !ok {
					order = append(order, st.Channel)
				}
				channels[st.Channel] = append(channels[st.Channel], "flow "+f.Name+" escalation")
			}
		}
		if bg := f.BreakGlass; bg != nil && bg.Channel != "" {
			if _, ok := channels[bg.Channel]; !ok {
				order = append(order, bg.Channel)
			}
			channels[bg.Channel] = append(channels[bg.Channel], "flow "+f.Name+" break-glass")
		}
	}
	if ch := cfg.Slack.ErrorsChannel; ch != "" {
		if _, ok := channels[ch]; !ok {
			order = append(order, ch)
		}
		channels[ch] = append(channels[ch], "errors channel")
	}
	for _, ch := range order {
		post := fmt.Sprintf("slack: bot can post in %s (%s)", ch, strings.Join(channels[ch], ", "))
		checks = append(checks, Check{
			Name:  post,
			Needs: slackAuthCheck,
			Run: func(ctx context.Context) error {
				// A message scheduled far ahead and deleted at once proves
				// the channel exists and the bot may post there, silently.
				at := strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10)
				c, id, err := api.ScheduleMessageContext(ctx, ch, at, slack.MsgOptionText("symbot preflight check", false))
				if err != nil {
					var se slack.SlackErrorResponse
					if errors.As(err, &se) {
						switch se.Err {
						case "invalid_auth", "not_authed", "token_revoked", "account_inactive", "missing_scope":
							return fmt.Errorf("%w: the bot token was refused or lacks chat:write; fix SLACK_BOT_TOKEN and the app's scopes first", err)
						}
					}
					return err
				}
				// Delete it even if the check's deadline passed, and retry once:
				// a leftover would be posted in the channel a day later.
				del := func() error {
					dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
					defer cancel()
					_, err := api.DeleteScheduledMessageContext(dctx, &slack.DeleteScheduledMessageParameters{Channel: c, ScheduledMessageID: id})
					return err
				}
				if err := del(); err != nil {
					if err2 := del(); err2 != nil {
						return fmt.Errorf("a preflight message %s is scheduled in %s for %s and could not be deleted; delete it (chat.deleteScheduledMessage) or it will be posted: %w", id, c, at, err2)
					}
				}
				return nil
			},
			Fix: "invite the bot to the channel (/invite @symbot in " + ch + "), and check the channel id in the config",
		}, Check{
			Name:  fmt.Sprintf("slack: bot can read its own messages in %s (conversations.history)", ch),
			Needs: post,
			Run: func(ctx context.Context) error {
				// One message, no metadata: proves the history scope of
				// the channel's kind and the bot's membership, which a
				// retried job needs to find the message it already posted.
				_, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: ch, Limit: 1})
				var se slack.SlackErrorResponse
				if errors.As(err, &se) && (se.Err == "missing_scope" || se.Err == "not_in_channel") {
					return &checkWarning{
						msg: fmt.Sprintf("%s (needed: %s): a job retried after a crash cannot find the message it already posted, so it posts it again", se.Err, cmp.Or(se.Needed, "channels:history or groups:history")),
						fix: "reinstall the Slack app with the scopes manifest.yml lists (channels:history, groups:history, im:history), and invite the bot to the channel",
					}
				}
				return err
			},
			Fix: "reinstall the Slack app with the scopes manifest.yml lists (channels:history, groups:history, im:history)",
		})
	}
	checks = append(checks,
		Check{
			Name: awsBaseCheck,
			Run: func(ctx context.Context) error {
				_, err := src.BaseIdentity(ctx)
				return err
			},
			Fix: "give symbot AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, or an instance/pod role",
		},
	)
	secretNeeds := awsBaseCheck
	if cfg.AWS.RoleARN != "" {
		secretNeeds = "aws: assume " + cfg.AWS.RoleARN + " with the external id"
		checks = append(checks, Check{
			Name:  secretNeeds,
			Needs: awsBaseCheck,
			Run: func(ctx context.Context) error {
				_, err := src.AssumeRole(ctx)
				return err
			},
			Fix: "check the role's trust policy (run `symbot iam-policy`): it must trust symbot's principal with the sts:ExternalId condition equal to aws.external_id",
		})
	}
	checks = append(checks, Check{
		Name:  secretCheck,
		Needs: secretNeeds,
		Run: func(ctx context.Context) error {
			_, err := src.ReadSecret(ctx)
			return err
		},
		Fix: "check the secret exists in the region, the role may secretsmanager:GetSecretValue on it (and kms:Decrypt on its key), and okta.token_json_key names a key in it",
	})
	groups := map[string]string{}
	var gorder []string
	for _, f := range cfg.Flows {
		for _, t := range f.Targets {
			if _, ok := groups[t.GroupID]; !ok {
				gorder = append(gorder, t.GroupID)
				groups[t.GroupID] = fmt.Sprintf("target %s/%s", f.Name, t.Name)
			}
		}
		if g := f.Approvers.OktaGroup; g != "" {
			if _, ok := groups[g]; !ok {
				gorder = append(gorder, g)
				groups[g] = fmt.Sprintf("approvers of %s", f.Name)
			}
		}
	}
	targets := map[string]bool{}
	for _, f := range cfg.Flows {
		for _, t := range f.Targets {
			targets[t.GroupID] = true
		}
	}
	for _, gid := range gorder {
		checks = append(checks, Check{
			Name:  fmt.Sprintf("okta: group %s exists (%s)", gid, groups[gid]),
			Needs: secretCheck,
			Run: func(ctx context.Context) error {
				g, err := dir.Group(ctx, gid)
				if err != nil || !targets[gid] {
					return err
				}
				return targetGroupType(g)
			},
			Fix: "check the group id in the Okta admin console (Directory > Groups, the id is in the URL) and that the API token's admin role covers it",
		})
	}
	checks = append(checks, pagerDutyChecks(cfg, src, secretNeeds)...)
	return append(checks, sharedTargetChecks(cfg.Flows)...), nil
}

// targetGroupType refuses an Okta built-in group (Everyone) as a target
// and warns about an app group, whose members an app pushes.
func targetGroupType(g okta.Group) error {
	switch g.Type {
	case "BUILT_IN":
		return &fixError{
			err: fmt.Errorf("it is Okta's built-in group %q (type BUILT_IN): every user of the org is in it, so it cannot be granted for a time", g.Name),
			fix: "make the target an Okta group (type OKTA_GROUP) that holds only the access to grant, never a built-in group such as Everyone",
		}
	case "APP_GROUP":
		return &checkWarning{
			msg: fmt.Sprintf("it is an app group %q (type APP_GROUP): its members come from an application, which may refuse or undo symbot's changes", g.Name),
			fix: "prefer an Okta group (type OKTA_GROUP) pushed to the application; keep the app group only if Okta lets its API token manage the membership",
		}
	}
	return nil
}

// sharedTargetChecks warn, one check per pair, when an Okta group is a
// target of two flows that grant it under different rules: whoever may
// request or approve through the laxer flow gets the group the stricter
// one guards.
func sharedTargetChecks(flows []symbot.Flow) []Check {
	type use struct {
		flow, target string
		rules        *symbot.Flow // the flow with the target's overrides
	}
	uses := map[string][]use{}
	var order []string
	for _, f := range flows {
		for _, t := range f.Targets {
			eff, _, ok := f.ForTarget(t.Name)
			if !ok {
				continue
			}
			if len(uses[t.GroupID]) == 0 {
				order = append(order, t.GroupID)
			}
			uses[t.GroupID] = append(uses[t.GroupID], use{f.Name, t.Name, eff})
		}
	}
	var checks []Check
	for _, gid := range order {
		us := uses[gid]
		for i := range us {
			for j := i + 1; j < len(us); j++ {
				a, b := us[i], us[j]
				if a.flow == b.flow {
					continue
				}
				diff := flowRuleDiff(a.rules, b.rules)
				if len(diff) == 0 {
					continue
				}
				checks = append(checks, Check{
					Name: fmt.Sprintf("config: okta group %s has the same rules in every flow that grants it (%s/%s, %s/%s)", gid, a.flow, a.target, b.flow, b.target),
					Run: func(context.Context) error {
						return &checkWarning{
							msg: fmt.Sprintf("flows %s and %s grant it with different %s", a.flow, b.flow, strings.Join(diff, ", ")),
							fix: "give both flows the same rules for the group, or grant it from one flow only; the laxer flow decides who gets it",
						}
					},
				})
			}
		}
	}
	return checks
}

// flowRuleDiff names the rules that decide who gets a group and for how
// long, where a and b (flows as they apply to one target) differ.
func flowRuleDiff(a, b *symbot.Flow) []string {
	var diff []string
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return slices.Compact(s) }
	if a.Approvers.Anyone != b.Approvers.Anyone || a.Approvers.OktaGroup != b.Approvers.OktaGroup ||
		!slices.Equal(sorted(a.Approvers.Users), sorted(b.Approvers.Users)) {
		diff = append(diff, "approvers")
	}
	if max(a.ApprovalsRequired, symbot.DefaultApprovalsRequired) != max(b.ApprovalsRequired, symbot.DefaultApprovalsRequired) {
		diff = append(diff, "approvals required")
	}
	da, db := slices.Clone(a.Durations), slices.Clone(b.Durations)
	slices.Sort(da)
	slices.Sort(db)
	if !slices.Equal(slices.Compact(da), slices.Compact(db)) {
		diff = append(diff, "durations")
	}
	if a.AllowSelfApproval != b.AllowSelfApproval {
		diff = append(diff, "self-approval")
	}
	if a.AllowGuests != b.AllowGuests {
		diff = append(diff, "guest access")
	}
	return diff
}
