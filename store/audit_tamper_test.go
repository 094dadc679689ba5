package store_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/storetest"
)

// keyedAuditStore makes a closed store file whose chain has 4 unkeyed
// entries (written before a key was configured), the switch to key, and 5
// keyed entries after it; it returns the path and a checkpoint of the head
// as the daemon exports it.
func keyedAuditStore(t *testing.T, key *symbot.AuditKey) (string, symbot.AuditCheckpoint) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "symbot.db")
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	add := func(k *symbot.AuditKey, action, detail string) {
		storetest.MustUpdate(t, s, func(tx symbot.Tx) error {
			return symbot.AppendAudit(tx, k, &symbot.AuditEntry{At: storetest.T0.Add(time.Minute), RequestID: "SYM-1", Actor: "U1", Action: action, Detail: detail})
		})
	}
	for i := range 4 {
		add(nil, "approve", fmt.Sprintf("old-%d", i))
	}
	add(key, symbot.ActionAuditKey, "switch")
	for i := range 5 {
		add(key, "approve", fmt.Sprintf("new-%d", i))
	}
	var cp symbot.AuditCheckpoint
	storetest.MustView(t, s, func(tx symbot.Tx) (err error) {
		cp.Seq, cp.Hash, err = tx.AuditHead()
		return err
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, cp
}

// verifyWith reopens path and verifies its chain in pages with key and the
// checkpoints, as `symbot audit verify --against` does.
func verifyWith(t *testing.T, path string, key *symbot.AuditKey, cps []symbot.AuditCheckpoint) error {
	t.Helper()
	s, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := &symbot.AuditChain{Keys: []*symbot.AuditKey{key}, Checkpoints: cps}
	var verr error
	storetest.MustView(t, s, func(tx symbot.Tx) error {
		for after := uint64(0); ; {
			page, err := tx.Audit(after, 3)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			for i := range page {
				if verr = v.Next(&page[i]); verr != nil {
					return nil
				}
			}
			after = page[len(page)-1].Seq
		}
		seq, hash, err := tx.AuditHead()
		verr = v.End(seq, hash)
		return err
	})
	return verr
}

func entryAt(b *bolt.Bucket, seq uint64) (symbot.AuditEntry, error) {
	var e symbot.AuditEntry
	err := json.Unmarshal(b.Get(seqKey(seq)), &e)
	return e, err
}

func putEntry(b *bolt.Bucket, e symbot.AuditEntry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return b.Put(seqKey(e.Seq), v)
}

func putHead(tx *bolt.Tx, seq uint64, hash string) error {
	return tx.Bucket([]byte("meta")).Put([]byte("audit_head"), append(binary.BigEndian.AppendUint64(nil, seq), hash...))
}

// TestAuditTamperByFileWriter plays an attacker who can write the database
// file but does not hold the audit key, editing the bbolt file directly.
func TestAuditTamperByFileWriter(t *testing.T) {
	key := storetest.TestAuditKey(t)
	const n = 10
	tests := []struct {
		name string
		edit func(tx *bolt.Tx) error
		// detected without any checkpoint / only with one
		alone bool
		want  string
	}{
		{"untouched", func(*bolt.Tx) error { return nil }, false, ""},
		{"delete last entry and the head key", func(tx *bolt.Tx) error {
			if err := tx.Bucket([]byte("audit")).Delete(seqKey(n)); err != nil {
				return err
			}
			return tx.Bucket([]byte("meta")).Delete([]byte("audit_head"))
		}, true, "no head is recorded"},
		{"delete last entry and rewrite the head", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("audit"))
			prev, err := entryAt(b, n-1)
			if err != nil {
				return err
			}
			if err := b.Delete(seqKey(n)); err != nil {
				return err
			}
			return putHead(tx, n-1, prev.Hash)
		}, false, "truncated or wiped"},
		{"edit an entry, recompute the chain and the head unkeyed", func(tx *bolt.Tx) error {
			return rewriteFrom(tx, 7, nil)
		}, true, "unkeyed entry after the chain was keyed"},
		{"edit an entry, recompute the chain and the head under a guessed key", func(tx *bolt.Tx) error {
			guess, err := symbot.NewAuditKey([]byte(strings.Repeat("g", 32)))
			if err != nil {
				return err
			}
			return rewriteFrom(tx, 7, guess)
		}, true, "not given"},
		{"edit an unkeyed entry, recompute the whole chain unkeyed", func(tx *bolt.Tx) error {
			return rewriteFrom(tx, 2, nil)
		}, true, "no entry is sealed with it"},
		{"wipe the audit bucket and the head", func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket([]byte("audit")); err != nil {
				return err
			}
			if _, err := tx.CreateBucket([]byte("audit")); err != nil {
				return err
			}
			return tx.Bucket([]byte("meta")).Delete([]byte("audit_head"))
		}, false, "truncated or wiped"},
		{"wipe the audit bucket, keep the head", func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket([]byte("audit")); err != nil {
				return err
			}
			_, err := tx.CreateBucket([]byte("audit"))
			return err
		}, true, "removed from the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, cp := keyedAuditStore(t, key)
			if cp.Seq != n {
				t.Fatalf("chain has %d entries, want %d", cp.Seq, n)
			}
			editRaw(t, path, tt.edit)
			withCP := verifyWith(t, path, key, []symbot.AuditCheckpoint{cp})
			alone := verifyWith(t, path, key, nil)
			if tt.want == "" {
				if withCP != nil || alone != nil {
					t.Fatalf("untouched chain: %v / %v", withCP, alone)
				}
				return
			}
			var ae *symbot.AuditError
			if !errors.As(withCP, &ae) {
				t.Fatalf("verify against the checkpoint: got %v, want an *AuditError", withCP)
			}
			if tt.alone {
				if !errors.As(alone, &ae) || !strings.Contains(alone.Error(), tt.want) {
					t.Errorf("verify without checkpoints: got %v, want an *AuditError saying %q", alone, tt.want)
				}
			} else if !strings.Contains(withCP.Error(), tt.want) {
				t.Errorf("verify against the checkpoint: got %v, want it to say %q", withCP, tt.want)
			}
		})
	}
}

// rewriteFrom edits entry from and reseals it and every later entry with
// k (nil: unkeyed), then rewrites the head: all an attacker can do without
// the real key.
func rewriteFrom(tx *bolt.Tx, from uint64, k *symbot.AuditKey) error {
	b := tx.Bucket([]byte("audit"))
	prev := ""
	if from > 1 {
		e, err := entryAt(b, from-1)
		if err != nil {
			return err
		}
		prev = e.Hash
	}
	var last symbot.AuditEntry
	for seq := from; b.Get(seqKey(seq)) != nil; seq++ {
		e, err := entryAt(b, seq)
		if err != nil {
			return err
		}
		if seq == from {
			e.Detail = "forged"
		}
		e.PrevHash = prev
		e.Seal(k)
		if err := putEntry(b, e); err != nil {
			return err
		}
		prev, last = e.Hash, e
	}
	return putHead(tx, last.Seq, last.Hash)
}
