package deploy_test

import (
	"bytes"
	"debug/elf"
	"os"
	"strings"
	"testing"
)

// TestBuildScript checks the binary deploy/build.sh makes: static (no
// interpreter, no shared libraries: it runs on an empty image), no build
// paths in it (-trimpath), no build id, and `symbot version` reports the
// stamps it was given.
func TestBuildScript(t *testing.T) {
	bin := mustBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an ELF interpreter: it is dynamically linked (CGO_ENABLED=0 missing?)")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}

	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(repoRoot)) {
		t.Errorf("the binary contains the build directory %s (-trimpath missing?)", repoRoot)
	}

	code, out := symbotCmd(t, nil, "version")
	if code != 0 {
		t.Fatalf("symbot version: exit %d: %s", code, out)
	}
	for _, want := range []string{"symbot " + testVersion + "\n", "commit:     " + testCommit + "\n", "build date: " + testDate + "\n", "go:         go1."} {
		if !strings.Contains(out, want) {
			t.Errorf("symbot version lacks %q:\n%s", want, out)
		}
	}
}
