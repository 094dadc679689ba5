package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzParseConfig: any file gives a config or a *Error listing its
// problems, never a panic, and never echoes a token-looking value.
func FuzzParseConfig(f *testing.F) {
	example, err := os.ReadFile("../../../../symbot.example.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	f.Add("flows: []")
	f.Add("slack: {bot_token: xoxb-secret-value}\n")
	f.Add("flows:\n  - name: a\n    durations: [0s, 1y]\n    targets: [{}]\n")
	f.Add("\tnot: [valid")
	f.Add(strings.Replace(string(example), "approval_timeout", "aproval_timeout", 1))
	getenv := func(k string) string {
		switch k {
		case "SLACK_BOT_TOKEN":
			return "xoxb-1"
		case "SLACK_APP_TOKEN":
			return "xapp-1"
		}
		return ""
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data string) {
		var cfg *Config
		var err error
		// Go's fuzzer has no per-input time limit: a hanging input would
		// stall its worker until -fuzztime ends and never be saved. This
		// guard turns a hang into a failure, so the input is kept.
		done := make(chan struct{})
		go func() { defer close(done); cfg, err = Parse("symbot.yml", []byte(data), dir, getenv) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Parse hangs on %q", data)
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) && !strings.Contains(err.Error(), "symbot.yml") {
				t.Fatalf("error %T %q names neither a problem list nor the file", err, err)
			}
			if strings.Contains(err.Error(), "xoxb-secret-value") {
				t.Fatalf("a token value was echoed: %v", err)
			}
			return
		}
		if len(cfg.Flows) == 0 {
			t.Fatalf("a config with no flows was accepted")
		}
	})
}
