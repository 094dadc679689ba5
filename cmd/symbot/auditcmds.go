package main

// symbot audit keygen | export, symbot audit verify --against, symbot report.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/symbot/symbot"
)

// auditKeygenCmd writes a new audit key to FILE (mode 0600, never over an
// existing file) or, without FILE, to stdout for a Secrets Manager secret.
func auditKeygenCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("audit keygen", "[FILE]", stderr)
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		fmt.Fprintf(stderr, "symbot audit keygen: one FILE at most, got %d arguments\n", len(pos))
		return exitUsage
	}
	key, err := symbot.GenerateAuditKey()
	if err != nil {
		fmt.Fprintf(stderr, "symbot audit keygen: %v\n", err)
		return exitFail
	}
	k, err := symbot.ParseAuditKey([]byte(key))
	if err != nil {
		fmt.Fprintf(stderr, "symbot audit keygen: %v\n", err)
		return exitFail
	}
	if len(pos) == 0 {
		fmt.Fprint(stdout, key)
		fmt.Fprintf(stderr, "audit key %s: store it as the SecretString of the secret audit.key_secret names; keep a copy to verify old trails\n", k.ID())
		return exitOK
	}
	path := pos[0]
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			fmt.Fprintf(stderr, "symbot audit keygen: %s exists: symbot never overwrites a key (entries sealed with it could no longer be verified); pick another file\n", path)
		} else {
			fmt.Fprintf(stderr, "symbot audit keygen: %v\n", err)
		}
		return exitFail
	}
	if _, err := io.WriteString(f, key); err != nil {
		f.Close()
		os.Remove(path)
		fmt.Fprintf(stderr, "symbot audit keygen: write %s: %v\n", path, err)
		return exitFail
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(stderr, "symbot audit keygen: write %s: %v\n", path, err)
		return exitFail
	}
	fmt.Fprintf(stdout, "wrote audit key %s to %s (mode 0600); set audit.key_file: %s and restart symbot: the switch is recorded in the trail\n", k.ID(), path, path)
	return exitOK
}

// readAnchors reads checkpoints from a file, or from every file of a
// directory (an S3 export copied down, rotated file-sink files).
func readAnchors(path string) ([]symbot.AuditCheckpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--against: %w", err)
	}
	files := []string{path}
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("--against: %w", err)
		}
		files = files[:0]
		for _, e := range ents {
			if e.Type().IsRegular() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		slices.Sort(files)
	}
	var all bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--against: %w", err)
		}
		all.Write(b)
		all.WriteByte('\n')
	}
	cps, err := symbot.ParseAuditAnchors(&all)
	if err != nil {
		return nil, fmt.Errorf("--against %s: %w", path, err)
	}
	return cps, nil
}

// parseUntil reads --until like --since; "" is no end.
func parseUntil(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := parseSince(s, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("--until: %w", err)
	}
	return t, nil
}

func auditExportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return streamCmd(ctx, "audit export", "/audit/export", "jsonl", "jsonl or csv", "all", args, stdout, stderr)
}

func reportCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return streamCmd(ctx, "report", "/report", "md", "md or csv", "30d", args, stdout, stderr)
}

func streamCmd(ctx context.Context, name, path, defFormat, formats, defSince string, args []string, stdout, stderr io.Writer) int {
	// The usage line of "audit export"; report's is in the command table.
	cmd := newAdminCmd(name, "[--since DURATION|RFC3339|all] [--until DURATION|RFC3339] [--format "+formats+"] [--config FILE] [--socket PATH | --db FILE | --offline]", stderr)
	cmd.readOffline()
	sinceFlag := cmd.fs.String("since", defSince, "from this long ago (30d, 24h), from an RFC 3339 time, or all")
	untilFlag := cmd.fs.String("until", "", "up to this long ago or this RFC 3339 time (default: now)")
	format := cmd.fs.String("format", defFormat, formats)
	if _, code, ok := cmd.parse(args, ""); !ok {
		return code
	}
	now := time.Now()
	since, err := parseSince(*sinceFlag, now)
	if err != nil {
		return cmd.usageError(err)
	}
	until, err := parseUntil(*untilFlag, now)
	if err != nil {
		return cmd.usageError(err)
	}
	c, code, ok := cmd.client(ctx)
	if !ok {
		return code
	}
	defer c.Close()
	if err := c.Stream(ctx, path, since, until, *format, stdout); err != nil {
		return cmd.fail(err)
	}
	return exitOK
}
