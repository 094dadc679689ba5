// The Engine: its dependencies, settings and the small helpers every part of
// it shares (clock, logger, audit, wake-ups).

package symbot

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
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
	fs       atomic.Pointer[flowSet] // the flows in effect; SetFlows swaps them

	// Optional settings; set before use. Zero values get defaults.
	Now     func() time.Time // the clock; default time.Now
	Logger  *slog.Logger     // default discards
	Metrics Metrics          // default none

	// IdentityTTL is how long a Slack→Okta binding is trusted before the
	// directory is asked again (and must agree); default 10m.
	IdentityTTL time.Duration

	// GrantCheckTTL is how long the look-ups made while a request waits
	// for approval (its requester's Okta user, and whether they are a
	// member of the group already) stand for the grant's own: approved
	// within it, the grant goes straight to the Okta add. Default 5m; a
	// negative value turns the early look-ups off.
	GrantCheckTTL time.Duration

	// Rules evaluates the flows' rules when a request is made; nil with
	// flows that have rules sends their requests to manual approval. Set
	// it before Run; SetFlows replaces it together with the flows.
	Rules RuleSet

	// ReconcileInterval makes Run reconcile Okta with the grants at start
	// and then this often; 0 leaves it to the caller (Reconcile).
	ReconcileInterval time.Duration

	// Runtime configures Run and RunDueJobs: workers, leases, retries and
	// deadline batches.
	Runtime RuntimeOptions

	// AuditKey seals the audit chain (HMAC-SHA-256); nil keeps the unkeyed
	// SHA-256 chain. Call EnsureAuditKey before serving.
	AuditKey *AuditKey
	// AuditPreviousKeys verify the parts of the chain sealed before the
	// last rotation to AuditKey.
	AuditPreviousKeys []*AuditKey
	// RefusalAuditBurst and RefusalAuditEvery rate-limit the audit entries
	// of refused attempts per person: a burst of RefusalAuditBurst (default
	// 5), then one per RefusalAuditEvery (default 1m); the rest are counted
	// and the count is recorded with the next admitted refusal.
	RefusalAuditBurst int
	RefusalAuditEvery time.Duration

	refusals refusalLimiter

	rt          runner
	reconcileMu sync.Mutex
	// reconcileEvery overrides ReconcileInterval once SetReconcileInterval
	// is called; reconcileWake tells the reconciler its schedule changed.
	reconcileEvery atomic.Int64
	reconcileSoon  atomic.Bool // a pass at once (the flows changed)
	reconcileWake  chan struct{}
	// grantCheckSet holds the GrantCheckTTL that SetGrantCheckTTL set,
	// which overrides the field.
	grantCheckSet atomic.Pointer[time.Duration]
}

// NewEngine validates flows (after applying defaults) and returns an engine.
func NewEngine(st Store, dir Directory, n Notifier, flows []Flow) (*Engine, error) {
	fs, err := newFlowSet(flows)
	if err != nil {
		return nil, err
	}
	e := &Engine{store: st, dir: dir, notifier: n, rt: newRunner(), reconcileWake: make(chan struct{}, 1)}
	e.fs.Store(fs)
	return e, nil
}

// flowSet is one configuration's flows. It is never changed once built:
// SetFlows replaces it whole, so a reader sees one configuration or the
// next, never a mix.
type flowSet struct {
	flows  []Flow
	byName map[string]*Flow // lower-case name -> flows[i]
	// rules compiles these flows' rules; used instead of Engine.Rules
	// once SetFlows has replaced the flows (withRules).
	rules     RuleSet
	withRules bool
}

// newFlowSet copies flows deeply, applies their defaults and validates them.
func newFlowSet(flows []Flow) (*flowSet, error) {
	fs := make([]Flow, len(flows))
	for i, f := range flows {
		f.Durations = slices.Clone(f.Durations)
		f.Targets = slices.Clone(f.Targets)
		f.Approvers.Users = slices.Clone(f.Approvers.Users)
		f.Reason = f.Reason.clone()
		f.BreakGlass = f.BreakGlass.clone()
		f.Escalation = f.Escalation.clone()
		f.Rules = cloneRules(f.Rules)
		for j := range f.Targets {
			t := &f.Targets[j]
			t.Durations = slices.Clone(t.Durations)
			t.Reason = t.Reason.clone()
			t.Rules = cloneRules(t.Rules)
			if t.Approvers != nil {
				a := *t.Approvers
				a.Users = slices.Clone(a.Users)
				t.Approvers = &a
			}
		}
		f.ApplyDefaults()
		fs[i] = f
	}
	if err := ValidateFlows(fs); err != nil {
		return nil, fmt.Errorf("invalid flows: %w", err)
	}
	set := &flowSet{flows: fs, byName: map[string]*Flow{}}
	for i := range set.flows {
		set.byName[strings.ToLower(set.flows[i].Name)] = &set.flows[i]
	}
	return set, nil
}

// flowSet returns the flows in effect now.
func (e *Engine) flowSet() *flowSet { return e.fs.Load() }

// SetFlows replaces the flows, validated as NewEngine validates them, and
// the RuleSet compiled from them (nil when they have no rules), together:
// a request is never judged by one configuration's flows and another's
// rules. On an error nothing changes. Requests made from then on use the
// new flows. A request already made keeps what it asked for, stored with
// it (flow and target names, Okta group, duration, reason, approval
// deadline, expiry, and the approvers a rule required); who may decide it
// and how many approvals it needs are otherwise the flows' in effect when
// it is decided. Approving it is refused when its target now grants
// another Okta group, or allows no duration as long as it asked for, and
// deciding it at all when its flow or target is gone (NotConfiguredError).
func (e *Engine) SetFlows(flows []Flow, rules RuleSet) error {
	fs, err := newFlowSet(flows)
	if err != nil {
		return err
	}
	fs.rules, fs.withRules = rules, true
	e.fs.Store(fs)
	e.kickReconciler(true)
	return nil
}

// ruleSet is the RuleSet of the flows in effect.
func (e *Engine) ruleSet() RuleSet {
	if fs := e.flowSet(); fs.withRules {
		return fs.rules
	}
	return e.Rules
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

// change is one state change of a request, as apply writes it.
type change struct {
	to     State
	by     string // Slack user id, "admin", or System
	note   string // on the transition
	action string // the audit action; default "state:" + to
	detail string // the audit detail
	jobs   []*Job // queued in this order
}

// apply moves r to c.to in tx, the one way every state change is written:
// it records the transition, clears the approval deadline once r leaves
// pending, marks ended access as removed unless c queues a revoke job,
// saves r, audits the change and queues c's jobs.
func (e *Engine) apply(tx Tx, now time.Time, r *Request, c change) error {
	from := r.State
	if err := r.transition(c.to, c.by, now, c.note); err != nil {
		return err
	}
	if from == StatePending {
		r.TimeoutAt = time.Time{}
		r.NudgeAt = time.Time{} // decided: no more escalation or reminders
	}
	switch c.to {
	case StateExpired, StateRevoked, StateFailed:
		r.Removed = !slices.ContainsFunc(c.jobs, func(j *Job) bool { return j.Kind == JobRevoke })
	}
	if err := tx.PutRequest(r); err != nil {
		return err
	}
	action := c.action
	if action == "" {
		action = "state:" + string(c.to)
	}
	if err := e.audit(tx, now, r.ID, c.by, action, c.detail); err != nil {
		return err
	}
	return e.addJobs(tx, now, c.jobs...)
}

// audit appends one audit entry in tx.
func (e *Engine) audit(tx Tx, now time.Time, id, actor, action, detail string) error {
	return AppendAudit(tx, e.AuditKey, &AuditEntry{At: now, RequestID: id, Actor: actor, Action: action, Detail: detail})
}
