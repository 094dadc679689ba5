package symbot_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

func testKey(t testing.TB, fill byte) *symbot.AuditKey {
	t.Helper()
	k, err := symbot.NewAuditKey(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyedChain returns n entries: the first unkeyed ones (up to switchAt),
// then every later one sealed with k.
func keyedChain(n, switchAt int, k *symbot.AuditKey) []symbot.AuditEntry {
	out := chain(n)
	prev := ""
	for i := range out {
		out[i].PrevHash = prev
		if i >= switchAt {
			out[i].Seal(k)
		} else {
			out[i].Seal(nil)
		}
		prev = out[i].Hash
	}
	return out
}

func TestAuditKeyNeverPrinted(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	k, err := symbot.ParseAuditKey([]byte(" " + secret + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("key", "key", k)
	outs := []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %q", k, k, k, k, k, k), logged.String(), k.ID()}
	for _, s := range outs {
		if strings.Contains(s, secret) || strings.Contains(s, "0123456789abcdef") || strings.Contains(s, "30313233") {
			t.Errorf("the key's secret shows in %q", s)
		}
		if !strings.Contains(s, k.ID()) {
			t.Errorf("%q does not name the key by its ID %s", s, k.ID())
		}
	}
}

func TestParseAuditKey(t *testing.T) {
	gen, err := symbot.GenerateAuditKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, text string
		wantErr    string
	}{
		{"generated", gen, ""},
		{"base64", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", ""},
		{"empty", " \n", "empty"},
		{"too short", "00112233", "4 bytes, want at least 32"},
		{"not hex or base64", "this is not a key at all, it is a sentence!", "not hex or base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := symbot.ParseAuditKey([]byte(tt.text))
			if tt.wantErr == "" {
				if err != nil || k == nil {
					t.Fatalf("ParseAuditKey: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to say %q", err, tt.wantErr)
			}
			if txt := strings.TrimSpace(tt.text); txt != "" && strings.Contains(err.Error(), txt) {
				t.Errorf("error %q quotes the key text", err)
			}
		})
	}
	a, _ := symbot.ParseAuditKey([]byte(gen))
	b, _ := symbot.GenerateAuditKey()
	kb, _ := symbot.ParseAuditKey([]byte(b))
	if a.ID() == kb.ID() {
		t.Errorf("two generated keys share the ID %s", a.ID())
	}
}

func TestVerifyKeyedChain(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		tamper  func([]symbot.AuditEntry) []symbot.AuditEntry
		keys    []*symbot.AuditKey
		cps     func(intact []symbot.AuditEntry) []symbot.AuditCheckpoint
		wantSeq uint64 // 0: verifies
		wantMsg string
	}{
		{"intact, old part unkeyed", nil, []*symbot.AuditKey{k}, nil, 0, ""},
		{"intact against its checkpoints", nil, []*symbot.AuditKey{k}, func(es []symbot.AuditEntry) []symbot.AuditCheckpoint {
			return []symbot.AuditCheckpoint{{Seq: 3, Hash: es[2].Hash}, {Seq: 8, Hash: es[7].Hash}}
		}, 0, ""},
		{"keyed entry edited", func(es []symbot.AuditEntry) []symbot.AuditEntry { es[5].Detail = "x"; return es }, []*symbot.AuditKey{k}, nil, 6, "MAC mismatch"},
		{"keyed entry resealed unkeyed", func(es []symbot.AuditEntry) []symbot.AuditEntry {
			es[7].Detail = "x"
			es[7].Seal(nil)
			return es[:8]
		}, []*symbot.AuditKey{k}, nil, 8, "unkeyed entry after the chain was keyed"},
		{"resealed with another key", func(es []symbot.AuditEntry) []symbot.AuditEntry { es[7].Seal(other); return es[:8] }, []*symbot.AuditKey{k}, nil, 8, "was not given"},
		{"key not given", nil, nil, nil, 4, "was not given"},
		{"key id swapped to an unkeyed entry's", func(es []symbot.AuditEntry) []symbot.AuditEntry { es[1].Key = k.ID(); return es }, []*symbot.AuditKey{k}, nil, 2, "MAC mismatch"},
		{"whole chain rewritten unkeyed", func(es []symbot.AuditEntry) []symbot.AuditEntry { return chain(8) }, []*symbot.AuditKey{k}, nil, 8, "no entry is sealed"},
		{"tail rewritten differs from checkpoint", func(es []symbot.AuditEntry) []symbot.AuditEntry {
			es = es[:7]
			e := symbot.AuditEntry{Seq: 8, At: t0, Actor: "UEVE", Action: "approve", PrevHash: es[6].Hash}
			e.Seal(k) // even someone with the key cannot match the checkpoint
			return append(es, e)
		}, []*symbot.AuditKey{k}, func(es []symbot.AuditEntry) []symbot.AuditCheckpoint {
			return []symbot.AuditCheckpoint{{Seq: 8, Hash: es[7].Hash, At: t0}}
		}, 8, "differs from the checkpoint exported at 2026-11-28T12:00:00Z"},
		{"truncated behind a checkpoint", func(es []symbot.AuditEntry) []symbot.AuditEntry { return es[:6] }, []*symbot.AuditKey{k}, func(es []symbot.AuditEntry) []symbot.AuditCheckpoint {
			return []symbot.AuditCheckpoint{{Seq: 8, Hash: es[7].Hash}}
		}, 7, "truncated or wiped"},
		{"wiped behind a checkpoint", func(es []symbot.AuditEntry) []symbot.AuditEntry { return nil }, []*symbot.AuditKey{k}, func(es []symbot.AuditEntry) []symbot.AuditCheckpoint {
			return []symbot.AuditCheckpoint{{Seq: 8, Hash: es[7].Hash}}
		}, 1, "truncated or wiped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			intact := keyedChain(8, 3, k)
			es := keyedChain(8, 3, k)
			if tt.tamper != nil {
				es = tt.tamper(es)
			}
			var cps []symbot.AuditCheckpoint
			if tt.cps != nil {
				cps = tt.cps(intact)
			}
			var headSeq uint64
			var headHash string
			if len(es) > 0 {
				headSeq, headHash = es[len(es)-1].Seq, es[len(es)-1].Hash
			}
			v := &symbot.AuditChain{Keys: tt.keys, Checkpoints: cps}
			var err error
			for i := range es {
				if err = v.Next(&es[i]); err != nil {
					break
				}
			}
			if err == nil {
				err = v.End(headSeq, headHash)
			}
			if tt.wantSeq == 0 {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			var ae *symbot.AuditError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *AuditError", err)
			}
			if ae.Seq != tt.wantSeq || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("got %v, want entry %d saying %q", err, tt.wantSeq, tt.wantMsg)
			}
		})
	}
}

func TestVerifyAuditMissingHead(t *testing.T) {
	es := chain(3)
	err := symbot.VerifyAudit(es, 0, "")
	var ae *symbot.AuditError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "no head is recorded") {
		t.Fatalf("entries without a head: got %v, want an *AuditError saying no head is recorded", err)
	}
	if err := symbot.VerifyAudit(nil, 0, ""); err != nil {
		t.Errorf("empty chain without head: %v", err)
	}
}

// BenchmarkAuditSeal is the cost per entry of sealing the keyed chain
// (HMAC-SHA-256) and, for comparison, the unkeyed SHA-256.
func BenchmarkAuditSeal(b *testing.B) {
	k := testKey(b, 7)
	e := symbot.AuditEntry{Seq: 42, At: time.Now(), RequestID: "SYM-42", Actor: "UBOB", Action: "state:approved", Detail: "approval 1 of 1: looks fine", PrevHash: strings.Repeat("ab", 32)}
	b.Run("hmac", func(b *testing.B) {
		for b.Loop() {
			e.Seal(k)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		for b.Loop() {
			e.Seal(nil)
		}
	})
	b.Run("verify-hmac", func(b *testing.B) {
		es := keyedChain(1, 0, k)
		for b.Loop() {
			v := &symbot.AuditChain{Keys: []*symbot.AuditKey{k}}
			if err := v.Next(&es[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
