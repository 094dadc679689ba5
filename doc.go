// Package symbot is the domain of symbot: flows and their targets, access
// requests and their state machine, the approval policy, the durable-job
// engine and scheduler, the audit chain, and the interfaces that the store,
// Okta, AWS and Slack adapters implement. It imports only the standard library.
//
// Where things live: flows.go (flows, targets, durations, flow lookup),
// request.go (requests and their states), queries.go (reads), policy.go (who
// may decide what), lifecycle.go (submit, approve, deny, cancel, revoke: the
// transactional commands), scheduler.go (deadlines), runner.go (the runtime:
// workers, leases, Run), jobs.go (queueing, completing and retrying jobs),
// membership.go (the Okta grant and revoke jobs), notifier.go (Slack jobs),
// errors.go (domain errors), store.go, directory.go, metrics.go, audit.go.
package symbot
