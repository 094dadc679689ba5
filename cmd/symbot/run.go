package main

// Temporary: the lead replaces this file with the wiring of `run` and `demo`
// and the live preflight checks.

import (
	"context"
	"errors"
	"fmt"
	"io"
)

var errNotWired = errors.New("not wired yet")

func runCmd(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "symbot run: %v\n", errNotWired)
	return exitFail
}

func demoCmd(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "symbot demo: %v\n", errNotWired)
	return exitFail
}

// liveChecks returns the `check --live` preflight checks for cfg.
func liveChecks(_ context.Context, _ *Config, _ io.Writer) ([]Check, error) {
	return nil, errNotWired
}
