// The decoded-job cache: as the decoded-request cache (reqcache.go), a
// memo of a job's stored bytes and the job they decode to.
//
// Why: the approval message's post job is handed to a worker by the
// transaction that created it, so the first read of its stored record is
// its completion's check of the lease, in the commit the next request
// waits on. That decode took 9 µs on an idle processor and about 37 µs in
// a burst of requests (a CPU profile of BenchmarkApprovalMessageLatency),
// half of the completion's share of that commit.

package store

import (
	"bytes"
	"time"
	"unicode/utf8"

	"github.com/symbot/symbot"
)

// jobCache maps job ids to their last stored bytes seen and the job those
// decode to. A Job holds no slice, map or pointer (TestJobIsAValue), so a
// copy of the value is a deep copy. The zero value is empty and ready; a
// nil *jobCache caches nothing.
type jobCache struct{ memo[uint64, symbot.Job] }

// get returns the job that val (job id's stored bytes) decodes to, when
// the cache knows it.
func (c *jobCache) get(id uint64, val []byte) (symbot.Job, bool) {
	if c == nil {
		return symbot.Job{}, false
	}
	return c.lookup(id, val)
}

// decoded remembers that val decodes to j, as json.Unmarshal gave it (val
// is copied: it may live in bbolt's memory map).
func (c *jobCache) decoded(id uint64, val []byte, j symbot.Job) {
	if c == nil {
		return
	}
	c.add(id, bytes.Clone(val), j)
}

// encoded remembers that j was encoded to val, when the job that val
// decodes to is known exactly (storedJobForm); otherwise it forgets j.
func (c *jobCache) encoded(val []byte, j *symbot.Job) {
	if c == nil {
		return
	}
	s, ok := storedJobForm(*j)
	if !ok {
		c.forget(j.ID)
		return
	}
	c.add(j.ID, bytes.Clone(val), s)
}

// deleted forgets job id, done and deleted: it is never read again, and
// its entry would only take the place of one that is.
func (c *jobCache) deleted(id uint64) {
	if c != nil {
		c.forget(id)
	}
}

// storedJobForm returns j as decoding json.Marshal(j) gives it back, or
// false when it cannot say so cheaply: as for a request (storedForm), a
// time loses its monotonic reading and location (put through time's own
// JSON methods here), and a string that is not valid UTF-8 changes (false).
// TestStoredJobFormIsTheDecodedForm holds this to json.Unmarshal for every
// field, found by reflection, so that a field added to Job fails it until
// it is handled here.
func storedJobForm(j symbot.Job) (symbot.Job, bool) {
	for _, s := range []string{string(j.Kind), j.RequestID, string(j.Event), j.To, j.Text, j.Lane, j.LastError, j.LeaseOwner} {
		if !utf8.ValidString(s) {
			return j, false
		}
	}
	for _, t := range []*time.Time{&j.NotBefore, &j.CreatedAt, &j.LeaseUntil} {
		if !roundTripTime(t) {
			return j, false
		}
	}
	return j, true
}
