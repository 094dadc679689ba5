// Standing members and the reconciler's per-group records: what the first
// reconcile of a group found there, and what later passes remember.

package symbot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// StandingMember is a member recorded as standing at a group's first
// reconcile: symbot never removes or alerts about them.
type StandingMember struct {
	GroupID string
	Flow    string
	Target  string
	UserID  string
	Login   string
	Since   time.Time
}

// ErrNoRecords: the store cannot keep the reconciler's records.
var ErrNoRecords = errors.New("the store does not keep reconciler records")

// groupRecord is the reconciler's stored state for one Okta group.
type groupRecord struct {
	Initialized time.Time                // when the first pass recorded the standing members
	Standing    map[string]standingEntry // Okta user id -> entry
	Alerted     map[string]time.Time     // unmanaged members already alerted about
	Managed     map[string]string        // Okta user id -> the grant that held it at the last pass
}

type standingEntry struct {
	Login string
	Since time.Time
}

func recordName(gid string) string { return "reconcile/group/" + gid }

func loadRecord(tx Tx, gid string) (*groupRecord, error) {
	rt, ok := tx.(RecordTx)
	if !ok {
		return nil, ErrNoRecords
	}
	rec := &groupRecord{}
	v, found, err := rt.Record(recordName(gid))
	if err != nil {
		return nil, err
	}
	if found {
		if err := json.Unmarshal(v, rec); err != nil {
			return nil, fmt.Errorf("reconciler record of group %s: %w", gid, err)
		}
	}
	if rec.Standing == nil {
		rec.Standing = map[string]standingEntry{}
	}
	if rec.Alerted == nil {
		rec.Alerted = map[string]time.Time{}
	}
	if rec.Managed == nil {
		rec.Managed = map[string]string{}
	}
	return rec, nil
}

func saveRecord(tx Tx, gid string, rec *groupRecord) error {
	rt, ok := tx.(RecordTx)
	if !ok {
		return ErrNoRecords
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return rt.PutRecord(recordName(gid), v)
}

// standingText is the one summary alert of a group's first reconcile.
func standingText(g targetGroup, ms []DirUser) string {
	names := make([]string, 0, min(len(ms), 20))
	for _, m := range ms[:min(len(ms), 20)] {
		names = append(names, orID(m.Login, m.ID))
	}
	more := ""
	if len(ms) > len(names) {
		more = fmt.Sprintf(" and %d more", len(ms)-len(names))
	}
	return fmt.Sprintf("First reconcile of Okta group %s (%s/%s): %d member(s) with no symbot grant were recorded as standing members; symbot never removes or alerts about them: %s%s. `symbot standing` lists them.",
		g.GroupID, g.Flow, g.Target, len(ms), strings.Join(names, ", "), more)
}

// Standing returns the standing members of every target group, by group
// and login.
func (e *Engine) Standing(ctx context.Context) ([]StandingMember, error) {
	var out []StandingMember
	err := e.store.View(ctx, func(tx Tx) error {
		for _, g := range e.targetGroups() {
			rec, err := loadRecord(tx, g.GroupID)
			if err != nil {
				return err
			}
			for uid, s := range rec.Standing {
				out = append(out, StandingMember{GroupID: g.GroupID, Flow: g.Flow, Target: g.Target, UserID: uid, Login: s.Login, Since: s.Since})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("standing members: %w", err)
	}
	slices.SortFunc(out, func(a, b StandingMember) int {
		if c := strings.Compare(a.GroupID, b.GroupID); c != 0 {
			return c
		}
		return strings.Compare(orID(a.Login, a.UserID), orID(b.Login, b.UserID))
	})
	return out, nil
}
