// Bucket names and the index key encodings: big-endian, fixed-width, so
// that cursor order is numeric and time order.

package store

import (
	"encoding/binary"
	"math"
	"time"
)

// Bucket names.
var (
	bucketMeta              = []byte("meta")        // schema version, audit head
	bucketSeq               = []byte("seq")         // counter name -> uint64
	bucketRequests          = []byte("requests")    // id -> JSON request
	bucketReqUser           = []byte("req_user")    // str(slackID) id -> nil
	bucketReqState          = []byte("req_state")   // str(state) id -> nil
	bucketReqTime           = []byte("req_time")    // time(deadline) id -> nil
	bucketReqOpen           = []byte("req_open")    // str(slackID) id -> nil: requests not in a final state
	bucketJobs              = []byte("jobs")        // u64(id) -> JSON job
	bucketJobDue            = []byte("job_due")     // time(max(NotBefore, LeaseUntil)) u64(id) -> lane
	bucketJobLane           = []byte("job_lane")    // str(lane) u64(id) -> nil
	bucketJobFailing        = []byte("job_failing") // u64(id) -> nil: revoke jobs with Attempts > 0
	bucketJobRank           = []byte("job_rank")    // u64(id) -> rank byte: jobs ranked ahead of the rest (symbot.ClaimRank)
	bucketAudit             = []byte("audit")       // u64(seq) -> JSON entry
	bucketIdentity          = []byte("identities")  // slackID -> JSON identity
	bucketSinkCursor        = []byte("sink_cursor") // sink name -> u64(seq delivered)
	bucketRecords           = []byte("records")     // name -> bytes (symbot.RecordTx: the reconciler's per-group records)
	allBuckets              = [][]byte{bucketMeta, bucketSeq, bucketRequests, bucketReqUser, bucketReqState, bucketReqTime, bucketReqOpen, bucketJobs, bucketJobDue, bucketJobLane, bucketJobFailing, bucketJobRank, bucketAudit, bucketIdentity, bucketSinkCursor, bucketRecords, bucketPending, bucketJournal}
	keySchema               = []byte("schema")     // u64 schema version
	keyAuditHead            = []byte("audit_head") // u64(seq) hash
	minTime                 = time.Unix(0, math.MinInt64)
	maxTime                 = time.Unix(0, math.MaxInt64)
	signBit          uint64 = 1 << 63
)

// u64 encodes n big-endian, so byte order is numeric order.
func u64(n uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n)
}

// timeBits maps t to a uint64 whose numeric order is time order: UnixNano
// with the sign bit flipped. Times outside UnixNano's range (before 1678,
// after 2262, and the zero time) are clamped to the ends.
func timeBits(t time.Time) uint64 {
	switch {
	case t.Before(minTime):
		return 0
	case t.After(maxTime):
		return math.MaxUint64
	}
	return uint64(t.UnixNano()) ^ signBit
}

// bitsTime inverts timeBits; 0 (the clamped zero time) gives the zero time.
func bitsTime(b uint64) time.Time {
	if b == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(b^signBit)).UTC()
}

// timeKey is timeBits(t), big-endian, followed by suffix.
func timeKey(t time.Time, suffix []byte) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(suffix)), timeBits(t))
	return append(k, suffix...)
}

// strPrefix is a length-prefixed string: no prefix of one value is the
// prefix of another, so a cursor scan for "U1" never sees "U10".
func strPrefix(s string) []byte {
	k := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(s)), uint32(len(s)))
	return append(k, s...)
}

// strKey is strPrefix(s) followed by suffix.
func strKey(s string, suffix []byte) []byte {
	return append(strPrefix(s), suffix...)
}

// strKeySuffix returns the suffix of a strKey, ok=false when k is too short
// to be one.
func strKeySuffix(k []byte) ([]byte, bool) {
	if len(k) < 4 {
		return nil, false
	}
	n := uint64(binary.BigEndian.Uint32(k[:4]))
	if uint64(len(k)) < 4+n {
		return nil, false
	}
	return k[4+n:], true
}
