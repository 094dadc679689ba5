// The Engine: its dependencies, settings and the small helpers every part of
// it shares (clock, logger, audit, wake-ups).

package symbot

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Engine is the request state machine, the approval policy, the durable-job
// executor and the expiry scheduler. Every state change and the jobs it
// causes are written in one store transaction; Run executes the jobs and
// fires the deadlines.
type Engine struct {
	store    Store
	dir      Directory
	notifier Notifier
	flows    []Flow
	byName   map[string]*Flow

	// Optional settings; set before use. Zero values get defaults.
	Now     func() time.Time // the clock; default time.Now
	Logger  *slog.Logger     // default discards
	Metrics Metrics          // default none

	IdentityTTL time.Duration // how long a Slack→Okta identity is cached; default 10m

	// Runtime configures Run and RunDueJobs: workers, leases, retries and
	// deadline batches.
	Runtime RuntimeOptions

	rt runner
}

// NewEngine validates flows (after applying defaults) and returns an engine.
func NewEngine(st Store, dir Directory, n Notifier, flows []Flow) (*Engine, error) {
	fs := make([]Flow, len(flows))
	for i, f := range flows {
		f.Durations = slices.Clone(f.Durations)
		f.Targets = slices.Clone(f.Targets)
		f.Approvers.Users = slices.Clone(f.Approvers.Users)
		f.ApplyDefaults()
		fs[i] = f
	}
	if err := ValidateFlows(fs); err != nil {
		return nil, fmt.Errorf("invalid flows: %w", err)
	}
	e := &Engine{
		store: st, dir: dir, notifier: n, flows: fs,
		byName: map[string]*Flow{},
		rt:     newRunner(),
	}
	for i := range e.flows {
		e.byName[strings.ToLower(e.flows[i].Name)] = &e.flows[i]
	}
	return e, nil
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

var discard = slog.New(slog.DiscardHandler)

func (e *Engine) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return discard
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// audit appends one audit entry in tx.
func (e *Engine) audit(tx Tx, now time.Time, id, actor, action, detail string) error {
	return tx.AppendAudit(&AuditEntry{At: now, RequestID: id, Actor: actor, Action: action, Detail: detail})
}
