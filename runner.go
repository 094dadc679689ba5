// The runtime: Run, the executor loop that claims due jobs with a lease and
// runs them on workers, and RunDueJobs.

package symbot

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Run executes due jobs and fires deadlines until ctx ends. Everything
// already due when it starts runs at once.
func (e *Engine) Run(ctx context.Context) error {
	if e.Owner == "" {
		var b [8]byte
		_, _ = crand.Read(b[:])
		e.Owner = "symbot-" + hex.EncodeToString(b[:])
	}
	var wg sync.WaitGroup
	var schedErr, execErr error
	wg.Go(func() { schedErr = e.runScheduler(ctx) })
	wg.Go(func() { execErr = e.runExecutor(ctx) })
	wg.Wait()
	return errors.Join(schedErr, execErr)
}

// Resolved defaults of the optional settings used in several places.
func (e *Engine) workers() int { return orDefault(e.Workers, 16) }

func (e *Engine) lease() time.Duration { return orDefault(e.Lease, 2*time.Minute) }

func (e *Engine) jobTimeout() time.Duration { return orDefault(e.JobTimeout, 45*time.Second) }

func (e *Engine) retryMax() time.Duration { return orDefault(e.RetryMax, 5*time.Minute) }

func (e *Engine) runExecutor(ctx context.Context) error {
	workers, lease := e.workers(), e.lease()
	// Claim ahead of the workers so that one claim transaction feeds many
	// jobs; queued jobs hold their lease, and ones already queued here are
	// never queued twice.
	capacity := 4 * workers
	queue := make(chan Job, capacity)
	freed := make(chan struct{}, 1)
	var mu sync.Mutex
	held := map[uint64]bool{}
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range queue {
				if ctx.Err() == nil {
					// A job that waited in the queue may be near the end of
					// its lease: renew it first, or skip it if another
					// worker (another replica) took it over meanwhile.
					if j, ok := e.ensureLease(ctx, j, lease); ok {
						e.runJob(jobCtx, j)
					}
				} // else: left for the next start (its lease is cleared or expires)
				mu.Lock()
				delete(held, j.ID)
				mu.Unlock()
				select {
				case freed <- struct{}{}:
				default:
				}
			}
		})
	}
	defer func() {
		close(queue)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		t := time.NewTimer(orDefault(e.ShutdownGrace, 10*time.Second))
		select {
		case <-done:
		case <-t.C:
			cancelJobs()
			<-done
		}
		t.Stop()
		cancelJobs()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := time.Hour
		mu.Lock()
		free := capacity - len(held)
		mu.Unlock()
		if free > 0 {
			jobs, err := e.store.ClaimJobs(ctx, e.Owner, e.now(), lease, free)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				e.log().Error("executor: claim jobs", "err", err)
				wait = time.Second
			}
			queued := 0
			for _, j := range jobs {
				mu.Lock()
				dup := held[j.ID]
				held[j.ID] = true
				mu.Unlock()
				if !dup {
					queue <- j
					queued++
				}
			}
			if err == nil && len(jobs) == free && queued > 0 {
				continue // there may be more due right now
			}
			if err == nil {
				at, ok, err := e.store.NextJobTime(ctx)
				switch {
				case err != nil:
					if ctx.Err() != nil {
						return nil
					}
					e.log().Error("executor: next job time", "err", err)
					wait = time.Second
				case ok:
					d := at.Sub(e.now())
					if d <= 0 {
						// Due but not claimable: it waits behind its lane or
						// is queued here, and is freed when a job ends.
						d = time.Second
					}
					wait = min(d, time.Hour)
				}
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-e.kickJobs:
		case <-freed:
		}
		timer.Stop() // since Go 1.23 a stopped timer never delivers a stale value
	}
}

// ensureLease makes sure this executor still holds j's lease for at least
// one job timeout, renewing it when needed. It reports false when the job is
// gone or leased by another owner.
func (e *Engine) ensureLease(ctx context.Context, j Job, lease time.Duration) (Job, bool) {
	if e.now().Add(e.jobTimeout() + time.Second).Before(j.LeaseUntil) {
		return j, true
	}
	ok := false
	err := e.store.Update(ctx, func(tx Tx) error {
		ok = false
		jj, err := tx.Job(j.ID)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		now := e.now()
		if jj.LeaseOwner != e.Owner && jj.LeaseUntil.After(now) {
			return nil // someone else holds it now
		}
		if jj.NotBefore.After(now) {
			return nil // someone else ran and rescheduled it
		}
		jj.LeaseOwner, jj.LeaseUntil = e.Owner, now.Add(lease)
		j = *jj
		ok = true
		return tx.UpdateJob(jj)
	})
	if err != nil {
		e.log().Warn("renew job lease", "job", j.ID, "err", err)
		return j, false
	}
	return j, ok
}

// runJob runs one attempt of a job and records its outcome.
func (e *Engine) runJob(ctx context.Context, j Job) {
	log := e.log().With("request_id", j.RequestID, "job", j.ID, "kind", j.Kind, "attempt", j.Attempts+1)
	actx, cancel := context.WithTimeout(ctx, e.jobTimeout())
	defer cancel()
	var err error
	switch j.Kind {
	case JobGrant:
		err = e.execGrant(actx, j)
	case JobRevoke:
		err = e.execRevoke(actx, j)
	case JobPost, JobUpdate, JobNotify, JobAlert:
		err = e.execSlack(actx, j)
	default:
		err = Permanent(fmt.Errorf("unknown job kind %q", j.Kind))
	}
	if err == nil {
		e.jobsDone.Add(1)
		e.jobResult(j.Kind, "ok")
		log.Debug("job done")
		return
	}
	if ferr := e.jobFailed(context.WithoutCancel(ctx), j, err, log); ferr != nil {
		log.Error("record job failure", "err", ferr, "job_err", err)
	}
}

// RunDueJobs runs every job that is due now, and the jobs those cause, until
// none is due, with up to Workers at once. It is for tests, benchmarks and
// one-shot tools; Run does the same continuously.
func (e *Engine) RunDueJobs(ctx context.Context) (int, error) {
	if e.Owner == "" {
		e.Owner = "symbot-oneshot"
	}
	workers, lease := e.workers(), e.lease()
	n := 0
	for {
		jobs, err := e.store.ClaimJobs(ctx, e.Owner, e.now(), lease, workers)
		if err != nil {
			return n, fmt.Errorf("claim jobs: %w", err)
		}
		if len(jobs) == 0 {
			return n, nil
		}
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Go(func() { e.runJob(ctx, j) })
		}
		wg.Wait()
		n += len(jobs)
	}
}
