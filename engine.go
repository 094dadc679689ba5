// The Engine: its dependencies, settings and the small helpers every part of
// it shares (clock, logger, audit, wake-ups).

package symbot

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
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

	// Optional settings; set before Run. Zero values get defaults.
	Now     func() time.Time // the clock; default time.Now
	Logger  *slog.Logger     // default discards
	Metrics Metrics          // default none

	Workers          int           // concurrent jobs; default 16
	Lease            time.Duration // job lease; default 2m (must exceed JobTimeout)
	JobTimeout       time.Duration // one attempt of one job; default 45s
	RetryBase        time.Duration // first retry delay; default 1s
	RetryMax         time.Duration // cap of retry delays for grant and Slack jobs; default 5m
	RevokeRetryMax   time.Duration // cap of retry delays for revocations; default 1m
	GrantAttempts    int           // a grant fails after this many attempts; default 10 (about 8 minutes)
	NotifyAttempts   int           // Slack jobs are abandoned after this many; default 12
	RevokeAlertAfter int           // alert after this many failed revocation attempts; default 5
	IdentityTTL      time.Duration // how long a Slack→Okta identity is cached; default 10m
	BatchSize        int           // deadlines handled per transaction; default 256
	Owner            string        // job lease owner; default a per-process id
	// ShutdownGrace bounds how long Run waits for in-flight jobs after its
	// context ends; jobs still running then are cancelled and run again at
	// the next start. Default 10s.
	ShutdownGrace time.Duration
	// Jitter returns a random duration in [0, max] that spreads retries
	// out; default uniform. Tests pin it to make retry times exact.
	Jitter func(max time.Duration) time.Duration

	kickJobs  chan struct{}
	kickSched chan struct{}
	locks     keyedMutex

	jobsDone      atomic.Int64
	jobsAbandoned atomic.Int64
	revokeAlerts  atomic.Int64
	wakeups       atomic.Int64
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
		byName:    map[string]*Flow{},
		kickJobs:  make(chan struct{}, 1),
		kickSched: make(chan struct{}, 1),
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

// kick wakes the executor and the scheduler: for changes that may add
// jobs and a sooner deadline.
func (e *Engine) kick() {
	e.kickExecutor()
	select {
	case e.kickSched <- struct{}{}:
	default:
	}
}

// kickExecutor wakes only the executor: for changes that add jobs but no
// deadline.
func (e *Engine) kickExecutor() {
	select {
	case e.kickJobs <- struct{}{}:
	default:
	}
}
