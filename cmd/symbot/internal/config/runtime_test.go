package config

import (
	"strings"
	"testing"
	"time"
)

func TestConfigRuntime(t *testing.T) {
	got := MustParse(t, baseYAML).Runtime
	want := Runtime{CredentialCheckInterval: time.Minute, GrantCheckTTL: 5 * time.Minute, JobWorkers: 16}
	if got != want {
		t.Errorf("runtime without a runtime: key = %+v, want the defaults %+v", got, want)
	}
	if got.EngineGrantCheckTTL() != 5*time.Minute {
		t.Errorf("EngineGrantCheckTTL of the default = %v, want 5m", got.EngineGrantCheckTTL())
	}
	got = MustParse(t, baseYAML+"runtime:\n  credential_check_interval: 30s\n  grant_check_ttl: 15m\n  job_workers: 32\n").Runtime
	want = Runtime{CredentialCheckInterval: 30 * time.Second, GrantCheckTTL: 15 * time.Minute, JobWorkers: 32}
	if got != want {
		t.Errorf("runtime = %+v, want %+v", got, want)
	}
	got = MustParse(t, baseYAML+"runtime:\n  grant_check_ttl: 0\n").Runtime
	if !got.GrantCheckOff || got.EngineGrantCheckTTL() >= 0 {
		t.Errorf("grant_check_ttl: 0 = %+v (engine %v), want the early look-ups off (negative for the engine)", got, got.EngineGrantCheckTTL())
	}

	tests := []struct{ name, yml, want string }{
		{"interval too short", "runtime:\n  credential_check_interval: 5s\n", "symbot.yml:21: runtime.credential_check_interval: must be between 10s and 1h"},
		{"interval too long", "runtime:\n  credential_check_interval: 2h\n", "symbot.yml:21: runtime.credential_check_interval: must be between 10s and 1h"},
		{"interval not a duration", "runtime:\n  credential_check_interval: often\n", `symbot.yml:21: runtime.credential_check_interval: "often" is not a duration`},
		{"ttl negative", "runtime:\n  grant_check_ttl: -5m\n", "symbot.yml:21: runtime.grant_check_ttl: -5m is negative: use a duration from 1s to 1h such as 5m, or 0 to turn the early look-ups off"},
		{"ttl too long", "runtime:\n  grant_check_ttl: 2h\n", "symbot.yml:21: runtime.grant_check_ttl: must be at most 1h (0 turns the early look-ups off"},
		{"no workers", "runtime:\n  job_workers: 0\n", "symbot.yml:21: runtime.job_workers: must be at least 1"},
		{"too many workers", "runtime:\n  job_workers: 1000\n", "symbot.yml:21: runtime.job_workers: must be at most 256"},
		{"workers not a number", "runtime:\n  job_workers: many\n", "symbot.yml:21: runtime.job_workers: expected a whole number"},
		{"typo", "runtime:\n  job_worker: 3\n", `unknown key "job_worker" (did you mean "job_workers"?)`},
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
