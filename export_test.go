package symbot

// SetPoppedHook makes e's executor call f when a worker takes a job from
// its queue, before the worker renews the job's lease. Set it before Run.
func SetPoppedHook(e *Engine, f func(j Job)) { e.rt.popped = f }

// KickExecutor wakes e's executor, as a change that adds jobs does.
func KickExecutor(e *Engine) { e.kickExecutor() }
