package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/storetest"
)

// fill says how fillRandom fills: valid, only strings of valid UTF-8 and
// times that have a JSON form; full, no nil slice or pointer and no empty
// slice or zero struct.
type fill struct{ valid, full bool }

// randomRequest fills every field of a Request, found by reflection, with
// a random value of its kind: strings with markup, multi-byte and (unless
// f.valid) invalid UTF-8, times zero or not, in UTC, local, fixed and
// named zones, with and without a monotonic reading, slices nil, empty or
// not, pointers nil or not. A field of a kind it does not know fails the
// test, so that a field added to Request is met here first.
func randomRequest(t *testing.T, rnd *rand.Rand, f fill) *symbot.Request {
	t.Helper()
	var r symbot.Request
	fillRandom(t, rnd, reflect.ValueOf(&r).Elem(), "Request", fill{valid: f.valid, full: true})
	if !f.full {
		// The top level is always filled; below it, anything goes.
		var z symbot.Request
		fillRandom(t, rnd, reflect.ValueOf(&z).Elem(), "Request", f)
		if !reflect.ValueOf(z).IsZero() {
			r = z
		}
	}
	return &r
}

var (
	validStrings   = []string{"", "U1", "ann@example.com", "a <b> & \"c\" \\ /", "zwölf Ünïcödé 🔑", "line\nbreak\ttab", "\u2028\u2029", "\x00\x1f"}
	invalidStrings = []string{"bad \xff utf-8", "\xc3", "\xed\xa0\x80"}
	randomZones    = []*time.Location{time.UTC, time.Local, time.FixedZone("", 5*3600+30*60), time.FixedZone("XYZ", -7*3600)}
)

func fillRandom(t *testing.T, rnd *rand.Rand, v reflect.Value, path string, f fill) {
	t.Helper()
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(randomTime(rnd, f.valid)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		pool := validStrings
		if !f.valid && rnd.IntN(4) == 0 {
			pool = invalidStrings
		}
		v.SetString(pool[rnd.IntN(len(pool))])
	case reflect.Bool:
		v.SetBool(rnd.IntN(2) == 0)
	case reflect.Int, reflect.Int64:
		v.SetInt(rnd.Int64N(1<<40) - 1<<39)
	case reflect.Uint, reflect.Uint64:
		v.SetUint(rnd.Uint64())
	case reflect.Struct:
		if !f.full && rnd.IntN(5) == 0 {
			return // zero, as omitzero leaves it out
		}
		for i := range v.NumField() {
			fillRandom(t, rnd, v.Field(i), path+"."+v.Type().Field(i).Name, f)
		}
	case reflect.Slice:
		n := 1 + rnd.IntN(3)
		if !f.full {
			n = rnd.IntN(4) // 0: nil; 1: empty
		}
		if n == 0 {
			return
		}
		s := reflect.MakeSlice(v.Type(), n-1, n-1+rnd.IntN(3))
		if f.full {
			s = reflect.MakeSlice(v.Type(), n, n+rnd.IntN(3))
		}
		for i := range s.Len() {
			fillRandom(t, rnd, s.Index(i), path+"[]", f)
		}
		v.Set(s)
	case reflect.Pointer:
		if !f.full && rnd.IntN(2) == 0 {
			return
		}
		p := reflect.New(v.Type().Elem())
		fillRandom(t, rnd, p.Elem(), path+"*", f)
		v.Set(p)
	default:
		t.Fatalf("%s: fillRandom does not know how to fill a %s; teach it, and storedForm and Request.Clone (or storedJobForm), this kind", path, v.Type())
	}
}

// trickyTimes are the times whose JSON round trip changes them, or fails.
func trickyTimes() []time.Time {
	var out []time.Time
	for _, z := range randomZones {
		out = append(out, time.Time{}.In(z), time.Now().In(z), time.Unix(1e9, 123456789).In(z))
	}
	return append(out, time.Now(), time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC))
}

func randomTime(rnd *rand.Rand, valid bool) time.Time {
	zone := randomZones[rnd.IntN(len(randomZones))]
	switch rnd.IntN(6) {
	case 0:
		return time.Time{}
	case 1:
		return time.Time{}.In(zone) // zero, in a zone
	case 2:
		return time.Now() // with a monotonic reading, local
	case 3:
		return time.Now().In(zone)
	case 4:
		if !valid {
			return time.Date(10000+rnd.IntN(5), 1, 1, 0, 0, 0, 0, time.UTC) // no JSON form
		}
	}
	return time.Unix(rnd.Int64N(4e9), rnd.Int64N(1e9)).In(zone)
}

// leaves returns the settable strings and times in v, by path.
func leaves(v reflect.Value, path string, out map[string]reflect.Value) {
	if v.Type() == reflect.TypeFor[time.Time]() || v.Kind() == reflect.String {
		out[path] = v
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			leaves(v.Field(i), path+"."+v.Type().Field(i).Name, out)
		}
	case reflect.Slice:
		for i := range v.Len() {
			leaves(v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			leaves(v.Elem(), path+"*", out)
		}
	}
}

// eachLeafVariant makes n full random values of T (every field found by
// reflection and given a valid value; name is T's name in messages) and,
// for each, calls check with copies (made by clone) in which one string
// is set to each of strs, or one time to each of trickyTimes.
func eachLeafVariant[T any](t *testing.T, rnd *rand.Rand, n int, name string, strs []string, clone func(*T) *T, check func(v *T, what string)) {
	t.Helper()
	for i := range n {
		base := new(T)
		fillRandom(t, rnd, reflect.ValueOf(base).Elem(), name, fill{valid: true, full: true})
		probe := map[string]reflect.Value{}
		leaves(reflect.ValueOf(base).Elem(), name, probe)
		for path, leaf := range probe {
			var values []reflect.Value
			if leaf.Kind() == reflect.String {
				for _, s := range strs {
					values = append(values, reflect.ValueOf(s).Convert(leaf.Type()))
				}
			} else {
				for _, tm := range trickyTimes() {
					values = append(values, reflect.ValueOf(tm))
				}
			}
			for k, val := range values {
				v := clone(base)
				at := map[string]reflect.Value{}
				leaves(reflect.ValueOf(v).Elem(), name, at)
				at[path].Set(val)
				check(v, fmt.Sprintf("%s %d with %s set to value %d", strings.ToLower(name), i, path, k))
			}
		}
	}
}

// hasNoJSONForm reports whether v holds a string that is not valid UTF-8 or
// a time that cannot be encoded, which storedForm declines.
func hasNoJSONForm(v reflect.Value) bool {
	if v.Type() == reflect.TypeFor[time.Time]() {
		_, err := v.Interface().(time.Time).MarshalJSON()
		return err != nil && !v.Interface().(time.Time).IsZero()
	}
	switch v.Kind() {
	case reflect.String:
		return !utf8.ValidString(v.String())
	case reflect.Struct:
		for i := range v.NumField() {
			if hasNoJSONForm(v.Field(i)) {
				return true
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if hasNoJSONForm(v.Index(i)) {
				return true
			}
		}
	case reflect.Pointer:
		return !v.IsNil() && hasNoJSONForm(v.Elem())
	}
	return false
}

// checkStoredForm fails t unless storedForm(r) is exactly what
// json.Unmarshal makes of encodeRequest(r), or storedForm declines a
// request that has a string of bad UTF-8 or a time with no JSON form. It
// reports whether storedForm gave a form.
func checkStoredForm(t *testing.T, r *symbot.Request, what string) bool {
	t.Helper()
	s, ok := storedForm(r)
	v, err := encodeRequest(r)
	if err != nil {
		if ok {
			t.Fatalf("%s: encodeRequest fails (%v) but storedForm gave a form", what, err)
		}
		return false
	}
	if !ok {
		if !hasNoJSONForm(reflect.ValueOf(r).Elem()) {
			t.Fatalf("%s: storedForm declined a request of valid strings and times:\n%s", what, v)
		}
		return false
	}
	var d symbot.Request
	if err := json.Unmarshal(v, &d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, &d) {
		t.Fatalf("%s: storedForm differs from the decoded record\nstored form %#v\ndecoded     %#v\nbytes %s", what, s, &d, v)
	}
	return true
}

// TestStoredFormIsTheDecodedForm: what storedForm says encodeRequest's
// bytes decode to is exactly what json.Unmarshal makes of them, for
// random requests, and for full ones with each string and time in turn
// (every one, found by reflection) set to a value that the round trip
// changes or cannot make.
func TestStoredFormIsTheDecodedForm(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		r := randomRequest(t, rnd, fill{valid: i%2 == 0})
		if !checkStoredForm(t, r, fmt.Sprintf("random request %d", i)) && i%2 == 0 {
			t.Fatalf("random request %d of valid strings and times has no stored form", i)
		}
	}
	eachLeafVariant(t, rnd, 20, "Request", invalidStrings, (*symbot.Request).Clone, func(r *symbot.Request, what string) { checkStoredForm(t, r, what) })
}

// sharedMemory returns the path of a slice or pointer that a and b (of one
// type, b a copy of a) share, or "".
func sharedMemory(a, b reflect.Value, path string) string {
	if a.Type() == reflect.TypeFor[time.Time]() {
		return "" // a value; its *time.Location is never changed
	}
	switch a.Kind() {
	case reflect.Slice:
		if a.IsNil() != b.IsNil() {
			return path + " (nil in one copy only)"
		}
		if a.Cap() > 0 && a.UnsafePointer() == b.UnsafePointer() {
			return path
		}
		for i := range a.Len() {
			if p := sharedMemory(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Pointer:
		if a.IsNil() != b.IsNil() {
			return path + " (nil in one copy only)"
		}
		if !a.IsNil() {
			if a.Pointer() == b.Pointer() {
				return path
			}
			return sharedMemory(a.Elem(), b.Elem(), path+"*")
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if p := sharedMemory(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
				return p
			}
		}
	case reflect.Map, reflect.Interface, reflect.Chan, reflect.Func:
		return path + " (a kind Request.Clone does not copy)"
	}
	return ""
}

// TestCloneSharesNothing: Request.Clone equals its original and shares no
// slice or pointer with it, so that a reader changing its request cannot
// change the cache's.
func TestCloneSharesNothing(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		r := randomRequest(t, rnd, fill{full: i%2 == 0})
		c := r.Clone()
		if !reflect.DeepEqual(c, r) {
			t.Fatalf("request %d: the copy differs:\n%#v\n%#v", i, c, r)
		}
		if p := sharedMemory(reflect.ValueOf(r).Elem(), reflect.ValueOf(c).Elem(), "Request"); p != "" {
			t.Fatalf("request %d: the copy shares %s with the original", i, p)
		}
	}
}

// readDecoded reads request id's stored bytes and decodes them without
// the cache.
func readDecoded(t *testing.T, s *Store, id string) *symbot.Request {
	t.Helper()
	var r *symbot.Request
	err := s.View(context.Background(), func(stx symbot.Tx) error {
		tt := stx.(*tx)
		v, err := tt.rget(jRequests, []byte(id))
		if err != nil {
			return err
		}
		r = new(symbot.Request)
		return json.Unmarshal(v, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func getRequest(t *testing.T, s *Store, id string) *symbot.Request {
	t.Helper()
	var r *symbot.Request
	err := s.View(context.Background(), func(tx symbot.Tx) error {
		var err error
		r, err = tx.Request(id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRequestCacheReadsAsDecoded: reads through the store return what
// decoding the stored bytes returns, whether the request was just
// written (times in a zone, with monotonic readings), read before, or
// written in a transaction that was rolled back; a reader's changes to
// its copy reach neither the cache nor other readers; a request the cache
// cannot hold (bad UTF-8) reads as decoded.
func TestRequestCacheReadsAsDecoded(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "c.db"), Config{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	put := func(r *symbot.Request) error {
		return s.Update(ctx, func(tx symbot.Tx) error { return tx.PutRequest(r) })
	}
	zone := time.FixedZone("", 2*3600)
	r := storetest.FullRequest("S1")
	r.CreatedAt, r.UpdatedAt = time.Now().In(zone), time.Now()
	r.Approvals[0].At = time.Now().In(zone)
	if err := put(r); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.rcache.m["S1"]; !ok {
		t.Fatal("the request written is not in the cache")
	}
	check := func(what string) *symbot.Request {
		t.Helper()
		got, want := getRequest(t, s, "S1"), readDecoded(t, s, "S1")
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: read\n%#v\ndecoded\n%#v", what, got, want)
		}
		return got
	}
	got := check("after the write")

	// A reader's changes stay its own.
	got.Reason = "changed"
	got.Approvals[0].Note = "changed"
	got.ExtendedBy = append(got.ExtendedBy[:1], "changed")
	got.RuleApprovers.Users[0] = "changed"
	check("after a reader changed its copy")

	// A write rolled back leaves the cache's entry for bytes never
	// committed: it is not used.
	boom := errors.New("boom")
	r2 := r.Clone()
	r2.Reason = "rolled back"
	err = s.Update(ctx, func(tx symbot.Tx) error {
		if err := tx.PutRequest(r2); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if got := check("after a rolled-back write"); got.Reason != r.Reason {
		t.Fatalf("reason %q after a rolled-back write, want %q", got.Reason, r.Reason)
	}

	// Decoded once, then from the cache.
	s.rcache = reqCache{}
	check("decoded")
	if _, ok := s.rcache.m["S1"]; !ok {
		t.Fatal("the request decoded is not in the cache")
	}
	check("cached from the decode")

	// Bad UTF-8 is stored as U+FFFD, and read so.
	r3 := r.Clone()
	r3.Reason = "bad \xff"
	if err := put(r3); err != nil {
		t.Fatal(err)
	}
	if got := check("bad UTF-8"); !strings.Contains(got.Reason, "\uFFFD") {
		t.Fatalf("reason %q, want U+FFFD in it", got.Reason)
	}
}

// TestRequestCacheIsBounded: the cache holds at most reqCacheMax entries.
func TestRequestCacheIsBounded(t *testing.T) {
	var c reqCache
	r := storetest.FullRequest("S")
	for i := range reqCacheMax + 100 {
		c.encoded(fmt.Sprint(i), []byte(fmt.Sprint("v", i)), r)
	}
	if n := len(c.m); n != reqCacheMax {
		t.Fatalf("%d entries, want %d", n, reqCacheMax)
	}
	last := fmt.Sprint(reqCacheMax + 99)
	if _, ok := c.get(last, []byte("v"+last)); !ok {
		t.Fatal("the newest entry is not there")
	}
	if _, ok := c.get(last, []byte("v0")); ok {
		t.Fatal("an entry was used for other bytes")
	}
}

// checkAppendRequest fails t unless appendRequest writes what
// json.Marshal writes for r's requestRecord, or both fail.
func checkAppendRequest(t *testing.T, r *symbot.Request, what string) {
	t.Helper()
	want, werr := json.Marshal((*requestRecord)(r))
	got, gerr := appendRequest(nil, r)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%s: json.Marshal error %v, appendRequest error %v", what, werr, gerr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: appendRequest wrote\n%s\njson.Marshal writes\n%s", what, got, want)
	}
}

// TestAppendRequestIsJSONMarshal: the hand-written encoder writes the
// bytes json.Marshal writes, for random requests (every field, found by
// reflection, nil, empty or set), for full ones with each string and time
// in turn set to a value the encoding escapes, replaces or refuses, and
// for strings of every byte and of the runes it escapes.
func TestAppendRequestIsJSONMarshal(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		checkAppendRequest(t, randomRequest(t, rnd, fill{valid: i%3 == 0, full: i%2 == 0}), fmt.Sprintf("random request %d", i))
	}
	eachLeafVariant(t, rnd, 10, "Request", append(invalidStrings, validStrings...), (*symbot.Request).Clone, func(r *symbot.Request, what string) { checkAppendRequest(t, r, what) })
	var all []byte
	for b := range 256 {
		all = append(all, byte(b))
	}
	for _, s := range []string{string(all), "\u2028x\u2029", "<script>&amp;</script>", "\u007f\u0080\u00ff\uffff\U0010ffff", "\xf4\x90\x80\x80", "\xe2\x80"} {
		r := storetest.FullRequest("S1")
		r.Reason = s
		checkAppendRequest(t, r, fmt.Sprintf("reason %q", s))
	}
}

func BenchmarkEncodeRequest(b *testing.B) {
	r := storetest.FullRequest("S0000001")
	r.State = symbot.StatePending
	r.Approvals, r.Transitions, r.GrantedAt, r.ExpiresAt = nil, nil, time.Time{}, time.Time{}
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			json.Marshal((*requestRecord)(r))
		}
	})
	b.Run("appendRequest", func(b *testing.B) {
		for b.Loop() {
			encodeRequest(r)
		}
	})
}
