package config

import (
	"strings"
	"testing"
	"time"
)

func TestConfigReason(t *testing.T) {
	yml := edit(t, baseYAML, "    durations:", "    reason:\n      pattern: '[A-Z]+-\\d+'\n      message: name the ticket, like OPS-123\n      min_length: 5\n    durations:")
	yml = edit(t, yml, "        group_id: 00gADMIN000000000001\n", `        group_id: 00gADMIN000000000001
        durations: [15m, 1h]
        max_duration: 30m
        approvers:
          users: [U0OTHER]
        allow_guests: true
        reason:
          min_length: 10
`)
	cfg := MustParse(t, yml)
	f := cfg.Flows[0]
	if f.Reason == nil || f.Reason.Pattern != `[A-Z]+-\d+` || f.Reason.MinLength != 5 || f.Reason.Message != "name the ticket, like OPS-123" {
		t.Fatalf("flow reason = %+v", f.Reason)
	}
	if err := f.Reason.Check("fix OPS-12"); err != nil {
		t.Errorf("Check(matching) = %v", err)
	}
	if err := f.Reason.Check("fix it now"); err == nil || !strings.Contains(err.Error(), "name the ticket") {
		t.Errorf("Check(no ticket) = %v, want the rule's message", err)
	}
	tg := f.Targets[0]
	if tg.MaxDuration != 30*time.Minute || len(tg.Durations) != 2 || tg.Approvers == nil || tg.Approvers.Users[0] != "U0OTHER" || tg.AllowGuests == nil || !*tg.AllowGuests || tg.Reason.MinLength != 10 {
		t.Fatalf("target limits = %+v", tg)
	}

	tests := []struct {
		name, old, new string
		want           []string
	}{
		{"bad pattern", "    durations:", "    reason:\n      pattern: '[A-Z+'\n    durations:",
			[]string{"symbot.yml:17: flows[0].reason.pattern: not a valid Go regular expression: pattern \"[A-Z+\""}},
		{"negative min_length", "    durations:", "    reason:\n      min_length: -3\n    durations:",
			[]string{"symbot.yml:17: flows[0].reason.min_length: must not be negative"}},
		{"unknown reason key", "    durations:", "    reason:\n      patern: x\n    durations:",
			[]string{`symbot.yml:17: flows[0].reason.patern: unknown key "patern"`}},
		{"bad target", "        group_id: 00gADMIN000000000001\n", "        group_id: 00gADMIN000000000001\n        max_duration: 0s\n        reason:\n          pattern: '('\n",
			[]string{"symbot.yml:20: flows[0].targets[0].max_duration: must be more than 0", "symbot.yml:22: flows[0].targets[0].reason.pattern: not a valid Go regular expression"}},
		{"target max below durations", "        group_id: 00gADMIN000000000001\n", "        group_id: 00gADMIN000000000001\n        max_duration: 5m\n",
			[]string{"flows[0].targets[0].max_duration: 5m is below every duration offered"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, edit(t, baseYAML, tt.old, tt.new), env())
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}
