package bot_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
)

// sharedDedup stands in for the store's dedup that several replicas share.
type sharedDedup struct {
	mu     sync.Mutex
	marked map[string]bool
	other  string // keys with this prefix were marked by another replica
}

func (d *sharedDedup) Seen(_ context.Context, key string, _ time.Time) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.marked[key] || (d.other != "" && strings.HasPrefix(key, d.other)), nil
}

func (d *sharedDedup) Mark(_ context.Context, key string, _ time.Time, _ time.Duration) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	first := !d.marked[key]
	d.marked[key] = true
	return first, nil
}

func (d *sharedDedup) count(prefix string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for k := range d.marked {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

var _ symbot.Deduper = (*sharedDedup)(nil)

func TestSharedDedupAcrossReplicas(t *testing.T) {
	d := &sharedDedup{marked: map[string]bool{}}
	h := MustHarness(t, withBotConfig(func(c *bot.Config) { c.Dedup = d }))
	r, ref := h.request(alice, "pg 30m migrate")
	h.waitFor("envelopes marked for the other replicas", func() bool { return d.count("env|") > 0 })
	// Bob's click already landed on another replica: this one ignores it.
	d.mu.Lock()
	d.other = "click|" + bob + "|"
	d.mu.Unlock()
	h.click(bob, ref, bot.ActionApprove)
	if st := h.bot.Stats(); st.DoubleClicks != 1 {
		t.Errorf("Stats.DoubleClicks = %d, want 1 (a click another replica handled)", st.DoubleClicks)
	}
	if got := h.get(r.ID); len(got.Approvals) != 0 {
		t.Errorf("a click another replica handled was handled again: %d approvals", len(got.Approvals))
	}
	// Carol's click is new everywhere: handled, and marked for the others.
	h.click(carol, ref, bot.ActionApprove)
	h.waitFor("carol's click marked", func() bool { return d.count("click|"+carol+"|") == 1 })
}
