package store_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/storetest"
)

const benchN = 100_000

var (
	bigOnce sync.Once
	bigPath string
	bigDir  string
	bigErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bigDir != "" {
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

// benchRequest is an active request expiring at T0+sec seconds, with the
// approvals and transitions a real one carries (~1 KB of JSON).
func benchRequest(i, sec int) *symbot.Request {
	r := storetest.FullRequest(fmt.Sprintf("R%07d", i))
	r.Requester.SlackID = fmt.Sprintf("U%04d", i%2000)
	r.State = symbot.StateActive
	r.Warned = true
	r.ExpiresAt = storetest.T0.Add(time.Duration(sec) * time.Second)
	return r
}

// bigStore returns the path of a store file holding benchN active requests
// whose deadlines are T0+0s .. T0+(benchN-1)s, written in random order. It
// is built once per test binary, in batches of 10,000 puts per transaction.
func bigStore(b *testing.B) string {
	b.Helper()
	bigOnce.Do(func() {
		if bigDir, bigErr = os.MkdirTemp("", "symbot-bench-"); bigErr != nil {
			return
		}
		bigPath = filepath.Join(bigDir, "big.db")
		s, err := store.Open(bigPath, store.Config{NoSync: true})
		if err != nil {
			bigErr = err
			return
		}
		defer s.Close()
		perm := rand.New(rand.NewPCG(1, 2)).Perm(benchN)
		for lo := 0; lo < benchN; lo += 10_000 {
			bigErr = s.Update(b.Context(), func(tx symbot.Tx) error {
				for i := lo; i < lo+10_000; i++ {
					if err := tx.PutRequest(benchRequest(i, perm[i])); err != nil {
						return err
					}
				}
				return nil
			})
			if bigErr != nil {
				return
			}
		}
	})
	if bigErr != nil {
		b.Fatalf("building the %d-request store: %v", benchN, bigErr)
	}
	return bigPath
}

func openBig(b *testing.B) *store.Store {
	b.Helper()
	s, err := store.Open(bigStore(b), store.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkNextDeadline(b *testing.B) {
	s := openBig(b)
	for b.Loop() {
		err := s.View(b.Context(), func(tx symbot.Tx) error {
			id, at, ok, err := tx.NextDeadline()
			if !ok || !at.Equal(storetest.T0) || id == "" {
				b.Fatalf("NextDeadline = %q %v %v", id, at, ok)
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDueRequests1000(b *testing.B) {
	s := openBig(b)
	now := storetest.T0.Add(999 * time.Second)
	for b.Loop() {
		err := s.View(b.Context(), func(tx symbot.Tx) error {
			ids, err := tx.DueRequests(now, 0)
			if len(ids) != 1000 {
				b.Fatalf("DueRequests: %d ids, want 1000", len(ids))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenScheduleHead measures a restart: open the 100k file and
// read the next deadline.
func BenchmarkOpenScheduleHead(b *testing.B) {
	path := bigStore(b)
	for b.Loop() {
		s, err := store.Open(path, store.Config{})
		if err != nil {
			b.Fatal(err)
		}
		err = s.View(b.Context(), func(tx symbot.Tx) error {
			_, _, ok, err := tx.NextDeadline()
			if !ok {
				b.Fatal("no deadline")
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkOpenHeap reports the Go heap in use with the 100k file open and
// its schedule head read: bbolt maps the file, so the heap stays small.
func BenchmarkOpenHeap(b *testing.B) {
	path := bigStore(b)
	var ms runtime.MemStats
	var delta, inuse float64
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		s, err := store.Open(path, store.Config{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.View(b.Context(), func(tx symbot.Tx) error { _, _, _, err := tx.NextDeadline(); return err }); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		delta, inuse = float64(int64(ms.HeapInuse)-int64(base)), float64(ms.HeapInuse)
		s.Close()
	}
	b.ReportMetric(delta, "heap-delta-B")
	b.ReportMetric(inuse, "heap-inuse-B")
	if fi, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(fi.Size()), "file-B")
	}
}

// BenchmarkPutRequest measures one PutRequest per transaction (with and
// without fsync) and 100 per transaction, into an empty store and into a
// copy of the 100k store.
func BenchmarkPutRequest(b *testing.B) {
	for _, tc := range []struct {
		name   string
		big    bool
		noSync bool
		batch  int
	}{
		{"empty/fsync/1", false, false, 1},
		{"empty/nosync/1", false, true, 1},
		{"empty/nosync/100", false, true, 100},
		{"100k/fsync/1", true, false, 1},
		{"100k/nosync/1", true, true, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "put.db")
			if tc.big {
				copyFile(b, bigStore(b), path)
			}
			s, err := store.Open(path, store.Config{NoSync: tc.noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			i := 0
			for b.Loop() {
				err := s.Update(b.Context(), func(tx symbot.Tx) error {
					for range tc.batch {
						i++
						if err := tx.PutRequest(benchRequest(benchN+i, benchN+i)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}

// BenchmarkRequestCommit measures a commit shaped like a new request's
// (the request pending, its approval message's job in the request's lane,
// its audit entry, and the late write of the previous request's post: its
// job deleted, its message recorded): pages written per
// commit, with the index entries waiting in the pending bucket (as
// symbot runs) and with every commit flushing them (as before the pending
// bucket, near enough), into an empty store and a copy of the 100k store.
func BenchmarkRequestCommit(b *testing.B) {
	key := storetest.TestAuditKey(b)
	for _, size := range []string{"empty", "100k"} {
		for _, sync := range []string{"nosync", "fsync"} {
			for _, how := range []string{"pending", "flush-every-commit"} {
				b.Run(size+"/"+sync+"/"+how, func(b *testing.B) {
					benchRequestCommit(b, key, size == "100k", sync == "fsync", how == "flush-every-commit")
				})
			}
		}
	}
}

func benchRequestCommit(b *testing.B, key *symbot.AuditKey, big, sync, flushEvery bool) {
	path := filepath.Join(b.TempDir(), "commit.db")
	if big {
		copyFile(b, bigStore(b), path)
	}
	s, err := store.Open(path, store.Config{NoSync: !sync})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if flushEvery {
		store.SetFlushAt(s, 0)
	}
	var prev *symbot.Request
	var prevJob uint64
	i, pages := 0, store.PagesWritten(s)
	for b.Loop() {
		i++
		r := storetest.FullRequest(fmt.Sprintf("S%07d", i))
		r.Requester.SlackID = fmt.Sprintf("U%04d", (i*7919)%2000)
		r.State = symbot.StatePending
		r.Approvals, r.Transitions, r.GrantedAt, r.ExpiresAt = nil, nil, time.Time{}, time.Time{}
		r.TimeoutAt = storetest.T0.Add(time.Duration(i) * time.Second)
		var job uint64
		err := s.Update(b.Context(), func(tx symbot.Tx) error {
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			if err := symbot.AppendAudit(tx, key, &symbot.AuditEntry{At: storetest.T0, RequestID: r.ID, Actor: r.Requester.SlackID, Action: "request", Detail: "flow=prod target=admin"}); err != nil {
				return err
			}
			j := &symbot.Job{Kind: symbot.JobPost, RequestID: r.ID, Lane: r.ID, NotBefore: storetest.T0}
			if err := tx.AddJob(j); err != nil {
				return err
			}
			job = j.ID
			if prev == nil {
				return nil
			}
			if err := tx.DeleteJob(prevJob); err != nil {
				return err
			}
			prev.Message = symbot.MessageRef{Channel: "C1", TS: fmt.Sprint(i)}
			return tx.PutRequest(prev)
		})
		if err != nil {
			b.Fatal(err)
		}
		prev, prevJob = r, job
	}
	b.ReportMetric(float64(store.PagesWritten(s)-pages)/float64(i), "pages/commit")
}

func copyFile(b *testing.B, from, to string) {
	b.Helper()
	src, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		b.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkClaimJobsBacklog measures one claim of 8 jobs from a backlog of
// 1,000 due jobs, each in its own lane (as revoke jobs are after an outage).
func BenchmarkClaimJobsBacklog(b *testing.B) {
	s, err := store.Open(filepath.Join(b.TempDir(), "claim.db"), store.Config{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	js := make([]symbot.Job, 1000)
	for i := range js {
		js[i] = symbot.Job{Kind: symbot.JobRevoke, Lane: fmt.Sprintf("R%04d", i), NotBefore: storetest.T0}
	}
	storetest.MustAddJobs(b, s, js...)
	now := storetest.T0
	for b.Loop() {
		// Leases of 1ns end before the next claim, so the backlog stays 1,000.
		now = now.Add(time.Microsecond)
		got, err := s.ClaimJobs(b.Context(), "w", now, time.Nanosecond, 8)
		if err != nil || len(got) != 8 {
			b.Fatalf("ClaimJobs = %d jobs, %v", len(got), err)
		}
	}
}

// BenchmarkUpdateConcurrent measures 16 goroutines each putting one request
// per Update into the 100k store, fsync on: group commit shares one commit
// (and fsync) among the updates that arrive while one is in flight.
func BenchmarkUpdateConcurrent(b *testing.B) {
	path := filepath.Join(b.TempDir(), "put.db")
	copyFile(b, bigStore(b), path)
	s, err := store.Open(path, store.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var next atomic.Int64
	b.SetParallelism(8) // 16 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			err := s.Update(b.Context(), func(tx symbot.Tx) error {
				return tx.PutRequest(benchRequest(benchN+i, benchN+i))
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}
