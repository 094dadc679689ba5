package config

import (
	"strings"
	"testing"
	"time"
)

func TestConfigLimits(t *testing.T) {
	if got := MustParse(t, baseYAML).Limits; got != (Limits{}) {
		t.Errorf("limits without a limits: key = %+v, want zero (the bot's defaults)", got)
	}
	got := MustParse(t, baseYAML+`limits:
  requests_per_minute: 3
  pending_requests: 4
  commands_per_minute: 20
  approver_cache_ttl: 1m
`).Limits
	if want := (Limits{RequestsPerMinute: 3, PendingRequests: 4, CommandsPerMinute: 20, ApproverCacheTTL: time.Minute}); got != want {
		t.Errorf("limits = %+v, want %+v", got, want)
	}
	if got := MustParse(t, baseYAML+"limits:\n  approver_cache_ttl: 0\n").Limits; !got.ApproverCacheOff {
		t.Errorf("approver_cache_ttl: 0 = %+v, want the cache off", got)
	}

	tests := []struct{ name, yml, want string }{
		{"zero", "limits:\n  requests_per_minute: 0\n", "symbot.yml:21: limits.requests_per_minute: must be at least 1"},
		{"negative", "limits:\n  pending_requests: -2\n", "symbot.yml:21: limits.pending_requests: must be at least 1"},
		{"not a number", "limits:\n  commands_per_minute: lots\n", "symbot.yml:21: limits.commands_per_minute: expected a whole number"},
		{"typo", "limits:\n  request_per_minute: 3\n", `unknown key "request_per_minute" (did you mean "requests_per_minute"?)`},
		{"bad duration", "limits:\n  approver_cache_ttl: soon\n", `limits.approver_cache_ttl: "soon" is not a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, baseYAML+tt.yml, env())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
