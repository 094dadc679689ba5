package symbot_test

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
)

// durable is one PostgreSQL server with durable commits (fsync and
// synchronous_commit on), started for the benchmarks that compare with
// bbolt's fsync-on figures.
var (
	durableOnce sync.Once
	durable     *pgtest.Cluster
	durableErr  error
)

func pgBenchURL(b *testing.B) string {
	b.Helper()
	pgtest.Shared(b) // skips (or fails under CI) without PostgreSQL
	durableOnce.Do(func() { durable, durableErr = pgtest.StartDurable() })
	if durableErr != nil {
		b.Fatal(durableErr)
	}
	url, err := durable.CreateDatabase(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = durable.DropDatabase(context.Background(), url) })
	return url
}

func pgBenchStore(b *testing.B, url string) *postgres.Store {
	b.Helper()
	st, err := postgres.Open(context.Background(), url, postgres.Config{MaxConns: 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkLifecyclePostgres is BenchmarkLifecycle on PostgreSQL with
// durable commits: request + approve + grant + expire + removal and every
// Slack job they cause, one after another.
func BenchmarkLifecyclePostgres(b *testing.B) {
	benchLifecycles(b, pgBenchStore(b, pgBenchURL(b)))
}

// lagBudget bounds how long BenchmarkExpiryLag1000Postgres3 waits for the
// removals; removals not made by then count as lagBudget.
const lagBudget = 180 * time.Second

// BenchmarkExpiryLag1000Postgres3 has 1,000 of 100,000 grants expire in
// the same second with 3 replicas (3 engines, each with its own store and
// pool) on one durable PostgreSQL, and measures the lag from that second to
// each removal call. It also counts removals made twice (there must be none).
func BenchmarkExpiryLag1000Postgres3(b *testing.B) {
	var all []time.Duration
	dups := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		url := pgBenchURL(b)
		clk := newFakeClock()
		at := clk.Now().Add(30 * time.Minute)
		seedActive(b, pgBenchStore(b, url), clk.Now(), 100_000, at, 1000)
		d := &lagDir{fakeDir: newFakeDir(), done: make(chan struct{}), want: 1000}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var engines []*symbot.Engine
		for range 3 {
			eng, err := symbot.NewEngine(pgBenchStore(b, url), d, &fakeNotifier{}, []symbot.Flow{testFlow()})
			if err != nil {
				b.Fatal(err)
			}
			eng.Now = clk.Now
			engines = append(engines, eng)
			wg.Go(func() { _ = eng.Run(ctx) })
		}
		b.StartTimer()
		clk.Advance(30 * time.Minute)
		d.start = time.Now()
		for _, eng := range engines {
			wg.Go(func() {
				if err := eng.FireDue(ctx); err != nil && ctx.Err() == nil {
					b.Error(err)
				}
			})
		}
		timedOut := false
		select {
		case <-d.done:
		case <-time.After(lagBudget):
			timedOut = true // reported below: the lag of the rest exceeds the budget
		}
		b.StopTimer()
		cancel()
		wg.Wait()
		d.mu.Lock()
		n := min(len(d.lags), 1000)
		dups += len(d.lags) - n
		all = append(all, d.lags[:n]...)
		for range 1000 - n {
			all = append(all, lagBudget) // not removed within the budget: counted at the budget
		}
		d.mu.Unlock()
		if timedOut {
			b.Logf("only %d of 1000 removals within %v; the rest count as %v", n, lagBudget, lagBudget)
		}
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(dups), "double-removals")
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
