package bot_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
)

// BenchmarkAckLatency measures envelope-in to ack-out over loopback at 500
// slash commands per second: "help" is answered in the ack itself, "list"
// is acked at once and its work (engine read, response_url post) runs on the
// worker pool. Run with e.g. -benchtime=2000x.
func BenchmarkAckLatency(b *testing.B) {
	for _, tc := range []struct{ name, text string }{{"help", "help"}, {"list", "list"}} {
		b.Run(tc.name, func(b *testing.B) {
			// Four people at 500 commands a second are far over the
			// per-person limits; this measures the socket loop, not them.
			h := MustHarness(b, withBotConfig(func(c *bot.Config) { c.Limits.CommandsPerMinute = -1 }))
			const rate = 500
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			var (
				mu   sync.Mutex
				lats []time.Duration
				wg   sync.WaitGroup
			)
			users := []string{alice, bob, carol, dave}
			b.ResetTimer()
			for i := range b.N {
				<-tick.C
				wg.Go(func() {
					ack, err := h.s.SlashCommand(users[i%len(users)], "/sym", tc.text, chAcc)
					if err != nil {
						b.Errorf("slash command: %v", err)
						return
					}
					mu.Lock()
					lats = append(lats, ack.Latency)
					mu.Unlock()
				})
			}
			wg.Wait()
			b.StopTimer()
			if len(lats) == 0 {
				return
			}
			slices.Sort(lats)
			pct := func(p float64) float64 {
				return float64(lats[min(len(lats)-1, int(p*float64(len(lats))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50_ms")
			b.ReportMetric(pct(0.99), "p99_ms")
			b.ReportMetric(float64(lats[len(lats)-1].Microseconds())/1000, "max_ms")
		})
	}
}

// BenchmarkApprovalDuringWhoamiFlood measures how long an approval click
// takes to be recorded while another person has 24 /sym whoami queued
// against an Okta that takes 100ms per call (the attack: it took 7s
// with one queue for everyone).
func BenchmarkApprovalDuringWhoamiFlood(b *testing.B) {
	h := mustAdmissionHarness(b, withBotConfig(func(c *bot.Config) {
		c.Limits.ApproverCacheTTL = -1
		c.Limits.CommandsPerMinute = -1
		c.Limits.RequestsPerMinute = -1
		c.ShutdownTimeout = 200 * time.Millisecond
	}))
	var lats []time.Duration
	for range b.N {
		r, ref := h.request(alice, "prod/admin 1h bench")
		h.dir.slow(100 * time.Millisecond)
		for range 24 {
			h.slash(dave, "whoami")
		}
		start := time.Now()
		h.click(bob, ref, bot.ActionApprove)
		h.waitFor("approved", func() bool {
			got, err := h.eng.Get(context.Background(), r.ID)
			return err == nil && got.State != symbot.StatePending
		})
		lats = append(lats, time.Since(start))
		h.dir.slow(0)
		h.waitState(r.ID, symbot.StateActive)
		if _, err := h.eng.Revoke(context.Background(), r.ID, symbot.Actor{Person: symbot.Person{SlackID: alice}}, ""); err != nil {
			b.Fatalf("revoke: %v", err)
		}
		h.waitFor("whoamis answered", func() bool { return h.bot.Stats().Queued == 0 })
	}
	slices.Sort(lats)
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lats[len(lats)-1].Microseconds())/1000, "max_ms")
}
