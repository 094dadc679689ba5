package admin_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
)

func TestListen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := admin.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("socket mode: got %v, want 0600", got)
	}
	if st.Mode()&os.ModeSocket == 0 {
		t.Errorf("%s is not a socket", path)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := admin.Listen(path); err == nil || !strings.Contains(err.Error(), "another symbot daemon is answering") {
		t.Errorf("second ListenAdmin while live: got %v, want a refusal", err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left after Close: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 0 {
		t.Errorf("files left in the socket directory: %v", entries)
	}
}

func TestListenStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close() // a crashed daemon leaves the file behind
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	ln, err := admin.Listen(path)
	if err != nil {
		t.Fatalf("ListenAdmin over a stale socket: %v", err)
	}
	ln.Close()
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	os.WriteFile(path, []byte("important"), 0o600)
	if _, err := admin.Listen(path); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("got %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "important" {
		t.Error("the file was replaced")
	}
}
