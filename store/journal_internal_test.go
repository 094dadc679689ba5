package store

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// rawDB opens a new bbolt file (closed when the test ends) with the named
// buckets made.
func rawDB(t *testing.T, buckets ...[]byte) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "m.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(btx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := btx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return db
}

// appendEntry runs write on a group commit's view of btx, as the store's
// group commit does, and appends its writes to the journal as one entry
// (never applying it). cache may be nil.
func appendEntry(btx *bolt.Tx, cache *journalCache, write func(*tx) error) error {
	base, err := loadJournal(btx, cache)
	if err != nil {
		return err
	}
	j := &jview{base: base, ws: map[string]jop{}}
	if err := write(&tx{tx: btx, j: j, jcache: cache}); err != nil {
		return err
	}
	return commitJournal(btx, j, math.MaxUint64)
}

// TestJournalJcursorModel compares jcursor (and rget, rcount) with a sorted
// map: random keys in the identities bucket, random journal layers and a
// write set of puts and deletes on top, then random first/seek/next walks.
func TestJournalJcursorModel(t *testing.T) {
	db := rawDB(t)
	rng := rand.New(rand.NewPCG(7, 7))
	key := func() string { return fmt.Sprintf("k%02d", rng.IntN(40)) }
	for round := 0; round < 400; round++ {
		model := map[string]string{}
		err := db.Update(func(btx *bolt.Tx) error {
			_ = btx.DeleteBucket(bucketIdentity)
			b, err := btx.CreateBucket(bucketIdentity)
			if err != nil {
				return err
			}
			for i, n := 0, rng.IntN(20); i < n; i++ {
				k := key()
				v := "real-" + k
				model[k] = v
				if err := b.Put([]byte(k), []byte(v)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Read in a committed snapshot (Bucket.Stats counts committed pages).
		err = db.View(func(btx *bolt.Tx) error {
			var top *jlayer
			for l, n := 0, rng.IntN(4); l < n; l++ {
				ops := map[string]jop{}
				for i, m := 0, rng.IntN(8); i < m; i++ {
					k := key()
					if rng.IntN(3) == 0 {
						ops[string(jIdentity)+k] = jop{del: true}
					} else {
						ops[string(jIdentity)+k] = jop{val: []byte(fmt.Sprintf("l%d-%s", l, k))}
					}
				}
				top = &jlayer{seq: uint64(l + 1), first: 1, prev: top, ops: ops}
			}
			j := &jview{base: top, ws: map[string]jop{}}
			// apply the layers oldest first, then ws, to the model
			var chain []*jlayer
			for l := top; l != nil; l = l.prev {
				chain = append(chain, l)
			}
			slices.Reverse(chain)
			for _, l := range chain {
				for k, op := range l.ops {
					if op.del {
						delete(model, k[1:])
					} else {
						model[k[1:]] = string(op.val)
					}
				}
			}
			t2 := &tx{tx: btx, j: j}
			for i, n := 0, rng.IntN(6); i < n; i++ {
				k := key()
				if rng.IntN(3) == 0 {
					if err := t2.rdel(jIdentity, []byte(k)); err != nil {
						return err
					}
					delete(model, k)
				} else {
					v := "ws-" + k
					if err := t2.rput(jIdentity, []byte(k), []byte(v)); err != nil {
						return err
					}
					model[k] = v
				}
			}
			keys := make([]string, 0, len(model))
			for k := range model {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if n, err := t2.rcount(jIdentity); err != nil || n != len(keys) {
				t.Fatalf("round %d: rcount = %d, %v; want %d", round, n, err, len(keys))
			}
			for i := 0; i < 45; i++ {
				k := fmt.Sprintf("k%02d", i)
				v, err := t2.rget(jIdentity, []byte(k))
				if err != nil {
					return err
				}
				if mv, ok := model[k]; (v != nil) != ok || string(v) != mv {
					t.Fatalf("round %d: rget %s = %q, want %q (%v)", round, k, v, mv, ok)
				}
			}
			for walk := 0; walk < 10; walk++ {
				c, err := t2.rcursor(jIdentity)
				if err != nil {
					return err
				}
				var gk, gv []byte
				var from int
				if walk == 0 {
					gk, gv = c.first()
				} else {
					s := fmt.Sprintf("k%02d", rng.IntN(42))
					if rng.IntN(2) == 0 {
						s = s[:2] // a prefix, between keys
					}
					gk, gv = c.seek([]byte(s))
					from, _ = slices.BinarySearch(keys, s)
				}
				for i := from; ; i++ {
					if i == len(keys) {
						if gk != nil {
							t.Fatalf("round %d walk %d: extra key %s", round, walk, gk)
						}
						break
					}
					if string(gk) != keys[i] || string(gv) != model[keys[i]] {
						t.Fatalf("round %d walk %d: at %d got %s=%s, want %s=%s (keys %v)", round, walk, i, gk, gv, keys[i], model[keys[i]], keys)
					}
					gk, gv = c.next()
				}
				// next past the end stays at the end
				if k, _ := c.next(); k != nil {
					t.Fatalf("round %d: next after the end = %s", round, k)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestJournalTruncatedEntryIsDamage: an entry that lost its last chunk,
// cut where a write begins (what is left decodes as a shorter, well-formed
// entry), fails to load: its recorded length and checksum no longer match.
func TestJournalTruncatedEntryIsDamage(t *testing.T) {
	db := rawDB(t, bucketJournal, bucketIdentity)
	err := db.Update(func(btx *bolt.Tx) error {
		return appendEntry(btx, nil, func(t2 *tx) error {
			// The 8-byte header and write A (tag, delete flag, key length,
			// "A", 2-byte value length, value) fill the first chunk
			// exactly; write B is the second.
			if err := t2.rput(jIdentity, []byte("A"), make([]byte, journalChunk-8-(3+1+2))); err != nil {
				return err
			}
			if err := t2.rput(jIdentity, []byte("B"), []byte("lost")); err != nil {
				return err
			}
			if n := len(encodeJournal(t2.j.ws)); n <= journalChunk {
				t.Fatalf("entry of %d bytes: want two chunks", n)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(btx *bolt.Tx) error { return btx.Bucket(bucketJournal).Delete(jkey(1, 1)) }); err != nil {
		t.Fatal(err)
	}
	err = db.View(func(btx *bolt.Tx) error {
		l, err := loadJournal(btx, nil)
		if err == nil {
			_, found := l.lookup(string(jIdentity) + "B")
			t.Errorf("an entry missing its last chunk loads without error (write B found: %v)", found)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestJournalChunksFitALeaf: four chunks of journalChunk bytes (with their
// 16-byte element headers, 10-byte keys and the 16-byte page header) fill
// one leaf page. With bigger chunks bbolt splits the journal's leaves after
// three, and a leaf of four, which it does not split, spills onto an
// overflow page, as an entry of exactly four chunks does here.
func TestJournalChunksFitALeaf(t *testing.T) {
	db := rawDB(t, bucketJournal)
	// The entry: its 8-byte header, then the write's tag, delete flag, key
	// length, 8-byte key and 2-byte value length, then the value.
	val := make([]byte, 4*journalChunk-8-(3+8+2))
	err := db.Update(func(btx *bolt.Tx) error {
		return appendEntry(btx, nil, func(t2 *tx) error { return t2.rput(jAudit, u64(1), val) })
	})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(btx *bolt.Tx) error {
		st := btx.Bucket(bucketJournal).Stats()
		if st.KeyN != 4 {
			t.Fatalf("the entry is %d chunks, want 4", st.KeyN)
		}
		if st.LeafOverflowN > 0 {
			t.Errorf("journal: %d leaf pages and %d overflow pages for 4 chunks (page size %d): chunks of %d bytes do not fit four to a page",
				st.LeafPageN, st.LeafOverflowN, db.Info().PageSize, journalChunk)
		}
		return nil
	})
}

// TestJournalDirectWritesTwoTxViews: latent. A write transaction outside
// a group commit (Open's repairs) applies the journal at its first write
// to a journaled bucket, from its tx's own view. Two tx values in one bbolt
// transaction (as inspect, repair and rebuildOpenIndex each make) each load
// a view; the second one's first write applies its stale view again, over
// the first one's direct write.
func TestJournalDirectWritesTwoTxViews(t *testing.T) {
	db := rawDB(t, bucketJournal, bucketIdentity)
	err := db.Update(func(btx *bolt.Tx) error {
		return appendEntry(btx, nil, func(t2 *tx) error { return t2.rput(jIdentity, []byte("K"), []byte("journal")) })
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(btx *bolt.Tx) error {
		a, b := &tx{tx: btx}, &tx{tx: btx}
		if _, err := a.rget(jIdentity, []byte("K")); err != nil { // loads a's view
			return err
		}
		if _, err := b.rget(jIdentity, []byte("K")); err != nil { // loads b's view
			return err
		}
		if err := a.rput(jIdentity, []byte("K"), []byte("direct")); err != nil {
			return err
		}
		if err := b.rput(jIdentity, []byte("other"), []byte("x")); err != nil {
			return err
		}
		if v := btx.Bucket(bucketIdentity).Get([]byte("K")); string(v) != "direct" {
			t.Errorf("K = %q after a's direct write and b's write of another key; want direct", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
