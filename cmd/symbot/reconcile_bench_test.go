package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/okta"
	"github.com/symbot/symbot/okta/oktatest"
	"github.com/symbot/symbot/store/memstore"
)

type staticToken string

func (s staticToken) Token(context.Context) (string, error)           { return string(s), nil }
func (s staticToken) Refresh(context.Context, string) (string, error) { return string(s), nil }

// silentNotifier drops everything: the benchmark measures the pass, not
// Slack.
type silentNotifier struct{}

func (silentNotifier) PostRequest(context.Context, *symbot.Flow, *symbot.Request) (symbot.MessageRef, error) {
	return symbot.MessageRef{}, nil
}
func (silentNotifier) UpdateRequest(context.Context, *symbot.Flow, *symbot.Request, symbot.Event) error {
	return nil
}
func (silentNotifier) NotifyUser(context.Context, string, *symbot.Flow, *symbot.Request, symbot.Event) error {
	return nil
}
func (silentNotifier) Alert(context.Context, symbot.Alert) error { return nil }

// BenchmarkReconcile50x2000 reconciles 50 target groups of 2,000 members
// each through the real Okta adapter against the Okta simulator at its
// default rate limit. It reports Okta calls per pass beside the time.
func BenchmarkReconcile50x2000(b *testing.B) {
	b.Setenv("OKTA_CLIENT_TOKEN", "")
	b.Setenv("OKTA_CLIENT_ORGURL", "")
	b.Setenv("HOME", b.TempDir())
	sim := oktatest.NewServer() // default rate limit
	b.Cleanup(sim.Close)
	users := make([]string, 2000)
	for i := range users {
		users[i] = sim.AddUser(oktatest.User{Login: fmt.Sprintf("user%04d@example.com", i)}).ID
	}
	f := symbot.Flow{Name: "bench", Channel: "C0BENCH", Approvers: symbot.Approvers{Users: []string{"U0BOB"}}, Durations: []time.Duration{time.Hour}}
	for g := range 50 {
		gid := sim.AddGroup(oktatest.Group{Name: fmt.Sprintf("group-%02d", g)}).ID
		for _, uid := range users {
			sim.AddMember(gid, uid)
		}
		f.Targets = append(f.Targets, symbot.Target{Name: fmt.Sprintf("t%02d", g), GroupID: gid})
	}
	dir, err := okta.New(okta.Config{OrgURL: sim.URL()}, staticToken(sim.Token()))
	if err != nil {
		b.Fatal(err)
	}
	eng, err := symbot.NewEngine(memstore.New(), dir, silentNotifier{}, []symbot.Flow{f})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	// The first pass records every member as standing; the measured passes
	// compare 100,000 memberships with the records and find no drift.
	if rep, err := eng.Reconcile(ctx, false); err != nil || rep.Count(symbot.DriftStanding) != 100000 {
		b.Fatalf("first pass: %v (standing %d)", err, rep.Count(symbot.DriftStanding))
	}
	sim.ResetCalls()
	b.ResetTimer()
	passes := 0
	for b.Loop() {
		rep, err := eng.Reconcile(ctx, false)
		if err != nil || len(rep.Drift) != 0 || rep.MembersChecked != 100000 {
			b.Fatalf("pass: %v, drift %d, members %d", err, len(rep.Drift), rep.MembersChecked)
		}
		passes++
	}
	b.ReportMetric(float64(len(sim.Calls()))/float64(passes), "okta-calls/pass")
	b.ReportMetric(float64(sim.CountStatus(429))/float64(passes), "okta-429s/pass")
}
