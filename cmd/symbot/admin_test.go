package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/admin"
)

// fakeAdmin is an in-memory admin.Service.
type fakeAdmin struct {
	mu        sync.Mutex
	reqs      map[string]*symbot.Request
	audit     []symbot.AuditEntry
	verifyErr error
	backup    []byte
	backupErr error
	revoked   []string // "id:reason"
	gotSince  time.Time
}

func newFakeAdmin() *fakeAdmin {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := &fakeAdmin{reqs: map[string]*symbot.Request{}, backup: bytes.Repeat([]byte("bolt"), 50000)}
	add := func(id string, s symbot.State) {
		f.reqs[id] = &symbot.Request{
			ID: id, Flow: "prod", Target: "admin", GroupID: "00gADMIN", State: s,
			Requester: symbot.Person{SlackID: "U0REQ", Name: "Rita"},
			Duration:  time.Hour, Reason: "incident 42", CreatedAt: t0, UpdatedAt: t0,
		}
	}
	add("r-pending", symbot.StatePending)
	add("r-approved", symbot.StateApproved)
	add("r-active", symbot.StateActive)
	f.reqs["r-active"].ExpiresAt = t0.Add(time.Hour)
	f.reqs["r-active"].OktaLogin = "rita@example.com"
	add("r-denied", symbot.StateDenied)
	for i := range 3 {
		f.audit = append(f.audit, symbot.AuditEntry{Seq: uint64(i + 1), At: t0.Add(time.Duration(i) * time.Minute), RequestID: "r-active", Actor: "U0REQ", Action: fmt.Sprintf("act%d", i)})
	}
	return f
}

func (f *fakeAdmin) byState(states ...symbot.State) []*symbot.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*symbot.Request
	for _, id := range []string{"r-pending", "r-approved", "r-active", "r-denied"} {
		if r, ok := f.reqs[id]; ok {
			for _, s := range states {
				if r.State == s {
					out = append(out, r.Clone())
				}
			}
		}
	}
	return out
}

func (f *fakeAdmin) Requests(context.Context) ([]*symbot.Request, error) {
	return f.byState(symbot.StatePending, symbot.StateApproved), nil
}

func (f *fakeAdmin) Grants(context.Context) ([]*symbot.Request, error) {
	return f.byState(symbot.StateActive), nil
}

func (f *fakeAdmin) Revoke(_ context.Context, id, reason string) (*symbot.Request, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.reqs[id]
	if !ok {
		return nil, fmt.Errorf("request %s: %w", id, symbot.ErrNotFound)
	}
	// As Engine.AdminRevoke: a pending request is denied, access ended.
	switch r.State {
	case symbot.StatePending:
		r.State = symbot.StateDenied
	case symbot.StateApproved, symbot.StateActive:
		r.State = symbot.StateRevoked
	default:
		return nil, &symbot.TransitionError{ID: id, From: r.State, To: symbot.StateRevoked}
	}
	f.revoked = append(f.revoked, id+":"+reason)
	return r.Clone(), nil
}

func (f *fakeAdmin) Audit(_ context.Context, since time.Time) ([]symbot.AuditEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gotSince = since
	var out []symbot.AuditEntry
	for _, e := range f.audit {
		if !e.At.Before(since) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeAdmin) VerifyAudit(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.audit), f.verifyErr
}

func (f *fakeAdmin) Backup(_ context.Context, w io.Writer) (int64, error) {
	f.mu.Lock()
	data, berr := f.backup, f.backupErr
	f.mu.Unlock()
	if berr != nil {
		n, _ := w.Write(data[:len(data)/2])
		return int64(n), berr
	}
	n, err := w.Write(data)
	return int64(n), err
}

// startAdmin serves svc on a fresh socket until the test ends and returns
// the socket path.
func startAdmin(t *testing.T, svc admin.Service) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "a.sock")
	ln, err := admin.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- admin.ServeUntil(ctx, ln, admin.NewServer(svc, nil)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeUntil: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("admin server did not stop")
		}
	})
	return path
}

// cli runs symbot in-process and returns exit code, stdout and stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestAdminListCommands(t *testing.T) {
	sock := startAdmin(t, newFakeAdmin())
	tests := []struct {
		name         string
		args         []string
		want, absent []string
	}{
		{"requests", []string{"requests"}, []string{"ID", "STATE", "r-pending", "r-approved", "Rita (U0REQ)", "incident 42"}, []string{"r-active", "r-denied"}},
		{"grants", []string{"grants"}, []string{"OKTA LOGIN", "r-active", "rita@example.com"}, []string{"r-pending"}},
		{"audit all", []string{"audit", "--since", "all"}, []string{"SEQ", "act0", "act2"}, nil},
		{"audit flags before verify-like args", []string{"audit", "--since", "2026-03-01T12:01:00Z"}, []string{"act1", "act2"}, []string{"act0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, append(tt.args, "--socket", sock)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(out, a) {
					t.Errorf("output has %q:\n%s", a, out)
				}
			}
		})
	}
}

func TestAdminJSONOutput(t *testing.T) {
	sock := startAdmin(t, newFakeAdmin())
	code, out, errOut := cli(t, "grants", "--json", "--socket", sock)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var reqs []admin.RequestJSON
	if err := json.Unmarshal([]byte(out), &reqs); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(reqs) != 1 || reqs[0].ID != "r-active" || reqs[0].State != "active" || reqs[0].ExpiresAt == nil || reqs[0].DurationSeconds != 3600 {
		t.Errorf("grants JSON: got %+v", reqs)
	}
	code, out, _ = cli(t, "audit", "--json", "--since", "all", "--socket", sock)
	var entries []admin.AuditJSON
	if err := json.Unmarshal([]byte(out), &entries); code != 0 || err != nil || len(entries) != 3 || entries[2].Action != "act2" {
		t.Errorf("audit JSON: exit %d, %v, %+v", code, err, entries)
	}
}

func TestAdminAuditSince(t *testing.T) {
	f := newFakeAdmin()
	sock := startAdmin(t, f)
	before := time.Now()
	if code, _, errOut := cli(t, "audit", "--since", "2h", "--socket", sock); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f.mu.Lock()
	got := f.gotSince
	f.mu.Unlock()
	if lo, hi := before.Add(-2*time.Hour-time.Minute), time.Now().Add(-2*time.Hour+time.Minute); got.Before(lo) || got.After(hi) {
		t.Errorf("since: got %v, want about 2h ago", got)
	}
	if code, _, errOut := cli(t, "audit", "--since", "yesterday", "--socket", sock); code != exitUsage || !strings.Contains(errOut, "RFC 3339") {
		t.Errorf("bad --since: exit %d, %q", code, errOut)
	}
}

func TestAdminRevoke(t *testing.T) {
	f := newFakeAdmin()
	sock := startAdmin(t, f)
	code, out, errOut := cli(t, "revoke", "r-active", "--reason", "left the team", "--socket", sock)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "revoked r-active") {
		t.Errorf("output: %q", out)
	}
	f.mu.Lock()
	got := strings.Join(f.revoked, ",")
	f.mu.Unlock()
	if got != "r-active:left the team" {
		t.Errorf("revoked: got %q", got)
	}
	// A pending request is denied: the output must not speak of a removal.
	code, out, errOut = cli(t, "revoke", "r-pending", "--socket", sock)
	if code != 0 || !strings.Contains(out, "denied r-pending") || strings.Contains(out, "removal") {
		t.Errorf("revoke of a pending request: exit %d, out %q, err %q", code, out, errOut)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"not found", []string{"revoke", "r-nope"}, exitFail, "not found: check the id with `symbot grants`"},
		{"not active", []string{"revoke", "r-denied"}, exitFail, "cannot go from denied to revoked: it has already ended or been decided"},
		{"no id", []string{"revoke"}, exitUsage, "give exactly one request id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := cli(t, append(tt.args, "--socket", sock)...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("got exit %d %q, want exit %d with %q", code, errOut, tt.code, tt.want)
			}
		})
	}
}

func TestAdminRevokeStatus(t *testing.T) {
	sock := startAdmin(t, newFakeAdmin())
	c := admin.NewClient(sock)
	_, err := c.Revoke(t.Context(), "r-nope", "")
	var ae *admin.Error
	if !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("not found: got %v, want status 404", err)
	}
	_, err = c.Revoke(t.Context(), "r-denied", "")
	if !errors.As(err, &ae) || ae.Status != 409 {
		t.Errorf("conflict: got %v, want status 409", err)
	}
	_, err = c.Revoke(t.Context(), "  ", "")
	if !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("empty id: got %v, want status 400", err)
	}
}

func TestAdminAuditVerify(t *testing.T) {
	f := newFakeAdmin()
	sock := startAdmin(t, f)
	code, out, _ := cli(t, "audit", "verify", "--socket", sock)
	if code != 0 || !strings.Contains(out, "audit chain ok: 3 entries") {
		t.Errorf("intact chain: exit %d, %q", code, out)
	}
	f.mu.Lock()
	f.verifyErr = &symbot.AuditError{Index: 1, Seq: 2, Problem: "hash mismatch: this entry was changed"}
	f.mu.Unlock()
	code, out, _ = cli(t, "audit", "verify", "--socket", sock)
	if code != exitFail || !strings.Contains(out, "BROKEN at entry 2 (position 1): hash mismatch") {
		t.Errorf("broken chain: exit %d, %q", code, out)
	}
	code, out, _ = cli(t, "audit", "verify", "--json", "--socket", sock)
	var v admin.VerifyJSON
	if err := json.Unmarshal([]byte(out), &v); code != exitFail || err != nil || v.OK || v.Broken == nil || v.Broken.Seq != 2 {
		t.Errorf("broken chain JSON: exit %d, %v, %+v", code, err, v)
	}
}

func TestAdminBackup(t *testing.T) {
	f := newFakeAdmin()
	sock := startAdmin(t, f)
	dest := filepath.Join(t.TempDir(), "backup.db")
	code, out, errOut := cli(t, "backup", dest, "--socket", sock)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, f.backup) {
		t.Fatalf("backup content: %d bytes, %v; want %d bytes", len(got), err, len(f.backup))
	}
	st, _ := os.Stat(dest)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("backup mode: got %v, want 0600", st.Mode().Perm())
	}
	if !strings.Contains(out, fmt.Sprintf("(%d bytes)", len(f.backup))) {
		t.Errorf("output: %q", out)
	}

	// A backup that fails half way leaves the previous file alone and no
	// temporary file behind.
	f.mu.Lock()
	f.backupErr = errors.New("disk on fire")
	f.mu.Unlock()
	code, _, errOut = cli(t, "backup", dest, "--socket", sock)
	if code != exitFail || !strings.Contains(errOut, "disk on fire") {
		t.Errorf("failing backup: exit %d, %q", code, errOut)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, f.backup) {
		t.Error("failed backup replaced the previous file")
	}
	if entries, _ := os.ReadDir(filepath.Dir(dest)); len(entries) != 1 {
		t.Errorf("files left behind: %v", entries)
	}
}

func TestAdminNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"requests"}, {"grants"}, {"revoke", "x"}, {"audit"}, {"audit", "verify"}, {"backup", filepath.Join(t.TempDir(), "b")}} {
		code, _, errOut := cli(t, append(args, "--socket", sock)...)
		want := "no symbot daemon answering on " + sock + ": is `symbot run` running with this config?"
		if code != exitFail || !strings.Contains(errOut, want) {
			t.Errorf("%v: got exit %d %q, want %q", args, code, errOut, want)
		}
		// A command that only reads says how to read without the daemon.
		if hint := "with the daemon stopped, add --offline"; strings.Contains(errOut, hint) != (args[0] != "revoke") {
			t.Errorf("%v: the --offline hint is %v in %q, want it only for the read commands", args, strings.Contains(errOut, hint), errOut)
		}
	}
}

func TestAdminSocketFromConfig(t *testing.T) {
	dir := t.TempDir()
	yml := baseYAML + "admin:\n  socket: ./x.sock\n"
	cfgPath := filepath.Join(dir, "symbot.yml")
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := admin.Listen(filepath.Join(dir, "x.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- admin.ServeUntil(ctx, ln, admin.NewServer(newFakeAdmin(), nil)) }()
	defer func() { cancel(); <-done }()
	code, out, errOut := cli(t, "requests", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "r-pending") {
		t.Errorf("exit %d, %q, %q", code, out, errOut)
	}
}

// TestTimeLeft: `symbot grants` rounds the time left up, in seconds under a
// minute, so a grant with 26 seconds left does not show 0s.
func TestTimeLeft(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{26 * time.Second, "26s"},
		{26*time.Second + 300*time.Millisecond, "27s"},
		{400 * time.Millisecond, "1s"},
		{59*time.Second + time.Millisecond, "1m"},
		{time.Minute, "1m"},
		{61 * time.Second, "2m"},
		{90 * time.Minute, "1h30m"},
		{time.Hour - time.Second, "1h"},
		{0, "ending"},
		{-time.Second, "ending"},
	}
	for _, tt := range tests {
		if got := timeLeft(tt.d); got != tt.want {
			t.Errorf("timeLeft(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestGrantsShowSecondsLeft(t *testing.T) {
	f := newFakeAdmin()
	f.mu.Lock()
	f.reqs["r-active"].ExpiresAt = time.Now().Add(26*time.Second + 500*time.Millisecond)
	f.mu.Unlock()
	sock := startAdmin(t, f)
	code, out, errOut := cli(t, "grants", "--socket", sock)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !regexp.MustCompile(`\s2[5-7]s\n`).MatchString(out) {
		t.Errorf("LEFT of a grant with 26s left: want about 26s, got:\n%s", out)
	}
}
