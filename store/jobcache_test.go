package store

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/symbot/symbot"
)

// TestJobIsAValue: a Job holds no slice, map, pointer, interface, channel
// or function (a time's zone is immutable), so the job cache's copies of
// a value share nothing with each other. A field that breaks this fails
// here: the cache must then copy it.
func TestJobIsAValue(t *testing.T) {
	var check func(ty reflect.Type, path string)
	check = func(ty reflect.Type, path string) {
		if ty == reflect.TypeFor[time.Time]() {
			return
		}
		switch ty.Kind() {
		case reflect.Struct:
			for i := range ty.NumField() {
				check(ty.Field(i).Type, path+"."+ty.Field(i).Name)
			}
		case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Chan, reflect.Func, reflect.Array, reflect.UnsafePointer:
			t.Errorf("%s is a %s: jobCache hands out copies of its value, which would share it", path, ty)
		}
	}
	check(reflect.TypeFor[symbot.Job](), "Job")
}

// checkStoredJobForm fails t unless storedJobForm(j) is exactly what
// json.Unmarshal makes of json.Marshal(j), or it declines a job that has a
// string of bad UTF-8 or a time with no JSON form. It reports whether
// storedJobForm gave a form.
func checkStoredJobForm(t *testing.T, j symbot.Job, what string) bool {
	t.Helper()
	s, ok := storedJobForm(j)
	v, err := json.Marshal(&j)
	if err != nil {
		if ok {
			t.Fatalf("%s: json.Marshal fails (%v) but storedJobForm gave a form", what, err)
		}
		return false
	}
	if !ok {
		if !hasNoJSONForm(reflect.ValueOf(j)) {
			t.Fatalf("%s: storedJobForm declined a job of valid strings and times:\n%s", what, v)
		}
		return false
	}
	var d symbot.Job
	if err := json.Unmarshal(v, &d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, d) {
		t.Fatalf("%s: storedJobForm differs from the decoded record\nstored form %#v\ndecoded     %#v\nbytes %s", what, s, d, v)
	}
	return true
}

// TestStoredJobFormIsTheDecodedForm: what storedJobForm says a job's bytes
// decode to is exactly what json.Unmarshal makes of them, for random jobs
// (every field found by reflection), and for valid ones with each string
// and time in turn set to a value that the round trip changes or cannot
// make.
func TestStoredJobFormIsTheDecodedForm(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		var j symbot.Job
		fillRandom(t, rnd, reflect.ValueOf(&j).Elem(), "Job", fill{valid: i%2 == 0, full: true})
		if !checkStoredJobForm(t, j, fmt.Sprintf("random job %d", i)) && i%2 == 0 {
			t.Fatalf("random job %d of valid strings and times has no stored form", i)
		}
	}
	copyJob := func(j *symbot.Job) *symbot.Job { c := *j; return &c }
	eachLeafVariant(t, rnd, 20, "Job", append(invalidStrings, validStrings...), copyJob, func(j *symbot.Job, what string) { checkStoredJobForm(t, *j, what) })
}

// readJobDecoded reads job id's stored bytes and decodes them without the
// cache.
func readJobDecoded(t *testing.T, s *Store, id uint64) symbot.Job {
	t.Helper()
	var j symbot.Job
	err := s.db.View(func(btx *bolt.Tx) error {
		return json.Unmarshal(btx.Bucket(bucketJobs).Get(u64(id)), &j)
	})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func getJob(t *testing.T, s *Store, id uint64) symbot.Job {
	t.Helper()
	var j *symbot.Job
	err := s.View(t.Context(), func(tx symbot.Tx) (err error) {
		j, err = tx.Job(id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return *j
}

// TestJobCacheReadsAsDecoded: a job read through the store is what
// decoding its stored bytes returns, whether it was just added (times in
// a zone, with monotonic readings), updated, read before, or written in a
// transaction that was rolled back; a read after the add comes from the
// cache; a job added or decoded is in the cache, and one deleted or with
// bad UTF-8 is not.
func TestJobCacheReadsAsDecoded(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "j.db"), Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	zone := time.FixedZone("", -3*3600)
	add := func(j *symbot.Job) uint64 {
		t.Helper()
		if err := s.Update(ctx, func(tx symbot.Tx) error { return tx.AddJob(j) }); err != nil {
			t.Fatal(err)
		}
		return j.ID
	}
	same := func(id uint64, what string) {
		t.Helper()
		if got, want := getJob(t, s, id), readJobDecoded(t, s, id); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: read %#v\nbytes decode to %#v", what, got, want)
		}
	}
	id := add(&symbot.Job{Kind: symbot.JobPost, RequestID: "R1", Lane: "msg:R1", NotBefore: time.Now().In(zone), CreatedAt: time.Now()})
	if _, ok := s.jobs.m[id]; !ok {
		t.Fatal("an added job is not in the cache")
	}
	same(id, "after the add")
	same(id, "read again")
	// The read comes from the cache: an entry for the same bytes with
	// another job in it is what a read returns.
	e := s.jobs.m[id]
	marked := e.v
	marked.LastError = "from the cache"
	s.jobs.add(id, e.val, marked)
	if got := getJob(t, s, id); got.LastError != "from the cache" {
		t.Fatalf("read a job with LastError %q; want the cache's entry", got.LastError)
	}
	s.jobs.add(id, e.val, e.v)

	// Updated with a lease in a zone.
	err = s.Update(ctx, func(tx symbot.Tx) error {
		j, err := tx.Job(id)
		if err != nil {
			return err
		}
		j.LeaseOwner, j.LeaseUntil, j.LeaseToken = "w1", time.Now().In(zone).Add(time.Minute), 3
		return tx.UpdateJob(j)
	})
	if err != nil {
		t.Fatal(err)
	}
	same(id, "after an update")

	// A write rolled back leaves its entry; the stored bytes differ, so it is a miss.
	rolledBack := fmt.Errorf("roll back")
	err = s.Update(ctx, func(tx symbot.Tx) error {
		j, err := tx.Job(id)
		if err != nil {
			return err
		}
		j.LeaseOwner = "w2"
		if err := tx.UpdateJob(j); err != nil {
			return err
		}
		return rolledBack
	})
	if err != rolledBack {
		t.Fatalf("rolled-back update: %v", err)
	}
	same(id, "after a rolled-back update")
	if got := getJob(t, s, id); got.LeaseOwner != "w1" {
		t.Fatalf("lease owner %q after a rolled-back update, want w1", got.LeaseOwner)
	}

	// A cache emptied (a new process) reads by decoding, and remembers.
	s.jobs = jobCache{}
	same(id, "read by decoding")
	if _, ok := s.jobs.m[id]; !ok {
		t.Fatal("a decoded job is not in the cache")
	}

	// A job deleted leaves the cache.
	if err := s.Update(ctx, func(tx symbot.Tx) error { return tx.DeleteJob(id) }); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.jobs.m[id]; ok {
		t.Fatal("a deleted job is still in the cache")
	}

	// A job with a string of bad UTF-8 is not cached at its write.
	bad := add(&symbot.Job{Kind: symbot.JobAlert, Text: "bad \xff", CreatedAt: time.Now()})
	if _, ok := s.jobs.m[bad]; ok {
		t.Fatal("a job with bad UTF-8 was cached at its write")
	}
	same(bad, "a job with bad UTF-8")
}
