// Index writes go first to one small bucket of pending index entries, and
// move to their own index buckets in batches.
//
// Why: a new request's commit wrote a leaf page and a branch page in each
// of the request's four index buckets and its job's three (req_user,
// req_state, req_time, req_open; job_due, job_lane, job_rank), 14 of the
// commit's 20 pages, and bbolt decodes every leaf it writes into a node and
// encodes it back. Written to the pending bucket instead, the same entries
// fill one leaf page. The pending bucket is moved into the index buckets
// (flushed) in the commit that finds it holding flushAt entries or more,
// so that commit writes the index pages of many requests at once, sharing
// their branch pages and often their leaves; and a job that is done before
// the flush (an approval message is posted within milliseconds) never
// reaches its index buckets at all.
//
// Reads merge the two: an index is the keys of its bucket and its pending
// entries together (a pending entry's value wins over the bucket's for the
// same key). A delete removes the key from both. Both live in the same
// bbolt transaction, so every read sees exactly the committed (or its own
// transaction's) index, whatever was flushed when; a crash leaves pending
// entries pending, and they read and flush as before.

package store

import (
	"bytes"
	"fmt"
	"log/slog"

	bolt "go.etcd.io/bbolt"
)

// bucketPending holds the pending index entries: key indexTag(bucket) + the
// index key, value pendingMark + the index value.
var bucketPending = []byte("idx_pending")

// pendingMark starts every pending value, so that an entry with an empty
// index value is still told apart from a missing one (bbolt returns nil
// for both while the value is written in the same transaction).
const pendingMark = 1

// indexTags names each index bucket in the pending bucket's keys. The tags
// are stored: never reuse or renumber one.
var indexTags = map[string]byte{
	string(bucketReqUser):    1,
	string(bucketReqState):   2,
	string(bucketReqTime):    3,
	string(bucketReqOpen):    4,
	string(bucketJobDue):     5,
	string(bucketJobLane):    6,
	string(bucketJobFailing): 7,
	string(bucketJobRank):    8,
}

// defaultFlushAt is how many pending entries a commit may leave: at about
// 50 bytes an entry they fit one 4 KB leaf page, so the pending bucket
// costs a commit one page however many index entries it writes.
const defaultFlushAt = 64

// index is one index bucket seen through a transaction: its bucket and its
// pending entries together.
type index struct {
	tag  byte
	real *bolt.Bucket
	pend *bolt.Bucket // nil: a store from before the pending bucket, opened read-only
}

// idx returns the index bucket name, merged with its pending entries.
func (t *tx) idx(name []byte) index {
	tag, ok := indexTags[string(name)]
	if !ok {
		panic(fmt.Sprintf("store: %s is not an index bucket", name))
	}
	return index{tag: tag, real: t.tx.Bucket(name), pend: t.tx.Bucket(bucketPending)}
}

func (x index) pendingKey(k []byte) []byte {
	return append(append(make([]byte, 0, 1+len(k)), x.tag), k...)
}

// put sets k to v (nil: empty), as a pending entry.
func (x index) put(k, v []byte) error {
	if x.pend == nil {
		// Only in a read-only open (a read-write open makes the bucket),
		// where writes fail before they get here.
		return fmt.Errorf("the store has no pending index bucket (%s): open it read-write to make it", bucketPending)
	}
	pk := x.pendingKey(k)
	if x.pend.Get(pk) == nil {
		if err := x.pend.SetSequence(x.pend.Sequence() + 1); err != nil {
			return err
		}
	}
	return x.pend.Put(pk, append([]byte{pendingMark}, v...))
}

// del removes k, pending or not.
func (x index) del(k []byte) error {
	if x.pend != nil {
		pk := x.pendingKey(k)
		if x.pend.Get(pk) != nil {
			if err := x.pend.Delete(pk); err != nil {
				return err
			}
			if err := x.pend.SetSequence(x.pend.Sequence() - 1); err != nil {
				return err
			}
		}
	}
	return x.real.Delete(k)
}

// get returns k's value and whether k is in the index.
func (x index) get(k []byte) ([]byte, bool) {
	if x.pend != nil {
		if v := x.pend.Get(x.pendingKey(k)); v != nil {
			return v[1:], true
		}
	}
	got, v := x.real.Cursor().Seek(k)
	if !bytes.Equal(got, k) {
		return nil, false
	}
	return v, true
}

// holds reports whether k is in the index with the value v.
func (x index) holds(k, v []byte) bool {
	got, ok := x.get(k)
	return ok && bytes.Equal(got, v)
}

// has reports whether k is in the index.
func (x index) has(k []byte) bool {
	_, ok := x.get(k)
	return ok
}

// count returns the number of keys in the index.
func (x index) count() int {
	n := 0
	c := x.cursor()
	for k, _ := c.first(); k != nil; k, _ = c.next() {
		n++
	}
	return n
}

// cursor returns a cursor over the merged index, in key order. As with a
// bbolt cursor, the index must not be written while it is in use.
func (x index) cursor() *mergedCursor {
	c := &mergedCursor{tag: x.tag, real: x.real.Cursor()}
	if x.pend != nil {
		c.pend = x.pend.Cursor()
	}
	return c
}

// mergedCursor walks an index bucket and its pending entries together.
type mergedCursor struct {
	tag        byte
	real, pend *bolt.Cursor
	rk, rv     []byte // the bucket's next key and value (rk nil: none)
	pk, pv     []byte // the pending entries' next key and value, tag and mark stripped
}

func (c *mergedCursor) first() ([]byte, []byte) {
	c.rk, c.rv = c.real.First()
	c.setPend(c.seekPend(nil))
	return c.current()
}

func (c *mergedCursor) seek(k []byte) ([]byte, []byte) {
	c.rk, c.rv = c.real.Seek(k)
	c.setPend(c.seekPend(k))
	return c.current()
}

// next moves past the current key (in whichever source holds it, or both).
func (c *mergedCursor) next() ([]byte, []byte) {
	switch cmp := c.compare(); {
	case cmp < 0:
		c.rk, c.rv = c.real.Next()
	case cmp > 0:
		c.setPend(c.pend.Next())
	default:
		if c.rk == nil {
			return nil, nil
		}
		c.rk, c.rv = c.real.Next()
		c.setPend(c.pend.Next())
	}
	return c.current()
}

func (c *mergedCursor) seekPend(k []byte) ([]byte, []byte) {
	if c.pend == nil {
		return nil, nil
	}
	return c.pend.Seek(append([]byte{c.tag}, k...))
}

// setPend takes a pending bucket key and value, keeping them only while
// they are this index's.
func (c *mergedCursor) setPend(k, v []byte) {
	for len(k) == 1 && k[0] == c.tag {
		k, v = c.pend.Next() // a tag without a key: damage (never written), skipped
	}
	if len(k) == 0 || k[0] != c.tag {
		c.pk, c.pv = nil, nil
		return
	}
	if len(v) > 0 {
		v = v[1:] // the mark
	}
	c.pk, c.pv = k[1:], v
}

// compare orders the two sources' next keys: <0 the bucket's comes first,
// >0 the pending one, 0 the same key (or both done). A finished source
// sorts last.
func (c *mergedCursor) compare() int {
	switch {
	case c.rk == nil && c.pk == nil:
		return 0
	case c.rk == nil:
		return 1
	case c.pk == nil:
		return -1
	}
	return bytes.Compare(c.rk, c.pk)
}

func (c *mergedCursor) current() ([]byte, []byte) {
	if c.compare() < 0 {
		return c.rk, c.rv
	}
	return c.pk, c.pv // the pending value wins for a key in both
}

// pendingCount returns the number of pending index entries.
func pendingCount(btx *bolt.Tx) uint64 {
	if b := btx.Bucket(bucketPending); b != nil {
		return b.Sequence()
	}
	return 0
}

// flushPending moves every pending index entry into its index bucket. An
// entry whose tag names no index (a damaged file) stays pending, where no
// read sees it, and is logged: it is neither lost nor allowed to fail the
// commit of the writes it rides with.
func flushPending(btx *bolt.Tx, log *slog.Logger) error {
	pend := btx.Bucket(bucketPending)
	if pend == nil || pend.Sequence() == 0 {
		return nil
	}
	buckets := map[byte]*bolt.Bucket{}
	for name, tag := range indexTags {
		buckets[tag] = btx.Bucket([]byte(name))
	}
	var moved, kept [][]byte
	c := pend.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		b := buckets[k[0]]
		if b == nil || len(k) < 2 {
			kept = append(kept, k)
			continue
		}
		if len(v) > 0 {
			v = v[1:] // the mark
		}
		// bbolt keeps the key and value slices it is given until the
		// commit, and these point into the pending bucket's pages, which
		// the deletes below change: copy them.
		if err := b.Put(bytes.Clone(k[1:]), bytes.Clone(v)); err != nil {
			return fmt.Errorf("flush pending index entries: %w", err)
		}
		moved = append(moved, bytes.Clone(k))
	}
	if len(kept) == 0 {
		// The common case: drop the bucket's page instead of deleting
		// each key from it.
		if err := btx.DeleteBucket(bucketPending); err != nil {
			return fmt.Errorf("flush pending index entries: %w", err)
		}
		if _, err := btx.CreateBucket(bucketPending); err != nil {
			return fmt.Errorf("flush pending index entries: %w", err)
		}
		return nil
	}
	for _, k := range kept {
		log.Error("store: a pending index entry names no index (the file is damaged?); it is kept, and no read sees it", "key", fmt.Sprintf("%x", k))
	}
	for _, k := range moved {
		if err := pend.Delete(k); err != nil {
			return fmt.Errorf("flush pending index entries: %w", err)
		}
	}
	return pend.SetSequence(uint64(len(kept)))
}

// clearPending drops the pending entries of the index bucket name (its
// rebuild rewrites the bucket from the records).
func clearPending(btx *bolt.Tx, name []byte) error {
	pend := btx.Bucket(bucketPending)
	if pend == nil {
		return nil
	}
	tag := indexTags[string(name)]
	var keys [][]byte
	c := pend.Cursor()
	for k, _ := c.Seek([]byte{tag}); k != nil && k[0] == tag; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := pend.Delete(k); err != nil {
			return fmt.Errorf("clear pending %s entries: %w", name, err)
		}
	}
	if len(keys) > 0 {
		return pend.SetSequence(pend.Sequence() - uint64(len(keys)))
	}
	return nil
}
