package symbot_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store"
)

func TestRequestIDsAndNonces(t *testing.T) {
	h := newHarness(t, nil)
	r1 := h.mustSubmit(t, alice, "admin", time.Hour)
	r2 := h.mustSubmit(t, bob, "admin", time.Hour)
	idRE := regexp.MustCompile(`^SYM-[0-9]+-[2-9A-HJ-NP-Z]{4}$`)
	for _, r := range []*symbot.Request{r1, r2} {
		if !idRE.MatchString(r.ID) {
			t.Errorf("id %q does not look like SYM-<seq>-<4 characters>", r.ID)
		}
		if len(r.Nonce) != 32 {
			t.Errorf("request %s nonce %q: want 32 hex characters", r.ID, r.Nonce)
		}
	}
	if r1.Nonce == r2.Nonce {
		t.Fatalf("two requests share the nonce %q", r1.Nonce)
	}
	// Ids are matched case-insensitively.
	if got, err := h.eng.Get(t.Context(), " "+strings.ToLower(r1.ID)+" "); err != nil || got.ID != r1.ID {
		t.Fatalf("Get(lowercase id) = %v, %v; want %s", got, err, r1.ID)
	}

	tests := []struct {
		name    string
		value   string
		wantErr error
	}{
		{"own button", symbot.ButtonValue(r1), nil},
		{"lowercase id", strings.ToLower(r1.ID) + ":" + r1.Nonce, nil},
		{"another request's nonce", r1.ID + ":" + r2.Nonce, symbot.ErrOutOfDate},
		{"no nonce", r1.ID, symbot.ErrOutOfDate},
		{"unknown request", "SYM-99-ABCD:" + r1.Nonce, symbot.ErrOutOfDate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, nonce := symbot.ParseButtonValue(tt.value)
			r, err := h.eng.CheckButton(t.Context(), id, nonce)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckButton(%q) error = %v, want %v", tt.value, err, tt.wantErr)
			}
			if err == nil && r.ID != r1.ID {
				t.Fatalf("CheckButton(%q) = %s, want %s", tt.value, r.ID, r1.ID)
			}
		})
	}
}

// TestRestoreNeverReissuesAnID: a store restored from a backup counts from
// the backup's sequence again, but the request made after the restore gets
// an id (and nonce) that no message from before the restore carries.
func TestRestoreNeverReissuesAnID(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "symbot.db")
	st, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, st)
	h.mustSubmit(t, alice, "admin", time.Hour)
	var backup bytes.Buffer
	if _, err := st.Backup(t.Context(), &backup); err != nil {
		t.Fatal(err)
	}
	before := h.mustSubmit(t, bob, "admin", time.Hour)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, backup.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	st2, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	h2 := newHarness(t, st2)
	after := h2.mustSubmit(t, carol, "admin", time.Hour)
	seqOf := func(id string) string { return strings.Split(id, "-")[1] }
	if seqOf(after.ID) != seqOf(before.ID) {
		t.Fatalf("ids %s and %s: the restored store should count from the backup again (the test needs the same sequence)", before.ID, after.ID)
	}
	if after.ID == before.ID {
		t.Fatalf("the restored store issued %s again", after.ID)
	}
	if _, err := h2.eng.CheckButton(t.Context(), after.ID, before.Nonce); !errors.Is(err, symbot.ErrOutOfDate) {
		t.Fatalf("a button from before the restore: CheckButton = %v, want ErrOutOfDate", err)
	}
	if _, err := h2.eng.CheckButton(t.Context(), before.ID, before.Nonce); !errors.Is(err, symbot.ErrOutOfDate) {
		t.Fatalf("the old message's own button: CheckButton = %v, want ErrOutOfDate", err)
	}
}
