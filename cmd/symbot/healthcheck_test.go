package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// healthServer serves symbot's real HTTP handler with the given readiness.
func healthServer(t *testing.T, ready Readiness) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHTTPHandler(ready, nil, nil))
	t.Cleanup(srv.Close)
	return srv
}

func TestHealthcheckURL(t *testing.T) {
	notReady := healthServer(t, func(context.Context) error { return NotReady("slack socket mode is not connected", nil) })
	ready := healthServer(t, func(context.Context) error { return nil })
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hang.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "alive", args: []string{"--url", notReady.URL}, code: exitOK, stdout: notReady.URL + "/healthz: ok"},
		{name: "alive, base URL with a slash", args: []string{"--url", notReady.URL + "/"}, code: exitOK, stdout: "/healthz: ok"},
		{name: "not ready says why", args: []string{"--url", notReady.URL, "--ready"}, code: exitFail, stderr: "503 Service Unavailable not ready: slack socket mode is not connected"},
		{name: "ready", args: []string{"--url", ready.URL, "--ready"}, code: exitOK, stdout: "/readyz: ready"},
		{name: "nothing listening", args: []string{"--url", closed.URL}, code: exitFail, stderr: "not answering (is symbot running with this http.listen?)"},
		{name: "no answer in time", args: []string{"--url", hang.URL, "--timeout", "100ms"}, code: exitFail, stderr: "no answer in time"},
		{name: "not an http URL", args: []string{"--url", "127.0.0.1:9090"}, code: exitUsage, stderr: "want http://HOST:PORT"},
		{name: "bad timeout", args: []string{"--url", ready.URL, "--timeout", "0s"}, code: exitUsage, stderr: "must be positive"},
		{name: "stray argument", args: []string{"now"}, code: exitUsage, stderr: `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, append([]string{"healthcheck"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit: got %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if tt.stdout != "" && !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, out)
			}
			if tt.stderr != "" && !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errOut)
			}
		})
	}
}

// TestHealthcheckConfig finds the address in http.listen, asking a wildcard
// listener on loopback.
func TestHealthcheckConfig(t *testing.T) {
	_, cfgPath := mustWorld(t, "1h", "0")
	if code, _, errOut := cli(t, "healthcheck", "--config", cfgPath); code != exitFail || !strings.Contains(errOut, "has no http.listen") {
		t.Errorf("without http.listen: exit %d, %q", code, errOut)
	}

	srv := healthServer(t, nil)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("http:\n  listen: :" + port + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	code, out, errOut := cli(t, "healthcheck", "--config", cfgPath)
	if code != exitOK || !strings.Contains(out, "http://127.0.0.1:"+port+"/healthz: ok") {
		t.Errorf("with http.listen :%s: exit %d\nstdout: %s\nstderr: %s", port, code, out, errOut)
	}
}

func TestListenURL(t *testing.T) {
	tests := []struct{ listen, want string }{
		{":9090", "http://127.0.0.1:9090"},
		{"0.0.0.0:9090", "http://127.0.0.1:9090"},
		{"[::]:9090", "http://[::1]:9090"},
		{"10.1.2.3:9090", "http://10.1.2.3:9090"},
		{"localhost:9090", "http://localhost:9090"},
	}
	for _, tt := range tests {
		got, err := listenURL(tt.listen)
		if err != nil || got != tt.want {
			t.Errorf("listenURL(%q): got %q, %v; want %q", tt.listen, got, err, tt.want)
		}
	}
}
