package main

// This file holds `symbot healthcheck`, the probe a container image or a
// supervisor runs: it asks symbot's own /healthz (or /readyz) over HTTP, so
// the image needs no shell, curl or wget.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// healthcheckArgs is the usage after `symbot healthcheck`.
const healthcheckArgs = "[--config FILE | --url URL] [--ready] [--timeout DURATION]"

func healthcheckCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("healthcheck", "", stderr)
	cfgPath := configFlag(fs)
	base := fs.String("url", "", "base URL of symbot's HTTP listener, e.g. http://127.0.0.1:9090 (default: http.listen from the config)")
	ready := fs.Bool("ready", false, "ask /readyz (Socket Mode connected, store answering) instead of /healthz (process alive)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if code, ok := parseNoArgs(fs, args, stderr); !ok {
		return code
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "symbot healthcheck: --timeout %s: must be positive, e.g. 5s\n", *timeout)
		return exitUsage
	}
	u := *base
	if u == "" {
		cfg, ok := loadConfig("healthcheck", *cfgPath, stderr)
		if !ok {
			return exitFail
		}
		if cfg.HTTP.Listen == "" {
			fmt.Fprintf(stderr, "symbot healthcheck: %s has no http.listen, so symbot serves no /healthz: set http.listen (e.g. 127.0.0.1:9090), or pass --url\n", cfg.File)
			return exitFail
		}
		var err error
		if u, err = listenURL(cfg.HTTP.Listen); err != nil {
			fmt.Fprintf(stderr, "symbot healthcheck: http.listen %q: %v\n", cfg.HTTP.Listen, err)
			return exitFail
		}
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	target, err := probeURL(u, path)
	if err != nil {
		fmt.Fprintf(stderr, "symbot healthcheck: --url %q: %v\n", u, err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	line, err := probe(ctx, target)
	if err != nil {
		fmt.Fprintf(stderr, "symbot healthcheck: %s: %v\n", target, err)
		return exitFail
	}
	fmt.Fprintf(stdout, "%s: %s\n", target, line)
	return exitOK
}

// listenURL turns an http.listen address into the URL a local probe uses:
// a wildcard host (":9090", "0.0.0.0:9090", "[::]:9090") is asked on
// loopback.
func listenURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// probeURL is base with path in place of its path.
func probeURL(base, path string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", errors.New("want http://HOST:PORT")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	return u.String(), nil
}

// probe GETs target and returns the first line of a 200 answer; any other
// status is an error carrying the first line of the body (the reason
// /readyz gives).
func probe(ctx context.Context, target string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("no answer in time: %w", err)
		}
		return "", fmt.Errorf("not answering (is symbot running with this http.listen?): %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4096))
	var line string
	if sc.Scan() {
		line = oneLine(sc.Text())
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s", resp.Status, line)
	}
	return line, nil
}
