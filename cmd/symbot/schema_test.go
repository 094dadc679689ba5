package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/symbot/symbot/cmd/symbot/internal/config"
	"github.com/symbot/symbot/store/postgres/pgtest"
)

// markSchema1 records schema version 1 in the closed store file at path,
// as a store written before the pending index bucket says (a read-write
// open upgrades it to 2), and returns the file's bytes.
func markSchema1(t *testing.T, path string) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, 1))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMigrateFromBoltLeavesTheSourceAsItWas: `migrate --from` reads the
// bbolt store without changing it, so an older symbot can still open it
// if the move to PostgreSQL is abandoned.
func TestMigrateFromBoltLeavesTheSourceAsItWas(t *testing.T) {
	cfgPath := pgConfig(t, pgtest.NewDatabase(t))
	boltPath := mustBoltStore(t)
	before := markSchema1(t, boltPath)
	if code, out, errOut := runSymbot(t, "migrate", "--from", boltPath, "--config", cfgPath); code != exitOK {
		t.Fatalf("migrate --from: exit %d\n%s%s", code, out, errOut)
	}
	after, err := os.ReadFile(boltPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("migrate --from changed the source store file (a read-write open upgraded it)")
	}
}

// TestRestoreKeepsThePreviousStoreAsItWas: restore's check that no daemon
// holds the store does not change it, so the file kept as .before-restore
// is the one the operator had.
func TestRestoreKeepsThePreviousStoreAsItWas(t *testing.T) {
	dir := t.TempDir()
	backup := mustBoltStore(t)
	path := filepath.Join(dir, "symbot.db")
	b, err := os.ReadFile(mustBoltStore(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	before := markSchema1(t, path)
	w, cfgPath := mustWorld(t, "1h", "0")
	env := w.env()
	cfg, err := config.Load(cfgPath, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restoreStore(t.Context(), path, backup, cfg.Flows, time.Now()); err != nil {
		t.Fatalf("restore: %v", err)
	}
	kept, err := os.ReadFile(path + ".before-restore")
	if err != nil {
		t.Fatalf("the previous store was not kept: %v", err)
	}
	if !bytes.Equal(before, kept) {
		t.Error("the store kept as .before-restore differs from the one restore replaced (its check opened it read-write)")
	}
}
