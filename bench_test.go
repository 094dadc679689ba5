package symbot_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
)

// fakeClock is a settable clock for benchmarks that do not run in a bubble.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func benchStore(b *testing.B, noSync bool) *store.Store {
	b.Helper()
	st, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Config{NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkLifecycle measures request + approve + grant + expire + removal
// (and every Slack job they cause) through the bbolt store, fsync on.
func BenchmarkLifecycle(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%t", noSync), func(b *testing.B) {
			benchLifecycles(b, benchStore(b, noSync))
		})
	}
}

// benchLifecycles runs b.N lifecycles (request, approve, grant, expire,
// removal and every Slack job they cause), one after another, for 512
// people in turn, through st, and reports lifecycles/s.
func benchLifecycles(b *testing.B, st symbot.Store) {
	h := newHarness(b, st)
	clk := newFakeClock()
	h.eng.Now = clk.Now
	users := make([]symbot.Actor, 512)
	for i := range users {
		users[i] = symbot.Actor{Person: symbot.Person{SlackID: fmt.Sprintf("U%06d", i), Name: "u", Email: fmt.Sprintf("u%d@example.com", i)}}
		h.dir.addUser(fmt.Sprintf("00u%d", i), users[i].Email, "ACTIVE")
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u := users[i%len(users)]
		r, err := h.eng.Submit(ctx, u, symbot.RequestInput{Target: "admin", Duration: 15 * time.Minute, Reason: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.eng.Approve(ctx, r.ID, bob, ""); err != nil {
			b.Fatal(err)
		}
		if _, err := h.eng.RunDueJobs(ctx); err != nil {
			b.Fatal(err)
		}
		clk.Advance(16 * time.Minute)
		if err := h.eng.FireDue(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := h.eng.RunDueJobs(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lifecycles/s")
	if jobs := h.pendingJobs(b); len(jobs) != 0 {
		b.Fatalf("jobs left: %d", len(jobs))
	}
}

// seedActive writes n active grants straight into the store, expiring
// spread over the next 30 days from now; extra get expiry exactly at.
func seedActive(b *testing.B, st symbot.Store, now time.Time, n int, at time.Time, atCount int) {
	b.Helper()
	const batch = 5000
	for start := 0; start < n; start += batch {
		err := st.Update(context.Background(), func(tx symbot.Tx) error {
			for i := start; i < min(start+batch, n); i++ {
				exp := now.Add(time.Hour + time.Duration(i)*(30*24*time.Hour/time.Duration(n)))
				if i < atCount {
					exp = at
				}
				uid := fmt.Sprintf("U%07d", i)
				r := &symbot.Request{
					ID: fmt.Sprintf("SYM-%d", i+1), Flow: "prod", Target: "admin", GroupID: "GADMIN",
					Requester: symbot.Person{SlackID: uid, Email: uid + "@example.com"},
					Duration:  time.Hour, Reason: "seed", State: symbot.StateActive,
					CreatedAt: now, UpdatedAt: now, GrantedAt: now, ExpiresAt: exp,
					OktaUserID: "00u" + uid, GrantChecked: true,
					Message: symbot.MessageRef{Channel: "CACCESS", TS: "1.1"},
					Transitions: []symbot.Transition{{From: symbot.StatePending, To: symbot.StateApproved, By: "UBOB", At: now},
						{From: symbot.StateApproved, To: symbot.StateActive, By: symbot.System, At: now}},
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

// BenchmarkStartup100k opens a store holding 100,000 active grants, builds
// the engine and loads the schedule head (the next deadline), and reports
// the heap in use afterwards.
func BenchmarkStartup100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.db")
	st, err := store.Open(path, store.Config{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	clk := newFakeClock()
	seedActive(b, st, clk.Now(), 100_000, time.Time{}, 0)
	st.Close()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	var heap uint64
	for i := 0; i < b.N; i++ {
		st, err := store.Open(path, store.Config{})
		if err != nil {
			b.Fatal(err)
		}
		eng, err := symbot.NewEngine(st, newFakeDir(), &fakeNotifier{}, []symbot.Flow{testFlow()})
		if err != nil {
			b.Fatal(err)
		}
		eng.Now = clk.Now
		stats, err := eng.Stats(context.Background())
		if err != nil || stats.NextDeadline.IsZero() {
			b.Fatalf("schedule not loaded: %v %+v", err, stats)
		}
		if err := eng.FireDue(context.Background()); err != nil {
			b.Fatal(err)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = ms.HeapInuse
		st.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "startup-ms")
}

// BenchmarkNextExpiry100k finds the next deadline among 100,000 grants.
func BenchmarkNextExpiry100k(b *testing.B) {
	st := benchStore(b, true)
	clk := newFakeClock()
	seedActive(b, st, clk.Now(), 100_000, time.Time{}, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.View(context.Background(), func(tx symbot.Tx) error {
			_, _, ok, err := tx.NextDeadline()
			if !ok {
				return fmt.Errorf("no deadline")
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

var lagNoSync = os.Getenv("SYMBOT_BENCH_NOSYNC") != ""

// lagDir records when each removal is called.
type lagDir struct {
	*fakeDir
	start time.Time
	mu    sync.Mutex
	lags  []time.Duration
	done  chan struct{}
	want  int
}

func (d *lagDir) RemoveMember(ctx context.Context, uid, gid string) error {
	d.mu.Lock()
	d.lags = append(d.lags, time.Since(d.start))
	if len(d.lags) == d.want {
		close(d.done)
	}
	d.mu.Unlock()
	return nil
}

// BenchmarkExpiryLag1000 has 1,000 of 100,000 grants expire in the same
// second and measures the lag from that second to each removal call (the
// revoke job claimed and run), with a fast directory.
func BenchmarkExpiryLag1000(b *testing.B) {
	var all []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := benchStore(b, lagNoSync)
		clk := newFakeClock()
		at := clk.Now().Add(30 * time.Minute)
		seedActive(b, st, clk.Now(), 100_000, at, 1000)
		d := &lagDir{fakeDir: newFakeDir(), done: make(chan struct{}), want: 1000}
		eng, err := symbot.NewEngine(st, d, &fakeNotifier{}, []symbot.Flow{testFlow()})
		if err != nil {
			b.Fatal(err)
		}
		eng.Now = clk.Now
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { defer close(stopped); _ = eng.Run(ctx) }()
		b.StartTimer()
		clk.Advance(30 * time.Minute)
		d.start = time.Now()
		if err := eng.FireDue(ctx); err != nil {
			b.Fatal(err)
		}
		select {
		case <-d.done:
		case <-time.After(60 * time.Second):
			b.Fatalf("only %d of 1000 removals after 60s", len(d.lags))
		}
		b.StopTimer()
		cancel()
		<-stopped
		all = append(all, d.lags...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
