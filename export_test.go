package symbot

import "time"

// SetPoppedHook makes e's executor call f when a worker takes a job from
// its queue, before the worker renews the job's lease. Set it before Run.
func SetPoppedHook(e *Engine, f func(j Job)) { e.rt.popped = f }

// KickExecutor wakes e's executor, as a change that adds jobs does.
func KickExecutor(e *Engine) { e.kickExecutor() }

// SetPrecheckQuiet replaces precheckQuiet and precheckMaxWait for e's
// early look-ups. Set it before Run.
func SetPrecheckQuiet(e *Engine, quiet, most time.Duration) {
	e.rt.precheckQuiet, e.rt.precheckMaxWait = quiet, most
}

// NoteIntake records an intake, as a request, approval or denial does.
func NoteIntake(e *Engine) { e.noteIntake() }

// SetPrecheckHandledHook makes e's look-up workers call f with the id of
// each request they have taken from the queue and looked up for (or
// skipped), before its record is written. Set it before Run.
func SetPrecheckHandledHook(e *Engine, f func(id string)) { e.rt.precheckHandled = f }

// LastIntake returns when e last noted an intake (0: never), on its own
// clock.
func LastIntake(e *Engine) time.Duration { return time.Duration(e.rt.lastIntake.Load()) }
