package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot/slacktest"
	"github.com/symbot/symbot/okta/oktatest"
	"github.com/symbot/symbot/store/postgres/pgtest"
)

// EnvReplicaSoak, set to any value, makes TestReplicasEndToEnd a soak:
// more requests, people and kills.
const EnvReplicaSoak = "SYMBOT_E2E_SOAK"

// dbDownText is what a person is told while the database is unreachable
// (bot.Explain of symbot.ErrStoreUnavailable).
const dbDownText = "symbot can't reach its database; try again in a minute."

// replicaScenario sizes TestReplicasEndToEnd.
type replicaScenario struct {
	Requests  int           // requests driven through approval, grant and expiry
	People    int           // requesters; each asks for one target at a time
	Targets   int           // Okta groups; Requests <= People*Targets
	Duration  time.Duration // of every grant
	KillEvery time.Duration // mean time between SIGKILLs of a random replica
	MaxKills  int
	InFlight  int // slash commands waiting for their answer at once
}

// e2eRequest is one request as the test drives it: a person asks (and asks
// again when told to try later, or when Slack gave up delivering), the
// approver clicks Approve (again when told to try later).
type e2eRequest struct {
	k              int
	user, target   string
	token          string // in the reason: finds the approval message
	sending        bool
	answered       bool // the person was answered (an ephemeral), or the approval message is there
	sends, unacked int
	ackedAt        time.Time
	ephBefore      int
	retryAt        time.Time // ask again then (told to try later)
	ref            slacktest.MessageRef
	posted         bool
	clicking       bool
	clicks         int
	clickAckedAt   time.Time
	approved       bool // in the database
}

// replica is one `symbot run` slot: its config (own admin socket and
// health listener) and the process now running in it.
type replica struct {
	n      int
	cfg    string
	health string // http://127.0.0.1:PORT
	logs   *lockedBuffer
	c      *child
	starts int
}

// TestReplicasEndToEnd is the proof of the PostgreSQL store (issue 11):
// three replicas of the real binary share one PostgreSQL and serve the
// simulators (Slack spreads envelopes at random among their Socket Mode
// connections). Requests go through approval, grant and expiry while a
// random replica is SIGKILLed and restarted every few seconds, and
// PostgreSQL is stopped for 10 s once in the middle. While it is down every
// replica's /readyz is not ready and a person's command and an approver's
// click are answered with the database wording; when it is back everything
// resumes without a restart. At the end: every request acknowledged was
// answered and ended as expected (approved once, granted once, expired
// once, membership removed), the Okta membership log shows one add and one
// removal per grant and nothing left behind, one approval message per
// request and one copy of every DM and thread reply (a job retried after a
// kill finds the message the killed attempt posted), and the audit chain
// verifies with no gaps or forks.
func TestReplicasEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three replicas of the binary on a PostgreSQL of its own")
	}
	sc := replicaScenario{Requests: 200, People: 40, Targets: 5, Duration: 10 * time.Second,
		KillEvery: 3 * time.Second, MaxKills: 12, InFlight: 12}
	if os.Getenv(EnvReplicaSoak) != "" {
		sc = replicaScenario{Requests: 1000, People: 100, Targets: 10, Duration: 20 * time.Second,
			KillEvery: 4 * time.Second, MaxKills: 100, InFlight: 24}
	}
	pg := pgtest.NewCluster(t)
	bin := symbotBinary(t)
	ctx := t.Context()
	dbURL, err := pg.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}

	w, _ := mustWorld(t, "1h", "0") // simulators and the demo people
	const carol = "U0CAROL004"      // the second approver: clicks only the probe
	const prober = "U0PROBE005"     // asks while the database is down
	w.slack.AddUser(slacktest.User{ID: carol, Name: "carol", RealName: "Carol Approver", Email: "carol@example.com"})
	w.okta.AddUser(oktatest.User{Login: "carol@example.com", FirstName: "Carol", LastName: "Approver"})
	people := []string{prober}
	w.slack.AddUser(slacktest.User{ID: prober, Name: "prober", RealName: "Pat Prober", Email: "prober@example.com"})
	w.okta.AddUser(oktatest.User{Login: "prober@example.com", FirstName: "Pat", LastName: "Prober"})
	for i := range sc.People {
		id := fmt.Sprintf("U0REQ%05d", i)
		email := fmt.Sprintf("req%d@example.com", i)
		w.slack.AddUser(slacktest.User{ID: id, Name: fmt.Sprintf("req%d", i), RealName: fmt.Sprintf("Requester %d", i), Email: email})
		w.okta.AddUser(oktatest.User{Login: email, FirstName: "Requester", LastName: fmt.Sprint(i)})
		people = append(people, id)
	}
	w.slack.AddChannel(slacktest.Channel{ID: demoChannel, Name: "access-requests", Members: append([]string{demoBob, carol}, people...), BotIsMember: true})
	groups := make([]string, sc.Targets)
	var targetsYAML strings.Builder
	for i := range groups {
		groups[i] = w.okta.AddGroup(oktatest.Group{Name: fmt.Sprintf("team-%d", i)}).ID
		fmt.Fprintf(&targetsYAML, "      - name: t%d\n        group_id: %s\n", i, groups[i])
	}

	env := w.env()
	env["SYMBOT_DATABASE_URL"] = dbURL
	reps := make([]*replica, 3)
	for i := range reps {
		port := freeLoopbackPort(t)
		r := &replica{n: i, health: fmt.Sprintf("http://127.0.0.1:%d", port), logs: &lockedBuffer{}}
		r.cfg = filepath.Join(w.dir, fmt.Sprintf("replica%d.yml", i))
		yml := fmt.Sprintf(`slack:
  command: /sym
  errors_channel: %s
aws:
  region: us-east-1
  role_arn: %s
  external_id: %s
okta:
  org_url: %s
  token_secret: %s
  token_json_key: okta_api_token
admin:
  socket: %s
http:
  listen: 127.0.0.1:%d
log:
  level: info
limits:
  requests_per_minute: 100000
  pending_requests: 1000
  commands_per_minute: 100000
flows:
  - name: prod
    channel: %s
    approvers:
      users: [%s, %s]
    durations: [%s]
    expiry_warning: 0
    targets:
%s`, demoErrors, demoRoleARN, demoExternalID, w.okta.URL(), demoSecret,
			filepath.Join(w.dir, fmt.Sprintf("admin%d.sock", i)), port,
			demoChannel, demoBob, carol, symbot.FormatDuration(sc.Duration), targetsYAML.String())
		if err := os.WriteFile(r.cfg, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		reps[i] = r
	}
	var chaosMu sync.Mutex // guards the replicas' processes and the outage fields below
	allLogs := func() string {
		chaosMu.Lock()
		defer chaosMu.Unlock()
		var b strings.Builder
		for _, r := range reps {
			fmt.Fprintf(&b, "--- replica %d (started %d times): warnings and errors ---\n%s", r.n, r.starts, lastLogLines(notInfo(r.logs.String()), 40))
		}
		return b.String()
	}
	start := func(r *replica) {
		r.c = startChild(t, bin, r.cfg, env, r.logs)
		r.starts++
	}
	// The first replica migrates the schema; the others start beside it.
	for _, r := range reps {
		start(r)
	}
	connected := func(n int) func() bool {
		return func() bool {
			live := 0
			for _, r := range reps {
				if ready(r.health) == nil {
					live++
				}
			}
			return live >= n
		}
	}
	waitUpTo(t, w, 90*time.Second, "three replicas to be ready", connected(3), allLogs)

	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	// The requests: every person asks for each target once, in random order.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var reqs []*e2eRequest
	byUser := map[string][]*e2eRequest{}
	for k := range sc.Requests {
		u, tg := people[1+k%sc.People], fmt.Sprintf("t%d", (k/sc.People)%sc.Targets)
		r := &e2eRequest{k: k, user: u, target: tg, token: fmt.Sprintf("rq%05d", k)}
		reqs = append(reqs, r)
		byUser[u] = append(byUser[u], r)
	}
	for _, rs := range byUser {
		rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
	}

	// The chaos: SIGKILL a random replica every few seconds and start it
	// again at once; never while the database is down (the outage's checks
	// expect every replica connected and ready when it starts; a replica
	// started during an outage waits for the database, which
	// TestRunWaitsForTheDatabase covers). A replica that exits by itself is
	// a failure.
	var (
		outage     bool
		outageFrom time.Time
		outageTo   time.Time
		kills      int
		killedAt   []time.Time
		selfExits  []string
	)
	stopChaos := make(chan struct{})
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		for {
			d := sc.KillEvery/2 + time.Duration(rng.Int64N(int64(sc.KillEvery)))
			select {
			case <-stopChaos:
				return
			case <-time.After(d): // the fault schedule, not a wait for a condition
			}
			chaosMu.Lock()
			if !outage && kills < sc.MaxKills {
				for _, r := range reps {
					select {
					case <-r.c.done:
						selfExits = append(selfExits, fmt.Sprintf("replica %d exited by itself\n%s", r.n, lastLogLines(r.logs.String(), 40)))
						start(r)
					default:
					}
				}
				r := reps[rng.IntN(len(reps))]
				_ = r.c.cmd.Process.Signal(syscall.SIGKILL) // not c.kill: no t.Fatal off the test goroutine
				<-r.c.done
				kills++
				killedAt = append(killedAt, time.Now())
				start(r)
			}
			chaosMu.Unlock()
		}
	}()
	stop := func() {
		select {
		case <-stopChaos:
		default:
			close(stopChaos)
		}
		<-chaosDone
	}
	t.Cleanup(stop)

	// The driver: one goroutine (the WaitFor condition) reads the Slack
	// simulator and the database and starts the people's actions, each on
	// a goroutine of its own (a driving call blocks until the ack).
	type result struct {
		r     *e2eRequest
		click bool
		err   error
	}
	var (
		resMu   sync.Mutex
		results []result
	)
	report := func(res result) { resMu.Lock(); results = append(results, res); resMu.Unlock() }
	var (
		lost           []string // acknowledged, then never answered: the failure this test hunts
		acked          int
		inFlight       int
		lastDB         time.Time
		state          = map[string]*symbot.Request{} // by requester|target
		outageDone     bool
		outageErr      error
		resends        int
		reclicks       int
		clicksInFlight int
		next           = map[string]int{} // per person: index of the request being asked
		startedAt      = time.Now()
		answerWithin   = 60 * time.Second
	)
	const pkey = "%s|%s"
	readDB := func() {
		if time.Since(lastDB) < 300*time.Millisecond {
			return
		}
		lastDB = time.Now()
		// The columns the driver needs, not the documents: this runs
		// several times a second while the table grows.
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rows, err := pool.Query(qctx, `SELECT id, requester, doc->>'Target', state, COALESCE((doc->>'Removed')::bool, false) FROM requests`)
		if err != nil {
			return // the database is down: keep the last view
		}
		defer rows.Close()
		for rows.Next() {
			var rq symbot.Request
			var st string
			if rows.Scan(&rq.ID, &rq.Requester.SlackID, &rq.Target, &st, &rq.Removed) != nil {
				return
			}
			rq.State = symbot.State(st)
			state[fmt.Sprintf(pkey, rq.Requester.SlackID, rq.Target)] = &rq
		}
	}
	approvalMessages := func() map[string][]slacktest.Message {
		out := map[string][]slacktest.Message{}
		for _, m := range w.slack.Messages(demoChannel) {
			if m.ThreadTS != "" && m.ThreadTS != m.TS {
				continue
			}
			s := string(m.Blocks)
			if i := strings.Index(s, "e2e load rq"); i >= 0 && len(s) >= i+16 {
				tok := s[i+9 : i+16]
				out[tok] = append(out[tok], m)
			}
		}
		return out
	}
	send := func(r *e2eRequest) {
		r.sending, r.answered, r.sends = true, false, r.sends+1
		r.ephBefore = len(w.slack.Ephemerals(r.user))
		inFlight++
		go func() {
			_, err := w.slack.SlashCommand(r.user, "/sym", fmt.Sprintf("req %s %s e2e load %s", r.target, symbot.FormatDuration(sc.Duration), r.token), demoChannel)
			report(result{r: r, err: err})
		}()
	}
	click := func(r *e2eRequest) {
		r.clicking, r.clicks = true, r.clicks+1
		clicksInFlight++
		go func() {
			_, err := w.slack.ClickButton(demoBob, r.ref, "sym_approve")
			report(result{r: r, click: true, err: err})
		}()
	}
	inOutage := func(at time.Time) bool {
		chaosMu.Lock()
		defer chaosMu.Unlock()
		return !outageFrom.IsZero() && !at.Before(outageFrom.Add(-2*time.Second)) && (outageTo.IsZero() || !at.After(outageTo.Add(5*time.Second)))
	}
	outageOver := func(now time.Time) bool {
		chaosMu.Lock()
		defer chaosMu.Unlock()
		return !outageTo.IsZero() && now.After(outageTo.Add(5*time.Second))
	}
	runOutage := func() {
		outageErr = databaseOutage(w, pg, reps, &chaosMu, &outage, &outageFrom, &outageTo, prober, carol, symbot.FormatDuration(sc.Duration))
	}
	outageStarted := false
	outageCh := make(chan struct{})

	var lastStep time.Time
	step := func() bool {
		// WaitFor calls this after every change of the simulator: look at
		// most every 100ms, or the test itself takes a core.
		if time.Since(lastStep) < 100*time.Millisecond {
			return false
		}
		lastStep = time.Now()
		resMu.Lock()
		rs := results
		results = nil
		resMu.Unlock()
		for _, res := range rs {
			r := res.r
			if res.click {
				r.clicking = false
				clicksInFlight--
				if res.err == nil {
					r.clickAckedAt = time.Now()
				}
				continue
			}
			r.sending = false
			if res.err != nil {
				// Slack gave up delivering (every connection it tried was
				// killed): the person saw an error and asks again.
				inFlight--
				r.unacked++
				r.retryAt = time.Now().Add(time.Second)
				continue
			}
			r.ackedAt = time.Now()
			acked++
		}
		readDB()
		msgs := approvalMessages()
		now := time.Now()
		for _, r := range reqs {
			if !r.ackedAt.IsZero() && !r.answered {
				if ms := msgs[r.token]; len(ms) > 0 {
					r.answered, r.posted, r.ref = true, true, ms[0].Ref()
					inFlight--
					next[r.user]++
				} else if eph := w.slack.Ephemerals(r.user); len(eph) > r.ephBefore {
					told := eph[len(eph)-1].Text
					r.answered = true
					inFlight--
					switch {
					case strings.Contains(told, "sent; it is waiting for approval"), strings.Contains(told, "You already have a pending request"):
						next[r.user]++ // stored (an earlier delivery, for the second); the approval message follows
					case strings.Contains(told, "try again"):
						if !inOutage(r.ackedAt) {
							t.Errorf("%s asking for %s outside the database outage was told: %s", r.user, r.target, told)
						}
						r.ackedAt, r.retryAt = time.Time{}, now.Add(time.Second)
						resends++
					default:
						t.Errorf("%s asking for %s was told: %s", r.user, r.target, told)
						next[r.user]++
					}
				} else if now.Sub(r.ackedAt) > answerWithin {
					lost = append(lost, fmt.Sprintf("%s: /sym req %s by %s acknowledged %s ago, never answered", r.token, r.target, r.user, now.Sub(r.ackedAt).Round(time.Second)))
					r.answered = true
					inFlight--
					next[r.user]++
				}
			}
			if r.answered && !r.posted {
				if ms := msgs[r.token]; len(ms) > 0 {
					r.posted, r.ref = true, ms[0].Ref()
				}
			}
			if cur := state[fmt.Sprintf(pkey, r.user, r.target)]; cur != nil && cur.State != symbot.StatePending {
				r.approved = true
			}
			if r.posted && !r.approved && !r.clicking && clicksInFlight < 4 { // one approver clicks a few at a time
				switch {
				case r.clicks == 0:
					click(r)
				case !r.clickAckedAt.IsZero() && (now.Sub(r.clickAckedAt) > 30*time.Second || inOutage(r.clickAckedAt) && outageOver(now)):
					// Told "try again" during the outage: the approver
					// clicks again once it is over.
					if !inOutage(r.clickAckedAt) {
						lost = append(lost, fmt.Sprintf("%s: Approve acknowledged %s ago, request still pending", r.token, now.Sub(r.clickAckedAt).Round(time.Second)))
					}
					reclicks++
					r.clickAckedAt = time.Time{}
					click(r)
				case r.clickAckedAt.IsZero():
					click(r) // not delivered: the approver clicks again
				}
			}
		}
		// New and repeated asks: one open ask per person, a bounded number
		// in flight, none while the database is down (people were told).
		chaosMu.Lock()
		down := outage
		chaosMu.Unlock()
		for u, rs := range byUser {
			if down || inFlight >= sc.InFlight {
				break
			}
			i := next[u]
			if i >= len(rs) {
				continue
			}
			r := rs[i]
			if !r.sending && r.ackedAt.IsZero() && now.After(r.retryAt) {
				send(r)
			}
		}
		approved := 0
		for _, r := range reqs {
			if r.approved {
				approved++
			}
		}
		chaosMu.Lock()
		killedSoFar := kills
		chaosMu.Unlock()
		if !outageStarted && approved >= sc.Requests/2 && killedSoFar >= 3 { // the middle of the run, with kills before and after
			outageStarted = true
			go func() { runOutage(); close(outageCh) }()
		}
		select {
		case <-outageCh:
			outageDone = true
		default:
		}
		if !outageDone {
			return false
		}
		for _, r := range reqs {
			cur := state[fmt.Sprintf(pkey, r.user, r.target)]
			if !r.answered || cur == nil || !cur.State.Final() || !cur.Removed {
				return false
			}
		}
		for _, tg := range []string{"t0", "t1"} { // the probes made before and after the outage
			if p := state[fmt.Sprintf(pkey, prober, tg)]; p == nil || !p.State.Final() || !p.Removed {
				return false
			}
		}
		return true
	}
	total := 4*time.Minute + time.Duration(sc.Requests)*300*time.Millisecond
	waitUpTo(t, w, total, "every request to be approved, granted, expired and removed", step, func() string {
		var b strings.Builder
		for _, r := range reqs {
			cur := state[fmt.Sprintf(pkey, r.user, r.target)]
			if cur == nil || !cur.State.Final() || !cur.Removed {
				st := "not stored"
				if cur != nil {
					st = fmt.Sprintf("%s %s removed=%t", cur.ID, cur.State, cur.Removed)
				}
				fmt.Fprintf(&b, "%s %s/%s: acked=%t answered=%t posted=%t clicks=%d: %s\n", r.token, r.user, r.target, !r.ackedAt.IsZero(), r.answered, r.posted, r.clicks, st)
			}
		}
		return b.String() + "lost:\n" + strings.Join(lost, "\n") + "\n" + allLogs()
	})
	elapsed := time.Since(startedAt)
	stop()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// Every replica's whole log, kept for reading after a failure.
		dir, err := os.MkdirTemp("", "symbot-e2e-replica-logs-")
		if err != nil {
			return
		}
		chaosMu.Lock()
		defer chaosMu.Unlock()
		for _, r := range reps {
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("replica%d.log", r.n)), []byte(r.logs.String()), 0o600)
		}
		t.Logf("replica logs kept in %s", dir)
	})
	var killTimes []string
	for _, k := range killedAt {
		killTimes = append(killTimes, k.Format("15:04:05.000"))
	}
	t.Logf("kills at %v; database down %s to %s", killTimes, outageFrom.Format("15:04:05.000"), outageTo.Format("15:04:05.000"))
	if outageErr != nil {
		t.Errorf("database outage: %v", outageErr)
	}
	for _, l := range lost {
		t.Errorf("lost: %s", l)
	}
	for _, e := range selfExits {
		t.Errorf("%s", e)
	}
	for _, r := range reps {
		select {
		case <-r.c.done:
			t.Errorf("replica %d exited by itself\n%s", r.n, lastLogLines(r.logs.String(), 40))
		default:
		}
	}
	checkReplicaOutcome(t, w, pool, bin, reps[0].cfg, env, groups, len(reqs)+2, approvalMessages())
	adopted := 0 // messages a retried job found instead of posting again (bot.postOnce logs each)
	for _, r := range reps {
		adopted += strings.Count(r.logs.String(), "found the message an earlier attempt of the job posted")
	}
	t.Logf("%d requests (+2 probes) through approval, grant, expiry and removal in %s on 3 replicas: %d SIGKILLs, 1 PostgreSQL outage of 10s; %d asks repeated after the outage, %d asks Slack gave up delivering, %d approvals clicked again; %d messages of killed attempts found and adopted by the retry",
		len(reqs), elapsed.Round(time.Second), kills, resends, sumUnacked(reqs), reclicks, adopted)
}

// slackTimeValue turns a Slack message ts into the time it was posted.
func slackTimeValue(ts string) time.Time {
	var sec, usec int64
	if _, err := fmt.Sscanf(ts, "%d.%d", &sec, &usec); err != nil {
		return time.Time{}
	}
	return time.Unix(sec, usec*1000)
}

// slackTime is slackTimeValue for messages.
func slackTime(ts string) string { return slackTimeValue(ts).Format("15:04:05.000") }

func sumUnacked(rs []*e2eRequest) int {
	n := 0
	for _, r := range rs {
		n += r.unacked
	}
	return n
}

// databaseOutage stops PostgreSQL for 10 s with the replicas running (no
// kills meanwhile), and checks what people and probes see: every /readyz
// not ready, a slash command and an Approve click answered with the
// database wording; then that everything is ready again without a restart
// and the probe's ask goes through.
func databaseOutage(w *world, pg *pgtest.Cluster, reps []*replica, mu *sync.Mutex, outage *bool, from, to *time.Time, prober, approver, dur string) error {
	const length = 10 * time.Second
	// A request made before the outage, to be clicked during it.
	if _, err := w.slack.SlashCommand(prober, "/sym", "req t1 "+dur+" e2e probe before the outage", demoChannel); err != nil {
		return fmt.Errorf("probe before the outage: %w", err)
	}
	var ref slacktest.MessageRef
	if err := waitFor(w, 60*time.Second, func() bool {
		for _, m := range w.slack.Messages(demoChannel) {
			if strings.Contains(string(m.Blocks), "e2e probe before the outage") && (m.ThreadTS == "" || m.ThreadTS == m.TS) {
				ref = m.Ref()
				return true
			}
		}
		return false
	}); err != nil {
		return errors.New("the probe's approval message was not posted")
	}
	// No kills from here on; a replica restarted by the last one is let
	// become ready, so that the outage's checks see every replica ready
	// before the database stops.
	mu.Lock()
	*outage = true
	mu.Unlock()
	if err := waitFor(w, 60*time.Second, func() bool {
		for _, r := range reps {
			if ready(r.health) != nil {
				return false
			}
		}
		return true
	}); err != nil {
		return errors.New("the replicas were not ready before the outage")
	}
	began := time.Now()
	mu.Lock()
	*from = began
	mu.Unlock()
	if err := pg.Stop(); err != nil {
		return fmt.Errorf("stop PostgreSQL: %w", err)
	}
	var errs []error
	restarted := false
	restart := func() {
		if restarted {
			return
		}
		restarted = true
		if rest := length - time.Since(began); rest > 0 {
			time.Sleep(rest) // the length of the outage: a fault, not a wait for a condition
		}
		if err := pg.Restart(); err != nil {
			errs = append(errs, fmt.Errorf("restart PostgreSQL: %w", err))
		}
		mu.Lock()
		*to = time.Now()
		mu.Unlock()
	}
	defer func() {
		restart()
		mu.Lock()
		*outage = false // kills and new asks resume once the checks after the outage are done
		mu.Unlock()
	}()
	starts := make([]int, len(reps))
	mu.Lock()
	for i, r := range reps {
		starts[i] = r.starts
	}
	mu.Unlock()
	if err := waitFor(w, length, func() bool {
		for _, r := range reps {
			if ready(r.health) == nil {
				return false
			}
		}
		return true
	}); err != nil {
		errs = append(errs, errors.New("a replica's /readyz stayed ready with the database down"))
	}
	ephs := len(w.slack.Ephemerals(prober))
	if _, err := w.slack.SlashCommand(prober, "/sym", "req t0 "+dur+" e2e probe during the outage", demoChannel); err != nil {
		errs = append(errs, fmt.Errorf("slash command during the outage not acknowledged: %w", err))
	} else if err := waitFor(w, length, func() bool {
		e := w.slack.Ephemerals(prober)
		return len(e) > ephs && strings.Contains(e[len(e)-1].Text, dbDownText)
	}); err != nil {
		errs = append(errs, fmt.Errorf("a slash command during the outage was not answered %q: got %v", dbDownText, texts(w.slack.Ephemerals(prober)[ephs:])))
	}
	ephs = len(w.slack.Ephemerals(approver))
	if _, err := w.slack.ClickButton(approver, ref, "sym_approve"); err != nil {
		errs = append(errs, fmt.Errorf("click during the outage not acknowledged: %w", err))
	} else if err := waitFor(w, length, func() bool {
		e := w.slack.Ephemerals(approver)
		return len(e) > ephs && strings.Contains(e[len(e)-1].Text, dbDownText)
	}); err != nil {
		errs = append(errs, fmt.Errorf("a click during the outage was not answered %q: got %v", dbDownText, texts(w.slack.Ephemerals(approver)[ephs:])))
	}
	restart()
	// Back: ready again, the same processes, and the probe goes through.
	if err := waitFor(w, 60*time.Second, func() bool {
		for _, r := range reps {
			if ready(r.health) != nil {
				return false
			}
		}
		return true
	}); err != nil {
		errs = append(errs, errors.New("the replicas were not ready within 60s of the database's return"))
	}
	mu.Lock()
	for i, r := range reps {
		if r.starts != starts[i] {
			errs = append(errs, fmt.Errorf("replica %d was restarted during the outage", i))
		}
	}
	mu.Unlock()
	ephs = len(w.slack.Ephemerals(prober))
	for attempt := 0; ; attempt++ {
		if _, err := w.slack.SlashCommand(prober, "/sym", "req t0 "+dur+" e2e probe after the outage", demoChannel); err == nil {
			break
		} else if attempt == 3 {
			errs = append(errs, fmt.Errorf("slash command after the outage: %w", err))
			break
		}
	}
	var after slacktest.MessageRef
	if err := waitFor(w, 60*time.Second, func() bool {
		for _, m := range w.slack.Messages(demoChannel) {
			if strings.Contains(string(m.Blocks), "e2e probe after the outage") && (m.ThreadTS == "" || m.ThreadTS == m.TS) {
				after = m.Ref()
				return true
			}
		}
		return false
	}); err != nil {
		errs = append(errs, fmt.Errorf("the ask after the outage was not posted; the prober was told %v", texts(w.slack.Ephemerals(prober)[ephs:])))
		return errors.Join(errs...)
	}
	// The probe made before the outage is cancelled by its author (so that
	// it does not wait for approval forever); the one after is approved and
	// runs its course with the others.
	if _, err := w.slack.ClickButton(approver, after, "sym_approve"); err != nil {
		errs = append(errs, fmt.Errorf("approve after the outage: %w", err))
	}
	if _, err := w.slack.ClickButton(approver, ref, "sym_approve"); err != nil {
		errs = append(errs, fmt.Errorf("approve the probe clicked during the outage: %w", err))
	}
	return errors.Join(errs...)
}

func texts(ms []slacktest.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}

// checkReplicaOutcome checks the end state of TestReplicasEndToEnd: every
// request expired with its membership removed, each state entered once
// (deadlines fired once), one request per ask, the Okta membership log
// (one add and one removal per grant, nothing left), one approval message
// per request and every job's message (approval message, thread reply, DM,
// alert) posted once, kills or not, and the audit chain (verified by
// symbot, contiguous).
func checkReplicaOutcome(t *testing.T, w *world, pool *pgxpool.Pool, bin, cfg string, env map[string]string, groups []string, want int, msgs map[string][]slacktest.Message) {
	t.Helper()
	ctx := t.Context()
	rows, err := pool.Query(ctx, `SELECT doc FROM requests ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var all []symbot.Request
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			t.Fatal(err)
		}
		var r symbot.Request
		if err := json.Unmarshal(doc, &r); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	perAsk := map[string]int{}
	granted := 0
	for _, r := range all {
		perAsk[r.Requester.SlackID+"|"+r.Target+"|"+r.Reason]++
		into := map[symbot.State]int{}
		for _, tr := range r.Transitions {
			into[tr.To]++
		}
		if r.State != symbot.StateExpired || !r.Removed || r.Kept {
			t.Errorf("%s (%s): state %s removed=%t kept=%t %s, want expired and removed", r.ID, r.Reason, r.State, r.Removed, r.Kept, r.RemovalNote)
			continue
		}
		granted++
		for _, s := range []symbot.State{symbot.StateApproved, symbot.StateActive, symbot.StateExpired} {
			if into[s] != 1 {
				t.Errorf("%s entered %s %d times, want once: %+v", r.ID, s, into[s], r.Transitions)
			}
		}
	}
	for k, n := range perAsk {
		if n != 1 {
			t.Errorf("%d requests stored for one ask (%s)", n, k)
		}
	}
	if len(all) != want {
		t.Errorf("%d requests stored, want %d", len(all), want)
	}

	// Okta: for each membership, one add and one removal that changed the
	// group, in that order; nothing left in any group.
	changes := map[string][]string{}
	puts, dels := 0, 0
	for _, c := range w.okta.MembershipLog() {
		if c.Add {
			puts++
		} else {
			dels++
		}
		if c.Changed {
			changes[c.Group+"|"+c.User] = append(changes[c.Group+"|"+c.User], map[bool]string{true: "add", false: "remove"}[c.Add])
		}
	}
	for k, seq := range changes {
		if strings.Join(seq, ",") != "add,remove" {
			t.Errorf("membership %s changed %v, want [add remove]", k, seq)
		}
	}
	if len(changes) != granted {
		t.Errorf("%d memberships added in Okta, want %d (one per grant)", len(changes), granted)
	}
	for _, g := range groups {
		if m := w.okta.Members(g); len(m) != 0 {
			t.Errorf("left in Okta group %s: %v", g, m)
		}
	}

	// Slack: one approval message per request, and every message a job
	// posted (approval message, thread reply, DM, alert) exactly once,
	// kills or not: a job retried after its replica was killed finds the
	// message the killed attempt posted (by its metadata) and adopts it.
	dupPosts := 0
	for tok, ms := range msgs {
		if len(ms) == 1 {
			continue
		}
		dupPosts += len(ms) - 1
		var at []string
		for _, m := range ms {
			at = append(at, slackTime(m.TS))
		}
		t.Errorf("%d approval messages for %s, posted at %v; want 1", len(ms), tok, at)
	}
	byJob := map[string][]slacktest.Message{}
	untagged := 0
	var posted []slacktest.Message
	posted = append(posted, w.slack.Messages(demoChannel)...)
	posted = append(posted, w.slack.Messages(demoErrors)...)
	for _, r := range all {
		posted = append(posted, w.slack.DMs(r.Requester.SlackID)...)
	}
	dmSeen := map[string]bool{}
	for _, m := range posted {
		if strings.HasPrefix(m.Channel, "D") {
			if dmSeen[m.Channel+"|"+m.TS] {
				continue // the same person's DMs, listed once per request
			}
			dmSeen[m.Channel+"|"+m.TS] = true
		}
		if m.Metadata == nil || m.Metadata.EventType != "symbot_job" {
			switch {
			case m.Channel == demoChannel:
				t.Errorf("message %s/%s in the approval channel carries no job metadata: %.80q", m.Channel, m.TS, m.Text)
			case m.Channel != demoErrors: // configuration reports there are no jobs
				untagged++ // an answer by DM when Slack refused the ephemeral one
			}
			continue
		}
		var p struct {
			JobID string `json:"job_id"`
		}
		if err := json.Unmarshal(m.Metadata.EventPayload, &p); err != nil || p.JobID == "" {
			t.Errorf("message %s/%s has metadata %s without a job id", m.Channel, m.TS, m.Metadata.EventPayload)
			continue
		}
		byJob[p.JobID] = append(byJob[p.JobID], m)
	}
	dupJobs := 0
	for id, ms := range byJob {
		if len(ms) > 1 {
			dupJobs++
			var what []string
			for _, m := range ms {
				what = append(what, fmt.Sprintf("%s/%s at %s: %.60q", m.Channel, m.TS, slackTime(m.TS), m.Text))
			}
			t.Errorf("job %s posted %d messages, want 1: %v", id, len(ms), what)
		}
	}
	var dupDMs int
	for _, r := range all {
		seen := map[string]bool{}
		for _, m := range w.slack.DMs(r.Requester.SlackID) {
			if strings.Contains(m.Text, r.ID) {
				if seen[m.Text] {
					dupDMs++
				}
				seen[m.Text] = true
			}
		}
	}
	if dupDMs > 0 {
		t.Errorf("%d DMs sent twice (same request, same text), want none", dupDMs)
	}
	lookups := 0
	for _, c := range w.slack.CallsTo("conversations.history") {
		if c.Error == "" {
			lookups++
		}
	}

	// The audit chain: verified by symbot, one entry per seq from 1, and
	// each deadline's state change audited once per request.
	cli := binaryCLI(t, bin, cfg, env)
	if out, code := cli("audit", "verify"); code != 0 {
		t.Errorf("symbot audit verify: exit %d\n%s", code, out)
	}
	var n, lo, hi int64
	if err := pool.QueryRow(ctx, `SELECT count(*), COALESCE(min(seq), 0), COALESCE(max(seq), 0) FROM audit`).Scan(&n, &lo, &hi); err != nil {
		t.Fatal(err)
	}
	if lo != 1 || hi != n {
		t.Errorf("audit seqs %d..%d with %d entries: gaps or forks", lo, hi, n)
	}
	var twice []string
	arows, err := pool.Query(ctx, `SELECT request_id, action, count(*) FROM audit WHERE action IN ('state:approved', 'state:active', 'state:expired', 'job:grant:ok', 'job:revoke:ok') GROUP BY 1, 2 HAVING count(*) > 1`)
	if err != nil {
		t.Fatal(err)
	}
	for arows.Next() {
		var id, action string
		var c int
		if err := arows.Scan(&id, &action, &c); err != nil {
			t.Fatal(err)
		}
		twice = append(twice, fmt.Sprintf("%s %s x%d", id, action, c))
	}
	sort.Strings(twice)
	if len(twice) > 0 {
		t.Errorf("audited more than once: %v", twice)
	}
	t.Logf("Okta membership calls applied: %d PUT, %d DELETE for %d grants; audit entries %d; job messages %d, posted twice %d (approval messages %d, DMs %d); DMs without a job %d; history look-ups by retried jobs %d, replies look-ups %d",
		puts, dels, granted, n, len(byJob), dupJobs, dupPosts, dupDMs, untagged, lookups, len(w.slack.CallsTo("conversations.replies")))
}

// ready asks a replica's /readyz; nil when it answers 200.
func ready(base string) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(base + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	return nil
}

// waitFor waits up to d for cond, re-checked on every change of the Slack
// simulator.
func waitFor(w *world, d time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return w.slack.WaitFor(ctx, cond)
}

// waitUpTo is waitFor that fails the test, with what(), when d runs out.
func waitUpTo(t *testing.T, w *world, d time.Duration, what string, cond func() bool, why func() string) {
	t.Helper()
	if err := waitFor(w, d, cond); err != nil {
		t.Fatalf("timed out after %s waiting for %s\n%s", d, what, why())
	}
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// notInfo drops the info lines of a log.
func notInfo(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, "level=INFO") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func lastLogLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
