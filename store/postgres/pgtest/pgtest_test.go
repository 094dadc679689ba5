package pgtest_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/symbot/symbot/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestFindBinHonoursEnv(t *testing.T) {
	t.Setenv(pgtest.EnvBin, t.TempDir())
	if _, err := pgtest.FindBin(); !errors.Is(err, pgtest.ErrNotInstalled) {
		t.Errorf("FindBin with %s pointing at an empty directory: got %v, want ErrNotInstalled", pgtest.EnvBin, err)
	}
}

func TestDatabasesAreFreshAndSeparate(t *testing.T) {
	a, b := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	if a == b {
		t.Fatalf("two NewDatabase calls returned the same URL %s", a)
	}
	conn, err := pgx.Connect(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), "CREATE TABLE x (n int)"); err != nil {
		t.Fatal(err)
	}
	conn2, err := pgx.Connect(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(t.Context())
	var exists bool
	if err := conn2.QueryRow(t.Context(), "SELECT to_regclass('x') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("a table made in one test database is visible in another")
	}
}

func TestNotRoot(t *testing.T) {
	c := pgtest.Shared(t)
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	// The server answered, so it started: PostgreSQL refuses to start as
	// root, which proves the harness ran it as another user when needed.
	var v string
	if err := conn.QueryRow(t.Context(), "SHOW server_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %s on port %d", v, c.Port)
}

func TestStopRestart(t *testing.T) {
	// Its own cluster: stopping the shared one would disturb other tests.
	c := pgtest.NewCluster(t)
	if c == pgtest.Shared(t) {
		t.Fatal("NewCluster returned the shared cluster")
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(t.Context(), c.URL("postgres")); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	conn.Close(t.Context())
}

func TestDatabasesFromTemplate(t *testing.T) {
	prepared := 0
	prepare := func(ctx context.Context, url string) error {
		prepared++
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE x (n int); INSERT INTO x VALUES (1)")
		return err
	}
	a, b := pgtest.NewDatabaseFrom(t, "x", prepare), pgtest.NewDatabaseFrom(t, "x", prepare)
	if prepared != 1 {
		t.Errorf("prepare ran %d times for two copies, want once", prepared)
	}
	ca, err := pgx.Connect(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(t.Context())
	if _, err := ca.Exec(t.Context(), "INSERT INTO x VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(t.Context())
	var n int
	if err := cb.QueryRow(t.Context(), "SELECT count(*) FROM x").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("the second copy has %d rows, want the template's 1 (copies are separate)", n)
	}
}
