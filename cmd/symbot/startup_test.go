package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/symbot/symbot/cmd/symbot/internal/config"
	"github.com/symbot/symbot/store/postgres/pgtest"
)

// pgWorldConfig writes a config for w that keeps its state in PostgreSQL
// (the URL comes from SYMBOT_DATABASE_URL) and serves health and metrics
// on a free loopback port; it returns the config's path and the listener's
// base URL.
func pgWorldConfig(t *testing.T, w *world) (string, string) {
	t.Helper()
	path, err := w.config("1h", "0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	yml := regexp.MustCompile(`(?m)^store:\n  path: .*\n`).ReplaceAllString(string(b), "")
	yml = strings.Replace(yml, "level: warn", "level: info", 1)
	port := freeLoopbackPort(t)
	yml += fmt.Sprintf("http:\n  listen: 127.0.0.1:%d\n", port)
	path = filepath.Join(w.dir, "symbot-pg.yml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, fmt.Sprintf("http://127.0.0.1:%d", port)
}

// httpGet returns the status and body of GET url, or 0 when it is not
// answered.
func httpGet(url string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunWaitsForTheDatabase: `symbot run` (the real binary) started
// while its PostgreSQL is down does not exit. It serves /healthz and
// /metrics, /readyz says it cannot reach the database (where, never the
// password), and the log says so at each attempt; once the server starts,
// it opens the store, becomes ready without a restart and serves a
// request.
func TestRunWaitsForTheDatabase(t *testing.T) {
	bin := symbotBinary(t)
	pg := pgtest.NewCluster(t)
	dbURL, err := pg.CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The throwaway server trusts every local connection: the password
	// is never checked, only kept out of every output.
	const password = "pw-never-shown-4711"
	dbURL = strings.Replace(dbURL, "postgres@", "postgres:"+password+"@", 1)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}

	w, _ := mustWorld(t, "1h", "0")
	cfgPath, base := pgWorldConfig(t, w)
	env := w.env()
	env[config.EnvDatabaseURL] = dbURL
	logs := &lockedBuffer{}
	c := startChild(t, bin, cfgPath, env, logs)
	why := func() string { return "--- symbot logs ---\n" + logs.String() }

	var readyz string
	waitUpTo(t, w, 60*time.Second, "/readyz to say the database can't be reached, after two failed attempts", func() bool {
		var code int
		code, readyz = httpGet(base + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(readyz, "attempts so far") &&
			strings.Count(logs.String(), "can't reach the database") >= 2
	}, why)
	select {
	case <-c.done:
		t.Fatalf("symbot exited while the database was down\n%s", why())
	default:
	}
	wantReadyz := fmt.Sprintf("not ready: can't reach the database 127.0.0.1:%d/", pg.Port)
	if !strings.HasPrefix(readyz, wantReadyz) || !strings.Contains(readyz, "connection refused") {
		t.Errorf("/readyz while the database is down: %q, want it to start %q and say connection refused", readyz, wantReadyz)
	}
	if code, body := httpGet(base + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while the database is down: %d %q, want 200", code, body)
	}
	code, metrics := httpGet(base + "/metrics")
	if code != http.StatusOK || !strings.Contains(metrics, "symbot_build_info") || !strings.Contains(metrics, "symbot_socket_connected 0") ||
		!regexp.MustCompile(`(?m)^symbot_store_up 0$`).MatchString(metrics) {
		t.Errorf("/metrics while the database is down: %d, want 200 with symbot_build_info, symbot_socket_connected 0 and symbot_store_up 0\n%s", code, metrics)
	}
	if w.slack.Connected() {
		t.Error("symbot connected to Slack before its store was open")
	}

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUpTo(t, w, 90*time.Second, "symbot to be ready once the database is up", func() bool {
		code, _ := httpGet(base + "/readyz")
		return code == http.StatusOK
	}, why)
	wait := waiter(t, w, logs)
	ref := mustApprovalMessage(t, w, wait, demoAlice, "req prod-admin 1h after the database came back")
	if _, err := w.slack.ClickButton(demoBob, ref, "sym_approve"); err != nil {
		t.Fatal(err)
	}
	wait("alice to be added", func() bool { return w.okta.IsMember(w.groupID, w.aliceOkta) })

	// symbot_store_up follows the database while symbot runs.
	storeUp := func(v string) func() bool {
		return func() bool {
			_, m := httpGet(base + "/metrics")
			return regexp.MustCompile(`(?m)^symbot_store_up ` + v + `$`).MatchString(m)
		}
	}
	waitUpTo(t, w, 30*time.Second, "symbot_store_up 1 while the database answers", storeUp("1"), why)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	waitUpTo(t, w, 30*time.Second, "symbot_store_up 0 once the database is gone", storeUp("0"), why)
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitUpTo(t, w, 60*time.Second, "symbot_store_up 1 once the database is back", storeUp("1"), why)
	c.stop(t)

	out := logs.String()
	for _, want := range []string{"can't reach the database", "setting=" + config.EnvDatabaseURL, "retry_in=", "database reachable again: store opened"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q\n%s", want, out)
		}
	}
	if strings.Contains(out, password) || strings.Contains(readyz, password) || strings.Contains(metrics, password) {
		t.Errorf("the database password reached the log, /readyz or /metrics")
	}
}

// TestRunRefusesAWrongDatabaseAtOnce: what waiting cannot fix (a database
// that does not exist, a role the server refuses, a URL that does not
// parse) stops `symbot run` at once, naming the setting to fix.
func TestRunRefusesAWrongDatabaseAtOnce(t *testing.T) {
	pg := pgtest.Shared(t)
	w, _ := mustWorld(t, "1h", "0")
	cfgPath, _ := pgWorldConfig(t, w)
	tests := []struct {
		name, url string
		want      []string
	}{
		{"unknown database", pg.URL("no_such_db"), []string{`database "no_such_db" does not exist`, "create the database", config.EnvDatabaseURL}},
		{"unknown role", strings.Replace(pg.URL("postgres"), "postgres@", "no_such_role:pw-not-shown@", 1), []string{`role "no_such_role" does not exist`, "user or password", config.EnvDatabaseURL}},
		{"bad URL", "postgres://u:pw-not-shown@127.0.0.1:notaport/db", []string{config.EnvDatabaseURL}},
		// Its server has ssl off: a TLS failure is configuration, not an outage to wait out.
		{"sslmode=require without TLS", strings.Replace(strings.Replace(pg.URL("postgres"), "sslmode=disable", "sslmode=require", 1), "postgres@", "postgres:pw-not-shown@", 1), []string{"server refused TLS", "sslmode", config.EnvDatabaseURL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := w.env()
			env[config.EnvDatabaseURL] = tt.url
			for k, v := range env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			var stdout, stderr strings.Builder
			code := runCmd(ctx, []string{"--config", cfgPath}, &stdout, &stderr)
			if ctx.Err() != nil {
				t.Fatalf("symbot run was still waiting after 60s\n%s", stderr.String())
			}
			if code != exitFail {
				t.Errorf("exit code %d, want %d", code, exitFail)
			}
			out := stderr.String()
			for _, want := range tt.want {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "pw-not-shown") {
				t.Errorf("the password reached the output:\n%s", out)
			}
		})
	}
}

func TestRedactDatabaseURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://symbot:s3cret@db.example.com:5433/symbot?sslmode=verify-full", "postgres://symbot@db.example.com:5433/symbot"},
		{"postgres://symbot@db.example.com/symbot?password=s3cret", "postgres://symbot@db.example.com:5432/symbot"},
		{"host=db.example.com user=symbot password=s3cret dbname=symbot", "postgres://symbot@db.example.com:5432/symbot"},
		{"postgres://u:s3cret@[::1/db", "(an invalid database URL, not repeated here)"},
		// A password that also sits in another field is masked there.
		{"postgres://symbot:s3cret@db.example.com/s3cret", "postgres://symbot@db.example.com:5432/(password)"},
	}
	for _, tt := range tests {
		if got := redactDatabaseURL(tt.in); got != tt.want {
			t.Errorf("redactDatabaseURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// /readyz has no authentication: while the database cannot be reached it
// says which server and database (so an operator knows what to fix), but
// never the user nor the password, wherever the URL puts them.
func TestUnreachableReasonNamesNoUserOrPassword(t *testing.T) {
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	tests := []struct{ name, url, want string }{
		{"url", "postgres://symbot_owner:s3cret@db.example.com:5433/symbot?sslmode=disable",
			"can't reach the database db.example.com:5433/symbot: connection refused (3 attempts so far; symbot keeps trying)"},
		{"password parameter", "postgres://symbot_owner@db.example.com/symbot?password=s3cret",
			"can't reach the database db.example.com:5432/symbot: connection refused (3 attempts so far; symbot keeps trying)"},
		{"keywords", "host=db.example.com user=symbot_owner password=s3cret dbname=symbot",
			"can't reach the database db.example.com:5432/symbot: connection refused (3 attempts so far; symbot keeps trying)"},
		{"password also the database name", "postgres://symbot_owner:s3cret@db.example.com/s3cret",
			"can't reach the database db.example.com:5432/(password): connection refused (3 attempts so far; symbot keeps trying)"},
		{"invalid", "postgres://symbot_owner:s3cret@[::1/db",
			"can't reach the database (an invalid database URL, not repeated here): connection refused (3 attempts so far; symbot keeps trying)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{Store: config.Store{URL: tt.url}}
			got := unreachableReason(cfg, 3, refused)
			if got != tt.want {
				t.Errorf("unreachableReason = %q, want %q", got, tt.want)
			}
			if strings.Contains(got, "symbot_owner") || strings.Contains(got, "s3cret") {
				t.Errorf("unreachableReason = %q: it names the user or the password", got)
			}
		})
	}
}
