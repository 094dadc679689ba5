package symbot_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
)

// seedHistory writes n final (expired, membership removed) requests of
// actor for the admin target straight into the store.
func seedHistory(b *testing.B, st symbot.Store, actor symbot.Actor, now time.Time, n int) {
	b.Helper()
	const batch = 5000
	for start := 0; start < n; start += batch {
		err := st.Update(context.Background(), func(tx symbot.Tx) error {
			for i := start; i < min(start+batch, n); i++ {
				at := now.Add(-time.Duration(n-i) * time.Hour)
				r := &symbot.Request{
					ID: fmt.Sprintf("HIST-%d", i+1), Flow: "prod", Target: "admin", GroupID: "GADMIN",
					Requester: actor.Person, Duration: 15 * time.Minute, Reason: "past work", State: symbot.StateExpired,
					CreatedAt: at, UpdatedAt: at.Add(16 * time.Minute), GrantedAt: at, ExpiresAt: at.Add(15 * time.Minute),
					OktaUserID: "00u" + actor.Name, GrantChecked: true, Removed: true,
					Message: symbot.MessageRef{Channel: "CACCESS", TS: "1.1"},
					Transitions: []symbot.Transition{{From: symbot.StatePending, To: symbot.StateApproved, By: "UBOB", At: at},
						{From: symbot.StateApproved, To: symbot.StateActive, By: symbot.System, At: at},
						{From: symbot.StateActive, To: symbot.StateExpired, By: symbot.System, At: at.Add(15 * time.Minute)}},
				}
				if err := tx.PutRequest(r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSubmitHistory measures Submit (the duplicate check included)
// for a requester with no past requests and for one with 20,000 past
// (final) requests, through the bbolt store with fsync on. Each submitted
// request is cancelled (untimed) so the next one is not a duplicate. It
// reports Submit's p50 and p99 latency; the target is p99 with history
// within 2x of p99 without.
func BenchmarkSubmitHistory(b *testing.B) {
	for _, past := range []int{0, 20_000} {
		b.Run(fmt.Sprintf("past=%d", past), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "bench.db")
			clk := newFakeClock()
			if past > 0 {
				st, err := store.Open(path, store.Config{NoSync: true})
				if err != nil {
					b.Fatal(err)
				}
				seedHistory(b, st, alice, clk.Now(), past)
				if err := st.Close(); err != nil {
					b.Fatal(err)
				}
			}
			st, err := store.Open(path, store.Config{}) // fsync on
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			h := newHarness(b, st)
			h.eng.Now = clk.Now
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				r, err := h.eng.Submit(ctx, alice, symbot.RequestInput{Target: "admin", Duration: 15 * time.Minute, Reason: "bench"})
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if _, err := h.eng.Cancel(ctx, r.ID, alice); err != nil {
					b.Fatal(err)
				}
				if _, err := h.eng.RunDueJobs(ctx); err != nil {
					b.Fatal(err)
				}
				clk.Advance(time.Second)
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*50/100].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
