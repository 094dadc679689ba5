package bot_test

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkAckLatency measures envelope-in to ack-out over loopback at 500
// slash commands per second: "help" is answered in the ack itself, "list"
// is acked at once and its work (engine read, response_url post) runs on the
// worker pool. Run with e.g. -benchtime=2000x.
func BenchmarkAckLatency(b *testing.B) {
	for _, tc := range []struct{ name, text string }{{"help", "help"}, {"list", "list"}} {
		b.Run(tc.name, func(b *testing.B) {
			h := MustHarness(b)
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
