// The record journal: a group commit's writes to the requests, audit and
// identities buckets go first to one append-only bucket, as one entry, and
// move to their own buckets in batches.
//
// Why: bbolt copies on write, so a commit rewrites every page on the path
// from each leaf it changes to the root. A new request's commit changed a
// leaf in each of requests, audit and identities (a first-time requester's
// binding, from the early look-ups of the request before it), three levels
// deep in a store of a few thousand requests: nine of its twelve pages.
// Written as one journal entry (a few kilobytes, in page-sized chunks
// appended at the end of one bucket) the same records fill two or three
// pages. The journal is moved into the record buckets (applied) in the
// commit that finds it holding journalFlushAt entries or journalFlushBytes,
// which writes the leaves of many requests at once: new requests and audit
// entries are appended at their buckets' ends, so they share their leaves.
//
// Reads merge the two: a record bucket is its keys and the journal's
// together (the journal's newest write of a key wins; a deleted key is
// gone). The journal's entries are decoded once into immutable layers,
// cached by their sequence number, and a transaction sees the layers of
// its own bbolt snapshot (found from the journal bucket's first and last
// keys, which no two committed states share), plus its own writes. Both
// live in the same bbolt transaction, so a crash leaves the journal as it
// was committed, and it reads and applies as before after a reopen.

package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// bucketJournal holds the journal's entries: key u64(entry sequence) +
// u16(chunk number), value the chunk (see encodeJournal). The bucket's
// sequence is the last entry's number, kept across applies, so that no
// two entries ever committed share a number.
var bucketJournal = []byte("journal")

// The journaled buckets' tags in the journal's entries. They are stored:
// never reuse or renumber one.
const (
	jRequests byte = 1
	jAudit    byte = 2
	jIdentity byte = 3
)

// journaled returns the bucket a tag names, or nil.
func journaled(tag byte) []byte {
	switch tag {
	case jRequests:
		return bucketRequests
	case jAudit:
		return bucketAudit
	case jIdentity:
		return bucketIdentity
	}
	return nil
}

const (
	// defaultJournalFlushAt is how many entries the journal may hold
	// after a commit; the commit that would leave more applies them all.
	defaultJournalFlushAt = 32
	// journalFlushBytes bounds the journal's size the same way.
	journalFlushBytes = 512 << 10
)

// journalChunk is the most bytes of an entry under one key: four of them
// fill a leaf page exactly (a page header of 16 bytes, then per key a
// 16-byte element header, the 10-byte key and the value), so appending an
// entry writes about its own size in pages. bbolt does not split a leaf of
// four keys or fewer, so bigger values would make each commit rewrite the
// entries before it.
var journalChunk = (os.Getpagesize()-16)/4 - 16 - 10

// jop is one write in the journal: a value, or a delete.
type jop struct {
	val []byte
	del bool
}

// jlayer is one committed journal entry, decoded, on top of the entries
// before it since the last apply (prev). Layers never change once made:
// transactions of different snapshots share them.
type jlayer struct {
	seq, first uint64 // this entry's number; the oldest entry's in the chain
	prev       *jlayer
	ops        map[string]jop // tag + key
	n          int            // entries in the chain, this one included
	size       int            // their encoded bytes
}

// lookup returns the newest write of the tagged key k in the chain.
func (l *jlayer) lookup(k string) (jop, bool) {
	for ; l != nil; l = l.prev {
		if op, ok := l.ops[k]; ok {
			return op, true
		}
	}
	return jop{}, false
}

// seqOrZero returns l's entry number, 0 for an empty journal.
func (l *jlayer) seqOrZero() uint64 {
	if l == nil {
		return 0
	}
	return l.seq
}

// lastJournalSeq returns the number of the journal's last entry in btx, 0
// when it is empty.
func lastJournalSeq(btx *bolt.Tx) uint64 {
	b := btx.Bucket(bucketJournal)
	if b == nil {
		return 0
	}
	if k, _ := b.Cursor().Last(); len(k) == 10 {
		return binary.BigEndian.Uint64(k)
	}
	return 0
}

// journalCache keeps the layers of the newest chain decoded so far.
type journalCache struct {
	mu    sync.Mutex
	first uint64
	bySeq map[uint64]*jlayer
}

func (c *journalCache) get(seq, first uint64) *jlayer {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.bySeq[seq]; l != nil && l.first == first {
		return l
	}
	return nil
}

func (c *journalCache) put(l *jlayer) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.bySeq == nil || l.first > c.first:
		// A newer chain (the journal was applied since): the old one's
		// layers are only for older snapshots, which decode their own.
		c.first, c.bySeq = l.first, map[uint64]*jlayer{}
	case l.first < c.first:
		return
	}
	c.bySeq[l.seq] = l
}

// errJournalDamaged is wrapped by the errors of reads of a damaged journal.
var errJournalDamaged = errors.New("the store's record journal is damaged; restore the store from a backup")

func jkey(seq uint64, chunk uint16) []byte {
	k := make([]byte, 10)
	binary.BigEndian.PutUint64(k, seq)
	binary.BigEndian.PutUint16(k[8:], chunk)
	return k
}

// loadJournal returns the journal as btx's snapshot holds it (nil: empty),
// decoding only the entries cache does not hold.
func loadJournal(btx *bolt.Tx, cache *journalCache) (*jlayer, error) {
	b := btx.Bucket(bucketJournal)
	if b == nil {
		return nil, nil
	}
	c := b.Cursor()
	lk, _ := c.Last()
	if lk == nil {
		return nil, nil
	}
	fk, _ := c.First()
	if len(fk) != 10 || len(lk) != 10 {
		return nil, fmt.Errorf("journal key %x: %w", fk, errJournalDamaged)
	}
	first, last := binary.BigEndian.Uint64(fk), binary.BigEndian.Uint64(lk)
	// The bucket's sequence is the last entry appended: a lost last entry
	// shows as a gap at the end.
	if last != b.Sequence() {
		return nil, fmt.Errorf("journal: last entry %d, but %d were appended: %w", last, b.Sequence(), errJournalDamaged)
	}
	if l := cache.get(last, first); l != nil {
		return l, nil
	}
	var top *jlayer
	var buf []byte
	k, v := c.First()
	for k != nil {
		if len(k) != 10 {
			return nil, fmt.Errorf("journal key %x: %w", k, errJournalDamaged)
		}
		seq := binary.BigEndian.Uint64(k)
		// Entries are numbered without gaps since the last apply (a
		// rolled-back transaction's number is used again).
		if top != nil && seq != top.seq+1 {
			return nil, fmt.Errorf("journal: entry %d missing (next is %d): %w", top.seq+1, seq, errJournalDamaged)
		}
		if l := cache.get(seq, first); l != nil {
			top = l
			for k != nil && len(k) == 10 && binary.BigEndian.Uint64(k) == seq {
				k, v = c.Next()
			}
			continue
		}
		buf = buf[:0]
		for chunk := uint16(0); k != nil && len(k) == 10 && binary.BigEndian.Uint64(k) == seq; chunk++ {
			if binary.BigEndian.Uint16(k[8:]) != chunk {
				return nil, fmt.Errorf("journal entry %d: chunk %d missing: %w", seq, chunk, errJournalDamaged)
			}
			buf = append(buf, v...)
			k, v = c.Next()
		}
		ops, err := decodeJournal(buf)
		if err != nil {
			return nil, fmt.Errorf("journal entry %d: %w: %w", seq, err, errJournalDamaged)
		}
		l := &jlayer{seq: seq, first: first, prev: top, ops: ops, n: 1, size: len(buf)}
		if top != nil {
			l.n, l.size = top.n+1, top.size+len(buf)
		}
		cache.put(l)
		top = l
	}
	return top, nil
}

// crcTable is CRC-32C's, for the journal entries' checksums.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encodeJournal encodes ops (tag + key -> write) as an entry: the length
// of the rest (4 bytes) and its CRC-32C (4 bytes), then for each write, in
// key order, the tag, 0 (a value) or 1 (a delete), the key's length and
// the key, then for a value its length and the value; lengths are
// unsigned varints. The length and checksum make an entry that lost
// chunks, or bytes, read as damaged.
func encodeJournal(ops map[string]jop) []byte {
	keys := make([]string, 0, len(ops))
	size := 0
	for k, op := range ops {
		keys = append(keys, k)
		size += len(k) + len(op.val) + 2*binary.MaxVarintLen32 + 1
	}
	slices.Sort(keys)
	out := make([]byte, 8, size+8)
	for _, k := range keys {
		op := ops[k]
		out = append(out, k[0])
		if op.del {
			out = append(out, 1)
		} else {
			out = append(out, 0)
		}
		out = binary.AppendUvarint(out, uint64(len(k)-1))
		out = append(out, k[1:]...)
		if !op.del {
			out = binary.AppendUvarint(out, uint64(len(op.val)))
			out = append(out, op.val...)
		}
	}
	binary.BigEndian.PutUint32(out, uint32(len(out)-8))
	binary.BigEndian.PutUint32(out[4:], crc32.Checksum(out[8:], crcTable))
	return out
}

// decodeJournal decodes an entry made by encodeJournal; the values are
// copies (b is only good for its transaction).
func decodeJournal(b []byte) (map[string]jop, error) {
	if len(b) < 8 || uint64(binary.BigEndian.Uint32(b)) != uint64(len(b)-8) {
		return nil, fmt.Errorf("%d bytes, not the length it records", len(b))
	}
	if crc32.Checksum(b[8:], crcTable) != binary.BigEndian.Uint32(b[4:]) {
		return nil, errors.New("checksum mismatch")
	}
	b = b[8:]
	ops := map[string]jop{}
	for len(b) > 0 {
		if len(b) < 2 || journaled(b[0]) == nil || b[1] > 1 {
			return nil, errors.New("malformed write")
		}
		tag, del := b[0], b[1] == 1
		b = b[2:]
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return nil, errors.New("malformed key")
		}
		k := string(tag) + string(b[w:w+int(n)])
		b = b[w+int(n):]
		if del {
			ops[k] = jop{del: true}
			continue
		}
		n, w = binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return nil, errors.New("malformed value")
		}
		ops[k] = jop{val: bytes.Clone(b[w : w+int(n)])}
		b = b[w+int(n):]
	}
	return ops, nil
}

// jview is what one transaction sees of the journal: the entries of its
// snapshot (base) and, in a group commit's transaction, the writes of its
// fns so far (ws), which the group appends as one entry. A write
// transaction of its own (Open's repairs) has no ws: it applies the
// journal before each write to a journaled bucket (nothing, after the
// first) and writes the buckets themselves.
type jview struct {
	base   *jlayer
	ws     map[string]jop
	wsSize int
}

// tagged returns tag + k as a map key; buf is scratch space.
func tagged(buf []byte, tag byte, k []byte) []byte {
	return append(append(buf[:0], tag), k...)
}

// journal returns t's view of the journal, loading it at first use. In a
// write transaction outside a group commit, another tx value of the same
// bbolt transaction may have applied the journal since: the view is
// loaded again when the journal's last entry is no longer its own.
func (t *tx) journal() (*jview, error) {
	if t.j != nil && (t.j.ws != nil || !t.tx.Writable() || t.j.base.seqOrZero() == lastJournalSeq(t.tx)) {
		return t.j, nil
	}
	base, err := loadJournal(t.tx, t.jcache)
	if err != nil {
		return nil, err
	}
	t.j = &jview{base: base}
	return t.j, nil
}

// rget returns the value of k in the journaled bucket tag (nil: none). It
// is only good for the transaction.
func (t *tx) rget(tag byte, k []byte) ([]byte, error) {
	j, err := t.journal()
	if err != nil {
		return nil, err
	}
	var buf [80]byte
	tk := tagged(buf[:], tag, k)
	if op, ok := j.ws[string(tk)]; ok {
		return op.val, nil
	}
	if op, ok := j.base.lookup(string(tk)); ok {
		return op.val, nil
	}
	return t.b(journaled(tag)).Get(k), nil
}

// rput sets k to v in the journaled bucket tag; bbolt or the journal
// keeps v until the commit.
func (t *tx) rput(tag byte, k, v []byte) error {
	return t.rwrite(tag, k, jop{val: v})
}

// rdel deletes k from the journaled bucket tag.
func (t *tx) rdel(tag byte, k []byte) error {
	return t.rwrite(tag, k, jop{del: true})
}

func (t *tx) rwrite(tag byte, k []byte, op jop) error {
	j, err := t.journal()
	if err != nil {
		return err
	}
	if j.ws == nil {
		// Not a group commit's transaction: apply the journal (as the
		// bbolt transaction holds it now), so that the buckets hold
		// every record, and write them directly.
		if err := applyJournal(t.tx, j.base, nil); err != nil {
			return err
		}
		j.base = nil
		b := t.b(journaled(tag))
		if op.del {
			return b.Delete(k)
		}
		return b.Put(k, op.val)
	}
	var buf [80]byte
	tk := string(tagged(buf[:], tag, k))
	if old, ok := j.ws[tk]; ok {
		j.wsSize -= len(tk) + len(old.val)
	}
	j.ws[tk] = op
	j.wsSize += len(tk) + len(op.val)
	return nil
}

// commitJournal ends a group commit's transaction: it appends the group's
// writes to the journal as one entry, or, when the journal would then hold
// more than flushAt entries or journalFlushBytes, applies the journal and
// the writes to their buckets.
func commitJournal(btx *bolt.Tx, j *jview, flushAt uint64) error {
	if len(j.ws) == 0 {
		return nil
	}
	n, size := 1, j.wsSize
	if j.base != nil {
		n, size = j.base.n+1, j.base.size+j.wsSize
	}
	if uint64(n) > flushAt || size > journalFlushBytes {
		return applyJournal(btx, j.base, j.ws)
	}
	b := btx.Bucket(bucketJournal)
	if b == nil {
		// Only in a read-only open, where writes fail before they get
		// here.
		return fmt.Errorf("the store has no journal bucket (%s): open it read-write to make it", bucketJournal)
	}
	b.FillPercent = 1 // entries are only appended: fill each leaf
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	enc := encodeJournal(j.ws) // never empty: it starts with its length and checksum
	for i := 0; len(enc) > 0; i++ {
		c := enc[:min(len(enc), journalChunk)]
		enc = enc[len(c):]
		if err := b.Put(jkey(seq, uint16(i)), c); err != nil {
			return fmt.Errorf("journal entry %d: %w", seq, err)
		}
	}
	return nil
}

// applyCommitted applies the journal as btx holds it (decoding through
// cache, which may be nil) and reports whether it held any entry.
func applyCommitted(btx *bolt.Tx, cache *journalCache) (bool, error) {
	l, err := loadJournal(btx, cache)
	if err != nil || l == nil {
		return false, err
	}
	return true, applyJournal(btx, l, nil)
}

// applyJournal writes the journal's records (the chain top and then ws,
// newest winning) to their buckets and empties the journal, keeping its
// sequence.
func applyJournal(btx *bolt.Tx, top *jlayer, ws map[string]jop) error {
	if top == nil && len(ws) == 0 {
		return nil
	}
	final := map[string]jop{}
	for l := top; l != nil; l = l.prev {
		for k, op := range l.ops {
			if _, ok := final[k]; !ok {
				final[k] = op
			}
		}
	}
	for k, op := range ws {
		final[k] = op
	}
	keys := make([]string, 0, len(final))
	for k := range final {
		keys = append(keys, k)
	}
	slices.Sort(keys) // each bucket's keys in order: appends stay appends
	for _, k := range keys {
		op := final[k]
		b := btx.Bucket(journaled(k[0]))
		if b == nil {
			return fmt.Errorf("apply journal: no bucket for tag %d: %w", k[0], errJournalDamaged)
		}
		if k[0] == jAudit || k[0] == jRequests {
			b.FillPercent = 0.9 // appended at the end, rarely changed
		}
		var err error
		if op.del {
			err = b.Delete([]byte(k[1:]))
		} else {
			err = b.Put([]byte(k[1:]), op.val)
		}
		if err != nil {
			return fmt.Errorf("apply journal: %w", err)
		}
	}
	if top == nil {
		return nil
	}
	jb := btx.Bucket(bucketJournal)
	seq := jb.Sequence()
	if err := btx.DeleteBucket(bucketJournal); err != nil {
		return fmt.Errorf("apply journal: %w", err)
	}
	jb, err := btx.CreateBucket(bucketJournal)
	if err != nil {
		return fmt.Errorf("apply journal: %w", err)
	}
	return jb.SetSequence(seq)
}

// jentry is a journaled key (without its tag) and its newest write.
type jentry struct {
	k  []byte
	op jop
}

// overlay returns the journal's writes to the bucket tag, in key order.
func (j *jview) overlay(tag byte) []jentry {
	seen := map[string]bool{}
	var out []jentry
	add := func(k string, op jop) {
		if k[0] != tag || seen[k] {
			return
		}
		seen[k] = true
		out = append(out, jentry{k: []byte(k[1:]), op: op})
	}
	for k, op := range j.ws {
		add(k, op)
	}
	for l := j.base; l != nil; l = l.prev {
		for k, op := range l.ops {
			add(k, op)
		}
	}
	slices.SortFunc(out, func(a, b jentry) int { return bytes.Compare(a.k, b.k) })
	return out
}

// rcursor returns a cursor over the journaled bucket tag merged with the
// journal. As with a bbolt cursor, the bucket must not be written while
// it is in use.
func (t *tx) rcursor(tag byte) (*jcursor, error) {
	j, err := t.journal()
	if err != nil {
		return nil, err
	}
	return &jcursor{real: t.b(journaled(tag)).Cursor(), ov: j.overlay(tag)}, nil
}

// rcount returns the number of keys in the journaled bucket tag.
func (t *tx) rcount(tag byte) (int, error) {
	j, err := t.journal()
	if err != nil {
		return 0, err
	}
	b := t.b(journaled(tag))
	n := b.Stats().KeyN
	for _, e := range j.overlay(tag) {
		in := b.Get(e.k) != nil
		switch {
		case e.op.del && in:
			n--
		case !e.op.del && !in:
			n++
		}
	}
	return n, nil
}

// jcursor walks a journaled bucket and the journal's writes to it
// together, in key order, skipping deleted keys.
type jcursor struct {
	real   *bolt.Cursor
	ov     []jentry
	i      int    // the next overlay entry
	rk, rv []byte // the bucket's next key and value (rk nil: none)
}

func (c *jcursor) first() ([]byte, []byte) {
	c.rk, c.rv = c.real.First()
	c.i = 0
	return c.settle()
}

func (c *jcursor) seek(k []byte) ([]byte, []byte) {
	c.rk, c.rv = c.real.Seek(k)
	c.i, _ = slices.BinarySearchFunc(c.ov, k, func(e jentry, k []byte) int { return bytes.Compare(e.k, k) })
	return c.settle()
}

// next moves past the current key.
func (c *jcursor) next() ([]byte, []byte) {
	switch cmp := c.compare(); {
	case cmp < 0:
		c.rk, c.rv = c.real.Next()
	case cmp > 0:
		c.i++
	default:
		if c.rk == nil {
			return nil, nil
		}
		c.rk, c.rv = c.real.Next()
		c.i++
	}
	return c.settle()
}

// compare orders the next keys: <0 the bucket's first, >0 the journal's,
// 0 the same key (or both done).
func (c *jcursor) compare() int {
	done := c.i >= len(c.ov)
	switch {
	case c.rk == nil && done:
		return 0
	case c.rk == nil:
		return 1
	case done:
		return -1
	}
	return bytes.Compare(c.rk, c.ov[c.i].k)
}

// settle returns the current key and value, moving past deleted keys.
func (c *jcursor) settle() ([]byte, []byte) {
	for {
		cmp := c.compare()
		if cmp < 0 {
			return c.rk, c.rv
		}
		if c.i >= len(c.ov) {
			return nil, nil
		}
		e := c.ov[c.i]
		if !e.op.del {
			return e.k, e.op.val
		}
		// A deleted key: skip it in both sources.
		if cmp == 0 {
			c.rk, c.rv = c.real.Next()
		}
		c.i++
	}
}
