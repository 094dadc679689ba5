package awsauth_test

import (
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot/awsauth"
)

// TestProblemsReportsEveryField: the config loader shows every problem at
// once, so Problems must not stop at the first.
func TestProblemsReportsEveryField(t *testing.T) {
	c := awsauth.Config{
		Region:          "useast1",
		RoleARN:         "arn:aws:iam::123456789012:user/bob",
		ExternalID:      "x",
		HopRoles:        []string{"arn:aws:iam::123456789012:role/ok", "nope"},
		SessionName:     "a b",
		SessionDuration: 2 * time.Hour,
		SecretID:        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:okta",
	}
	got := map[string]bool{}
	for _, p := range c.Problems() {
		got[p.Field] = true
	}
	for _, f := range []string{"region", "role_arn", "external_id", "hop_roles[1]", "session_name", "session_duration", "secret_id"} {
		if !got[f] {
			t.Errorf("no problem on %s; got %v", f, got)
		}
	}
	if got["hop_roles[0]"] {
		t.Error("a valid hop role was reported")
	}
}

func TestSecretRegion(t *testing.T) {
	if r, ok := awsauth.SecretRegion("arn:aws:secretsmanager:eu-west-1:123456789012:secret:okta"); !ok || r != "eu-west-1" {
		t.Errorf("got %q %v, want eu-west-1", r, ok)
	}
	if _, ok := awsauth.SecretRegion("symbot/okta"); ok {
		t.Error("a secret name has no region")
	}
}

// TestProblemsSayWhatToDo: each problem ends in what to set instead.
func TestProblemsSayWhatToDo(t *testing.T) {
	base := awsauth.Config{SecretID: "symbot/okta", RoleARN: "arn:aws:iam::123456789012:role/r"}
	tests := []struct {
		name string
		edit func(*awsauth.Config)
		want string
	}{
		{"more hop external ids than hops", func(c *awsauth.Config) { c.HopExternalIDs = []string{"abc"} }, "give at most one per hop role"},
		{"negative ttl", func(c *awsauth.Config) { c.SecretTTL = -time.Minute }, "use a positive duration"},
		{"chained over 1h", func(c *awsauth.Config) {
			c.HopRoles = []string{"arn:aws:iam::123456789012:role/hop"}
			c.SessionDuration = 2 * time.Hour
		}, "set at most 1h"},
		{"fraction of a second", func(c *awsauth.Config) { c.SessionDuration = 20*time.Minute + 500*time.Millisecond }, "round it, e.g. to 20m1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a problem containing %q", err, tt.want)
			}
		})
	}
}
