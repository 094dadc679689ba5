package symbot_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

func TestValidateFlows(t *testing.T) {
	valid := func() symbot.Flow { f := testFlow(); f.ApplyDefaults(); return f }
	tests := []struct {
		name  string
		flows func() []symbot.Flow
		want  []string // every problem, by path prefix and words
	}{
		{"valid", func() []symbot.Flow { return []symbot.Flow{valid()} }, nil},
		{"no flows", func() []symbot.Flow { return nil }, []string{"flows: missing"}},
		{"missing group id", func() []symbot.Flow {
			f := valid()
			f.Targets[1].GroupID = ""
			g := valid()
			g.Name = "other"
			g.Targets[0].GroupID = ""
			return []symbot.Flow{f, g}
		}, []string{"flows[0].targets[1].group_id: missing", "flows[1].targets[0].group_id: missing"}},
		{"duplicates", func() []symbot.Flow {
			f := valid()
			f.Targets[1].Name = "admin"
			f.Targets[1].GroupID = "GADMIN"
			return []symbot.Flow{f, valid()}
		}, []string{"flows[0].targets[1].name: duplicate target name", "flows[0].targets[1].group_id: duplicate group id", "flows[1].name: duplicate flow name"}},
		{"invalid names say the rule", func() []symbot.Flow {
			f := valid()
			f.Name = "prod aws"
			f.Targets[0].Name = strings.Repeat("a", 65)
			f.Targets[1].Name = "read.only" // '.' is allowed
			return []symbot.Flow{f}
		}, []string{
			`flows[0].name: "prod aws" is not a valid name: use at most 64 letters, digits, '-', '_' and '.'`,
			`flows[0].targets[0].name: "` + strings.Repeat("a", 65) + `" is not a valid name: use at most 64 letters, digits, '-', '_' and '.'`,
		}},
		{"durations", func() []symbot.Flow {
			f := valid()
			f.Durations = []time.Duration{0, 31 * 24 * time.Hour, time.Hour, time.Hour}
			return []symbot.Flow{f}
		}, []string{"flows[0].durations[0]: must be more than 0", "flows[0].durations[1]: 31d is over the 30 day maximum", "flows[0].durations[3]: duplicate duration"}},
		{"empty approvers", func() []symbot.Flow {
			f := valid()
			f.Approvers = symbot.Approvers{}
			return []symbot.Flow{f}
		}, []string{"flows[0].approvers: empty"}},
		{"quorum above approvers", func() []symbot.Flow {
			f := valid()
			f.ApprovalsRequired = 3
			return []symbot.Flow{f}
		}, []string{"flows[0].approvals_required: 3 approvals required but only 2"}},
		{"target group is the approver group (granting it makes an approver)", func() []symbot.Flow {
			f := valid()
			f.Approvers = symbot.Approvers{OktaGroup: "GADMIN"}
			return []symbot.Flow{f}
		}, []string{"flows[0].targets[0].group_id: \"GADMIN\" is also this flow's approvers.okta_group"}},
		{"bad user id and no channel", func() []symbot.Flow {
			f := valid()
			f.Channel = ""
			f.Approvers.Users = []string{"bob"}
			return []symbot.Flow{f}
		}, []string{"flows[0].channel: missing", "flows[0].approvers.users[0]: \"bob\" is not a Slack user id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := symbot.ValidateFlows(tt.flows())
			if tt.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			var ve *symbot.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			if len(ve.Problems) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ve.Problems), len(tt.want), err)
			}
			for i, w := range tt.want {
				if got := ve.Problems[i].Error(); !strings.HasPrefix(got, w) {
					t.Errorf("problem %d = %q, want prefix %q", i, got, w)
				}
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"15m", 15 * time.Minute, false},
		{"1h", time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"1d", 24 * time.Hour, false},
		{"2d12h", 60 * time.Hour, false},
		{"1w", 7 * 24 * time.Hour, false},
		{"", 0, true},
		{"soon", 0, true},
		{"xd", 0, true},
	}
	for _, tt := range tests {
		got, err := symbot.ParseDuration(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %t", tt.in, got, err, tt.want, tt.bad)
		}
		if !tt.bad {
			back, err := symbot.ParseDuration(symbot.FormatDuration(got))
			if err != nil || back != got {
				t.Errorf("FormatDuration(%v) = %q does not parse back", got, symbot.FormatDuration(got))
			}
		}
	}
}
