package main

// Config reload (SIGHUP): the file is read and validated again; a valid one
// is applied at once where that is safe, an invalid one is refused whole.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
)

// restartOnly are the settings a running symbot cannot change: what it
// opened, listened on, connected to or built its clients from at start. A
// reload that changes one keeps the running value and says a restart is
// needed. Everything else (flows with their targets, approvers, rules and
// durations; limits; reconcile.interval; runtime.credential_check_interval
// and runtime.grant_check_ttl; log.level) is applied.
var restartOnly = []struct {
	key string
	get func(*config.Config) any
}{
	{"slack", func(c *config.Config) any { return c.Slack }},
	{"aws", func(c *config.Config) any { return c.AWS }},
	{"okta", func(c *config.Config) any { return c.Okta }},
	{"store", func(c *config.Config) any { return c.Store }},
	{"http.listen", func(c *config.Config) any { return c.HTTP }},
	{"admin.socket", func(c *config.Config) any { return c.Admin }},
	{"log.format", func(c *config.Config) any { return strings.ToLower(c.Log.Format) }},
	{"audit", func(c *config.Config) any { return c.Audit }},
	{"pagerduty", func(c *config.Config) any { return c.PagerDuty }},
	// The executor starts its workers once, when it starts.
	{"runtime.job_workers", func(c *config.Config) any { return c.Runtime.JobWorkers }},
}

// reload is what SIGHUP asks for: read the config file again and, when it
// is valid, apply it. Flows (targets, approvers, rules, durations), limits,
// reconcile.interval, runtime.credential_check_interval,
// runtime.grant_check_ttl and log.level change at once, atomically: a request is
// judged by the old configuration or the new one, never a mix. Requests
// already made keep what they asked for (see symbot.Engine.SetFlows).
// Settings that need a restart keep their running value and are logged
// as such. An invalid file changes nothing: every problem is logged at its
// file:line, and the errors channel is told. A reload never stops symbot.
func (d *daemon) reload(ctx context.Context) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	cur := d.live.Load()
	d.log.Info("SIGHUP received: reloading the config", "config", cur.File)
	next, err := config.Load(cur.File, os.Getenv)
	if err == nil {
		err = d.apply(ctx, cur, next)
	}
	if err != nil {
		d.refuseReload(ctx, cur.File, err)
	}
}

// apply puts next in effect in place of cur, or changes nothing and
// returns why.
func (d *daemon) apply(ctx context.Context, cur, next *config.Config) error {
	// What needs a restart keeps its running value.
	var kept []string
	eff := *next
	for _, s := range restartOnly {
		if !reflect.DeepEqual(s.get(cur), s.get(next)) {
			kept = append(kept, s.key)
		}
	}
	eff.Slack, eff.AWS, eff.Okta, eff.Store, eff.HTTP, eff.Admin, eff.Audit, eff.PagerDuty =
		cur.Slack, cur.AWS, cur.Okta, cur.Store, cur.HTTP, cur.Admin, cur.Audit, cur.PagerDuty
	eff.Log.Format = cur.Log.Format
	eff.Runtime.JobWorkers = cur.Runtime.JobWorkers

	// The rules are compiled for the running pagerduty settings and client.
	rules, probs := eff.CompileRules()
	if len(probs) > 0 { // config.Load compiled them with the file's pagerduty section
		return fmt.Errorf("rules: %w (the pagerduty section changed, which takes a restart)", probs[0])
	}
	if d.onCall != nil {
		rules.OnCall = d.onCall
	}
	if err := d.engine.SetFlows(eff.Flows, rules); err != nil {
		return err
	}
	d.bot.SetLimits(botLimits(next.Limits))
	d.bot.FlowsChanged()
	d.engine.SetReconcileInterval(next.Reconcile.Interval)
	d.engine.SetGrantCheckTTL(next.Runtime.EngineGrantCheckTTL())
	d.setCredentialInterval(next.Runtime.CredentialCheckInterval)
	if d.logLevel != nil {
		d.logLevel.Set(logLevel(next.Log.Level))
	}

	d.live.Store(&eff)
	d.metrics.ConfigReload("applied")

	changes := configChanges(cur, next)
	d.log.Info("config reloaded", "config", next.File, "flows", len(next.Flows), "changes", strings.Join(changes, "; "))
	if len(kept) > 0 {
		d.log.Warn("config reload: these settings need a restart to change; symbot keeps running with their old values", "needs_restart", strings.Join(kept, ", "))
	}
	detail := "SIGHUP: " + next.File + ": " + strings.Join(changes, "; ")
	if len(kept) > 0 {
		detail += "; needs restart (kept): " + strings.Join(kept, ", ")
	}
	if err := d.engine.AuditAdmin(ctx, "config-reload", detail); err != nil {
		d.log.Error("config reload applied but not audited", "err", err)
	}
	d.warnUnconfigured(ctx)
	return nil
}

// refuseReload reports a config that was not applied: every problem to
// the log at its file:line, a summary to the errors channel, and an audit
// entry. The running config stays.
func (d *daemon) refuseReload(ctx context.Context, file string, err error) {
	d.metrics.ConfigReload("refused")
	var lines []string
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			lines = append(lines, ce.Format(p))
		}
	} else {
		lines = []string{err.Error()}
	}
	for _, l := range lines {
		d.log.Error("config reload refused", "problem", l)
	}
	d.log.Error("config reload refused: symbot keeps running with the config it had; fix the file and send SIGHUP again (`symbot check` lists the problems)", "config", file, "problems", len(lines))
	shown := lines
	if len(shown) > 10 {
		shown = append(slices.Clone(shown[:10]), fmt.Sprintf("... and %d more (see symbot's log)", len(lines)-10))
	}
	text := fmt.Sprintf("Config reload refused: %s has %s, so symbot keeps running with the config it had. Fix it and reload again (`symbot check` lists them):\n%s",
		file, config.CountProblems(len(lines)), strings.Join(shown, "\n"))
	if d.cfg.Slack.ErrorsChannel != "" {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := d.engine.QueueAlert(qctx, symbot.Alert{Text: symbot.Redact(text)}); err != nil {
			d.log.Error("could not queue the alert about the refused config reload", "err", err)
		}
	}
	if err := d.engine.AuditAdmin(ctx, "config-reload-refused", symbot.Redact(fmt.Sprintf("SIGHUP: %s: %s", file, config.CountProblems(len(lines))))); err != nil {
		d.log.Error("refused config reload not audited", "err", err)
	}
}

// configChanges says in words what next changes against cur, for the log
// and the audit trail.
func configChanges(cur, next *config.Config) []string {
	var out []string
	old := map[string]symbot.Flow{}
	for _, f := range cur.Flows {
		old[strings.ToLower(f.Name)] = f
	}
	var added, changed []string
	seen := map[string]bool{}
	for _, f := range next.Flows {
		k := strings.ToLower(f.Name)
		seen[k] = true
		o, ok := old[k]
		switch {
		case !ok:
			added = append(added, f.Name)
		case !reflect.DeepEqual(o, f):
			changed = append(changed, f.Name)
		}
	}
	var removed []string
	for _, f := range cur.Flows {
		if !seen[strings.ToLower(f.Name)] {
			removed = append(removed, f.Name)
		}
	}
	for _, c := range []struct {
		what  string
		names []string
	}{{"flows added", added}, {"flows changed", changed}, {"flows removed", removed}} {
		if len(c.names) > 0 {
			out = append(out, c.what+": "+strings.Join(c.names, ", "))
		}
	}
	if !reflect.DeepEqual(cur.Limits, next.Limits) {
		out = append(out, "limits changed")
	}
	if cur.Reconcile.Interval != next.Reconcile.Interval {
		out = append(out, fmt.Sprintf("reconcile.interval %s -> %s", symbot.FormatDuration(cur.Reconcile.Interval), symbot.FormatDuration(next.Reconcile.Interval)))
	}
	if a, b := cur.Runtime.CredentialCheckInterval, next.Runtime.CredentialCheckInterval; a != b {
		out = append(out, fmt.Sprintf("runtime.credential_check_interval %s -> %s", symbot.FormatDuration(a), symbot.FormatDuration(b)))
	}
	if a, b := cur.Runtime.EngineGrantCheckTTL(), next.Runtime.EngineGrantCheckTTL(); a != b {
		out = append(out, fmt.Sprintf("runtime.grant_check_ttl %s -> %s", grantCheckWords(cur.Runtime), grantCheckWords(next.Runtime)))
	}
	if !strings.EqualFold(cur.Log.Level, next.Log.Level) {
		out = append(out, fmt.Sprintf("log.level %s -> %s", orInfo(cur.Log.Level), orInfo(next.Log.Level)))
	}
	if len(out) == 0 {
		out = append(out, "no change")
	}
	return out
}

// grantCheckWords says runtime.grant_check_ttl: a duration, or off.
func grantCheckWords(r config.Runtime) string {
	if r.GrantCheckOff {
		return "0 (off)"
	}
	return symbot.FormatDuration(r.GrantCheckTTL)
}

func orInfo(level string) string {
	if level == "" {
		return "info"
	}
	return level
}

// warnUnconfigured lists the requests and grants whose flow or target is no
// longer configured: they cannot be decided in Slack. At start and after
// each reload.
func (d *daemon) warnUnconfigured(ctx context.Context) {
	rs, err := d.engine.Unconfigured(ctx)
	if err != nil || len(rs) == 0 {
		return
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, fmt.Sprintf("%s (%s, %s/%s)", r.ID, r.State, r.Flow, r.Target))
	}
	d.log.Warn("requests and grants whose flow or target is no longer configured: they cannot be decided in Slack; pending ones time out, grants end at their expiry, or end them now with `symbot revoke ID`", "count", len(rs), "requests", strings.Join(ids, ", "))
}
