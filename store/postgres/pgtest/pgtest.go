// Package pgtest starts a throwaway PostgreSQL server from the local
// installation for tests: initdb and postgres in a temporary directory, on a
// free loopback port, as a non-root user when the tests run as root, and
// stopped when the test binary ends. Each test gets a fresh database.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		url := pgtest.NewDatabase(t) // skips when PostgreSQL is not installed
//		...
//	}
//
// The server starts on the first NewDatabase call, so a test binary whose
// PostgreSQL tests are filtered out pays nothing. Without PostgreSQL the
// tests skip with a message that says how to enable them, unless the CI
// environment variable is set: then a missing PostgreSQL fails them.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvBin names a directory holding initdb and postgres; it takes
// precedence over PATH and /usr/lib/postgresql/*/bin.
const EnvBin = "SYMBOT_TEST_PGBIN"

// HowToEnable is what a skipped test says.
const HowToEnable = "PostgreSQL is not installed (no initdb and postgres on PATH, in /usr/lib/postgresql/*/bin or in $" + EnvBin +
	"): install it (Debian: apt-get install postgresql) to run the PostgreSQL tests; with CI set they fail instead of skipping"

// ErrNotInstalled is returned by Start when no PostgreSQL installation is found.
var ErrNotInstalled = errors.New("postgresql not installed")

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	Bin  string // directory of initdb and postgres
	Dir  string // owns data/ and the socket
	Port int
	cred *syscall.Credential // nil: run as the current user
	// Durable keeps PostgreSQL's durable commits (fsync, synchronous
	// commit), for benchmarks; tests run without them.
	Durable bool

	mu     sync.Mutex
	server *exec.Cmd // the running postmaster; nil when stopped
	exited chan struct{}
	dbs    atomic.Int64

	tmplMu    sync.Mutex
	templates map[string]*template // by name, made by NewDatabaseFrom
}

// template is a database that NewDatabaseFrom copies, prepared once.
type template struct {
	once sync.Once
	name string // the database's name on the cluster
	err  error
}

// FindBin returns the directory of the PostgreSQL server binaries.
func FindBin() (string, error) {
	if d := os.Getenv(EnvBin); d != "" {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			return "", fmt.Errorf("%s=%s: no postgres there: %w", EnvBin, d, ErrNotInstalled)
		}
		return d, nil
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				p = real
			}
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// runAs returns the credential to run the server with: PostgreSQL refuses
// to run as root, so as root it uses the "postgres" system user (which the
// Debian package creates), or else "nobody".
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and neither a postgres nor a nobody user exists to run PostgreSQL as")
}

// Start initialises and starts a new cluster in a fresh temporary
// directory, without durable commits. Main destroys it at the end if the
// test does not.
func Start() (*Cluster, error) { return start(false) }

// StartDurable is Start with durable commits (fsync and synchronous commit
// on), for benchmarks that compare with bbolt's fsync-on figures.
func StartDurable() (*Cluster, error) { return start(true) }

var (
	startedMu sync.Mutex
	started   = map[*Cluster]bool{}
)

func start(durable bool) (*Cluster, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "symbot-pg-")
	if err != nil {
		return nil, fmt.Errorf("postgres temp dir: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres temp dir: %w", err)
		}
	}
	c := &Cluster{Bin: bin, Dir: dir, cred: cred, Durable: durable}
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	var lastErr error
	for range 5 { // a free port can be taken before the server binds it
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		c.Port = port
		if lastErr = c.Restart(); lastErr == nil {
			startedMu.Lock()
			started[c] = true
			startedMu.Unlock()
			return c, nil
		}
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

func (c *Cluster) data() string { return filepath.Join(c.Dir, "data") }

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.Bin, name), args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Restart starts the server (again, after Stop) on the same port and data.
// The server is a child of the test process that the kernel kills when
// the test process dies (Pdeathsig), so a test binary that crashes or is
// killed leaves no server behind.
func (c *Cluster) Restart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server != nil {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(c.Dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("postgres log: %w", err)
	}
	defer logf.Close()
	// fsync off: a throwaway server need not survive a machine crash, and
	// the tests must not wait on the disk of a shared machine.
	args := []string{"-D", c.data(), "-p", strconv.Itoa(c.Port), "-k", c.Dir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"}
	if !c.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(c.Bin, "postgres"), args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(c.Dir, "log"))
			return fmt.Errorf("postgres exited at start:\n%s", lastLines(log, 20))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("postgres did not accept connections within 60s: %w", err)
		case <-time.After(50 * time.Millisecond): // polling the server until it answers
		}
	}
	c.server, c.exited = cmd, exited
	return nil
}

// Stop stops the server (fast shutdown: SIGINT) and keeps its data for
// Restart.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server == nil {
		return nil
	}
	_ = c.server.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		_ = c.server.Process.Kill()
		<-c.exited
	}
	c.server = nil
	return nil
}

// Destroy stops the server and removes its directory.
func (c *Cluster) Destroy() error {
	startedMu.Lock()
	delete(started, c)
	startedMu.Unlock()
	err := c.Stop()
	if rerr := os.RemoveAll(c.Dir); err == nil {
		err = rerr
	}
	return err
}

// URL returns the connection string of database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// CreateDatabase creates a new empty database and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	return c.createDatabase(ctx, "")
}

// createDatabase creates a new database, a copy of the database from (""
// for an empty one), and returns its URL.
func (c *Cluster) createDatabase(ctx context.Context, from string) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.dbs.Add(1))
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect to test server: %w", err)
	}
	defer conn.Close(ctx)
	sql := "CREATE DATABASE " + name
	if from != "" {
		sql += " TEMPLATE " + pgx.Identifier{from}.Sanitize()
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return c.URL(name), nil
}

// CreateDatabaseFrom creates a new database, a copy of the template named
// name, and returns its URL. The first call for a name creates the
// template and runs prepare on it (prepare must close every connection it
// opens: a database with sessions cannot be copied); later calls copy it.
func (c *Cluster) CreateDatabaseFrom(ctx context.Context, name string, prepare func(ctx context.Context, url string) error) (string, error) {
	c.tmplMu.Lock()
	if c.templates == nil {
		c.templates = map[string]*template{}
	}
	tp := c.templates[name]
	if tp == nil {
		tp = &template{}
		c.templates[name] = tp
	}
	c.tmplMu.Unlock()
	tp.once.Do(func() {
		url, err := c.createDatabase(ctx, "")
		if err == nil {
			err = prepare(ctx, url)
		}
		if err != nil {
			tp.err = fmt.Errorf("prepare template database %s: %w", name, err)
			return
		}
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			tp.err = err
			return
		}
		tp.name = cfg.Database
	})
	if tp.err != nil {
		return "", tp.err
	}
	return c.createDatabase(ctx, tp.name)
}

// DropDatabase drops a database made by CreateDatabase, ending its sessions.
func (c *Cluster) DropDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to test server: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{cfg.Database}.Sanitize()+" WITH (FORCE)")
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(b []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}

// The test binary's shared cluster.
var (
	shared     *Cluster
	sharedErr  error
	sharedOnce sync.Once
	mainRan    bool
)

// Main runs the tests of m and stops the shared cluster, if one was
// started, before it returns m's exit code. Call it from TestMain.
func Main(m *testing.M) int {
	mainRan = true
	code := m.Run()
	startedMu.Lock()
	var all []*Cluster
	for c := range started {
		all = append(all, c)
	}
	startedMu.Unlock()
	for _, c := range all {
		if err := c.Destroy(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop PostgreSQL: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Shared returns the test binary's cluster, starting it on first use. It
// skips tb when PostgreSQL is not installed (fails it when CI is set) and
// fails tb when the server cannot start.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	requireMain(tb)
	sharedOnce.Do(func() { shared, sharedErr = Start() })
	requireStarted(tb, sharedErr)
	return shared
}

// requireMain fails tb unless TestMain runs the tests through Main, which
// stops the servers at the end.
func requireMain(tb testing.TB) {
	tb.Helper()
	if !mainRan {
		tb.Fatal("pgtest: call os.Exit(pgtest.Main(m)) from TestMain so the server is stopped at the end")
	}
}

// requireStarted skips tb when err says PostgreSQL is not installed (fails
// it when CI is set) and fails tb on any other start error.
func requireStarted(tb testing.TB, err error) {
	tb.Helper()
	switch {
	case errors.Is(err, ErrNotInstalled):
		if os.Getenv("CI") != "" {
			tb.Fatalf("CI is set but %s", HowToEnable)
		}
		tb.Skip(HowToEnable)
	case err != nil:
		tb.Fatalf("start PostgreSQL: %v", err)
	}
}

// NewCluster starts a cluster of tb's own, destroyed when tb ends, for a
// test that stops and restarts the server (stopping the shared one would
// disturb the other tests). Like Shared, it skips tb when PostgreSQL is not
// installed (fails it when CI is set) and fails tb when the server cannot
// start.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	requireMain(tb)
	c, err := Start()
	requireStarted(tb, err)
	tb.Cleanup(func() {
		if err := c.Destroy(); err != nil {
			tb.Errorf("stop PostgreSQL: %v", err)
		}
	})
	return c
}

// NewDatabase returns the URL of a fresh, empty database on the shared
// cluster, dropped when tb ends.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, func(c *Cluster, ctx context.Context) (string, error) { return c.CreateDatabase(ctx) })
}

// NewDatabaseFrom returns the URL of a fresh copy of the template database
// named name on the shared cluster, dropped when tb ends; see
// Cluster.CreateDatabaseFrom. Copying a prepared template (a migrated
// schema, say) spares each test the work of preparing its database.
func NewDatabaseFrom(tb testing.TB, name string, prepare func(ctx context.Context, url string) error) string {
	tb.Helper()
	return newDatabase(tb, func(c *Cluster, ctx context.Context) (string, error) { return c.CreateDatabaseFrom(ctx, name, prepare) })
}

func newDatabase(tb testing.TB, create func(*Cluster, context.Context) (string, error)) string {
	tb.Helper()
	c := Shared(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := create(c, ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.DropDatabase(ctx, url); err != nil {
			tb.Errorf("drop test database: %v", err)
		}
	})
	return url
}
