package config

import (
	"errors"
	"strings"
	"testing"
)

func TestStoreSelection(t *testing.T) {
	const pgURL = "postgres://symbot:s3cret@db.internal:5432/symbot?sslmode=verify-full"
	tests := []struct {
		name     string
		yml      string
		getenv   func(string) string
		wantPath bool   // a bbolt path is chosen
		wantURL  string // the PostgreSQL URL chosen
		wantErr  string // a problem containing this
	}{
		{name: "default bbolt", yml: baseYAML, getenv: env(), wantPath: true},
		{name: "url in file", yml: baseYAML + "store:\n  url: " + pgURL + "\n", getenv: env(), wantURL: pgURL},
		{name: "url from env", yml: baseYAML, getenv: env(EnvDatabaseURL, pgURL), wantURL: pgURL},
		{name: "env wins over file", yml: baseYAML + "store:\n  url: postgres://other@h/db\n", getenv: env(EnvDatabaseURL, pgURL), wantURL: pgURL},
		{name: "path and url in file", yml: baseYAML + "store:\n  path: symbot.db\n  url: " + pgURL + "\n", getenv: env(),
			wantErr: "symbot.yml:21: store.path: store.path (bbolt) and a PostgreSQL URL (store.url) are both set"},
		{name: "path in file and env url", yml: baseYAML + "store:\n  path: symbot.db\n", getenv: env(EnvDatabaseURL, pgURL),
			wantErr: "store.path: store.path (bbolt) and a PostgreSQL URL (env SYMBOT_DATABASE_URL) are both set"},
		{name: "not a postgres url", yml: baseYAML, getenv: env(EnvDatabaseURL, "mysql://u:hunter2@h/db"),
			wantErr: "environment: SYMBOT_DATABASE_URL: is not a PostgreSQL URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parse(t, tc.yml, tc.getenv)
			if tc.wantErr != "" {
				var ce *Error
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want a problem containing %q", err, tc.wantErr)
				}
				for _, secret := range []string{"s3cret", "hunter2"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("the error repeats the password: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Store.Path != ""; got != tc.wantPath {
				t.Errorf("Store.Path = %q, want set=%v", cfg.Store.Path, tc.wantPath)
			}
			if cfg.Store.URL != tc.wantURL {
				t.Errorf("Store.URL = %q, want %q", cfg.Store.URL, tc.wantURL)
			}
		})
	}
}
