// The runtime: Run, the executor loop that claims due jobs with a lease and
// runs them on workers, the hand-over of new jobs to local workers, and
// RunDueJobs.

package symbot

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// RuntimeOptions configures the engine's runtime (Run and RunDueJobs): its
// workers, job leases, retries and deadline batches. Zero fields get
// defaults.
type RuntimeOptions struct {
	Workers          int           // concurrent jobs; default 16
	Lease            time.Duration // job lease, renewed every third of it while the job runs; default 15s
	JobTimeout       time.Duration // one attempt of one job; default 45s
	RetryBase        time.Duration // first retry delay; default 1s
	RetryMax         time.Duration // cap of retry delays for grant and Slack jobs; default 5m
	RevokeRetryMax   time.Duration // cap of retry delays for revocations; default 1m
	GrantAttempts    int           // a grant fails after this many attempts; default 10 (about 8 minutes)
	NotifyAttempts   int           // Slack jobs are abandoned after this many; default 12
	RevokeAlertAfter int           // alert after this many failed revocation attempts; default 5
	BatchSize        int           // deadlines handled per transaction; default 256
	Owner            string        // job lease owner; default a per-process id
	// ShutdownGrace bounds how long Run waits for in-flight jobs after its
	// context ends; jobs still running then are cancelled and run again at
	// the next start. Default 10s.
	ShutdownGrace time.Duration
	// Jitter returns a random duration in [0, max] that spreads retries
	// out; default uniform. Tests pin it to make retry times exact.
	Jitter func(max time.Duration) time.Duration
}

// The settings with their defaults applied.
func (o *RuntimeOptions) workers() int              { return orDefault(o.Workers, 16) }
func (o *RuntimeOptions) lease() time.Duration      { return orDefault(o.Lease, 15*time.Second) }
func (o *RuntimeOptions) jobTimeout() time.Duration { return orDefault(o.JobTimeout, 45*time.Second) }
func (o *RuntimeOptions) retryBase() time.Duration  { return orDefault(o.RetryBase, time.Second) }
func (o *RuntimeOptions) retryMax() time.Duration   { return orDefault(o.RetryMax, 5*time.Minute) }
func (o *RuntimeOptions) revokeRetryMax() time.Duration {
	return orDefault(o.RevokeRetryMax, time.Minute)
}
func (o *RuntimeOptions) grantAttempts() int    { return orDefault(o.GrantAttempts, 10) }
func (o *RuntimeOptions) notifyAttempts() int   { return orDefault(o.NotifyAttempts, 12) }
func (o *RuntimeOptions) revokeAlertAfter() int { return orDefault(o.RevokeAlertAfter, 5) }
func (o *RuntimeOptions) batchSize() int        { return orDefault(o.BatchSize, 256) }
func (o *RuntimeOptions) shutdownGrace() time.Duration {
	return orDefault(o.ShutdownGrace, 10*time.Second)
}

// jitter returns a random duration in [0, top].
func (o *RuntimeOptions) jitter(top time.Duration) time.Duration {
	if o.Jitter != nil {
		return min(max(o.Jitter(top), 0), top)
	}
	return time.Duration(rand.Int64N(int64(top) + 1))
}

// runner is the runtime's state: the lease owner, the wake-up channels of
// the executor and the scheduler, the per-membership locks, and the
// counters Stats reports.
type runner struct {
	owner     string // fixed when Run or RunDueJobs first starts
	kickJobs  chan struct{}
	kickSched chan struct{}
	locks     keyedMutex
	// local runs the jobs handed over by the transactions that created
	// them (see handoff); nil while Run's executor is not running.
	local atomic.Pointer[localRunner]
	// prechecks queues pending requests for their grant's early look-ups
	// (see precheck), taken by Run's look-up workers while running is set.
	prechecks chan string
	running   atomic.Bool
	// lastIntake is when a request, approval or denial last came in (see
	// noteIntake); precheckQuiet and precheckMaxWait, when set (tests),
	// replace the constants of the same names.
	lastIntake                     atomic.Int64
	precheckQuiet, precheckMaxWait time.Duration
	// precheckWrites are the early look-ups' records being written (see
	// runPrechecks); Run returns once they are done. precheckSlots holds a
	// token for each, at most precheckWritesMax.
	precheckWrites sync.WaitGroup
	precheckSlots  chan struct{}
	// precheckHandled, when set (tests), is called with the id of each
	// request a look-up worker has taken from the queue and looked up for
	// (or skipped), before its record is written.
	precheckHandled func(id string)

	// popped, when set (tests), is called when a worker takes j from the
	// executor's queue, before it renews j's lease.
	popped func(j Job)

	jobsDone      atomic.Int64
	jobsAbandoned atomic.Int64
	revokeAlerts  atomic.Int64
	wakeups       atomic.Int64
}

func newRunner() runner {
	return runner{kickJobs: make(chan struct{}, 1), kickSched: make(chan struct{}, 1), prechecks: make(chan string, prechecksQueued), precheckSlots: make(chan struct{}, precheckWritesMax)}
}

// kick wakes the executor and the scheduler: for changes that may add
// jobs and a sooner deadline.
func (e *Engine) kick() {
	e.kickExecutor()
	e.kickScheduler()
}

// kickScheduler wakes only the scheduler: for changes that add a deadline
// but no job the executor must claim.
func (e *Engine) kickScheduler() {
	select {
	case e.rt.kickSched <- struct{}{}:
	default:
	}
}

// kickExecutor wakes only the executor: for changes that add jobs but no
// deadline.
func (e *Engine) kickExecutor() {
	select {
	case e.rt.kickJobs <- struct{}{}:
	default:
	}
}

// Run executes due jobs and fires deadlines until ctx ends. Everything
// already due when it starts runs at once.
func (e *Engine) Run(ctx context.Context) error {
	if e.rt.owner == "" {
		e.rt.owner = e.Runtime.Owner
	}
	if e.rt.owner == "" {
		var b [8]byte
		_, _ = crand.Read(b[:])
		e.rt.owner = "symbot-" + hex.EncodeToString(b[:])
	}
	e.rt.running.Store(true)
	defer e.rt.running.Store(false)
	var wg sync.WaitGroup
	var schedErr, execErr error
	wg.Go(func() { schedErr = e.runScheduler(ctx) })
	wg.Go(func() { execErr = e.runExecutor(ctx) })
	for range precheckWorkers {
		wg.Go(func() { e.runPrechecks(ctx) })
	}
	if e.ReconcileInterval > 0 {
		wg.Go(func() { e.runReconciler(ctx) })
	}
	wg.Wait()
	e.rt.precheckWrites.Wait()
	return errors.Join(schedErr, execErr)
}

func (e *Engine) runExecutor(ctx context.Context) error {
	workers, lease := e.Runtime.workers(), e.Runtime.lease()
	// Claim ahead of the workers so that one claim transaction feeds many
	// jobs; queued jobs hold their lease, and ones already queued here are
	// never queued twice. held is the jobs waiting in queue: a worker lets
	// go of a job once it took it and holds its lease for the attempt,
	// before the attempt records its outcome, so that a claim of the rescheduled job (which the outcome's kick
	// may start at once) queues it again rather than leasing it and
	// skipping it as a duplicate until the lease runs out. A running job
	// is not claimed again: its lease is live and renewed.
	// The queue hands jobs to the workers by rank (removals first), as
	// the store claims them, not in the order of the claims.
	capacity := 4 * workers
	queue := newJobQueue()
	freed := make(chan struct{}, 1)
	var mu sync.Mutex
	held := map[uint64]bool{}
	claimed := map[uint64]*Request{} // of the held jobs, the requests their claim read
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	local := &localRunner{open: true, ctx: ctx, jobCtx: jobCtx, owner: e.rt.owner, lease: lease, slots: make(chan struct{}, workers)}
	e.rt.local.Store(local)
	var wg sync.WaitGroup
	// Jobs whose worker moved on to the next job while they record their
	// outcome (see releaseWorker), at most tailsPerWorker per worker.
	tails := make(chan struct{}, tailsPerWorker*workers)
	for range workers {
		wg.Go(func() {
			for {
				j, ok := queue.pop()
				if !ok {
					return
				}
				mu.Lock()
				r := claimed[j.ID]
				delete(claimed, j.ID)
				mu.Unlock()
				if e.rt.popped != nil {
					e.rt.popped(j)
				}
				run := false
				if ctx.Err() == nil {
					// A job that waited in the queue may be near the end of
					// its lease: renew it first, or skip it if another
					// worker (another replica) took it over meanwhile.
					j, run = e.ensureLease(ctx, j, lease)
				} // else: left for the next start (its lease is cleared or expires)
				// Let go of it only now that its lease is renewed: a claim
				// made meanwhile (its lease ran out while it waited) finds
				// it held and does not queue it again, or it would run
				// twice, here and as the copy, whose fresh lease skips
				// ensureLease's look at the store.
				mu.Lock()
				delete(held, j.ID)
				mu.Unlock()
				// The queue has room again: wake the claim loop, which may
				// have found it full when it last looked (a job that ended
				// kicks it before its worker takes the next one), or a job
				// due meanwhile, a removal say, would wait unclaimed until
				// the job taken here ends.
				select {
				case freed <- struct{}{}:
				default:
				}
				if run {
					e.runReleasable(withClaimed(jobCtx, r), j, tails, &wg)
				}
				// And when the job ends: the next job of its lane is claimable.
				select {
				case freed <- struct{}{}:
				default:
				}
			}
		})
	}
	defer func() {
		queue.close()
		e.rt.local.CompareAndSwap(local, nil)
		local.close()
		done := make(chan struct{})
		go func() { wg.Wait(); local.wg.Wait(); close(done) }()
		t := time.NewTimer(e.Runtime.shutdownGrace())
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
			jobs, reqs, err := e.claimJobs(ctx, e.rt.owner, e.now(), lease, free)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				e.log().Error("executor: claim jobs", "err", err)
				wait = time.Second
			}
			queued := 0
			for i, j := range jobs {
				mu.Lock()
				dup := held[j.ID]
				held[j.ID] = true
				if !dup && reqs[i] != nil {
					claimed[j.ID] = reqs[i]
				}
				mu.Unlock()
				if !dup {
					queue.push(j)
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
		case <-e.rt.kickJobs:
		case <-freed:
		}
		timer.Stop() // since Go 1.23 a stopped timer never delivers a stale value
	}
}

// ensureLease makes sure this executor still holds j's lease for at least
// one job timeout, renewing it when needed. It reports false when the job is
// gone or leased by another owner.
func (e *Engine) ensureLease(ctx context.Context, j Job, lease time.Duration) (Job, bool) {
	if e.now().Add(lease / 2).Before(j.LeaseUntil) {
		return j, true // runJob renews it while the job runs
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
		if jj.LeaseOwner != e.rt.owner && jj.LeaseUntil.After(now) {
			return nil // someone else holds it now
		}
		if jj.NotBefore.After(now) {
			return nil // someone else ran and rescheduled it
		}
		if jj.LeaseOwner != e.rt.owner || jj.LeaseToken != j.LeaseToken {
			jj.LeaseToken++ // taken over: a new fencing token
		}
		jj.LeaseOwner, jj.LeaseUntil = e.rt.owner, now.Add(lease)
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

// renewLease keeps j's lease alive while its attempt runs: every third of
// the lease it extends the lease, as long as this worker still holds it
// (owner and fencing token). When the lease is lost (another worker took
// the job over after a pause longer than the lease) it cancels the attempt.
// It returns when ctx ends.
func (e *Engine) renewLease(ctx context.Context, cancel context.CancelFunc, j Job, log *slog.Logger) {
	if j.LeaseOwner == "" {
		return // not claimed (run directly): nothing to renew
	}
	lease := e.Runtime.lease()
	t := time.NewTicker(max(lease/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lost := false
		err := e.store.Update(ctx, func(tx Tx) error {
			lost = false
			jj, err := tx.Job(j.ID)
			if errors.Is(err, ErrNotFound) {
				return nil // done meanwhile
			}
			if err != nil {
				return err
			}
			if !holds(jj, j) {
				lost = true
				return nil
			}
			jj.LeaseUntil = e.now().Add(lease)
			return tx.UpdateJob(jj)
		})
		switch {
		case lost:
			log.Warn("job lease lost to another worker; stopping this attempt")
			cancel()
			return
		case err != nil && ctx.Err() == nil:
			log.Warn("renew job lease", "err", err) // retried at the next tick
		}
	}
}

// runJob runs one attempt of a job and records its outcome.
func (e *Engine) runJob(ctx context.Context, j Job) { e.runJobHeld(ctx, j, nil) }

// runJobHeld is runJob for a grant handed over by its approval with held
// (nil for none; released when the attempt ends).
func (e *Engine) runJobHeld(ctx context.Context, j Job, held *heldGrant) {
	if held != nil {
		defer held.unlock()
	}
	log := e.log().With("request_id", j.RequestID, "job", j.ID, "kind", j.Kind, "attempt", j.Attempts+1)
	actx, cancel := context.WithTimeout(ctx, e.Runtime.jobTimeout())
	defer cancel()
	var renewals sync.WaitGroup
	renewals.Go(func() { e.renewLease(actx, cancel, j, log) })
	defer renewals.Wait()
	defer cancel() // ends renewLease before it is waited for
	var err error
	switch j.Kind {
	case JobGrant:
		err = e.execGrant(actx, j, held)
	case JobRevoke:
		err = e.execRevoke(actx, j)
	case JobPost, JobUpdate, JobNotify, JobAlert, JobRepost:
		err = e.execSlack(actx, j)
	default:
		err = Permanent(fmt.Errorf("unknown job kind %q", j.Kind))
	}
	if errors.Is(err, errLeaseLost) {
		log.Info("job taken over by another worker after its lease ran out; it records the outcome")
		return
	}
	if err == nil {
		e.rt.jobsDone.Add(1)
		e.jobResult(j.Kind, "ok")
		log.Debug("job done")
		return
	}
	if ferr := e.jobFailed(context.WithoutCancel(ctx), j, err, log); ferr != nil {
		log.Error("record job failure", "err", ferr, "job_err", err)
	}
}

// tailsPerWorker bounds the jobs recording their outcome after their
// worker moved on (see releaseWorker), per worker. A recording waits for
// its turn of the store's writer (a group commit; with several replicas on
// PostgreSQL, the turn of the shared writer lock), so with one per worker
// the workers soon waited for the writer again; with more, a burst of
// removals goes on reaching Okta while the outcomes commit in fewer,
// larger groups. Each one holds its membership lock and its job's lease
// until its outcome is recorded; that costs little (the PostgreSQL store
// holds a replica's membership locks on two sessions).
const tailsPerWorker = 4

// releaseKey is the context key of the function releaseWorker calls.
type releaseKey struct{}

// releaseWorker tells the executor that the job running with ctx has made
// its outside effect and only records its outcome from here on: its worker
// may take the next job meanwhile. The job goes on as before (its lease
// renewed, its locks held, its outcome recorded with its fencing token
// checked); only the count of workers no longer includes it. Outside the
// executor's workers, or when tailsPerWorker times as many jobs as there
// are workers are recording outcomes already, it does nothing.
func releaseWorker(ctx context.Context) {
	if release, ok := ctx.Value(releaseKey{}).(func()); ok {
		release()
	}
}

// runReleasable runs j on a goroutine of its own and returns when it ends
// or when it releases its worker (releaseWorker) and a slot of tails is
// free; the slot is held until the job ends. wg counts the goroutine.
func (e *Engine) runReleasable(ctx context.Context, j Job, tails chan struct{}, wg *sync.WaitGroup) {
	released := make(chan struct{})
	var tail atomic.Bool
	release := func() {
		select {
		case tails <- struct{}{}:
			if tail.CompareAndSwap(false, true) {
				close(released)
			} else {
				<-tails // released already
			}
		default: // every slot taken: the worker waits for this job
		}
	}
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		e.runJob(context.WithValue(ctx, releaseKey{}, release), j)
		if tail.Load() {
			<-tails
		}
	})
	select {
	case <-done:
	case <-released:
	}
}

// RunDueJobs runs every job that is due now, and the jobs those cause, until
// none is due, with up to Workers at once. It is for tests, benchmarks and
// one-shot tools; Run does the same continuously.
func (e *Engine) RunDueJobs(ctx context.Context) (int, error) {
	if e.rt.owner == "" {
		e.rt.owner = cmp.Or(e.Runtime.Owner, "symbot-oneshot")
	}
	workers, lease := e.Runtime.workers(), e.Runtime.lease()
	n := 0
	for {
		jobs, reqs, err := e.claimJobs(ctx, e.rt.owner, e.now(), lease, workers)
		if err != nil {
			return n, fmt.Errorf("claim jobs: %w", err)
		}
		if len(jobs) == 0 {
			return n, nil
		}
		var wg sync.WaitGroup
		for i, j := range jobs {
			wg.Go(func() { e.runJob(withClaimed(ctx, reqs[i]), j) })
		}
		wg.Wait()
		n += len(jobs)
	}
}

// claimedKinds are the jobs whose requests a claim reads along
// (RequestClaimer): removals, whose reads before the membership lock are
// of what does not change once they are queued (see execRevoke).
var claimedKinds = []JobKind{JobRevoke}

// claimJobs claims due jobs with the store's RequestClaimer, reading the
// requests of claimedKinds along, else with ClaimJobs. reqs has one entry
// per job (nil: not read).
func (e *Engine) claimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, max int) (jobs []Job, reqs []*Request, err error) {
	if c, ok := e.store.(RequestClaimer); ok {
		jobs, reqs, err = c.ClaimJobsWithRequests(ctx, owner, now, lease, max, claimedKinds)
		if err == nil && len(reqs) != len(jobs) {
			err = fmt.Errorf("the store returned %d requests for %d jobs", len(reqs), len(jobs))
		}
		if err != nil {
			return nil, nil, err
		}
		return jobs, reqs, nil
	}
	jobs, err = e.store.ClaimJobs(ctx, owner, now, lease, max)
	return jobs, make([]*Request, len(jobs)), err
}

// claimedKey carries, in a claimed job's context, the request its claim
// read (see claimJobs).
type claimedKey struct{}

// withClaimed returns ctx carrying r, the request a job's claim read (nil:
// none).
func withClaimed(ctx context.Context, r *Request) context.Context {
	if r == nil {
		return ctx
	}
	return context.WithValue(ctx, claimedKey{}, r)
}

// claimedRequest returns the request the claim of a job read, if ctx
// carries request id's.
func claimedRequest(ctx context.Context, id string) (*Request, bool) {
	r, ok := ctx.Value(claimedKey{}).(*Request)
	return r, ok && r != nil && r.ID == id
}

// localRunner runs, on goroutines of this process, the jobs that the
// transactions creating them handed over (see handoff), up to one per slot.
type localRunner struct {
	ctx    context.Context // Run's: a job handed over after it ends is left for the next start
	jobCtx context.Context // the executor's job context, which outlives ctx by the shutdown grace
	owner  string
	lease  time.Duration
	slots  chan struct{}

	mu   sync.Mutex
	open bool           // false once the executor stops: no more jobs are taken
	wg   sync.WaitGroup // jobs taken and not finished; the executor waits for them at shutdown
}

// take reserves a slot for one job; false when every slot is busy or the
// executor is stopping.
func (l *localRunner) take() bool {
	select {
	case l.slots <- struct{}{}:
	default:
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.open {
		<-l.slots
		return false
	}
	l.wg.Add(1)
	return true
}

// give returns a slot taken by take.
func (l *localRunner) give() {
	<-l.slots
	l.wg.Done()
}

func (l *localRunner) close() {
	l.mu.Lock()
	l.open = false
	l.mu.Unlock()
}

// handoff hands the jobs that one command's transaction creates to this
// process's workers as soon as it commits: no claim transaction, and no
// wait in the executor's queue behind other work. A handed-over job is
// written already leased to this process (owner, lease end and a fencing
// token, as a claim would), so it is just as durable as any job: if the
// process dies, the lease is cleared at the next start (bbolt) or runs
// out and another replica claims the job with a new fencing token
// (PostgreSQL), and the outcome of the first attempt is then refused.
// Without a running executor (RunDueJobs, tools) or a free slot, the job
// is written unleased and claimed as usual.
type handoff struct {
	l    *localRunner
	jobs []*Job
	// held is the grant job among jobs (if any) that may go straight to
	// its Okta add: its request as the transaction wrote it (approved,
	// with the grant's check recorded) under the membership lock that the
	// caller took before the transaction and hands to the job (see start).
	held    *Job
	heldReq *Request
	// post is the approval message's job among jobs (if any), and postReq
	// its request as the transaction wrote it: the job posts from it
	// rather than read it again (see handPost).
	post    *Job
	postReq *Request
	// prep is the approval message being prepared (see preparePost) from
	// prepReq, a copy of prepFrom, the request as the transaction wrote it.
	prep     *preparedPost
	prepFrom *Request
	// deferKick: the executor, which the same transaction left jobs to,
	// is woken when the started jobs end (or after deferredKickMax), not
	// at once (see Engine.approve).
	deferKick bool
}

// deferredKickMax bounds how long a deferred wake-up of the executor waits
// for the jobs started by a hand-over: a slow Okta add must not hold back
// the Slack updates of its approval for long.
const deferredKickMax = 100 * time.Millisecond

// newHandoff starts the hand-over of one command's jobs.
func (e *Engine) newHandoff() *handoff { return &handoff{l: e.rt.local.Load()} }

// reset forgets the jobs taken by a previous run of the transaction (the
// store may run it more than once) and gives their slots back.
func (h *handoff) reset() {
	if h == nil {
		return
	}
	for range h.jobs {
		h.l.give()
	}
	h.jobs, h.held, h.heldReq, h.post, h.postReq = nil, nil, nil, nil, nil
	h.prep, h.prepFrom = nil, nil
}

// take leases j, before it is added in the transaction, to this process's
// workers if one is free, and reports whether it did.
func (h *handoff) take(j *Job, now time.Time) bool {
	if h == nil || h.l == nil || !h.l.take() {
		return false
	}
	j.LeaseOwner, j.LeaseUntil, j.LeaseToken = h.l.owner, now.Add(h.l.lease), j.LeaseToken+1
	h.jobs = append(h.jobs, j)
	return true
}

// hold marks grant, a job taken by take, as one whose request r is
// approved with its check recorded in this transaction, under the
// membership lock the caller holds: start hands that lock and a copy of r
// to the job, which then neither reads the request again nor waits for
// the lock before its Okta add. r must not change after hold.
func (h *handoff) hold(grant *Job, r *Request) {
	h.held, h.heldReq = grant, r.Clone()
}

// handPost gives the approval message's job post, taken by this hand-over,
// the request r as its transaction wrote it, once that transaction has
// committed: the job's first attempt posts from it and does not read it
// again. A change committed in between is the same as one committed just
// after the post: it queues its own message update behind the post, in
// the request's lane. r must not change after handPost.
func (h *handoff) handPost(post *Job, r *Request) {
	if h == nil || post == nil || r == nil {
		return
	}
	h.post = post
	if h.prep != nil && h.prepFrom == r {
		h.postReq = h.prep.r // the same as r: r has not changed since
		return
	}
	h.postReq, h.prep = r.Clone(), nil
}

// preparePost starts preparing, on a goroutine of its own, the approval
// message of r, a request the transaction wrote for the post job it took,
// when the notifier can (PostPreparer): the transaction's commit, which
// waits on the disk, then overlaps that work, and the post job's first
// attempt posts the prepared message (see handPost and execSlack). Called
// in the transaction once r is as it will be committed; r must not change
// after it.
func (h *handoff) preparePost(e *Engine, r *Request) {
	pp, ok := e.notifier.(PostPreparer)
	if h == nil || !ok || r.BreakGlass {
		return
	}
	p := &preparedPost{r: r.Clone(), set: e.flowSet(), done: make(chan struct{})}
	h.prep, h.prepFrom = p, r
	go func() {
		defer close(p.done)
		defer func() {
			if v := recover(); v != nil {
				p.msg = nil // posted the usual way, which reports the failure
				e.log().Error("preparing an approval message panicked; the post job renders it again", "request_id", p.r.ID, "panic", fmt.Sprint(v))
			}
		}()
		p.msg = pp.PreparePost(e.flowFor(p.r), p.r)
	}()
}

// preparedPost is an approval message prepared by preparePost: msg is
// PreparePost's result (nil: none) once done is closed, made from the
// flows set and the request r.
type preparedPost struct {
	r    *Request
	set  *flowSet
	done chan struct{}
	msg  PreparedPost
}

// committedKey carries, in a handed-over post job's context, the request
// its transaction wrote (see handPost) and its prepared message, if any.
type committedKey struct{}

type committedPost struct {
	r    *Request
	prep *preparedPost
}

// committedRequest returns the request a handed-over job's transaction
// wrote, if ctx carries request id's.
func committedRequest(ctx context.Context, id string) (*Request, bool) {
	c, ok := ctx.Value(committedKey{}).(committedPost)
	return c.r, ok && c.r != nil && c.r.ID == id
}

// preparedMessage returns the approval message prepared for r, the
// request ctx carries (see committedRequest), if it was prepared from the
// flows in use now (a reload since may have changed its channel or text).
func (e *Engine) preparedMessage(ctx context.Context, r *Request) (PreparedPost, bool) {
	c, ok := ctx.Value(committedKey{}).(committedPost)
	if !ok || c.prep == nil || c.r != r {
		return nil, false
	}
	select {
	case <-c.prep.done: // started before the commit: done by now, or nearly
	case <-ctx.Done():
		return nil, false
	}
	if c.prep.msg == nil || c.prep.set != e.flowSet() {
		return nil, false
	}
	return c.prep.msg, true
}

// start runs the taken jobs once their transaction committed, or gives
// their slots back when it did not. A job committed after Run's context
// ended keeps its lease and is left for the next start.
//
// unlock releases the membership lock the caller took for the
// transaction (nil: none). When the transaction committed a held grant
// (see hold) that starts now, the lock passes to that job, which releases
// it when it ends: from the commit to the Okta add nothing else can take
// the membership, so the request is still as the transaction wrote it.
// Otherwise start releases the lock before any job starts (a grant job
// takes the same lock). It reports whether it started any job.
func (h *handoff) start(e *Engine, committed bool, unlock func()) bool {
	if unlock == nil {
		unlock = func() {}
	}
	if h == nil {
		unlock()
		return false
	}
	running := committed && h.l != nil && h.l.ctx.Err() == nil
	if h.held == nil || !running {
		unlock()
		unlock = nil
	}
	for _, j := range h.jobs {
		if !running {
			h.l.give()
			continue
		}
		var held *heldGrant
		if j == h.held && unlock != nil {
			held = &heldGrant{r: h.heldReq, unlock: unlock}
		}
		ctx := h.l.jobCtx
		if j == h.post {
			ctx = context.WithValue(ctx, committedKey{}, committedPost{r: h.postReq, prep: h.prep})
		}
		var kick *time.Timer
		if h.deferKick {
			kick = time.AfterFunc(deferredKickMax, e.kickExecutor)
		}
		go func() {
			defer h.l.give()
			e.runJobHeld(ctx, *j, held)
			if kick != nil && kick.Stop() {
				e.kickExecutor()
			}
		}()
	}
	started := running && len(h.jobs) > 0
	h.jobs, h.held, h.heldReq, h.post, h.postReq = nil, nil, nil, nil, nil
	h.prep, h.prepFrom = nil, nil
	if started {
		// Let the jobs go first: what the caller does next (answer the
		// person, acknowledge the envelope) can wait, and on a busy
		// machine it would otherwise keep the processor while the job the
		// person waits for (the approval message, the Okta add) waits
		// behind it.
		runtime.Gosched()
	}
	return started
}

// heldGrant is what an approval hands to its grant job: the request as the
// approval committed it, and the membership lock, which the job releases.
type heldGrant struct {
	r      *Request
	unlock func()
}
