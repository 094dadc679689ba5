package bot_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
)

// TestNotifyMemberTellsThePersonByEmail: the person the reconciler removed
// from a group no grant explained is found by their email and told by DM,
// with how to ask for the access; an email with no Slack account is
// ErrUserNotFound (nobody to tell), not an error to retry.
func TestNotifyMemberTellsThePersonByEmail(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{Command: "/sym"})
	f, _ := sampleRequest()
	if err := b.NotifyMember(t.Context(), "alice@example.com", f, "admin", symbot.EventUnmanagedRemoved); err != nil {
		t.Fatalf("NotifyMember: %v", err)
	}
	dms := s.DMs(alice)
	if len(dms) != 1 {
		t.Fatalf("DMs to alice = %d, want 1", len(dms))
	}
	label := "admin"
	if tg, ok := f.Target("admin"); ok && tg.Label != "" {
		label = tg.Label
	}
	for _, want := range []string{"removed you from *" + label + "*", "no approved request", "`/sym req prod/admin <duration> <reason>`"} {
		if !strings.Contains(dms[0].Text, want) {
			t.Errorf("DM %q lacks %q", dms[0].Text, want)
		}
	}
	err := b.NotifyMember(t.Context(), "nobody@example.com", f, "admin", symbot.EventUnmanagedRemoved)
	if !errors.Is(err, symbot.ErrUserNotFound) {
		t.Errorf("NotifyMember to an unknown email: %v, want ErrUserNotFound", err)
	}
}
