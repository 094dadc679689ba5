package symbot_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/symbot/symbot"
)

func chain(n int) []symbot.AuditEntry {
	var out []symbot.AuditEntry
	prev := ""
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for i := range n {
		e := symbot.AuditEntry{Seq: uint64(i + 1), At: t0.Add(time.Duration(i) * time.Second), RequestID: fmt.Sprintf("SYM-%d", i%3), Actor: "UBOB", Action: "approve", Detail: fmt.Sprintf("n=%d", i), PrevHash: prev}
		e.Hash = e.ComputeHash()
		prev = e.Hash
		out = append(out, e)
	}
	return out
}

func TestVerifyAuditFindsTampering(t *testing.T) {
	head := func(es []symbot.AuditEntry) (uint64, string) { return 5, chain(5)[4].Hash }
	tests := []struct {
		name    string
		tamper  func([]symbot.AuditEntry) []symbot.AuditEntry
		wantSeq uint64 // 0: chain is intact
	}{
		{"intact", func(es []symbot.AuditEntry) []symbot.AuditEntry { return es }, 0},
		{"edit a field", func(es []symbot.AuditEntry) []symbot.AuditEntry { es[2].Detail = "n=99"; return es }, 3},
		{"edit and rehash one entry", func(es []symbot.AuditEntry) []symbot.AuditEntry {
			es[1].Actor = "UEVE"
			es[1].Hash = es[1].ComputeHash()
			return es
		}, 3},
		{"delete an entry", func(es []symbot.AuditEntry) []symbot.AuditEntry { return append(es[:1], es[2:]...) }, 3},
		{"reorder two", func(es []symbot.AuditEntry) []symbot.AuditEntry { es[1], es[2] = es[2], es[1]; return es }, 3},
		{"truncate the end", func(es []symbot.AuditEntry) []symbot.AuditEntry { return es[:4] }, 5},
		{"change the time", func(es []symbot.AuditEntry) []symbot.AuditEntry { es[0].At = es[0].At.Add(time.Nanosecond); return es }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := tt.tamper(chain(5))
			seq, hash := head(es)
			err := symbot.VerifyAudit(es, seq, hash)
			var ae *symbot.AuditError
			if tt.wantSeq == 0 {
				if err != nil {
					t.Fatalf("intact chain: %v", err)
				}
				return
			}
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *AuditError", err)
			}
			if ae.Seq != tt.wantSeq {
				t.Errorf("first broken entry = %d, want %d (%v)", ae.Seq, tt.wantSeq, err)
			}
		})
	}
}
