// Measurements: the Metrics port the engine reports to, and the Stats
// snapshot of its gauges.

package symbot

import (
	"context"
	"time"
)

// Metrics receives the engine's measurements; cmd/symbot exports them in
// Prometheus format. Implementations must be safe for concurrent use.
type Metrics interface {
	// RequestOutcome counts a request reaching a state (pending when
	// submitted, then approved, active, denied, expired, ...).
	RequestOutcome(flow string, s State)
	// GrantLatency observes the time from final approval to the Okta
	// membership taking effect.
	GrantLatency(flow string, d time.Duration)
	// RevokeLag observes the time from a grant's end (expiry or revocation)
	// to the Okta membership being removed.
	RevokeLag(d time.Duration)
	// JobResult counts a job attempt by kind and result ("ok", "retry", "failed").
	JobResult(kind JobKind, result string)
}

// Stats is a snapshot of the engine's gauges.
type Stats struct {
	PendingJobs      int   // jobs stored and not yet done
	FailingRevokes   int   // revoke jobs that failed at least once and are still retrying
	RevokeAlerts     int64 // alerts raised for stuck revocations since start
	JobsDone         int64 // jobs completed since start
	JobsAbandoned    int64 // non-revoke jobs given up after their attempts
	NextDeadline     time.Time
	SchedulerWakeups int64
}

// Stats returns a snapshot of the engine's gauges.
func (e *Engine) Stats(ctx context.Context) (Stats, error) {
	s := Stats{
		JobsDone:         e.rt.jobsDone.Load(),
		JobsAbandoned:    e.rt.jobsAbandoned.Load(),
		RevokeAlerts:     e.rt.revokeAlerts.Load(),
		SchedulerWakeups: e.rt.wakeups.Load(),
	}
	err := e.store.View(ctx, func(tx Tx) error {
		js, err := tx.JobStats()
		if err != nil {
			return err
		}
		s.PendingJobs, s.FailingRevokes = js.Pending, js.FailingRevokes
		_, at, ok, err := tx.NextDeadline()
		if ok {
			s.NextDeadline = at
		}
		return err
	})
	return s, err
}

func (e *Engine) observe(flow string, s State) {
	if e.Metrics != nil {
		e.Metrics.RequestOutcome(flow, s)
	}
}

func (e *Engine) jobResult(k JobKind, result string) {
	if e.Metrics != nil {
		e.Metrics.JobResult(k, result)
	}
}
