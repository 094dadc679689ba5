// The Okta membership jobs: grant and revoke, serialised per (person,
// group), never removing a membership another grant or the person's own
// prior membership still needs.

package symbot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

const resolvePrefix = "resolve Okta user: "

func membershipKey(uid, gid string) string { return uid + "|" + gid }

// lockMembership takes the lock of one (person, group) membership: the
// store's, when it is shared by several processes (MembershipLocker), else
// the engine's own in-process lock.
func (e *Engine) lockMembership(ctx context.Context, key string) (func(), error) {
	if l, ok := e.store.(MembershipLocker); ok {
		unlock, err := l.LockMembership(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("take the membership lock: %w", err)
		}
		return unlock, nil
	}
	return e.rt.locks.Lock(key), nil
}

// tryLockMembership takes the lock of one (person, group) membership if it
// is free, without waiting; ok is false when it is held, or when the store
// is shared by several processes and cannot try its lock.
func (e *Engine) tryLockMembership(ctx context.Context, key string) (unlock func(), ok bool) {
	if _, shared := e.store.(MembershipLocker); shared {
		tl, can := e.store.(MembershipTryLocker)
		if !can {
			return nil, false
		}
		unlock, ok, err := tl.TryLockMembership(ctx, key)
		if err != nil {
			e.log().Warn("try the membership lock", "err", err)
			return nil, false
		}
		return unlock, ok
	}
	return e.rt.locks.TryLock(key)
}

// resolveRequester finds r's requester in the directory, for the grant:
// through the binding, asking the directory now, so that access goes only
// to the Okta user the requester's account is bound to. late: see
// resolveBound.
func (e *Engine) resolveRequester(ctx context.Context, r *Request, late bool) (DirUser, error) {
	u, _, err := e.resolveBound(ctx, r.Requester, true, late)
	if err != nil {
		return DirUser{}, resolveError(err)
	}
	return u, nil
}

// resolveError is the error of a failed look-up of a requester's Okta
// user, for a job: an identity conflict is permanent (retrying does not
// clear it), anything else is retried, prefixed with resolvePrefix.
func resolveError(err error) error {
	var ce *IdentityConflictError
	if errors.As(err, &ce) {
		return Permanent(err)
	}
	return fmt.Errorf(resolvePrefix+"%w", err)
}

// priorMembership says whether r's requester (Okta user uid) is a member of
// r's group for a reason other than r: another of their requests holds
// the membership (and knows whether it was there before symbot), else Okta
// says. The holders are first looked for among the requester's open
// requests (Tx.OpenRequests), so the common grant reads no history. Only
// when Okta says the person is a member and no open request explains it
// can an ended grant whose removal is still pending be the reason (its
// membership must not count as one the person had before symbot, or it
// would never be removed): only then is their history read. The caller
// holds the membership lock.
func (e *Engine) priorMembership(ctx context.Context, r *Request, uid string) (bool, error) {
	read := func(open bool) ([]*Request, error) {
		var rs []*Request
		var err error
		if open {
			rs, err = e.openRequests(ctx, r.Requester.SlackID)
		} else {
			err = e.store.View(ctx, func(tx Tx) error {
				rs, err = tx.RequestsByRequester(r.Requester.SlackID)
				return err
			})
		}
		if err != nil {
			return nil, err
		}
		return others(rs, r, uid, (*Request).Holding), nil
	}
	anyPre := func(hs []*Request) bool {
		pre := false
		for _, h := range hs {
			pre = pre || h.Preexisting
		}
		return pre
	}
	holders, err := read(true)
	if err != nil {
		return false, err
	}
	if len(holders) > 0 {
		return anyPre(holders), nil
	}
	member, err := e.dir.IsMember(ctx, uid, r.GroupID)
	if err != nil {
		return false, fmt.Errorf("check existing membership: %w", err)
	}
	if !member {
		return false, nil
	}
	if holders, err = read(false); err != nil {
		return false, err
	}
	if len(holders) > 0 {
		return anyPre(holders), nil
	}
	return true, nil
}

// others returns those of rs, requests of r's requester, that are other
// requests for the same Okta user and group and satisfy keep. The
// requester's non-final requests (Tx.OpenRequests) are enough when keep
// holds only for non-final states (Needs); Holding also holds for ended
// requests whose membership was not yet removed, so it needs the history
// (Tx.RequestsByRequester).
func others(rs []*Request, r *Request, uid string, keep func(*Request) bool) []*Request {
	var out []*Request
	for _, o := range rs {
		if o.ID != r.ID && o.GroupID == r.GroupID && o.OktaUserID == uid && keep(o) {
			out = append(out, o)
		}
	}
	return out
}

// execGrant runs a grant job. held, when not nil, is what the approval
// that handed the job over holds for it (see handoff.hold): the request as
// it committed it, under the membership lock, which runJobHeld releases.
func (e *Engine) execGrant(ctx context.Context, j Job, held *heldGrant) error {
	var r *Request
	var uid, login string
	if held != nil {
		// The approval took the lock before its transaction and has held
		// it since, so the request is still approved with its check
		// recorded, as that transaction wrote it.
		r = held.r
		uid, login = r.OktaUserID, r.OktaLogin
	} else {
		var err error
		r, err = e.Get(ctx, j.RequestID)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return e.complete(ctx, j, "request gone", nil)
			}
			return err
		}
		if r.State != StateApproved {
			return e.complete(ctx, j, "nothing to do: request is "+string(r.State), nil)
		}
		uid, login = r.OktaUserID, r.OktaLogin
		if !r.GrantChecked {
			u, err := e.resolveRequester(ctx, r, false)
			if err != nil {
				return err
			}
			uid, login = u.ID, u.Login
		}
		unlock, err := e.lockMembership(ctx, membershipKey(uid, r.GroupID))
		if err != nil {
			return err
		}
		defer unlock()
		// Re-read under the lock: a revocation of an approved request whose
		// check is recorded takes this lock too, so from here on the state
		// cannot move away from approved until this job is done.
		if r, err = e.Get(ctx, j.RequestID); err != nil {
			return err
		}
		if r.State != StateApproved {
			return e.complete(ctx, j, "nothing to do: request is "+string(r.State), nil)
		}
	}

	var err error
	recheck := false
	if r.GrantChecked && r.Preexisting {
		// A membership found earlier (by the look-up made while the
		// request waited, or by an attempt before a restart) may have been
		// taken away since: then it is symbot's to add, and to remove.
		if ok, err := e.dir.IsMember(ctx, uid, r.GroupID); err != nil {
			return fmt.Errorf("check existing membership: %w", err)
		} else if !ok {
			recheck = true
		}
	}
	if !r.GrantChecked || recheck {
		// Record whether the person was already a member, before adding.
		pre := false
		if !recheck {
			if pre, err = e.priorMembership(ctx, r, uid); err != nil {
				return err
			}
		}
		now := e.now()
		err = e.store.Update(ctx, func(tx Tx) error {
			cur, err := tx.Request(r.ID)
			if err != nil {
				return err
			}
			if cur.State != StateApproved {
				r = cur
				return nil
			}
			cur.OktaUserID, cur.OktaLogin = uid, login
			cur.GrantChecked, cur.Preexisting = true, pre
			if err := tx.PutRequest(cur); err != nil {
				return err
			}
			r = cur
			return e.audit(tx, now, r.ID, System, "grant:checked", fmt.Sprintf("okta_user=%s member_before=%t", uid, pre))
		})
		if err != nil {
			return err
		}
		if r.State != StateApproved {
			return e.complete(ctx, j, "nothing to do: request is "+string(r.State), nil)
		}
	}
	if !r.Preexisting {
		if err := e.dir.AddMember(ctx, uid, r.GroupID); err != nil {
			return fmt.Errorf("add user to group: %w", err)
		}
	}
	f := e.flowFor(r)
	var latency time.Duration
	granted := false
	err = e.complete(ctx, j, fmt.Sprintf("okta_user=%s group=%s", uid, r.GroupID), func(tx Tx, now time.Time) error {
		granted = false // the store may run this more than once
		cur, err := tx.Request(r.ID)
		if err != nil {
			return err
		}
		if cur.State != StateApproved {
			return nil
		}
		granted = true
		cur.GrantedAt = now
		cur.ExpiresAt = now.Add(cur.Duration)
		cur.WarnAt = warnAt(f, now, cur.ExpiresAt)
		for _, t := range cur.Transitions {
			if t.To == StateApproved {
				latency = now.Sub(t.At)
			}
		}
		return e.apply(tx, now, cur, change{to: StateActive, by: System, detail: "expires " + cur.ExpiresAt.UTC().Format(time.RFC3339), jobs: []*Job{
			{Kind: JobUpdate, RequestID: cur.ID, Event: EventGranted},
			{Kind: JobNotify, RequestID: cur.ID, Event: EventGranted, To: cur.Requester.SlackID},
		}})
	})
	if err != nil {
		return err
	}
	if !granted {
		return nil
	}
	e.kick() // a new expiry may be the next deadline
	e.observe(r.Flow, StateActive)
	if e.Metrics != nil {
		e.Metrics.GrantLatency(r.Flow, latency)
	}
	e.log().Info("access granted", "request_id", r.ID, "okta_user", uid, "group", r.GroupID, "preexisting", r.Preexisting)
	return nil
}

func (e *Engine) execRevoke(ctx context.Context, j Job) error {
	// The request as the job's claim read it, if it did, will do: the
	// claim saw the transaction that queued this job, and what is read
	// here before the lock does not change after that but Removed, which
	// the outcome checks again (see RequestClaimer).
	r, claimed := claimedRequest(ctx, j.RequestID)
	var err error
	if !claimed {
		r, err = e.Get(ctx, j.RequestID)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return e.complete(ctx, j, "request gone", nil)
			}
			return err
		}
	}
	if r.Removed || !(r.State == StateExpired || r.State == StateRevoked || r.State == StateFailed) {
		return e.complete(ctx, j, "nothing to do", nil)
	}
	note, kept := "", false
	if !r.GrantChecked || r.OktaUserID == "" {
		note = "nothing to remove: the membership was never added"
	} else {
		unlock, err := e.lockMembership(ctx, membershipKey(r.OktaUserID, r.GroupID))
		if err != nil {
			return err
		}
		defer unlock()
		// Read after the lock is taken: a grant of this membership that
		// committed before (it holds the lock until it has) is seen.
		open, err := e.openRequests(ctx, r.Requester.SlackID)
		if err != nil {
			return err
		}
		needers := others(open, r, r.OktaUserID, (*Request).Needs)
		switch {
		case len(needers) > 0:
			note, kept = "another active grant ("+needers[0].ID+") still needs it", true
		case r.Preexisting:
			note, kept = "the person was a member before symbot granted access", true
		default:
			err := e.dir.RemoveMember(ctx, r.OktaUserID, r.GroupID)
			switch {
			case errors.Is(err, ErrUserNotFound), errors.Is(err, ErrGroupNotFound):
				note = "already gone: " + errText(err)
			case err != nil:
				return fmt.Errorf("remove user from group: %w", err)
			default:
				note = "removed from Okta group " + r.GroupID
			}
		}
	}
	// Okta is done with: the worker may take the next job while this one
	// records the outcome (still under the membership lock, with its
	// lease checked).
	releaseWorker(ctx)
	var lag time.Duration
	err = e.complete(ctx, j, note, func(tx Tx, now time.Time) error {
		cur, err := tx.Request(r.ID)
		if err != nil {
			return err
		}
		if cur.Removed {
			return nil
		}
		cur.Removed = true
		cur.Kept = kept
		cur.RemovalNote = note
		cur.UpdatedAt = now
		if t, ok := cur.LastTransition(); ok {
			lag = now.Sub(t.At)
		}
		if cur.State == StateExpired && !cur.ExpiresAt.IsZero() {
			lag = now.Sub(cur.ExpiresAt) // includes any scheduler lag
		}
		if err := tx.PutRequest(cur); err != nil {
			return err
		}
		if j.Alerted {
			// The operators were told this removal was stuck: tell them it
			// is done.
			if err := e.addJob(tx, now, &Job{Kind: JobAlert, RequestID: cur.ID, Event: EventRevokeOK,
				Text: fmt.Sprintf("All clear: removing access for request %s (%s in Okta group %s) succeeded after %d failed attempt(s): %s.", cur.ID, cur.OktaLogin, cur.GroupID, j.Attempts, note)}); err != nil {
				return err
			}
		}
		if cur.State == StateFailed {
			return nil
		}
		return e.addJobs(tx, now,
			&Job{Kind: JobUpdate, RequestID: cur.ID, Event: EventRemoved},
			&Job{Kind: JobNotify, RequestID: cur.ID, Event: EventRemoved, To: cur.Requester.SlackID},
		)
	})
	if err != nil {
		return err
	}
	if e.Metrics != nil {
		e.Metrics.RevokeLag(lag)
	}
	e.log().Info("access removed", "request_id", r.ID, "note", note)
	return nil
}

// keyedMutex serialises grant and revoke jobs of one (user, group) pair so
// that the check of who still needs a membership and the Okta call that
// follows cannot interleave with another job on the same membership.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// TryLock takes the lock of key if no one holds or waits for it.
func (k *keyedMutex) TryLock(key string) (func(), bool) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	if k.m[key] != nil {
		k.mu.Unlock()
		return nil, false
	}
	ent := &keyedEntry{refs: 1}
	ent.mu.Lock()
	k.m[key] = ent
	k.mu.Unlock()
	return k.unlocker(key, ent), true
}

func (k *keyedMutex) Lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	ent := k.m[key]
	if ent == nil {
		ent = &keyedEntry{}
		k.m[key] = ent
	}
	ent.refs++
	k.mu.Unlock()
	ent.mu.Lock()
	return k.unlocker(key, ent)
}

// unlocker releases ent, held under key, and forgets key once no one
// holds or waits for it.
func (k *keyedMutex) unlocker(key string, ent *keyedEntry) func() {
	return func() {
		ent.mu.Unlock()
		k.mu.Lock()
		ent.refs--
		if ent.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
