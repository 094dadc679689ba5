package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigAudit(t *testing.T) {
	yml := baseYAML + `audit:
  key_file: audit.key
  checkpoint_every: 1m
  sinks:
    - {name: local, type: file, path: audit.jsonl, max_mb: 10}
    - {name: siem, type: webhook, url: https://siem.example.com/hook, secret_env: SIEM_SECRET}
    - {name: archive, type: s3, bucket: acme-audit, prefix: symbot/, path_style: true}
`
	cfg, err := parse(t, yml, env("SLACK_BOT_TOKEN", "xoxb-1", "SLACK_APP_TOKEN", "xapp-1", "SIEM_SECRET", "0123456789abcdef0123"))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Audit
	if filepath.Base(a.KeyFile) != "audit.key" || !filepath.IsAbs(a.KeyFile) || a.CheckpointEvery != time.Minute || len(a.Sinks) != 3 {
		t.Fatalf("audit = %+v", a)
	}
	if f := a.Sinks[0]; !filepath.IsAbs(f.Path) || f.MaxBytes != 10<<20 || f.Keep != 5 {
		t.Errorf("file sink = %+v, want an absolute path, 10 MB, keep 5", f)
	}
	if w := a.Sinks[1]; string(w.Secret) != "0123456789abcdef0123" {
		t.Errorf("webhook secret not read from SIEM_SECRET")
	}
	if s := a.Sinks[2]; s.Bucket != "acme-audit" || s.Prefix != "symbot/" || !s.PathStyle {
		t.Errorf("s3 sink = %+v", s)
	}

	tests := []struct{ name, yml, want string }{
		{"both keys", "audit:\n  key_file: k\n  key_secret: s\n", "audit.key_secret: give audit.key_file or audit.key_secret, not both"},
		{"unknown type", "audit:\n  sinks:\n    - {name: x, type: kafka}\n", `audit.sinks[0].type: "kafka" is not a sink type`},
		{"no name", "audit:\n  sinks:\n    - {type: s3, bucket: b}\n", "audit.sinks[0].name: missing"},
		{"duplicate name", "audit:\n  sinks:\n    - {name: a, type: s3, bucket: b}\n    - {name: a, type: s3, bucket: c}\n", `audit.sinks[1].name: "a" is used by another sink`},
		{"webhook over http", "audit:\n  sinks:\n    - {name: w, type: webhook, url: http://siem.example.com, secret_env: S}\n", "audit.sinks[0].url: must use https"},
		{"webhook secret unset", "audit:\n  sinks:\n    - {name: w, type: webhook, url: https://siem.example.com, secret_env: NOPE}\n", "environment variable NOPE is unset or shorter than 16 bytes"},
		{"file in a missing directory", "audit:\n  sinks:\n    - {name: f, type: file, path: /nonexistent/dir/a.jsonl}\n", "does not exist"},
		{"s3 without bucket", "audit:\n  sinks:\n    - {name: s, type: s3}\n", "audit.sinks[0].bucket: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, baseYAML+tt.yml, env("SLACK_BOT_TOKEN", "xoxb-1", "SLACK_APP_TOKEN", "xapp-1"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
