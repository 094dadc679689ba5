package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/postgres/pgtest"
)

// TestUpgradeIdentitiesFrom6: identities cached by a symbot on schema 6,
// before bindings (no bound_at, via or conflict columns), read after the
// upgrade to the current schema as bindings made when they were cached:
// the same Okta user, login and email, BoundAt zero so that Since is the
// time they were cached, no conflict, and in Slack id order. A later
// confirmation of the binding (what the engine writes) keeps that time.
func TestUpgradeIdentitiesFrom6(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := postgres.MigrateTo(t.Context(), conn, 6); err != nil {
		t.Fatal(err)
	}

	cached := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	old := []symbot.Identity{
		{SlackID: "U0BOB", Email: "bob@example.com", OktaUserID: "00ubob", OktaLogin: "bob@example.com", CachedAt: cached},
		{SlackID: "U0ALICE", Email: "alice@example.com", OktaUserID: "00ualice", OktaLogin: "alice.smith@example.com", CachedAt: cached.Add(time.Hour)},
	}
	for _, id := range old {
		// The schema-6 shape: five columns, the time in int8 nanoseconds.
		if _, err := conn.Exec(ctx, `INSERT INTO identities (slack_id, email, okta_user_id, okta_login, cached_at) VALUES ($1, $2, $3, $4, $5)`,
			id.SlackID, id.Email, id.OktaUserID, id.OktaLogin, id.CachedAt.UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	// One cached with no time at all (a NULL cached_at is allowed).
	if _, err := conn.Exec(ctx, `INSERT INTO identities (slack_id, email, okta_user_id, okta_login) VALUES ('U0CAROL', 'carol@example.com', '00ucarol', 'carol@example.com')`); err != nil {
		t.Fatal(err)
	}

	s, err := postgres.Open(ctx, url, postgres.Config{})
	if err != nil {
		t.Fatalf("Open (migrating 6 to %d): %v", postgres.SchemaVersion(), err)
	}
	defer s.Close()
	st, err := postgres.CheckSchema(ctx, url)
	if err != nil || !st.UpToDate() {
		t.Fatalf("schema after Open: %+v, %v; want up to date", st, err)
	}

	var (
		bob  symbot.Identity
		ok   bool
		page []symbot.Identity
	)
	err = s.View(ctx, func(tx symbot.Tx) error {
		var err error
		if bob, ok, err = tx.Identity("U0BOB"); err != nil {
			return err
		}
		page, err = tx.Identities("", 10)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatal("U0BOB's identity is gone after the upgrade")
	}
	want := old[0]
	if bob != want {
		t.Errorf("U0BOB after the upgrade:\n got %+v\nwant %+v", bob, want)
	}
	if !bob.Since().Equal(cached) || bob.Conflicted() || bob.Via != "" {
		t.Errorf("U0BOB: Since %v, conflicted %v, via %q; want bound since %v, no conflict, via unknown", bob.Since(), bob.Conflicted(), bob.Via, cached)
	}
	var ids []string
	for _, id := range page {
		ids = append(ids, id.SlackID)
		if id.SlackID == "U0ALICE" && (id != old[1] || !id.Since().Equal(old[1].CachedAt)) {
			t.Errorf("U0ALICE after the upgrade: %+v, want %+v", id, old[1])
		}
		if id.SlackID == "U0CAROL" && (!id.CachedAt.IsZero() || !id.BoundAt.IsZero() || !id.Since().IsZero() || id.OktaUserID != "00ucarol") {
			t.Errorf("U0CAROL (no cached_at) after the upgrade: %+v, want Okta user 00ucarol with no times", id)
		}
	}
	if got, want := ids, []string{"U0ALICE", "U0BOB", "U0CAROL"}; !slices.Equal(got, want) {
		t.Errorf("Identities after the upgrade: %v, want %v", got, want)
	}

	// The engine confirming an old binding records BoundAt = CachedAt and
	// a new CachedAt; it reads back as written.
	confirmed := bob
	confirmed.BoundAt, confirmed.CachedAt, confirmed.Via = bob.CachedAt, cached.Add(48*time.Hour), symbot.ViaEmail
	if err := s.Update(ctx, func(tx symbot.Tx) error { return tx.PutIdentity(confirmed) }); err != nil {
		t.Fatal(err)
	}
	var again symbot.Identity
	if err := s.View(ctx, func(tx symbot.Tx) error { var err error; again, _, err = tx.Identity("U0BOB"); return err }); err != nil {
		t.Fatal(err)
	}
	if again != confirmed || !again.Since().Equal(cached) {
		t.Errorf("U0BOB confirmed after the upgrade: %+v, want %+v (bound since %v)", again, confirmed, cached)
	}
}
