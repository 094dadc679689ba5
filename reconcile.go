// The reconciler: symbot is not the only writer of Okta groups. It lists
// every target group's members and compares them with the grants:
// unmanaged members, grants whose membership vanished, and ended grants
// whose membership survived.

package symbot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DriftKind names one kind of difference between Okta and the grants.
type DriftKind string

// Drift kinds.
const (
	// DriftStanding: a member found at the group's first reconcile,
	// recorded as standing (never removed, never alerted about again).
	DriftStanding DriftKind = "standing"
	// DriftUnmanaged: a member with no grant who was not standing.
	DriftUnmanaged DriftKind = "unmanaged"
	// DriftVanished: an active grant whose membership is gone; the grant
	// ends as removed outside symbot.
	DriftVanished DriftKind = "vanished"
	// DriftSurvived: an ended grant whose membership is still there with
	// no other holder; its removal is queued again.
	DriftSurvived DriftKind = "survived"
)

// DriftKinds lists every kind, in report order.
var DriftKinds = []DriftKind{DriftStanding, DriftUnmanaged, DriftVanished, DriftSurvived}

// Drift is one difference the reconciler found, and what it did.
type Drift struct {
	Kind      DriftKind
	GroupID   string
	Flow      string // the flow and target the group belongs to
	Target    string
	UserID    string // Okta user id
	Login     string // Okta login, when known
	RequestID string // the grant concerned (vanished, survived)
	// Action is what was done: "recorded", "alerted", "removed",
	// "ignored", "already alerted", "grant ended", "removal queued", or
	// with DryRun "would ..." of the same.
	Action string
}

// ReconcileReport is what one reconcile pass found.
type ReconcileReport struct {
	Started        time.Time
	Duration       time.Duration
	DryRun         bool
	Groups         int // target groups listed
	MembersChecked int
	Drift          []Drift
	// Errors are the groups that could not be reconciled (their listing
	// failed), in words for operators.
	Errors []string
}

// Count returns how many drifts of kind k the pass found.
func (r *ReconcileReport) Count(k DriftKind) int {
	n := 0
	for _, d := range r.Drift {
		if d.Kind == k {
			n++
		}
	}
	return n
}

// ReconcileMetrics is implemented by a Metrics that also records reconcile
// passes.
type ReconcileMetrics interface {
	Reconciled(r *ReconcileReport)
}

// targetGroup is one Okta group a flow grants, with its policy.
type targetGroup struct {
	GroupID string
	Flow    string
	Target  string
	Policy  UnmanagedPolicy
}

// targetGroups returns every group that is the target of a flow, once
// (the first flow that names it decides the policy).
func (e *Engine) targetGroups() []targetGroup {
	var out []targetGroup
	seen := map[string]bool{}
	for _, f := range e.Flows() {
		for _, t := range f.Targets {
			if seen[t.GroupID] {
				continue
			}
			seen[t.GroupID] = true
			p := t.UnmanagedMembers
			if p == "" {
				p = f.UnmanagedMembers
			}
			if p == "" {
				p = UnmanagedAlert
			}
			out = append(out, targetGroup{GroupID: t.GroupID, Flow: f.Name, Target: t.Name, Policy: p})
		}
	}
	return out
}

// Reconcile runs one pass over every target group: it lists the group's
// members (one paged listing per group) and compares them with the grants.
// With dryRun it changes nothing and reports what it would do. Groups whose
// listing fails are reported in ReconcileReport.Errors and the returned
// error; the other groups are still reconciled.
func (e *Engine) Reconcile(ctx context.Context, dryRun bool) (*ReconcileReport, error) {
	e.reconcileMu.Lock() // one pass at a time
	defer e.reconcileMu.Unlock()
	start := e.now()
	rep := &ReconcileReport{Started: start, DryRun: dryRun}
	var errs []error
	for _, g := range e.targetGroups() {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("reconcile: %w", err)
		}
		listedAt := e.now()
		members, err := e.dir.ListMembers(ctx, g.GroupID)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("group %s (%s/%s): %s", g.GroupID, g.Flow, g.Target, errText(err)))
			errs = append(errs, fmt.Errorf("list members of %s: %w", g.GroupID, err))
			continue
		}
		rep.Groups++
		rep.MembersChecked += len(members)
		if err := e.reconcileGroup(ctx, g, members, listedAt, dryRun, rep); err != nil {
			if errors.Is(err, ErrNoRecords) {
				return rep, fmt.Errorf("reconcile: %w", err)
			}
			rep.Errors = append(rep.Errors, fmt.Sprintf("group %s (%s/%s): %s", g.GroupID, g.Flow, g.Target, errText(err)))
			errs = append(errs, fmt.Errorf("reconcile group %s: %w", g.GroupID, err))
		}
	}
	rep.Duration = e.now().Sub(start)
	if m, ok := e.Metrics.(ReconcileMetrics); ok && !dryRun {
		m.Reconciled(rep)
	}
	args := []any{"dry_run", dryRun, "groups", rep.Groups, "members_checked", rep.MembersChecked, "duration", rep.Duration, "errors", len(rep.Errors)}
	for _, k := range DriftKinds {
		args = append(args, "drift_"+string(k), rep.Count(k))
	}
	if len(rep.Errors) > 0 {
		e.log().Warn("reconcile pass done with errors", append(args, "first_error", rep.Errors[0])...)
	} else {
		e.log().Info("reconcile pass done", args...)
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("reconcile: %w", errors.Join(errs...))
	}
	return rep, nil
}

// reconcileGroup compares one group's members (listed at listedAt) with
// the grants and acts on the differences.
func (e *Engine) reconcileGroup(ctx context.Context, g targetGroup, members []DirUser, listedAt time.Time, dryRun bool, rep *ReconcileReport) error {
	byID := make(map[string]DirUser, len(members))
	for _, m := range members {
		byID[m.ID] = m
	}
	var (
		rec      *groupRecord
		holders  = map[string]string{} // uid -> an active or in-flight grant
		pending  = map[string]bool{}   // uid with an ended grant whose removal is queued
		recent   = map[string]bool{}   // uid whose grant changed after the listing: judge next pass
		vanished []*Request
	)
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		if rec, err = loadRecord(tx, g.GroupID); err != nil {
			return err
		}
		for _, s := range []State{StateActive, StateApproved} {
			rs, err := tx.RequestsByState(s)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.GroupID != g.GroupID || !r.GrantChecked || r.OktaUserID == "" {
					continue
				}
				holders[r.OktaUserID] = r.ID
				if !r.UpdatedAt.Before(listedAt) {
					recent[r.OktaUserID] = true
				}
				if r.State == StateActive && r.GrantedAt.Before(listedAt) && !recent[r.OktaUserID] {
					if _, ok := byID[r.OktaUserID]; !ok {
						vanished = append(vanished, r)
					}
				}
			}
		}
		jobs, err := tx.Jobs()
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.Kind != JobRevoke {
				continue
			}
			r, err := tx.Request(j.RequestID)
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			if r.GroupID == g.GroupID && r.OktaUserID != "" {
				pending[r.OktaUserID] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// A grant that is still needed by another active grant of the same
	// person is not vanished twice: judge each request on its own.
	type survivor struct {
		uid, login, reqID string
	}
	var (
		first      = rec.Initialized.IsZero()
		standing   []DirUser
		unmanaged  []DirUser
		survivors  []survivor
		prevManage = rec.Managed
	)
	for _, m := range members {
		uid := m.ID
		if holders[uid] != "" || pending[uid] || recent[uid] {
			continue
		}
		if _, ok := rec.Standing[uid]; ok {
			continue
		}
		if first {
			standing = append(standing, m)
			continue
		}
		if id, ok := prevManage[uid]; ok {
			survivors = append(survivors, survivor{uid: uid, login: m.Login, reqID: id})
			continue
		}
		unmanaged = append(unmanaged, m)
	}
	// Requests of survivors: only an ended grant whose removal is done
	// (not kept on purpose) is a survivor; anything else is unmanaged.
	var requeue []survivor
	if len(survivors) > 0 {
		err := e.store.View(ctx, func(tx Tx) error {
			for _, s := range survivors {
				r, err := tx.Request(s.reqID)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				if err == nil && r.State.Final() && r.Removed && !r.Kept && r.OktaUserID == s.uid && r.UpdatedAt.Before(listedAt) {
					requeue = append(requeue, s)
					continue
				}
				unmanaged = append(unmanaged, byID[s.uid])
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	would := func(a string) string {
		if dryRun {
			return "would " + a
		}
		return a
	}
	add := func(d Drift) {
		d.GroupID, d.Flow, d.Target = g.GroupID, g.Flow, g.Target
		rep.Drift = append(rep.Drift, d)
	}
	for _, m := range standing {
		add(Drift{Kind: DriftStanding, UserID: m.ID, Login: m.Login, Action: would("record")})
	}
	for _, r := range vanished {
		add(Drift{Kind: DriftVanished, UserID: r.OktaUserID, Login: r.OktaLogin, RequestID: r.ID, Action: would("end the grant")})
	}
	for _, s := range requeue {
		add(Drift{Kind: DriftSurvived, UserID: s.uid, Login: s.login, RequestID: s.reqID, Action: would("queue the removal again")})
	}
	var toRemove []DirUser
	for _, m := range unmanaged {
		action := ""
		switch {
		case g.Policy == UnmanagedIgnore:
			action = "ignored"
		case g.Policy == UnmanagedRemove:
			action = would("remove")
			toRemove = append(toRemove, m)
		case !rec.Alerted[m.ID].IsZero():
			action = "already alerted"
		default:
			action = would("alert")
		}
		add(Drift{Kind: DriftUnmanaged, UserID: m.ID, Login: m.Login, Action: action})
	}
	if dryRun {
		return nil
	}
	if !first && len(vanished) == 0 && len(requeue) == 0 && !recordChanged(rec, byID, holders, unmanaged, g.Policy) {
		return nil // nothing to write: the common pass
	}

	// Take away unmanaged memberships first (outside the transaction: it
	// is a call to Okta), each under the membership lock with the holders
	// checked again, so a grant made meanwhile is never undone.
	removed := map[string]error{}
	for _, m := range toRemove {
		removed[m.ID] = e.removeUnmanaged(ctx, m.ID, g.GroupID)
	}

	now := e.now()
	var kick bool
	err = e.store.Update(ctx, func(tx Tx) error {
		kick = false
		rec, err := loadRecord(tx, g.GroupID)
		if err != nil {
			return err
		}
		if rec.Initialized.IsZero() {
			rec.Initialized = now
			for _, m := range standing {
				rec.Standing[m.ID] = standingEntry{Login: m.Login, Since: now}
			}
			if len(standing) > 0 {
				if err := e.audit(tx, now, "", System, "reconcile:standing", fmt.Sprintf("group=%s members=%d", g.GroupID, len(standing))); err != nil {
					return err
				}
				if err := e.addJob(tx, now, &Job{Kind: JobAlert, Event: EventDrift, Text: standingText(g, standing)}); err != nil {
					return err
				}
				kick = true
			}
		}
		// Forget standing and alerted members who left: if they come back
		// by hand, they are unmanaged then.
		for uid := range rec.Standing {
			if _, ok := byID[uid]; !ok {
				delete(rec.Standing, uid)
			}
		}
		for uid := range rec.Alerted {
			if _, ok := byID[uid]; !ok {
				delete(rec.Alerted, uid)
			}
		}
		for _, r := range vanished {
			cur, err := tx.Request(r.ID)
			if err != nil {
				return err
			}
			if cur.State != StateActive || !cur.GrantedAt.Equal(r.GrantedAt) || !cur.UpdatedAt.Before(listedAt) {
				continue // it moved on since the listing
			}
			note := "the Okta membership was removed outside symbot"
			if err := cur.transition(StateRemovedOutside, System, now, note); err != nil {
				return err
			}
			cur.Removed, cur.RemovalNote = true, "removed outside symbot"
			if err := tx.PutRequest(cur); err != nil {
				return err
			}
			if err := e.audit(tx, now, cur.ID, System, "state:removed_outside", fmt.Sprintf("okta_user=%s group=%s", cur.OktaUserID, cur.GroupID)); err != nil {
				return err
			}
			if err := e.addJobs(tx, now,
				&Job{Kind: JobUpdate, RequestID: cur.ID, Event: EventRemovedOutside},
				&Job{Kind: JobNotify, RequestID: cur.ID, Event: EventRemovedOutside, To: cur.Requester.SlackID},
			); err != nil {
				return err
			}
			kick = true
		}
		for _, s := range requeue {
			cur, err := tx.Request(s.reqID)
			if err != nil {
				return err
			}
			if !cur.State.Final() || !cur.Removed || cur.Kept {
				continue
			}
			cur.Removed, cur.RemovalNote = false, ""
			cur.UpdatedAt = now
			if err := tx.PutRequest(cur); err != nil {
				return err
			}
			if err := e.audit(tx, now, cur.ID, System, "reconcile:removal-requeued", fmt.Sprintf("okta_user=%s group=%s: the membership survived the end of the grant", s.uid, g.GroupID)); err != nil {
				return err
			}
			if err := e.addJobs(tx, now,
				&Job{Kind: JobRevoke, RequestID: cur.ID},
				&Job{Kind: JobAlert, RequestID: cur.ID, Event: EventDrift, Text: fmt.Sprintf("Okta group %s (%s/%s): %s (%s) is still a member although request %s ended and its removal was done; the removal is queued again.", g.GroupID, g.Flow, g.Target, orID(s.login, s.uid), s.uid, cur.ID)},
			); err != nil {
				return err
			}
			kick = true
		}
		for _, m := range unmanaged {
			if g.Policy == UnmanagedIgnore {
				continue
			}
			if g.Policy == UnmanagedRemove {
				rerr := removed[m.ID]
				detail := fmt.Sprintf("group=%s okta_user=%s login=%s policy=remove", g.GroupID, m.ID, m.Login)
				text := fmt.Sprintf("Okta group %s (%s/%s): %s (%s) was a member with no symbot grant; the membership was removed (unmanaged_members: remove).", g.GroupID, g.Flow, g.Target, orID(m.Login, m.ID), m.ID)
				action := "reconcile:unmanaged-removed"
				if rerr != nil {
					action = "reconcile:unmanaged-remove-failed"
					detail += ": " + errText(rerr)
					text = fmt.Sprintf("Okta group %s (%s/%s): %s (%s) is a member with no symbot grant; removing it failed (%s); the next pass tries again.", g.GroupID, g.Flow, g.Target, orID(m.Login, m.ID), m.ID, errText(rerr))
				}
				if err := e.audit(tx, now, "", System, action, detail); err != nil {
					return err
				}
				if rerr == nil || rec.Alerted[m.ID].IsZero() {
					if err := e.addJob(tx, now, &Job{Kind: JobAlert, Event: EventDrift, Text: text}); err != nil {
						return err
					}
					kick = true
				}
				if rerr != nil {
					rec.Alerted[m.ID] = now
				} else {
					delete(rec.Alerted, m.ID)
					// The person is told, found by their email.
					if to := memberEmail(m); to != "" {
						if err := e.addJob(tx, now, &Job{Kind: JobNotify, Event: EventUnmanagedRemoved, To: to, Text: g.Flow + "/" + g.Target}); err != nil {
							return err
						}
						kick = true
					}
				}
				continue
			}
			if !rec.Alerted[m.ID].IsZero() {
				continue
			}
			rec.Alerted[m.ID] = now
			if err := e.audit(tx, now, "", System, "reconcile:unmanaged", fmt.Sprintf("group=%s okta_user=%s login=%s policy=alert", g.GroupID, m.ID, m.Login)); err != nil {
				return err
			}
			if err := e.addJob(tx, now, &Job{Kind: JobAlert, Event: EventDrift, Text: fmt.Sprintf("Okta group %s (%s/%s): %s (%s) is a member with no symbot grant (added outside symbot?). Nothing was changed (unmanaged_members: alert).", g.GroupID, g.Flow, g.Target, orID(m.Login, m.ID), m.ID)}); err != nil {
				return err
			}
			kick = true
		}
		rec.Managed = map[string]string{}
		for uid, id := range holders {
			rec.Managed[uid] = id
		}
		return saveRecord(tx, g.GroupID, rec)
	})
	if err != nil {
		return err
	}
	if kick {
		e.kickExecutor()
	}
	for range vanished {
		e.observe(g.Flow, StateRemovedOutside)
	}
	return nil
}

// recordChanged reports whether a pass with no other drift would change
// the group's record: someone standing or alerted left, an unmanaged
// member needs an alert or a removal, or the holders changed.
func recordChanged(rec *groupRecord, members map[string]DirUser, holders map[string]string, unmanaged []DirUser, p UnmanagedPolicy) bool {
	for uid := range rec.Standing {
		if _, ok := members[uid]; !ok {
			return true
		}
	}
	for uid := range rec.Alerted {
		if _, ok := members[uid]; !ok {
			return true
		}
	}
	for _, m := range unmanaged {
		if p == UnmanagedRemove || (p != UnmanagedIgnore && rec.Alerted[m.ID].IsZero()) {
			return true
		}
	}
	if len(rec.Managed) != len(holders) {
		return true
	}
	for uid, id := range holders {
		if rec.Managed[uid] != id {
			return true
		}
	}
	return false
}

// memberEmail is the email a directory user is reached by: their email,
// else a login that is one; "" when they have neither.
func memberEmail(m DirUser) string {
	if m.Email != "" {
		return m.Email
	}
	if strings.Contains(m.Login, "@") {
		return m.Login
	}
	return ""
}

// removeUnmanaged takes uid out of gid unless a grant holds it by now.
func (e *Engine) removeUnmanaged(ctx context.Context, uid, gid string) error {
	unlock := e.rt.locks.Lock(membershipKey(uid, gid))
	defer unlock()
	held := false
	err := e.store.View(ctx, func(tx Tx) error {
		held = false
		for _, s := range []State{StateActive, StateApproved} {
			rs, err := tx.RequestsByState(s)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.GroupID == gid && r.OktaUserID == uid && r.GrantChecked {
					held = true
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if held {
		return errors.New("a grant holds the membership now")
	}
	if err := e.dir.RemoveMember(ctx, uid, gid); err != nil && !errors.Is(err, ErrUserNotFound) {
		return fmt.Errorf("remove unmanaged member: %w", err)
	}
	return nil
}

func orID(login, id string) string {
	if login != "" {
		return login
	}
	return id
}

// runReconciler reconciles at once and then every interval until ctx ends.
func (e *Engine) runReconciler(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.reconcileWake:
			// The flows changed: a pass now, so that new target groups
			// get their standing members recorded before grants of them
			// pile up. The interval changed: the next pass comes a new
			// interval from now.
			if !e.reconcileSoon.Swap(false) {
				t.Reset(e.reconcileInterval())
				continue
			}
		case <-t.C:
		}
		if _, err := e.Reconcile(ctx, false); err != nil && ctx.Err() == nil {
			e.log().Warn("reconcile failed", "err", err)
		}
		t.Reset(e.reconcileInterval())
	}
}

// reconcileInterval is the interval in effect: SetReconcileInterval's, or
// ReconcileInterval.
func (e *Engine) reconcileInterval() time.Duration {
	if d := time.Duration(e.reconcileEvery.Load()); d > 0 {
		return d
	}
	return e.ReconcileInterval
}

// SetReconcileInterval changes how often a running Run reconciles (d > 0);
// the next pass comes d from now. Reconciling must have been on
// (ReconcileInterval > 0) when Run started.
func (e *Engine) SetReconcileInterval(d time.Duration) {
	if d <= 0 {
		return
	}
	e.reconcileEvery.Store(int64(d))
	e.kickReconciler(false)
}

// kickReconciler tells a running reconciler its schedule changed: now a
// pass, or the next pass an interval from now.
func (e *Engine) kickReconciler(now bool) {
	if now {
		e.reconcileSoon.Store(true)
	}
	select {
	case e.reconcileWake <- struct{}{}:
	default:
	}
}
