// Restore: a store restored from a backup is marked so that the next start
// reconciles Okta with it before serving.

package symbot

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// restoreRecord marks a store restored from a backup: the next start
// reconciles before serving (AfterRestore).
const restoreRecord = "restore/pending"

// MarkRestored records, in the engine's store (one being restored), that
// the next start must reconcile Okta with it before serving; source names
// the backup.
func (e *Engine) MarkRestored(ctx context.Context, source string, now time.Time) error {
	return e.store.Update(ctx, func(tx Tx) error {
		rt, ok := tx.(RecordTx)
		if !ok {
			return ErrNoRecords
		}
		v, err := json.Marshal(struct {
			Source string
			At     time.Time
		}{source, now})
		if err != nil {
			return err
		}
		if err := rt.PutRecord(restoreRecord, v); err != nil {
			return err
		}
		return e.audit(tx, now, "", adminActor(ctx), "restore", "store restored from "+source)
	})
}

// AfterRestore runs a reconcile pass when the store was restored from a
// backup since the last start, and posts a summary of what it found to the
// operators. It reports false when there was nothing to do. The mark stays
// (and the next start tries again) when the pass fails.
func (e *Engine) AfterRestore(ctx context.Context) (*ReconcileReport, bool, error) {
	var marked []byte
	err := e.store.View(ctx, func(tx Tx) error {
		rt, ok := tx.(RecordTx)
		if !ok {
			return nil
		}
		v, found, err := rt.Record(restoreRecord)
		if found {
			marked = v
		}
		return err
	})
	if err != nil || marked == nil {
		return nil, false, err
	}
	var m struct {
		Source string
		At     time.Time
	}
	_ = json.Unmarshal(marked, &m)
	rep, err := e.Reconcile(ctx, false)
	if err != nil {
		return rep, true, fmt.Errorf("reconcile after restore: %w", err)
	}
	text := fmt.Sprintf("symbot started on a store restored from %s: reconciled %d Okta group(s), %d member(s): %d standing recorded, %d unmanaged, %d grant(s) whose membership vanished (ended), %d removal(s) queued again. Grants made after the backup are not in it: check the unmanaged members above.",
		m.Source, rep.Groups, rep.MembersChecked, rep.Count(DriftStanding), rep.Count(DriftUnmanaged), rep.Count(DriftVanished), rep.Count(DriftSurvived))
	now := e.now()
	err = e.store.Update(ctx, func(tx Tx) error {
		rt, ok := tx.(RecordTx)
		if !ok {
			return ErrNoRecords
		}
		if err := rt.PutRecord(restoreRecord, nil); err != nil {
			return err
		}
		if err := e.audit(tx, now, "", System, "restore:reconciled", fmt.Sprintf("groups=%d members=%d unmanaged=%d vanished=%d survived=%d", rep.Groups, rep.MembersChecked, rep.Count(DriftUnmanaged), rep.Count(DriftVanished), rep.Count(DriftSurvived))); err != nil {
			return err
		}
		return e.addJob(tx, now, &Job{Kind: JobAlert, Event: EventDrift, Text: text})
	})
	if err != nil {
		return rep, true, err
	}
	e.kickExecutor()
	e.log().Info("reconciled after a restore", "source", m.Source, "unmanaged", rep.Count(DriftUnmanaged), "vanished", rep.Count(DriftVanished))
	return rep, true, nil
}
