// Durable jobs: the due and lane indexes, claiming with a lease, the
// failing-revocations index; what Open repairs (stale indexes, leases left
// by a previous process).

package store

import (
	"bytes"
	"cmp"
	"context"
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

// jobIndexKeys returns the index keys of j by bucket, and their values.
func jobIndexKeys(j *symbot.Job) (keys, vals map[string][]byte) {
	id := u64(j.ID)
	keys = map[string][]byte{string(bucketJobDue): timeKey(j.ClaimableAt(), id)}
	vals = map[string][]byte{string(bucketJobDue): []byte(j.Lane)}
	if j.Lane != "" {
		keys[string(bucketJobLane)] = strKey(j.Lane, id)
	}
	if failingRevoke(j) {
		keys[string(bucketJobFailing)] = id
	}
	if r := symbot.ClaimRank(j.Kind); r < symbot.ClaimRankLast {
		keys[string(bucketJobRank)] = id
		vals[string(bucketJobRank)] = []byte{byte(r)}
	}
	return keys, vals
}

// rankOf returns the claim rank of the job id from the rank index: jobs
// not in it are of the last rank.
func (t *tx) rankOf(id uint64) int {
	if v, _ := t.idx(bucketJobRank).get(u64(id)); len(v) == 1 {
		return int(v[0])
	}
	return symbot.ClaimRankLast
}

// failingRevoke reports whether j is counted in JobStats.FailingRevokes.
func failingRevoke(j *symbot.Job) bool { return j.Kind == symbot.JobRevoke && j.Attempts > 0 }

// laneHead reports whether id is the lowest job id in lane.
func (t *tx) laneHead(lane string, id uint64) bool {
	prefix := strPrefix(lane)
	k, _ := t.idx(bucketJobLane).cursor().seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8 &&
		binary.BigEndian.Uint64(k[len(prefix):]) == id
}

func (t *tx) putJob(j *symbot.Job) error {
	v, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if err := t.b(bucketJobs).Put(u64(j.ID), v); err != nil {
		return err
	}
	t.jobs.encoded(v, j)
	return nil
}

func (t *tx) AddJob(j *symbot.Job) error {
	if err := t.checkWrite("add job"); err != nil {
		return err
	}
	if err := symbot.CheckNewJob(j); err != nil {
		return err
	}
	id, err := t.b(bucketJobs).NextSequence()
	if err != nil {
		return fmt.Errorf("add job: %w", err)
	}
	j.ID = id
	if err := t.putJob(j); err != nil {
		return fmt.Errorf("add job %d: %w", id, err)
	}
	keys, vals := jobIndexKeys(j)
	if err := t.reindex(nil, keys, vals); err != nil {
		return fmt.Errorf("add job %d: %w", id, err)
	}
	t.rememberJob(id, keys)
	return nil
}

func (t *tx) Job(id uint64) (*symbot.Job, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	v := t.b(bucketJobs).Get(u64(id))
	if v == nil {
		return nil, fmt.Errorf("job %d: %w", id, symbot.ErrNotFound)
	}
	j, ok := t.jobs.get(id, v)
	if !ok {
		if err := json.Unmarshal(v, &j); err != nil {
			return nil, fmt.Errorf("job %d: decode: %w", id, err)
		}
		t.jobs.decoded(id, v, j)
	}
	if t.tx.Writable() {
		keys, _ := jobIndexKeys(&j)
		t.rememberJob(id, keys)
	}
	return &j, nil
}

// storedJobKeys returns the index keys of the stored job id, or an error
// wrapping symbot.ErrNotFound.
func (t *tx) storedJobKeys(id uint64) (map[string][]byte, error) {
	if keys, ok := t.jobKeys[id]; ok {
		return keys, nil
	}
	old, err := t.Job(id)
	if err != nil {
		return nil, err
	}
	keys, _ := jobIndexKeys(old)
	return keys, nil
}

func (t *tx) UpdateJob(j *symbot.Job) error {
	if err := t.checkWrite("update job"); err != nil {
		return err
	}
	if err := symbot.CheckJobUpdate(j); err != nil {
		return err
	}
	oldKeys, err := t.storedJobKeys(j.ID)
	if err != nil {
		return fmt.Errorf("update job: %w", err)
	}
	t.rememberJob(j.ID, nil)
	if err := t.putJob(j); err != nil {
		return fmt.Errorf("update job %d: %w", j.ID, err)
	}
	keys, vals := jobIndexKeys(j)
	if err := t.reindex(oldKeys, keys, vals); err != nil {
		return fmt.Errorf("update job %d: %w", j.ID, err)
	}
	t.rememberJob(j.ID, keys)
	return nil
}

func (t *tx) DeleteJob(id uint64) error {
	if err := t.checkWrite("delete job"); err != nil {
		return err
	}
	oldKeys, err := t.storedJobKeys(id)
	if err != nil {
		return fmt.Errorf("delete job: %w", err)
	}
	t.rememberJob(id, nil)
	if err := t.b(bucketJobs).Delete(u64(id)); err != nil {
		return fmt.Errorf("delete job %d: %w", id, err)
	}
	t.jobs.deleted(id)
	if err := t.reindex(oldKeys, nil, nil); err != nil {
		return fmt.Errorf("delete job %d: %w", id, err)
	}
	return nil
}

// JobStats counts the keys of the jobs bucket (outstanding work only: done
// jobs are deleted) and of the failing-revocations index, without decoding
// a job. (Bucket.Stats would be cheaper but misses this transaction's own
// writes.)
func (t *tx) JobStats() (symbot.JobStats, error) {
	if err := t.check(); err != nil {
		return symbot.JobStats{}, fmt.Errorf("job stats: %w", err)
	}
	return symbot.JobStats{
		Pending:        countKeys(t.b(bucketJobs)),
		FailingRevokes: t.idx(bucketJobFailing).count(),
	}, nil
}

func countKeys(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

func (t *tx) Jobs() ([]symbot.Job, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var out []symbot.Job
	err := t.b(bucketJobs).ForEach(func(k, v []byte) error {
		var j symbot.Job
		if err := json.Unmarshal(v, &j); err != nil {
			return fmt.Errorf("job %d: decode: %w", binary.BigEndian.Uint64(k), err)
		}
		out = append(out, j)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out, nil
}

// ClaimJobs atomically leases up to max jobs that are due at now,
// honouring lanes, in symbot.ClaimRank order of their kinds (from the rank
// index) and ID order within a rank. It walks the due index only as far
// as now.
func (s *Store) ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) ([]symbot.Job, error) {
	if none, err := symbot.CheckClaim(ctx, owner, lease, max); none || err != nil {
		return nil, err
	}
	// Most calls find nothing to claim (every new job and every finished
	// one wakes the executor): look in a read-only transaction first, so
	// that finding nothing costs no commit and no fsync.
	claimable, err := s.anyClaimable(now)
	if err != nil || !claimable {
		return nil, err
	}
	var out []symbot.Job
	err = s.update(ctx, "claim jobs", func(t *tx) error {
		out = nil // a group commit may run this again
		// Every due job is a candidate so that the lowest (rank, id) win,
		// as the contract says; the walk stops at now, so it is bounded by
		// the backlog, not by the number of jobs. Lane heads are looked up
		// only for candidates in (rank, id) order, until max are found.
		type cand struct {
			rank int
			id   uint64
			lane []byte // valid for the transaction
		}
		var cands []cand
		limit := timeBits(now)
		c := t.idx(bucketJobDue).cursor()
		for k, lane := c.first(); k != nil; k, lane = c.next() {
			if binary.BigEndian.Uint64(k[:8]) > limit {
				break
			}
			id := binary.BigEndian.Uint64(k[8:])
			cands = append(cands, cand{t.rankOf(id), id, lane})
		}
		slices.SortFunc(cands, func(a, b cand) int { return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(a.id, b.id)) })
		var ids []uint64
		for _, c := range cands {
			if len(ids) == max {
				break
			}
			if len(c.lane) > 0 && !t.laneHead(string(c.lane), c.id) {
				continue
			}
			ids = append(ids, c.id)
		}
		for _, id := range ids {
			j, err := t.Job(id)
			if err != nil {
				return fmt.Errorf("claim jobs: %w", err)
			}
			j.LeaseOwner = owner
			j.LeaseUntil = now.Add(lease)
			j.LeaseToken++
			if err := t.UpdateJob(j); err != nil {
				return fmt.Errorf("claim jobs: %w", err)
			}
			out = append(out, *j)
		}
		return nil
	})
	if err != nil {
		return nil, err // prefixed "claim jobs: " by update or above
	}
	return out, nil
}

// anyClaimable reports whether some job is due at now and heads its lane,
// walking the due index only as far as now.
func (s *Store) anyClaimable(now time.Time) (bool, error) {
	if s.writes.Closed() {
		return false, fmt.Errorf("claim jobs: store %s: %w", s.path, berrors.ErrDatabaseNotOpen)
	}
	found := false
	err := s.db.View(func(btx *bolt.Tx) error {
		t := s.txOf(btx)
		limit := timeBits(now)
		c := t.idx(bucketJobDue).cursor()
		for k, lane := c.first(); k != nil; k, lane = c.next() {
			if binary.BigEndian.Uint64(k[:8]) > limit {
				return nil
			}
			if len(lane) == 0 || t.laneHead(string(lane), binary.BigEndian.Uint64(k[8:])) {
				found = true
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("claim jobs: %w", err)
	}
	return found, nil
}

// NextJobTime returns when the earliest claimable job becomes due; jobs
// blocked behind a lower job of their lane are skipped (the lane head's
// time counts).
func (s *Store) NextJobTime(ctx context.Context) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("next job time: %w", err)
	}
	var (
		at time.Time
		ok bool
	)
	err := s.db.View(func(btx *bolt.Tx) error {
		t := s.txOf(btx)
		c := t.idx(bucketJobDue).cursor()
		for k, lane := c.first(); k != nil; k, lane = c.next() {
			if len(lane) > 0 && !t.laneHead(string(lane), binary.BigEndian.Uint64(k[8:])) {
				continue
			}
			at, ok = bitsTime(binary.BigEndian.Uint64(k[:8])), true
			return nil
		}
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next job time: %w", err)
	}
	return at, ok, nil
}

// openWork is what Open repairs in a store, found by reading each job once
// and the open-requests index keys.
type openWork struct {
	leased       []*symbot.Job // jobs that carry a lease
	failing      []uint64      // ids of the revoke jobs that failed at least once
	failingStale bool          // the failing-revocations index differs from them
	ranked       []*symbot.Job // jobs ranked ahead of the rest (symbot.ClaimRank)
	rankStale    bool          // the rank index differs from them
	openStale    bool          // the open-requests index differs from the requests
}

func (w *openWork) none() bool {
	return len(w.leased) == 0 && !w.failingStale && !w.rankStale && !w.openStale
}

// inspect reads what Open must repair: every job is decoded once, to find
// the leased ones and to check the failing-revocations index (a store from
// before that index, or one written since by an older symbot that did not
// keep it, differs from its jobs).
func inspect(btx *bolt.Tx) (openWork, error) {
	var w openWork
	t := &tx{tx: btx}
	var idx, rankIdx *index
	if btx.Bucket(bucketJobFailing) != nil {
		x := t.idx(bucketJobFailing)
		idx = &x
	}
	if btx.Bucket(bucketJobRank) != nil {
		x := t.idx(bucketJobRank)
		rankIdx = &x
	}
	err := btx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
		var j symbot.Job
		if err := json.Unmarshal(v, &j); err != nil {
			return fmt.Errorf("job %d: decode: %w", binary.BigEndian.Uint64(k), err)
		}
		if j.LeaseOwner != "" || !j.LeaseUntil.IsZero() {
			w.leased = append(w.leased, &j)
		}
		if failingRevoke(&j) {
			w.failing = append(w.failing, binary.BigEndian.Uint64(k))
			w.failingStale = w.failingStale || idx == nil || !idx.has(k)
		}
		if r := symbot.ClaimRank(j.Kind); r < symbot.ClaimRankLast {
			w.ranked = append(w.ranked, &j)
			w.rankStale = w.rankStale || rankIdx == nil || !rankIdx.holds(k, []byte{byte(r)})
		}
		return nil
	})
	if err != nil {
		return w, err
	}
	w.failingStale = w.failingStale || idx == nil || len(w.failing) != idx.count()
	w.rankStale = w.rankStale || rankIdx == nil || len(w.ranked) != rankIdx.count()
	w.openStale = openIndexStale(btx)
	return w, nil
}

// repair rebuilds the stale indexes and clears the leases that inspect
// found, in btx, which must be the next write after inspect's read.
func (w *openWork) repair(btx *bolt.Tx) error {
	if w.failingStale {
		if err := rebuildFailingIndex(btx, w.failing); err != nil {
			return err
		}
	}
	if w.rankStale {
		if err := rebuildRankIndex(btx, w.ranked); err != nil {
			return err
		}
	}
	if w.openStale {
		if err := rebuildOpenIndex(btx); err != nil {
			return err
		}
	}
	t := &tx{tx: btx}
	for _, j := range w.leased {
		j.LeaseOwner, j.LeaseUntil = "", time.Time{}
		if err := t.UpdateJob(j); err != nil {
			return err
		}
	}
	return nil
}

// rebuildRankIndex rewrites the rank index to hold the ranks of jobs (a
// store from before the index, or written since by an older symbot).
func rebuildRankIndex(btx *bolt.Tx, jobs []*symbot.Job) error {
	if err := clearPending(btx, bucketJobRank); err != nil {
		return err
	}
	if err := btx.DeleteBucket(bucketJobRank); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return fmt.Errorf("rebuild job rank index: %w", err)
	}
	idx, err := btx.CreateBucket(bucketJobRank)
	if err != nil {
		return fmt.Errorf("rebuild job rank index: %w", err)
	}
	for _, j := range jobs {
		if err := idx.Put(u64(j.ID), []byte{byte(symbot.ClaimRank(j.Kind))}); err != nil {
			return fmt.Errorf("rebuild job rank index: %w", err)
		}
	}
	return nil
}

// rebuildFailingIndex rewrites the failing-revocations index to hold ids.
func rebuildFailingIndex(btx *bolt.Tx, ids []uint64) error {
	if err := clearPending(btx, bucketJobFailing); err != nil {
		return err
	}
	if err := btx.DeleteBucket(bucketJobFailing); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return fmt.Errorf("rebuild job index: %w", err)
	}
	idx, err := btx.CreateBucket(bucketJobFailing)
	if err != nil {
		return fmt.Errorf("rebuild job index: %w", err)
	}
	for _, id := range ids {
		if err := idx.Put(u64(id), nil); err != nil {
			return fmt.Errorf("rebuild job index: %w", err)
		}
	}
	return nil
}
