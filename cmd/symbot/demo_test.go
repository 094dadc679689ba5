package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestDemo runs `symbot demo` (shortened) in-process, so the README's first
// command keeps working.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	// The demo points the process's environment at its simulators; restore it.
	w, _ := mustWorld(t, "1h", "0")
	for k := range w.env() {
		t.Setenv(k, os.Getenv(k))
	}
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"demo", "--duration", "4s", "--warning", "2s"}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("demo exited %d\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		"sts:AssumeRole", `ExternalId "symbot-demo-7f3c9a2e"`, "secretsmanager:GetSecretValue",
		"PUT /api/v1/groups/", "DELETE /api/v1/groups/", "not an approver",
		"[Approve] [Approve with note…] [Deny]", "has ended and was removed from Okta",
		"hash chain intact", "demo passed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo transcript lacks %q\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "xoxb-") || strings.Contains(out.String(), "xapp-") {
		t.Error("a Slack token is in the demo transcript")
	}
}
