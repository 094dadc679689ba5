// The transaction: its checks, sequences, and requests with their indexes by
// requester, by state and by deadline.

package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/symbot/symbot"
)

// txOf returns the store's view of btx, which reads the record journal
// through the store's cache of its decoded entries. (Open's inspection and
// repairs are functions of the bbolt transaction alone: they make theirs
// with &tx{} and decode the journal without the cache.)
func (s *Store) txOf(btx *bolt.Tx) *tx {
	return &tx{tx: btx, jcache: &s.jcache, rcache: &s.rcache, jobs: &s.jobs}
}

// tx implements symbot.Tx on a bbolt transaction.
type tx struct {
	tx   *bolt.Tx
	done bool

	// j is the transaction's view of the record journal (journal.go),
	// loaded at first use with jcache (nil: decoded afresh); a group
	// commit gives all its fns the same one.
	j      *jview
	jcache *journalCache
	// rcache is the store's decoded-request cache (reqcache.go); nil
	// caches nothing.
	rcache *reqCache
	// jobs is the store's decoded-job cache (jobcache.go); nil caches
	// nothing.
	jobs *jobCache

	// In a writable transaction, the index keys of the requests and jobs
	// this tx has decoded or written, as they are stored now, so that
	// PutRequest, UpdateJob and DeleteJob need not decode them again. The
	// records change only through this tx while it is in use.
	reqKeys map[string]map[string][]byte
	jobKeys map[uint64]map[string][]byte
}

// remember records in *m the stored index keys of the record id (keys
// nil: forgets them). Only a writable transaction keeps them.
func remember[K comparable](btx *bolt.Tx, m *map[K]map[string][]byte, id K, keys map[string][]byte) {
	if !btx.Writable() {
		return
	}
	if keys == nil {
		delete(*m, id)
		return
	}
	if *m == nil {
		*m = map[K]map[string][]byte{}
	}
	(*m)[id] = keys
}

func (t *tx) rememberReq(id string, keys map[string][]byte) { remember(t.tx, &t.reqKeys, id, keys) }

func (t *tx) rememberJob(id uint64, keys map[string][]byte) { remember(t.tx, &t.jobKeys, id, keys) }

var _ symbot.Tx = (*tx)(nil)

var errReadOnly = errors.New("write in a read-only transaction")

func (t *tx) check() error {
	if t.done {
		return errors.New("transaction already finished")
	}
	return nil
}

func (t *tx) checkWrite(op string) error {
	if err := t.check(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !t.tx.Writable() {
		return fmt.Errorf("%s: %w", op, errReadOnly)
	}
	return nil
}

func (t *tx) b(name []byte) *bolt.Bucket { return t.tx.Bucket(name) }

func (t *tx) NextSeq(name string) (uint64, error) {
	if err := t.checkWrite("next sequence"); err != nil {
		return 0, err
	}
	if err := symbot.CheckCounterName(name); err != nil {
		return 0, err
	}
	b := t.b(bucketSeq)
	var n uint64
	if v := b.Get([]byte(name)); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	if err := b.Put([]byte(name), u64(n)); err != nil {
		return 0, fmt.Errorf("next sequence %s: %w", name, err)
	}
	return n, nil
}

func (t *tx) Request(id string) (*symbot.Request, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("get request: %w", err)
	}
	return t.request(id)
}

func (t *tx) request(id string) (*symbot.Request, error) {
	v, err := t.rget(jRequests, []byte(id))
	if err != nil {
		return nil, fmt.Errorf("request %q: %w", id, err)
	}
	if v == nil {
		return nil, fmt.Errorf("request %q: %w", id, symbot.ErrNotFound)
	}
	if r, ok := t.rcache.get(id, v); ok {
		t.rememberReq(id, reqIndexKeys(r))
		return r, nil
	}
	var r symbot.Request
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("request %q: decode: %w", id, err)
	}
	t.rcache.decoded(id, v, &r)
	t.rememberReq(id, reqIndexKeys(&r))
	return &r, nil
}

// requestRecord is a request as it is stored: symbot.Request's fields, in
// its order and with its types (so that a field added to Request and not
// here does not compile), each left out of the JSON while it is at its zero
// value. A field left out reads back as that zero value, by this symbot as
// by one that wrote every field, and records written with every field read
// as before. Most of a request's fields are zero for most of its life
// (a pending request sets about a third of them), so the record is about
// half the size, and encoding and decoding it (which every command and job
// that changes a request does in its transaction) take about half as long.
type requestRecord struct {
	ID              string              `json:",omitzero"`
	Flow            string              `json:",omitzero"`
	Target          string              `json:",omitzero"`
	GroupID         string              `json:",omitzero"`
	Requester       symbot.Person       `json:",omitzero"`
	Duration        time.Duration       `json:",omitzero"`
	Reason          string              `json:",omitzero"`
	StartAt         time.Time           `json:",omitzero"`
	State           symbot.State        `json:",omitzero"`
	CreatedAt       time.Time           `json:",omitzero"`
	UpdatedAt       time.Time           `json:",omitzero"`
	Approvals       []symbot.Decision   `json:",omitzero"`
	Transitions     []symbot.Transition `json:",omitzero"`
	ExtensionOf     string              `json:",omitzero"`
	ExtendedBy      []string            `json:",omitzero"`
	TimeoutAt       time.Time           `json:",omitzero"`
	WarnAt          time.Time           `json:",omitzero"`
	Warned          bool                `json:",omitzero"`
	ExpiresAt       time.Time           `json:",omitzero"`
	GrantedAt       time.Time           `json:",omitzero"`
	OktaUserID      string              `json:",omitzero"`
	OktaLogin       string              `json:",omitzero"`
	GrantChecked    bool                `json:",omitzero"`
	Preexisting     bool                `json:",omitzero"`
	Removed         bool                `json:",omitzero"`
	Kept            bool                `json:",omitzero"`
	RemovalNote     string              `json:",omitzero"`
	PrecheckedAt    time.Time           `json:",omitzero"`
	PreOktaUserID   string              `json:",omitzero"`
	PreOktaLogin    string              `json:",omitzero"`
	PreMember       bool                `json:",omitzero"`
	FailReason      string              `json:",omitzero"`
	Message         symbot.MessageRef   `json:",omitzero"`
	Rule            string              `json:",omitzero"`
	RuleApprovals   int                 `json:",omitzero"`
	RuleApprovers   *symbot.Approvers   `json:",omitzero"`
	RuleNote        string              `json:",omitzero"`
	NudgeAt         time.Time           `json:",omitzero"`
	Escalated       int                 `json:",omitzero"`
	Reminders       int                 `json:",omitzero"`
	BackupApprovers []string            `json:",omitzero"`
	Reposts         []symbot.MessageRef `json:",omitzero"`
	BreakGlass      bool                `json:",omitzero"`
	ReviewDue       time.Time           `json:",omitzero"`
	ReviewAlerts    int                 `json:",omitzero"`
	ReviewedBy      string              `json:",omitzero"`
	ReviewedAt      time.Time           `json:",omitzero"`
	ReviewNote      string              `json:",omitzero"`
	Nonce           string              `json:",omitzero"`
}

// encodeRequest returns the stored form of r (see requestRecord).
func encodeRequest(r *symbot.Request) ([]byte, error) {
	return appendRequest(make([]byte, 0, 1024), r) // json.Marshal((*requestRecord)(r)), byte for byte (reqjson.go)
}

// reqIndexKeys returns the index keys of r, by bucket.
func reqIndexKeys(r *symbot.Request) map[string][]byte {
	id := []byte(r.ID)
	keys := map[string][]byte{
		string(bucketReqUser):  strKey(r.Requester.SlackID, id),
		string(bucketReqState): strKey(string(r.State), id),
	}
	if at, ok := r.Deadline(); ok {
		keys[string(bucketReqTime)] = timeKey(at, id)
	}
	if !r.State.Final() {
		keys[string(bucketReqOpen)] = strKey(r.Requester.SlackID, id)
	}
	return keys
}

func (t *tx) PutRequest(r *symbot.Request) error {
	if err := t.checkWrite("put request"); err != nil {
		return err
	}
	if err := symbot.CheckPutRequest(r); err != nil {
		return err
	}
	old, known := t.reqKeys[r.ID]
	if !known {
		stored, err := t.rget(jRequests, []byte(r.ID))
		if err != nil {
			return fmt.Errorf("put request %q: %w", r.ID, err)
		}
		if stored != nil {
			o, err := t.request(r.ID)
			if err != nil {
				return fmt.Errorf("put request: %w", err)
			}
			old = reqIndexKeys(o)
		}
	}
	v, err := encodeRequest(r)
	if err != nil {
		return fmt.Errorf("put request %q: encode: %w", r.ID, err)
	}
	t.rememberReq(r.ID, nil)
	if err := t.rput(jRequests, []byte(r.ID), v); err != nil {
		return fmt.Errorf("put request %q: %w", r.ID, err)
	}
	t.rcache.encoded(r.ID, v, r)
	keys := reqIndexKeys(r)
	if err := t.reindex(old, keys, nil); err != nil {
		return fmt.Errorf("put request %q: %w", r.ID, err)
	}
	t.rememberReq(r.ID, keys)
	return nil
}

// reindex replaces the index keys old with new (both by bucket name).
// Keys present in both are kept; with vals nil they are not rewritten.
// Each new key gets the value vals[bucket] (nil: empty). New keys are
// written as pending entries (see pending.go).
func (t *tx) reindex(old, new, vals map[string][]byte) error {
	for name, k := range old {
		if bytes.Equal(new[name], k) {
			continue
		}
		if err := t.idx([]byte(name)).del(k); err != nil {
			return fmt.Errorf("index %s: %w", name, err)
		}
	}
	for name, k := range new {
		if vals == nil && bytes.Equal(old[name], k) {
			continue
		}
		if err := t.idx([]byte(name)).put(k, vals[name]); err != nil {
			return fmt.Errorf("index %s: %w", name, err)
		}
	}
	return nil
}

// scan returns the requests whose ids follow prefix in the index bucket.
func (t *tx) scan(bucket []byte, prefix []byte) ([]*symbot.Request, error) {
	var out []*symbot.Request
	c := t.idx(bucket).cursor()
	for k, _ := c.seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.next() {
		r, err := t.request(string(k[len(prefix):]))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (t *tx) RequestsByRequester(slackID string) ([]*symbot.Request, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("requests by requester: %w", err)
	}
	rs, err := t.scan(bucketReqUser, strPrefix(slackID))
	if err != nil {
		return nil, fmt.Errorf("requests by requester %s: %w", slackID, err)
	}
	return rs, nil
}

// OpenRequests reads the req_open index: only the person's non-final
// requests are decoded, however long their history.
func (t *tx) OpenRequests(slackID string) ([]*symbot.Request, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("open requests: %w", err)
	}
	rs, err := t.scan(bucketReqOpen, strPrefix(slackID))
	if err != nil {
		return nil, fmt.Errorf("open requests of %s: %w", slackID, err)
	}
	return rs, nil
}

func (t *tx) RequestsByState(s symbot.State) ([]*symbot.Request, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("requests by state: %w", err)
	}
	rs, err := t.scan(bucketReqState, strPrefix(string(s)))
	if err != nil {
		return nil, fmt.Errorf("requests by state %s: %w", s, err)
	}
	return rs, nil
}

func (t *tx) NextDeadline() (string, time.Time, bool, error) {
	if err := t.check(); err != nil {
		return "", time.Time{}, false, fmt.Errorf("next deadline: %w", err)
	}
	k, _ := t.idx(bucketReqTime).cursor().first()
	if k == nil {
		return "", time.Time{}, false, nil
	}
	return string(k[8:]), bitsTime(binary.BigEndian.Uint64(k[:8])), true, nil
}

func (t *tx) DueRequests(now time.Time, limit int) ([]string, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("due requests: %w", err)
	}
	var ids []string
	end := timeBits(now)
	c := t.idx(bucketReqTime).cursor()
	for k, _ := c.first(); k != nil && (limit <= 0 || len(ids) < limit); k, _ = c.next() {
		if binary.BigEndian.Uint64(k[:8]) > end {
			break
		}
		ids = append(ids, string(k[8:]))
	}
	return ids, nil
}

// openStates are the states whose requests the req_open index holds.
func openStates() []symbot.State {
	return []symbot.State{symbot.StatePending, symbot.StateApproved, symbot.StateScheduled, symbot.StateActive}
}

// openIndexStale reports whether the req_open index is missing or does not
// hold exactly the requests the req_state index has in a non-final state,
// each under the requester the req_user index names: a store from before
// the index, or one written since by an older symbot that did not keep it.
// Every index key is checked, not only their number (an older symbot may
// have ended one request and opened another). Only index keys are read, no
// request is decoded: the cost grows with the open requests, not the
// history.
func openIndexStale(btx *bolt.Tx) bool {
	if btx.Bucket(bucketReqOpen) == nil {
		return true
	}
	t := &tx{tx: btx}
	users, states := t.idx(bucketReqUser), t.idx(bucketReqState)
	open := 0
	for _, s := range openStates() {
		p := strPrefix(string(s))
		c := states.cursor()
		for k, _ := c.seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.next() {
			open++
		}
	}
	n := 0
	c := t.idx(bucketReqOpen).cursor()
	for k, _ := c.first(); k != nil; k, _ = c.next() {
		n++
		// k is strKey(requester, id), as the request's req_user key is.
		id, ok := strKeySuffix(k)
		if !ok || !users.has(k) ||
			!slices.ContainsFunc(openStates(), func(s symbot.State) bool { return states.has(strKey(string(s), id)) }) {
			return true
		}
	}
	return n != open
}

// rebuildOpenIndex rewrites the req_open index from the non-final requests
// (found through the req_state index).
func rebuildOpenIndex(btx *bolt.Tx) error {
	if err := clearPending(btx, bucketReqOpen); err != nil {
		return err
	}
	if err := btx.DeleteBucket(bucketReqOpen); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return fmt.Errorf("rebuild open-requests index: %w", err)
	}
	idx, err := btx.CreateBucket(bucketReqOpen)
	if err != nil {
		return fmt.Errorf("rebuild open-requests index: %w", err)
	}
	t := &tx{tx: btx}
	for _, s := range openStates() {
		rs, err := t.scan(bucketReqState, strPrefix(string(s)))
		if err != nil {
			return fmt.Errorf("rebuild open-requests index: %w", err)
		}
		for _, r := range rs {
			if r.State.Final() {
				continue
			}
			if err := idx.Put(strKey(r.Requester.SlackID, []byte(r.ID)), nil); err != nil {
				return fmt.Errorf("rebuild open-requests index: %w", err)
			}
		}
	}
	return nil
}
