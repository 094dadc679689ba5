package symbot_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

// recordingSink remembers every batch; it fails while failN > 0 and
// blocks while hold is open.
type recordingSink struct {
	mu      sync.Mutex
	batches []symbot.AuditBatch
	failN   int
	calls   int
	hold    chan struct{}
}

func (s *recordingSink) Deliver(ctx context.Context, b symbot.AuditBatch) error {
	s.mu.Lock()
	s.calls++
	hold := s.hold
	if s.failN > 0 {
		s.failN--
		s.mu.Unlock()
		return errors.New("receiver answered 503")
	}
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, b)
	return nil
}

// seqs returns the entry seqs received, in order, and the checkpoints.
func (s *recordingSink) seqs() ([]uint64, []symbot.AuditCheckpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint64
	var cps []symbot.AuditCheckpoint
	for _, b := range s.batches {
		for _, e := range b.Entries {
			out = append(out, e.Seq)
		}
		if b.Checkpoint != nil {
			cps = append(cps, *b.Checkpoint)
		}
	}
	return out, cps
}

func appendEntries(t *testing.T, st symbot.Store, k *symbot.AuditKey, n int) {
	t.Helper()
	for i := range n {
		if err := st.Update(context.Background(), func(tx symbot.Tx) error {
			return symbot.AppendAudit(tx, k, &symbot.AuditEntry{At: time.Now(), RequestID: "SYM-1", Actor: "UBOB", Action: "approve", Detail: fmt.Sprint(i)})
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// inOrderOnce checks that got is 1..n in order, allowing a redelivered
// suffix of a batch (at least once) only where it continues the sequence.
func inOrder(t *testing.T, name string, got []uint64, n int) {
	t.Helper()
	var want uint64 = 1
	for _, s := range got {
		if s == want {
			want++
			continue
		}
		if s < want {
			continue // a duplicate after a retry is allowed (at least once)
		}
		t.Fatalf("sink %s got seq %d where %d was next: out of order or a gap (%v)", name, s, want, got)
	}
	if want != uint64(n+1) {
		t.Fatalf("sink %s got up to %d, want all %d", name, want-1, n)
	}
}

func TestAuditShipperDeliversInOrderAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New()
		k := testKey(t, 9)
		appendEntries(t, st, k, 250)
		ok, flaky := &recordingSink{}, &recordingSink{failN: 4}
		var logs bytes.Buffer
		var alerts []symbot.Alert
		var amu sync.Mutex
		sh, err := symbot.NewAuditShipper(st, map[string]symbot.AuditSink{"ok": ok, "flaky": flaky})
		if err != nil {
			t.Fatal(err)
		}
		sh.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		sh.BatchSize = 40
		sh.AlertAfter = 3
		sh.Alert = func(_ context.Context, a symbot.Alert) error {
			amu.Lock()
			defer amu.Unlock()
			alerts = append(alerts, a)
			return nil
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- sh.Run(ctx) }()

		time.Sleep(time.Minute) // 4 failures back off 1+2+4+8 s
		synctest.Wait()
		for name, s := range map[string]*recordingSink{"ok": ok, "flaky": flaky} {
			got, _ := s.seqs()
			inOrder(t, name, got, 250)
		}
		amu.Lock()
		if len(alerts) != 1 || alerts[0].Event != symbot.EventSinkStuck || !strings.Contains(alerts[0].Text, "flaky") {
			t.Errorf("alerts = %+v, want one sink_stuck alert naming flaky", alerts)
		}
		amu.Unlock()
		for _, s := range sh.Stats() {
			if s.Delivered != 250 || s.Pending != 0 || s.Failing != 0 {
				t.Errorf("stats %+v, want 250 delivered, none pending or failing", s)
			}
		}

		// New entries go out at the next poll; a kick sends them at once.
		appendEntries(t, st, k, 5)
		sh.Kick()
		synctest.Wait()
		got, _ := ok.seqs()
		inOrder(t, "ok", got, 255)

		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		var head symbot.AuditCheckpoint
		st.View(context.Background(), func(tx symbot.Tx) (err error) { head.Seq, head.Hash, err = tx.AuditHead(); return err })
		for name, s := range map[string]*recordingSink{"ok": ok, "flaky": flaky} {
			_, cps := s.seqs()
			if len(cps) == 0 || cps[len(cps)-1].Seq != 255 || cps[len(cps)-1].Hash != head.Hash || cps[len(cps)-1].Key != k.ID() {
				t.Errorf("sink %s checkpoints %+v, want the last at the head %d %s", name, cps, head.Seq, head.Hash)
			}
		}
		anchors, err := symbot.ParseAuditAnchors(&logs)
		if err != nil {
			t.Fatalf("anchors from the log: %v", err)
		}
		if last := anchors[len(anchors)-1]; last.Seq != 255 || last.Hash != head.Hash {
			t.Errorf("last checkpoint in the log = %+v, want %d %s", last, head.Seq, head.Hash)
		}
		if strings.Contains(logs.String(), "abcdef") {
			t.Errorf("log holds key material")
		}

		// A restart resumes at the durable cursors: nothing is sent twice.
		before := len(ok.batches)
		sh2, _ := symbot.NewAuditShipper(st, map[string]symbot.AuditSink{"ok": ok})
		ctx2, cancel2 := context.WithCancel(t.Context())
		go func() { done <- sh2.Run(ctx2) }()
		synctest.Wait()
		cancel2()
		<-done
		ok.mu.Lock()
		for _, b := range ok.batches[before:] {
			if len(b.Entries) > 0 {
				t.Errorf("after restart the sink got entries %d.. again", b.Entries[0].Seq)
			}
		}
		ok.mu.Unlock()
	})
}

func TestAuditShipperSlowSinkDelaysOnlyItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New()
		appendEntries(t, st, nil, 30)
		fast, slow := &recordingSink{}, &recordingSink{hold: make(chan struct{})}
		sh, err := symbot.NewAuditShipper(st, map[string]symbot.AuditSink{"fast": fast, "slow": slow})
		if err != nil {
			t.Fatal(err)
		}
		sh.BatchSize = 10
		sh.DeliverTimeout = 10 * time.Second
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- sh.Run(ctx) }()
		synctest.Wait()
		got, _ := fast.seqs()
		inOrder(t, "fast", got, 30)
		if got, _ := slow.seqs(); len(got) != 0 {
			t.Fatalf("slow sink got %v while blocked", got)
		}
		// Writers never wait for sinks.
		appendEntries(t, st, nil, 10)
		sh.Kick()
		synctest.Wait()
		got, _ = fast.seqs()
		inOrder(t, "fast", got, 40)

		time.Sleep(25 * time.Second) // two timeouts
		var stats symbot.AuditSinkStats
		for _, s := range sh.Stats() {
			if s.Name == "slow" {
				stats = s
			}
		}
		if stats.Failing == 0 || stats.Pending != 40 || !strings.Contains(stats.LastError, "deadline") {
			t.Errorf("slow sink stats %+v, want failing with 40 pending", stats)
		}
		close(slow.hold)
		time.Sleep(time.Minute)
		got, _ = slow.seqs()
		inOrder(t, "slow", got, 40)
		cancel()
		<-done
	})
}

func TestAuditShipperRefusesATruncatedChain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New()
		appendEntries(t, st, nil, 3)
		if err := st.Update(context.Background(), func(tx symbot.Tx) error { return tx.SetSinkCursor("file", 9) }); err != nil {
			t.Fatal(err)
		}
		s := &recordingSink{}
		sh, _ := symbot.NewAuditShipper(st, map[string]symbot.AuditSink{"file": s})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- sh.Run(ctx) }()
		synctest.Wait()
		stats := sh.Stats()[0]
		if stats.Failing == 0 || !strings.Contains(stats.LastError, "truncated") {
			t.Errorf("stats %+v, want a failure saying the trail was truncated", stats)
		}
		cancel()
		<-done
	})
}

func TestAuditExportRoundTrip(t *testing.T) {
	k := testKey(t, 1)
	es := keyedChain(5, 2, k)
	cp := symbot.AuditCheckpoint{Seq: 5, Hash: es[4].Hash, Key: k.ID(), At: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	b := symbot.AppendAuditJSONL(nil, symbot.AuditBatch{Entries: es, Checkpoint: &cp})
	webhook := fmt.Sprintf(`{"sink":"hook","records":[%s]}`, strings.Join(strings.Split(strings.TrimSpace(string(b)), "\n"), ","))
	logText := `time=2026-12-01T10:00:00Z level=INFO msg="audit checkpoint" audit_seq=5 audit_head=` + es[4].Hash + " audit_key=" + k.ID()
	tests := []struct {
		name, in string
		want     int
		wantErr  string
	}{
		{"jsonl", string(b), 5, ""},
		{"webhook payload", webhook, 5, ""},
		{"text log with other lines", "time=x level=INFO msg=started\n" + logText + "\n", 1, ""},
		{"nothing", "hello\n", 0, "no audit entries or checkpoints"},
		{"two hashes for one seq", string(b) + strings.Replace(logText, es[4].Hash, es[3].Hash, 1), 0, "has hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := symbot.ParseAuditAnchors(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want || got[len(got)-1].Seq != 5 || got[len(got)-1].Hash != es[4].Hash {
				t.Errorf("anchors = %+v, want %d ending at seq 5", got, tt.want)
			}
		})
	}
	var csv bytes.Buffer
	es[0].Detail = "=HYPERLINK(\"x\")"
	if err := symbot.WriteAuditCSV(&csv, es, true); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(csv.String()), "\n"); len(lines) != 6 || !strings.Contains(lines[1], `'=HYPERLINK`) {
		t.Errorf("csv = %s, want a header, 5 rows and the formula defused", csv.String())
	}
}

// BenchmarkAuditShip is the cost per entry of delivering the trail to one
// sink (store reads, encoding as JSON lines, cursor writes), batches of 100.
// Each round ships to a new sink name (a cursor of its own) and ends once
// the sink has every entry.
func BenchmarkAuditShip(b *testing.B) {
	st := memstore.New()
	k := testKey(b, 3)
	for i := range 10000 {
		st.Update(context.Background(), func(tx symbot.Tx) error {
			return symbot.AppendAudit(tx, k, &symbot.AuditEntry{At: time.Now(), RequestID: "SYM-1", Actor: "UBOB", Action: "approve", Detail: fmt.Sprint(i)})
		})
	}
	var n, got int
	var cancel context.CancelFunc
	sink := sinkFunc(func(_ context.Context, bt symbot.AuditBatch) error {
		n += len(symbot.AppendAuditJSONL(nil, bt))
		if got += len(bt.Entries); got >= 10000 {
			cancel() // Run then flushes a final checkpoint and returns
		}
		return nil
	})
	b.ResetTimer()
	for b.Loop() {
		sh, _ := symbot.NewAuditShipper(st, map[string]symbot.AuditSink{fmt.Sprint("s", n): sink})
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		got = 0
		sh.Alert = func(context.Context, symbot.Alert) error { cancel(); return nil }
		sh.Run(ctx)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10000), "ns/entry")
}

type sinkFunc func(context.Context, symbot.AuditBatch) error

func (f sinkFunc) Deliver(ctx context.Context, b symbot.AuditBatch) error { return f(ctx, b) }
