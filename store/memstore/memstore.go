// Package memstore is an in-memory symbot.Store for tests. It has the same
// semantics as the bbolt store (the storetest contract suite runs against
// both) but keeps nothing on disk.
//
// One mutex guards all data: Update holds it exclusively for the whole
// transaction, View shares it. As with bbolt, calling Update from inside
// another transaction's fn deadlocks.
package memstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/symbot/symbot"
)

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("store is closed")

// errReadOnly is returned by writes inside View.
var errReadOnly = errors.New("write in a read-only transaction")

// Store is an in-memory symbot.Store. The zero value is not usable; call New.
type Store struct {
	// RerunUpdates makes Update run every fn twice, rolling the first run
	// back whatever it returned, as a batching store may. Engine tests turn
	// it on to prove their transactions do not depend on a previous run.
	RerunUpdates bool

	mu     sync.RWMutex
	closed bool

	requests   map[string]*symbot.Request
	seqs       map[string]uint64
	jobs       map[uint64]*symbot.Job
	lastJobID  uint64
	audit      []symbot.AuditEntry
	identities map[string]symbot.Identity
	cursors    map[string]uint64 // sink name -> audit seq delivered
	records    map[string][]byte
}

var _ symbot.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		requests:   map[string]*symbot.Request{},
		seqs:       map[string]uint64{},
		jobs:       map[uint64]*symbot.Job{},
		identities: map[string]symbot.Identity{},
		cursors:    map[string]uint64{},
		records:    map[string][]byte{},
	}
}

// Update runs fn in a read-write transaction. If fn returns an error (or
// panics) every change it made is undone.
func (s *Store) Update(ctx context.Context, fn func(symbot.Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store update: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.RerunUpdates {
		_ = s.update(fn, false) // rolled back whatever it returns
	}
	return s.update(fn, true)
}

// update runs fn once; it keeps the changes only if keep and fn succeeds.
// A panic in fn rolls back and propagates.
func (s *Store) update(fn func(symbot.Tx) error, keep bool) error {
	t := &tx{s: s, writable: true}
	committed := false
	defer func() {
		t.done = true
		if !committed {
			t.rollback()
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	committed = keep
	return nil
}

// View runs fn in a read-only transaction; writes in it fail.
func (s *Store) View(ctx context.Context, fn func(symbot.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store view: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	t := &tx{s: s}
	defer func() { t.done = true }()
	return fn(t)
}

// ClaimJobs atomically leases up to max due jobs, honouring lanes, in
// symbot.ClaimRank order of their kinds and ID order within a rank.
func (s *Store) ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) ([]symbot.Job, error) {
	if none, err := symbot.CheckClaim(ctx, owner, lease, max); none || err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	heads := s.laneHeads()
	ids := s.jobIDs()
	slices.SortStableFunc(ids, func(a, b uint64) int {
		return cmp.Compare(symbot.ClaimRank(s.jobs[a].Kind), symbot.ClaimRank(s.jobs[b].Kind))
	})
	var out []symbot.Job
	for _, id := range ids {
		if len(out) == max {
			break
		}
		j := s.jobs[id]
		if j.Lane != "" && heads[j.Lane] != id {
			continue
		}
		if j.ClaimableAt().After(now) {
			continue
		}
		j.LeaseOwner = owner
		j.LeaseUntil = now.Add(lease)
		j.LeaseToken++
		out = append(out, *j)
	}
	return out, nil
}

// NextJobTime returns when the earliest claimable job becomes due. Jobs
// blocked behind a lower job of their lane are not counted: the lane's
// head decides.
func (s *Store) NextJobTime(ctx context.Context) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("next job time: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return time.Time{}, false, ErrClosed
	}
	heads := s.laneHeads()
	var best time.Time
	ok := false
	for id, j := range s.jobs {
		if j.Lane != "" && heads[j.Lane] != id {
			continue
		}
		at := j.ClaimableAt()
		if !ok || at.Before(best) {
			best, ok = at, true
		}
	}
	return best, ok, nil
}

// dump is the JSON form Backup writes.
type dump struct {
	Requests   []*symbot.Request
	Seqs       map[string]uint64
	Jobs       []symbot.Job
	LastJobID  uint64
	Audit      []symbot.AuditEntry
	Identities []symbot.Identity
	Cursors    map[string]uint64
	Records    map[string][]byte
}

// Backup writes a JSON dump of the whole store to w.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store backup: %w", err)
	}
	s.mu.RLock()
	d := dump{Seqs: maps.Clone(s.seqs), LastJobID: s.lastJobID, Audit: slices.Clone(s.audit), Cursors: maps.Clone(s.cursors), Records: maps.Clone(s.records)}
	closed := s.closed
	for _, id := range slices.Sorted(maps.Keys(s.requests)) {
		d.Requests = append(d.Requests, s.requests[id].Clone())
	}
	for _, id := range s.jobIDs() {
		d.Jobs = append(d.Jobs, *s.jobs[id])
	}
	for _, k := range slices.Sorted(maps.Keys(s.identities)) {
		d.Identities = append(d.Identities, s.identities[k])
	}
	s.mu.RUnlock()
	if closed {
		return 0, ErrClosed
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return 0, fmt.Errorf("store backup: %w", err)
	}
	n, err := w.Write(b)
	if err != nil {
		return int64(n), fmt.Errorf("store backup: %w", err)
	}
	return int64(n), nil
}

// Close makes every later call fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// jobIDs returns every job id in order. Callers hold s.mu.
func (s *Store) jobIDs() []uint64 {
	return slices.Sorted(maps.Keys(s.jobs))
}

// laneHeads maps each non-empty lane to its lowest job id. Callers hold s.mu.
func (s *Store) laneHeads() map[string]uint64 {
	heads := map[string]uint64{}
	for id, j := range s.jobs {
		if j.Lane == "" {
			continue
		}
		if h, ok := heads[j.Lane]; !ok || id < h {
			heads[j.Lane] = id
		}
	}
	return heads
}

// tx is a transaction. Writable transactions record an undo log.
type tx struct {
	s        *Store
	writable bool
	done     bool
	undo     []func()
}

var _ symbot.Tx = (*tx)(nil)

// put sets m[k] = v and records how to undo that.
func put[K comparable, V any](t *tx, m map[K]V, k K, v V) {
	old, had := m[k]
	t.undo = append(t.undo, func() {
		if had {
			m[k] = old
		} else {
			delete(m, k)
		}
	})
	m[k] = v
}

// del deletes m[k] and records how to undo that.
func del[K comparable, V any](t *tx, m map[K]V, k K) {
	old, had := m[k]
	if !had {
		return
	}
	t.undo = append(t.undo, func() { m[k] = old })
	delete(m, k)
}

func (t *tx) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i]()
	}
	t.undo = nil
}

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
	if !t.writable {
		return fmt.Errorf("%s: %w", op, errReadOnly)
	}
	return nil
}

func (t *tx) NextSeq(name string) (uint64, error) {
	if err := t.checkWrite("next sequence"); err != nil {
		return 0, err
	}
	if err := symbot.CheckCounterName(name); err != nil {
		return 0, err
	}
	n := t.s.seqs[name] + 1
	put(t, t.s.seqs, name, n)
	return n, nil
}

func (t *tx) Request(id string) (*symbot.Request, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("get request: %w", err)
	}
	r, ok := t.s.requests[id]
	if !ok {
		return nil, fmt.Errorf("request %q: %w", id, symbot.ErrNotFound)
	}
	return r.Clone(), nil
}

func (t *tx) PutRequest(r *symbot.Request) error {
	if err := t.checkWrite("put request"); err != nil {
		return err
	}
	if err := symbot.CheckPutRequest(r); err != nil {
		return err
	}
	put(t, t.s.requests, r.ID, r.Clone())
	return nil
}

// requests returns clones of the stored requests that match, in ID order.
func (t *tx) requests(match func(*symbot.Request) bool) []*symbot.Request {
	var out []*symbot.Request
	for _, id := range slices.Sorted(maps.Keys(t.s.requests)) {
		if r := t.s.requests[id]; match(r) {
			out = append(out, r.Clone())
		}
	}
	return out
}

func (t *tx) RequestsByRequester(slackID string) ([]*symbot.Request, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("requests by requester: %w", err)
	}
	return t.requests(func(r *symbot.Request) bool { return r.Requester.SlackID == slackID }), nil
}

// OpenRequests filters every request, as the other reads do: the store is
// small and in memory, so it keeps no index to hold in step.
func (t *tx) OpenRequests(slackID string) ([]*symbot.Request, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("open requests: %w", err)
	}
	return t.requests(func(r *symbot.Request) bool { return r.Requester.SlackID == slackID && !r.State.Final() }), nil
}

func (t *tx) RequestsByState(st symbot.State) ([]*symbot.Request, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("requests by state: %w", err)
	}
	return t.requests(func(r *symbot.Request) bool { return r.State == st }), nil
}

type deadline struct {
	id string
	at time.Time
}

// deadlines returns every request deadline, earliest first, ties by id.
func (t *tx) deadlines() []deadline {
	var ds []deadline
	for id, r := range t.s.requests {
		if at, ok := r.Deadline(); ok {
			ds = append(ds, deadline{id, at})
		}
	}
	slices.SortFunc(ds, func(a, b deadline) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	return ds
}

func (t *tx) NextDeadline() (string, time.Time, bool, error) {
	if err := t.check(); err != nil {
		return "", time.Time{}, false, fmt.Errorf("next deadline: %w", err)
	}
	ds := t.deadlines()
	if len(ds) == 0 {
		return "", time.Time{}, false, nil
	}
	return ds[0].id, ds[0].at, true, nil
}

func (t *tx) DueRequests(now time.Time, limit int) ([]string, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("due requests: %w", err)
	}
	var ids []string
	for _, d := range t.deadlines() {
		if d.at.After(now) || (limit > 0 && len(ids) == limit) {
			break
		}
		ids = append(ids, d.id)
	}
	return ids, nil
}

func (t *tx) AddJob(j *symbot.Job) error {
	if err := t.checkWrite("add job"); err != nil {
		return err
	}
	if err := symbot.CheckNewJob(j); err != nil {
		return err
	}
	last := t.s.lastJobID
	t.undo = append(t.undo, func() { t.s.lastJobID = last })
	t.s.lastJobID = last + 1
	j.ID = last + 1
	c := *j
	put(t, t.s.jobs, j.ID, &c)
	return nil
}

func (t *tx) Job(id uint64) (*symbot.Job, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	j, ok := t.s.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %d: %w", id, symbot.ErrNotFound)
	}
	c := *j
	return &c, nil
}

func (t *tx) UpdateJob(j *symbot.Job) error {
	if err := t.checkWrite("update job"); err != nil {
		return err
	}
	if err := symbot.CheckJobUpdate(j); err != nil {
		return err
	}
	if _, ok := t.s.jobs[j.ID]; !ok {
		return fmt.Errorf("update job %d: %w", j.ID, symbot.ErrNotFound)
	}
	c := *j
	put(t, t.s.jobs, j.ID, &c)
	return nil
}

func (t *tx) DeleteJob(id uint64) error {
	if err := t.checkWrite("delete job"); err != nil {
		return err
	}
	if _, ok := t.s.jobs[id]; !ok {
		return fmt.Errorf("delete job %d: %w", id, symbot.ErrNotFound)
	}
	del(t, t.s.jobs, id)
	return nil
}

// JobStats counts the jobs. The in-memory map is small and local, so it is
// counted here rather than kept in step with every write.
func (t *tx) JobStats() (symbot.JobStats, error) {
	if err := t.check(); err != nil {
		return symbot.JobStats{}, fmt.Errorf("job stats: %w", err)
	}
	st := symbot.JobStats{Pending: len(t.s.jobs)}
	for _, j := range t.s.jobs {
		if j.Kind == symbot.JobRevoke && j.Attempts > 0 {
			st.FailingRevokes++
		}
	}
	return st, nil
}

func (t *tx) Jobs() ([]symbot.Job, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var out []symbot.Job
	for _, id := range t.s.jobIDs() {
		out = append(out, *t.s.jobs[id])
	}
	return out, nil
}

func (t *tx) AppendAudit(e *symbot.AuditEntry) error {
	if err := t.checkWrite("append audit"); err != nil {
		return err
	}
	n := len(t.s.audit)
	prev := ""
	if n > 0 {
		prev = t.s.audit[n-1].Hash
	}
	if err := symbot.CheckAuditAppend(e, uint64(n), prev); err != nil {
		return err
	}
	t.undo = append(t.undo, func() { t.s.audit = t.s.audit[:n] })
	t.s.audit = append(t.s.audit, *e)
	return nil
}

func (t *tx) Audit(after uint64, limit int) ([]symbot.AuditEntry, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	if err := symbot.CheckAuditPage(limit); err != nil {
		return nil, err
	}
	if after >= uint64(len(t.s.audit)) {
		return nil, nil
	}
	rest := t.s.audit[after:]
	if len(rest) > limit {
		rest = rest[:limit]
	}
	return slices.Clone(rest), nil
}

func (t *tx) AuditHead() (uint64, string, error) {
	if err := t.check(); err != nil {
		return 0, "", fmt.Errorf("audit head: %w", err)
	}
	n := len(t.s.audit)
	if n == 0 {
		return 0, "", nil
	}
	return uint64(n), t.s.audit[n-1].Hash, nil
}

func (t *tx) SinkCursor(sink string) (uint64, error) {
	if err := t.check(); err != nil {
		return 0, fmt.Errorf("sink cursor: %w", err)
	}
	return t.s.cursors[sink], nil
}

func (t *tx) SetSinkCursor(sink string, seq uint64) error {
	if err := t.checkWrite("set sink cursor"); err != nil {
		return err
	}
	if err := symbot.CheckSinkName(sink); err != nil {
		return err
	}
	if seq <= t.s.cursors[sink] {
		return nil
	}
	put(t, t.s.cursors, sink, seq)
	return nil
}

func (t *tx) Identity(slackID string) (symbot.Identity, bool, error) {
	if err := t.check(); err != nil {
		return symbot.Identity{}, false, fmt.Errorf("get identity: %w", err)
	}
	id, ok := t.s.identities[slackID]
	return id, ok, nil
}

func (t *tx) PutIdentity(id symbot.Identity) error {
	if err := t.checkWrite("put identity"); err != nil {
		return err
	}
	if err := symbot.CheckIdentity(id); err != nil {
		return err
	}
	put(t, t.s.identities, id.SlackID, id)
	return nil
}

func (t *tx) DeleteIdentity(slackID string) error {
	if err := t.checkWrite("delete identity"); err != nil {
		return err
	}
	del(t, t.s.identities, slackID)
	return nil
}

// Identities sorts the bindings' ids for each page: a map has no order.
func (t *tx) Identities(after string, limit int) ([]symbot.Identity, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("read identities: %w", err)
	}
	if err := symbot.CheckIdentityPage(limit); err != nil {
		return nil, err
	}
	var out []symbot.Identity
	for _, k := range slices.Sorted(maps.Keys(t.s.identities)) {
		if k > after && len(out) < limit {
			out = append(out, t.s.identities[k])
		}
	}
	return out, nil
}

var _ symbot.RecordTx = (*tx)(nil)

// Record returns a copy of the named record.
func (t *tx) Record(name string) ([]byte, bool, error) {
	if err := t.check(); err != nil {
		return nil, false, fmt.Errorf("get record: %w", err)
	}
	v, ok := t.s.records[name]
	return slices.Clone(v), ok, nil
}

// PutRecord stores (or, with a nil value, deletes) the named record.
func (t *tx) PutRecord(name string, value []byte) error {
	if err := t.checkWrite("put record"); err != nil {
		return err
	}
	if err := symbot.CheckRecordName(name); err != nil {
		return err
	}
	if value == nil {
		del(t, t.s.records, name)
		return nil
	}
	put(t, t.s.records, name, slices.Clone(value))
	return nil
}
