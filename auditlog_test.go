package symbot_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/memstore"
)

// pagedStore wraps a Store: it records the page sizes asked of Tx.Audit
// and can alter one entry as it is read (tampering).
type pagedStore struct {
	symbot.Store
	tamper uint64 // Seq of the entry to alter on read; 0: none

	mu     sync.Mutex
	limits []int
}

type pagedTx struct {
	symbot.Tx
	s *pagedStore
}

func (s *pagedStore) View(ctx context.Context, fn func(symbot.Tx) error) error {
	return s.Store.View(ctx, func(tx symbot.Tx) error { return fn(pagedTx{tx, s}) })
}

func (t pagedTx) Audit(after uint64, limit int) ([]symbot.AuditEntry, error) {
	t.s.mu.Lock()
	t.s.limits = append(t.s.limits, limit)
	t.s.mu.Unlock()
	es, err := t.Tx.Audit(after, limit)
	for i := range es {
		if es[i].Seq == t.s.tamper {
			es[i].Detail += " (edited)"
		}
	}
	return es, err
}

// auditEngine returns an engine over a store holding n audit entries, one
// a second from t0.
func auditEngine(t *testing.T, n int, t0 time.Time) (*symbot.Engine, *pagedStore) {
	t.Helper()
	ms := memstore.New()
	err := ms.Update(t.Context(), func(tx symbot.Tx) error {
		for i := range n {
			e := &symbot.AuditEntry{At: t0.Add(time.Duration(i) * time.Second), Actor: "UBOB", Action: "approve", Detail: fmt.Sprintf("n=%d", i)}
			if err := symbot.AppendAudit(tx, nil, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ps := &pagedStore{Store: ms}
	eng, err := symbot.NewEngine(ps, newFakeDir(), &fakeNotifier{}, []symbot.Flow{testFlow()})
	if err != nil {
		t.Fatal(err)
	}
	return eng, ps
}

func (s *pagedStore) checkPaged(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.limits) < 2 {
		t.Errorf("audit read in %d pages, want several", len(s.limits))
	}
	for _, l := range s.limits {
		if l <= 0 || l > 1000 {
			t.Errorf("audit page of %d entries asked, want 1..1000 (bounded reads)", l)
		}
	}
}

func TestEngineAuditSince(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	eng, ps := auditEngine(t, 2500, t0)
	tests := []struct {
		name     string
		since    time.Time
		want     int
		firstSeq uint64
	}{
		{"all", time.Time{}, 2500, 1},
		{"the last 500", t0.Add(2000 * time.Second), 500, 2001},
		{"none", t0.Add(time.Hour), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := eng.AuditSince(t.Context(), tt.since)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("got %d entries, want %d", len(got), tt.want)
			}
			if tt.want > 0 && got[0].Seq != tt.firstSeq {
				t.Errorf("first entry: got seq %d, want %d", got[0].Seq, tt.firstSeq)
			}
		})
	}
	ps.checkPaged(t)
}

func TestEngineVerifyAuditLog(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	eng, ps := auditEngine(t, 2500, t0)
	n, err := eng.VerifyAuditLog(t.Context())
	if err != nil || n != 2500 {
		t.Fatalf("intact log: got %d, %v; want 2500, nil", n, err)
	}
	ps.checkPaged(t)

	ps.tamper = 1500
	_, err = eng.VerifyAuditLog(t.Context())
	var ae *symbot.AuditError
	if !errors.As(err, &ae) || ae.Seq != 1500 || ae.Problem != "hash mismatch: this entry was changed" {
		t.Errorf("edited entry 1500: got %v, want an *AuditError for seq 1500", err)
	}
}

func TestEngineVerifyAuditLogEmpty(t *testing.T) {
	eng, _ := auditEngine(t, 0, time.Now())
	if n, err := eng.VerifyAuditLog(t.Context()); n != 0 || err != nil {
		t.Errorf("empty log: got %d, %v; want 0, nil", n, err)
	}
}
