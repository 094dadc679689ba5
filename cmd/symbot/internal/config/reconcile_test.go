package config

import (
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

func TestConfigReconcile(t *testing.T) {
	cfg := MustParse(t, baseYAML)
	if cfg.Reconcile.Interval != DefaultReconcileInterval {
		t.Errorf("reconcile.interval default = %v, want %v", cfg.Reconcile.Interval, DefaultReconcileInterval)
	}
	if got := cfg.Flows[0].UnmanagedMembers; got != "" {
		t.Errorf("unmanaged_members default = %q, want empty (the engine reads it as alert)", got)
	}
	yml := edit(t, baseYAML, "flows:\n", "reconcile:\n  interval: 30m\nflows:\n")
	yml = edit(t, yml, "    durations:", "    unmanaged_members: remove\n    durations:")
	yml = edit(t, yml, "        group_id: 00gADMIN000000000001\n", "        group_id: 00gADMIN000000000001\n        unmanaged_members: ignore\n")
	cfg = MustParse(t, yml)
	if cfg.Reconcile.Interval != 30*time.Minute {
		t.Errorf("reconcile.interval = %v, want 30m", cfg.Reconcile.Interval)
	}
	if f := cfg.Flows[0]; f.UnmanagedMembers != symbot.UnmanagedRemove || f.Targets[0].UnmanagedMembers != symbot.UnmanagedIgnore {
		t.Errorf("policies = flow %q target %q, want remove and ignore", f.UnmanagedMembers, f.Targets[0].UnmanagedMembers)
	}

	tests := []struct {
		name, old, new, want string
	}{
		{"bad policy", "    durations:", "    unmanaged_members: delete\n    durations:", `flows[0].unmanaged_members: "delete" is not a policy: use alert, remove or ignore`},
		{"bad target policy", "        group_id: 00gADMIN000000000001\n", "        group_id: 00gADMIN000000000001\n        unmanaged_members: nuke\n", `flows[0].targets[0].unmanaged_members: "nuke" is not a policy`},
		{"interval too short", "flows:\n", "reconcile:\n  interval: 10s\nflows:\n", "reconcile.interval: must be at least 1m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, edit(t, baseYAML, tt.old, tt.new), env())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
