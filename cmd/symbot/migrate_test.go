package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
	"github.com/symbot/symbot/store/storetest"
	bolt "go.etcd.io/bbolt"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if builtDir != "" {
		os.RemoveAll(builtDir) // the binary the e2e tests built
	}
	os.Exit(code)
}

// pgConfig writes a config that selects the database at url and returns its path.
func pgConfig(t *testing.T, url string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "symbot.yml")
	if err := os.WriteFile(p, []byte(baseYAML+"store:\n  url: "+url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runSymbot(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// mustBoltStore writes a bbolt store with requests, jobs (one leased),
// counters, identities and an audit chain, and returns its path.
func mustBoltStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "symbot.db")
	st, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 30 {
		storetest.MustUpdate(t, st, func(tx symbot.Tx) error {
			if _, err := tx.NextSeq("request"); err != nil {
				return err
			}
			r := storetest.FullRequest(fmt.Sprintf("R%03d", i))
			if i%2 == 0 {
				r.State, r.Removed = symbot.StatePending, false
			}
			if err := tx.PutRequest(r); err != nil {
				return err
			}
			if err := tx.AddJob(&symbot.Job{Kind: symbot.JobNotify, RequestID: r.ID, Lane: r.ID, NotBefore: storetest.T0, CreatedAt: storetest.T0}); err != nil {
				return err
			}
			// Bindings with a conflict: copied as they are, or the account
			// would act again after the move.
			if err := tx.PutIdentity(symbot.Identity{SlackID: fmt.Sprintf("U%d", i), OktaUserID: "00u", CachedAt: storetest.T0, BoundAt: storetest.T0, Via: symbot.ViaEmail,
				ConflictOktaUserID: "00uother", ConflictOktaLogin: "other", ConflictEmail: "x@example.com", ConflictAt: storetest.T0}); err != nil {
				return err
			}
			return symbot.AppendAudit(tx, nil, &symbot.AuditEntry{At: storetest.T0.Add(time.Duration(i) * time.Second), RequestID: r.ID, Actor: "U1", Action: "request"})
		})
	}
	if _, err := st.ClaimJobs(t.Context(), "old-process", storetest.T0, time.Hour, 1); err != nil {
		t.Fatal(err)
	}
	// The last job is done and deleted: the job id counter is ahead of the jobs.
	storetest.MustUpdate(t, st, func(tx symbot.Tx) error { return tx.DeleteJob(30) })
	// An audit sink that has 25 entries, and a reconciler record.
	storetest.MustUpdate(t, st, func(tx symbot.Tx) error {
		if err := tx.SetSinkCursor("file", 25); err != nil {
			return err
		}
		return tx.(symbot.RecordTx).PutRecord("reconcile/group/00g1", []byte(`{"standing":["00u9"]}`))
	})
	return path
}

func TestMigrateFromBolt(t *testing.T) {
	url := pgtest.NewDatabase(t)
	cfgPath := pgConfig(t, url)
	if code, out, _ := runSymbot(t, "migrate", "--check", "--config", cfgPath); code != exitFail || !strings.Contains(out, "pending") {
		t.Errorf("migrate --check on an empty database: exit %d, %q; want 1 and pending migrations", code, out)
	}
	boltPath := mustBoltStore(t)
	src, err := store.Open(boltPath, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := src.Export(t.Context())
	src.Close()
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runSymbot(t, "migrate", "--from", boltPath, "--config", cfgPath)
	if code != exitOK {
		t.Fatalf("migrate --from: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "30 requests, 29 jobs, 30 audit entries (chain verified), 30 identities, 1 counters") {
		t.Errorf("migrate --from output: %q", out)
	}
	if code, out, _ := runSymbot(t, "migrate", "--check", "--config", cfgPath); code != exitOK || !strings.Contains(out, "current") {
		t.Errorf("migrate --check after the copy: exit %d, %q", code, out)
	}

	pg, err := postgres.Open(t.Context(), url, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	storetest.MustView(t, pg, func(tx symbot.Tx) error {
		for _, r := range want.Requests {
			got, err := tx.Request(r.ID)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got, r) {
				t.Errorf("request %s:\n got %+v\nwant %+v", r.ID, got, r)
			}
		}
		pending, err := tx.RequestsByState(symbot.StatePending)
		if err != nil {
			return err
		}
		if len(pending) != 15 {
			t.Errorf("pending requests after the copy: %d, want 15 (the state index is rebuilt)", len(pending))
		}
		jobs, err := tx.Jobs()
		if err != nil {
			return err
		}
		if len(jobs) != len(want.Jobs) {
			t.Fatalf("jobs: got %d, want %d", len(jobs), len(want.Jobs))
		}
		for i, j := range jobs {
			if j.ID != want.Jobs[i].ID || j.LeaseOwner != "" || !j.LeaseUntil.IsZero() {
				t.Errorf("job %d: got id %d lease %q/%v, want id %d and no lease", i, j.ID, j.LeaseOwner, j.LeaseUntil, want.Jobs[i].ID)
			}
		}
		entries, err := tx.Audit(0, storetest.AllAudit)
		if err != nil {
			return err
		}
		seq, hash, err := tx.AuditHead()
		if err != nil {
			return err
		}
		if err := symbot.VerifyAudit(entries, seq, hash); err != nil || seq != want.AuditHead || hash != want.AuditHash {
			t.Errorf("audit chain after the copy: head %d %q (want %d %q), verify: %v", seq, hash, want.AuditHead, want.AuditHash, err)
		}
		id, ok, err := tx.Identity("U7")
		if !ok || id.OktaUserID != "00u" || !id.Conflicted() || id.ConflictOktaUserID != "00uother" || !id.BoundAt.Equal(storetest.T0) || id.Via != symbot.ViaEmail {
			t.Errorf("identity binding U7 after the copy: %+v %v; want it bound since T0 by email, with its conflict", id, ok)
		}
		if err != nil {
			return err
		}
		if seq, err := tx.SinkCursor("file"); err != nil || seq != 25 {
			t.Errorf("audit sink cursor after the copy = %d, %v; want 25 (else the sink ships the chain again)", seq, err)
		}
		v, ok, err := tx.(symbot.RecordTx).Record("reconcile/group/00g1")
		if !ok || string(v) != `{"standing":["00u9"]}` {
			t.Errorf("reconciler record after the copy = %q, %v; want it copied (else standing members show as unmanaged)", v, ok)
		}
		return err
	})
	// Counters, job ids and the chain continue where bbolt left them.
	storetest.MustUpdate(t, pg, func(tx symbot.Tx) error {
		if n, err := tx.NextSeq("request"); err != nil || n != 31 {
			t.Errorf("NextSeq(request) after the copy = %d, %v; want 31", n, err)
		}
		j := symbot.Job{Kind: symbot.JobPost}
		if err := tx.AddJob(&j); err != nil {
			return err
		}
		if j.ID != 31 {
			t.Errorf("first new job id = %d, want 31 (ids are never reused)", j.ID)
		}
		e := symbot.AuditEntry{At: storetest.T0, Action: "x"}
		if err := symbot.AppendAudit(tx, nil, &e); err != nil {
			return err
		}
		if e.Seq != 31 || e.PrevHash != want.AuditHash {
			t.Errorf("next audit entry: seq %d prev %q, want 31 chained to %q", e.Seq, e.PrevHash, want.AuditHash)
		}
		return nil
	})

	// A second copy is refused: the target is not empty.
	code, _, errOut = runSymbot(t, "migrate", "--from", boltPath, "--config", cfgPath)
	if code != exitFail || !strings.Contains(errOut, "not empty") {
		t.Errorf("second migrate --from: exit %d, %q; want a refusal of the non-empty target", code, errOut)
	}
}

func TestMigrateFromBoltRefusesBrokenChain(t *testing.T) {
	url := pgtest.NewDatabase(t)
	cfgPath := pgConfig(t, url)
	boltPath := mustBoltStore(t)
	// Break the chain: edit entry 5 in place.
	db, err := bolt.Open(boltPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(btx *bolt.Tx) error {
		b := btx.Bucket([]byte("audit"))
		k := binary.BigEndian.AppendUint64(nil, 5)
		var e map[string]any
		if err := json.Unmarshal(b.Get(k), &e); err != nil {
			return err
		}
		e["Detail"] = "forged"
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return b.Put(k, v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runSymbot(t, "migrate", "--from", boltPath, "--config", cfgPath)
	if code != exitFail || !strings.Contains(errOut, "audit entry 5") {
		t.Errorf("migrate --from a store with an edited audit entry: exit %d, %q; want a refusal naming entry 5", code, errOut)
	}
	pg, err := postgres.Open(t.Context(), url, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	storetest.MustView(t, pg, func(tx symbot.Tx) error {
		if rs, _ := tx.RequestsByState(symbot.StatePending); len(rs) != 0 {
			t.Errorf("%d requests copied although the chain did not verify", len(rs))
		}
		return nil
	})
}

func TestMigrateNeedsDatabase(t *testing.T) {
	p := filepath.Join(t.TempDir(), "symbot.yml")
	if err := os.WriteFile(p, []byte(baseYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runSymbot(t, "migrate", "--check", "--config", p)
	if code != exitFail || !strings.Contains(errOut, "SYMBOT_DATABASE_URL") {
		t.Errorf("migrate without a database: exit %d, %q", code, errOut)
	}
}

// TestMigrateFromBoltKeyedChain copies a chain sealed with the audit key:
// migrate verifies it with the key the config names.
func TestMigrateFromBoltKeyedChain(t *testing.T) {
	url := pgtest.NewDatabase(t)
	dir := t.TempDir()
	text, err := symbot.GenerateAuditKey()
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "audit.key")
	if err := os.WriteFile(keyPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := symbot.ParseAuditKey([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	boltPath := filepath.Join(dir, "symbot.db")
	st, err := store.Open(boltPath, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		storetest.MustUpdate(t, st, func(tx symbot.Tx) error {
			return symbot.AppendAudit(tx, key, &symbot.AuditEntry{At: storetest.T0, Actor: "U1", Action: "request", Detail: fmt.Sprint(i)})
		})
	}
	st.Close()
	cfgPath := filepath.Join(dir, "symbot.yml")
	if err := os.WriteFile(cfgPath, []byte(baseYAML+"store:\n  url: "+url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runSymbot(t, "migrate", "--from", boltPath, "--config", cfgPath); code != exitFail || !strings.Contains(errOut, "audit key") {
		t.Fatalf("migrate of a keyed chain without the key: exit %d, %q; want a refusal naming the audit key", code, errOut)
	}
	if err := os.WriteFile(cfgPath, []byte(baseYAML+"store:\n  url: "+url+"\naudit:\n  key_file: "+keyPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runSymbot(t, "migrate", "--from", boltPath, "--config", cfgPath); code != exitOK || !strings.Contains(out, "5 audit entries (chain verified)") {
		t.Errorf("migrate of a keyed chain with the key: exit %d\n%s%s", code, out, errOut)
	}
}
