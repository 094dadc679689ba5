package slacktest_test

import (
	"testing"
	"time"

	"github.com/symbot/symbot/bot/slacktest"
)

// BenchmarkSlashCommandAck measures envelope-in to ack-out through the real
// slack-go socketmode client (which acks immediately here).
func BenchmarkSlashCommandAck(b *testing.B) {
	srv := newServer(b)
	MustApp(b, srv, nil)
	b.ResetTimer()
	var total time.Duration
	for b.Loop() {
		ack, err := srv.SlashCommand("U1", "/sym", "list", "C1")
		if err != nil {
			b.Fatalf("SlashCommand: %v", err)
		}
		total += ack.Latency
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs-ack-latency/op")
}

// BenchmarkSlashCommand500PerSecond drives 500 commands per second for one
// second and reports ack latency percentiles.
func BenchmarkSlashCommand500PerSecond(b *testing.B) {
	srv := newServer(b)
	MustApp(b, srv, nil)
	for b.Loop() {
		res := srv.SendMany(b.Context(), 500, 500, func(int) (slacktest.Ack, error) {
			return srv.SlashCommand("U1", "/sym", "list", "C1")
		})
		if res.Failed > 0 {
			b.Fatalf("%d of %d failed: %v", res.Failed, res.Sent, res.FirstErr)
		}
		b.ReportMetric(float64(res.P50.Microseconds()), "µs-p50")
		b.ReportMetric(float64(res.P99.Microseconds()), "µs-p99")
		b.ReportMetric(float64(res.Max.Microseconds()), "µs-max")
	}
}
