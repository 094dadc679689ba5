package main

// symbot restore: replace the bbolt store from a backup while the daemon
// is stopped, after checking the backup's audit chain; the next start
// reconciles Okta with the restored store before serving.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
)

func restoreCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("restore", "", stderr)
	cfgPath := configFlag(fs)
	backup, code, ok := parseOneArg(fs, args, stderr, "backup file (written by `symbot backup`)")
	if !ok {
		return code
	}
	cfg, ok := loadConfig("restore", *cfgPath, stderr)
	if !ok {
		return exitFail
	}
	if cfg.Store.URL != "" {
		fmt.Fprintln(stderr, "symbot restore: the config uses PostgreSQL (store.url); restore it with the database's own tools, then start symbot")
		return exitFail
	}
	n, err := restoreStore(ctx, cfg.Store.Path, backup, cfg.Flows, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "symbot restore: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "restored %s from %s (audit chain checked: %d entries); the previous file is kept as %s.\n", cfg.Store.Path, backup, n, cfg.Store.Path+".before-restore")
	fmt.Fprintln(stdout, "The next `symbot run` reconciles Okta with the restored store before serving and posts a summary in the errors channel.")
	return exitOK
}

// restoreStore replaces the store at path by the backup at src. The daemon
// must not hold path. The backup is copied next to path, opened, its audit
// chain checked and marked for a reconcile at the next start; only then
// does it replace path (atomically, by rename). It returns how many audit
// entries were checked.
func restoreStore(ctx context.Context, path, src string, flows []symbot.Flow, now time.Time) (int, error) {
	if _, err := os.Stat(path); err == nil {
		// Read-only: a shared lock still fails against the daemon's, and
		// the file is not touched (a read-write open would upgrade an
		// older store, which is kept as it is as .before-restore).
		st, err := store.Open(path, store.Config{Timeout: 300 * time.Millisecond, ReadOnly: true})
		var le *store.LockedError
		if errors.As(err, &le) {
			return 0, fmt.Errorf("the daemon holds %s: stop `symbot run` first (restore replaces the file)", path)
		}
		if err == nil {
			st.Close()
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("open backup: %w", err)
	}
	defer in.Close()
	tmp := path + ".restoring"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("copy backup: %w", err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("copy backup to %s: %w", tmp, err)
	}
	n, err := checkAndMark(ctx, tmp, src, flows, now)
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	if _, err := os.Stat(path); err == nil {
		if err := os.Rename(path, path+".before-restore"); err != nil {
			os.Remove(tmp)
			return 0, fmt.Errorf("keep the current store: %w", err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("put the restored store in place: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return n, nil
}

// checkAndMark opens the copied backup, checks its audit chain and marks
// it for a reconcile at the next start.
func checkAndMark(ctx context.Context, path, src string, flows []symbot.Flow, now time.Time) (int, error) {
	st, err := store.Open(path, store.Config{})
	if err != nil {
		return 0, fmt.Errorf("the backup %s is not a symbot store: %w", src, err)
	}
	defer st.Close()
	eng, err := symbot.NewEngine(st, nil, nil, flows)
	if err != nil {
		return 0, err
	}
	n, err := eng.VerifyAuditLog(ctx)
	if err != nil {
		return n, fmt.Errorf("the backup's audit chain does not verify, nothing was restored: %w", err)
	}
	if err := eng.MarkRestored(ctx, filepath.Base(src), now); err != nil {
		return n, fmt.Errorf("mark the restored store: %w", err)
	}
	return n, nil
}
