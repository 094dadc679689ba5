package main

// The latency benchmarks of issue 13: the wired daemon (real bot, engine,
// bbolt store with fsync, Okta and AWS adapters) against the simulators,
// each figure beside its floor measured in the same run against the same
// simulators.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	bolt "go.etcd.io/bbolt"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot/slacktest"
	"github.com/symbot/symbot/cmd/symbot/internal/config"
	"github.com/symbot/symbot/okta/oktatest"
)

// latencyWorld is the demo world with n extra requesters (each in Slack and
// Okta) and the daemon running on it with the per-person limits off.
type latencyWorld struct {
	w     *world
	d     *daemon
	slack []string // Slack IDs of the requesters
	okta  []string // their Okta IDs
}

func startLatencyWorld(b *testing.B, n int) *latencyWorld {
	b.Helper()
	w, cfgPath := mustWorld(b, "1h", "0")
	lw := &latencyWorld{w: w}
	for i := range n {
		id, email := fmt.Sprintf("U0LAT%06d", i), fmt.Sprintf("lat%06d@example.com", i)
		w.slack.AddUser(slacktest.User{ID: id, Name: fmt.Sprintf("lat%06d", i), RealName: "Latency Bench", Email: email})
		lw.slack = append(lw.slack, id)
		lw.okta = append(lw.okta, w.okta.AddUser(oktatest.User{Login: email, FirstName: "Latency", LastName: "Bench"}).ID)
	}
	// Every requester is distinct, but bob approves them all.
	lw.d = mustOpenDaemon(b, w, cfgPath, func(cfg *config.Config) {
		cfg.Limits.RequestsPerMinute, cfg.Limits.CommandsPerMinute = -1, -1
	})
	runDaemon(b, lw.d)
	lw.wait(b, "symbot to connect", lw.d.bot.Connected)
	return lw
}

// wait waits up to a minute for cond, checked at once and then every
// waitEvery. The figures are the simulators' own arrival times, so
// checking seldom changes none of them, but what a check costs while the
// daemon runs is taken from the daemon under test, whereas the floor's
// calls are scanned once, after its loop. So a wait does not wake on every
// simulator change (slacktest's WaitFor would, each time taking the lock
// that every simulated API call takes), its conditions copy only the calls
// made since their last check (postScan, putScan), and the search of the
// approval messages for their markers waits until they are all there
// (postScan.found).
func (lw *latencyWorld) wait(b *testing.B, what string, cond func() bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	t := time.NewTicker(waitEvery)
	defer t.Stop()
	for !cond() {
		select {
		case <-t.C:
		case <-ctx.Done():
			b.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitPrechecked waits until the n pending requests' early Okta look-ups
// are recorded.
func (lw *latencyWorld) waitPrechecked(b *testing.B, n int) {
	b.Helper()
	lw.wait(b, "the early look-ups", func() bool {
		rs, err := lw.d.engine.ListByState(b.Context(), symbot.StatePending)
		if err != nil || len(rs) < n {
			return false
		}
		for _, r := range rs {
			if r.PrecheckedAt.IsZero() {
				return false
			}
		}
		return true
	})
}

// waitEvery is how often a wait checks its condition.
const waitEvery = 25 * time.Millisecond

// markers finds the request markers ("rq000042q") in Slack calls.
var markerRE = regexp.MustCompile(`(rq|fl|fm)(\d{6})q`)

func marker(kind string, i int) string { return fmt.Sprintf("%s%06dq", kind, i) }

// postScan finds, per marker number of one kind, when the first
// chat.postMessage to a channel carrying it reached the simulator. Each
// read copies only the calls made since the last one.
type postScan struct {
	s             *slacktest.Server
	channel, kind string
	seen          int              // calls already read
	posts         []slacktest.Call // posts read but not yet searched for markers
	at            map[int]time.Time
}

func newPostScan(s *slacktest.Server, channel, kind string) *postScan {
	return &postScan{s: s, channel: channel, kind: kind, at: map[int]time.Time{}}
}

// read copies the new calls and keeps the successful posts to the channel
// for a later search. It reports whether any call was new.
func (p *postScan) read() bool {
	calls := p.s.CallsFrom(p.seen)
	p.seen += len(calls)
	for _, c := range calls {
		if c.Method == "chat.postMessage" && c.Error == "" && c.Params.Get("channel") == p.channel {
			p.posts = append(p.posts, c)
		}
	}
	return len(calls) > 0
}

// scan reads the new calls, searches the posts read for markers and
// returns the arrival times found so far.
func (p *postScan) scan() map[int]time.Time {
	p.read()
	for _, c := range p.posts {
		for _, m := range markerRE.FindAllStringSubmatch(c.Params.Get("text")+c.Params.Get("blocks"), -1) {
			if m[1] != p.kind {
				continue
			}
			i, _ := strconv.Atoi(m[2])
			if _, seen := p.at[i]; !seen {
				p.at[i] = c.At
			}
		}
	}
	p.posts = p.posts[:0]
	return p.at
}

// found reports whether n markers have been found. It is a wait condition
// for while the daemon runs: a check copies the new calls and keeps the
// posts, and the posts are searched (a regular expression over their
// blocks, 45-110 ms for 1000 posts) only once there are enough of them to
// carry the n markers (an approval message carries one), or when no call
// came since the last check, so the search takes no CPU from the daemon
// while it is still posting.
func (p *postScan) found(n int) bool {
	if p.read() && len(p.at)+len(p.posts) < n {
		return false
	}
	return len(p.scan()) >= n
}

// putScan finds, per Okta user ID, when the first successful PUT of that
// user into one group reached the simulator. Each scan reads only the
// calls made since the last one (the Okta simulator's calls must not be
// reset between scans).
type putScan struct {
	s      *oktatest.Server
	prefix string
	seen   int // calls already scanned
	at     map[string]time.Time
}

func newPutScan(s *oktatest.Server, gid string) *putScan {
	return &putScan{s: s, prefix: "/api/v1/groups/" + gid + "/users/", at: map[string]time.Time{}}
}

// scan reads the new calls and returns the arrival times found so far.
func (p *putScan) scan() map[string]time.Time {
	calls := p.s.CallsFrom(p.seen)
	for _, c := range calls {
		if c.Method != http.MethodPut || !strings.HasPrefix(c.Path, p.prefix) || c.Status/100 != 2 {
			continue
		}
		uid := strings.TrimPrefix(c.Path, p.prefix)
		if _, seen := p.at[uid]; !seen {
			p.at[uid] = c.At
		}
	}
	p.seen += len(calls)
	return p.at
}

// latencies is a set of measured durations.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// report puts the figures and their ratio to the floor beside each other.
func report(b *testing.B, got, floor latencies) {
	b.ReportMetric(ms(got.pct(0.50)), "p50_ms")
	b.ReportMetric(ms(got.pct(0.99)), "p99_ms")
	b.ReportMetric(ms(floor.pct(0.50)), "floor_p50_ms")
	b.ReportMetric(ms(floor.pct(0.99)), "floor_p99_ms")
	b.ReportMetric(float64(got.pct(0.50))/float64(floor.pct(0.50)), "p50_x_floor")
	b.ReportMetric(float64(got.pct(0.99))/float64(floor.pct(0.99)), "p99_x_floor")
}

// cpuMeter measures the process's CPU time over a span of n operations.
type cpuMeter struct {
	start time.Duration
	ok    bool
}

func startCPU() cpuMeter {
	t, ok := processCPU()
	return cpuMeter{start: t, ok: ok}
}

// report reports the CPU time per operation since startCPU as unit; the
// CPU of the whole process (the simulators' too), so it is only compared
// with a figure measured the same way beside it.
func (m cpuMeter) report(b *testing.B, n int, unit string) {
	t, ok := processCPU()
	if !m.ok || !ok || n == 0 {
		return
	}
	b.ReportMetric(ms(t-m.start)/float64(n), unit)
}

// paced calls f(i) for i in [0,n) in sequence, starting each no earlier
// than its slot at perSecond (a loop that falls behind runs back to back).
func paced(ctx context.Context, n, perSecond int, f func(i int) error) error {
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(perSecond))); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		if err := f(i); err != nil {
			return err
		}
	}
	return nil
}

// floorDB opens a new bbolt file named for kind beside the daemon's,
// fsync on, with the store's options.
func floorDB(b *testing.B, dir, kind string) *bolt.DB {
	b.Helper()
	db, err := bolt.Open(filepath.Join(dir, "floor-"+kind+".db"), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType, InitialMmapSize: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// floorCommit is one durable write transaction of a request-sized record.
func floorCommit(db *bolt.DB, key string) error {
	val := make([]byte, 1024)
	return db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte("floor"))
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), val)
	})
}

// BenchmarkGrantLatency measures the Approve click (the block_actions
// envelope written by the Slack simulator) to the Okta simulator receiving
// PUT /groups/{g}/users/{u}, at 20 and 100 approvals per second, through
// the wired daemon with bbolt and fsync on. Beside it, in the same run, the
// floor: a bare loop doing one durable bbolt commit then one Okta PUT, to the
// PUT received. b.N is the number of approvals; run it with e.g.
// -benchtime=200x (the requests are made and posted before the clock starts).
func BenchmarkGrantLatency(b *testing.B) {
	for _, rate := range []int{20, 100} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			n := b.N
			lw := startLatencyWorld(b, n)
			w := lw.w
			ctx := b.Context()
			// The pending requests, one per requester, and their messages.
			res := w.slack.SendMany(ctx, n, 200, func(i int) (slacktest.Ack, error) {
				return w.slack.SlashCommand(lw.slack[i], "/sym", "req prod-admin 1h "+marker("rq", i), demoChannel)
			})
			if res.Failed > 0 {
				b.Fatalf("requests: %d of %d failed: %v", res.Failed, res.Sent, res.FirstErr)
			}
			refs := make([]slacktest.MessageRef, n)
			lw.wait(b, "the approval messages", func() bool {
				found := map[int]bool{}
				for _, m := range w.slack.Messages(demoChannel) {
					if m.Ephemeral || m.ThreadTS != "" {
						continue
					}
					for _, mk := range markerRE.FindAllStringSubmatch(m.Text+string(m.Blocks), 1) {
						if i, _ := strconv.Atoi(mk[2]); mk[1] == "rq" && i < n {
							refs[i] = slacktest.MessageRef{Channel: m.Channel, TS: m.TS}
							found[i] = true
						}
					}
				}
				return len(found) >= n
			})
			// A request waits for a person to read it: by the time anyone
			// clicks, the grant's early Okta look-ups are done.
			lw.waitPrechecked(b, n)
			w.okta.ResetCalls()
			slackBefore := w.slack.CallCount()

			// The clock starts when the simulator begins to write the
			// envelope (Ack.Sent), as Slack would once it has built the
			// payload; the simulator's own building of it, from the
			// ClickButton call, is reported apart (call_p50_ms).
			called, sent := make([]time.Time, n), make([]time.Time, n)
			cpu := startCPU()
			b.ResetTimer()
			res = w.slack.SendMany(ctx, n, rate, func(i int) (slacktest.Ack, error) {
				called[i] = time.Now()
				ack, err := w.slack.ClickButton(demoBob, refs[i], "sym_approve")
				sent[i] = ack.Sent
				return ack, err
			})
			if res.Failed > 0 {
				b.Fatalf("clicks: %d of %d failed: %v", res.Failed, res.Sent, res.FirstErr)
			}
			var puts map[string]time.Time
			ps := newPutScan(w.okta, w.groupID)
			lw.wait(b, "the Okta PUTs", func() bool {
				puts = ps.scan()
				return len(puts) >= n
			})
			b.StopTimer()
			cpu.report(b, n, "cpu_ms/grant")
			got, fromCall := make(latencies, n), make(latencies, n)
			for i := range n {
				got[i] = puts[lw.okta[i]].Sub(sent[i])
				fromCall[i] = puts[lw.okta[i]].Sub(called[i])
			}
			ops := map[string]int{}
			for _, c := range w.okta.Calls() {
				ops[c.Op]++
			}
			slackCalls := w.slack.CallCount() - slackBefore

			// The floor, same simulators, same pace: commit, then PUT.
			db := floorDB(b, w.dir, "fl")
			fg := w.okta.AddGroup(oktatest.Group{Name: "floor"}).ID
			hc := &http.Client{}
			started := make([]time.Time, n)
			floorCPU := startCPU()
			err := paced(ctx, n, rate, func(i int) error {
				started[i] = time.Now()
				if err := floorCommit(db, marker("fl", i)); err != nil {
					return err
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPut, w.okta.URL()+"/api/v1/groups/"+fg+"/users/"+lw.okta[i], nil)
				if err != nil {
					return err
				}
				req.Header.Set("Authorization", "SSWS "+w.okta.Token())
				req.Header.Set("Accept", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					return fmt.Errorf("floor PUT: %s", resp.Status)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			floorCPU.report(b, n, "floor_cpu_ms/grant")
			fputs := newPutScan(w.okta, fg).scan()
			floor := make(latencies, n)
			for i := range n {
				floor[i] = fputs[lw.okta[i]].Sub(started[i])
			}
			report(b, got, floor)
			b.ReportMetric(ms(res.P50), "click_ack_p50_ms")
			b.ReportMetric(ms(fromCall.pct(0.50)), "call_p50_ms")
			for op, c := range ops {
				if op == "" {
					op = "other"
				}
				b.ReportMetric(float64(c)/float64(n), "okta_"+strings.Join(strings.Fields(op), "_")+"/grant")
			}
			b.ReportMetric(float64(slackCalls)/float64(n), "slack_calls/grant")
		})
	}
}

// BenchmarkApprovalMessageLatency measures from the Slack simulator
// beginning to write the /sym req envelope to its receiving the
// chat.postMessage of the approval message, at 500 requests per second from distinct
// people, through the wired daemon with bbolt and fsync on. Beside it, in
// the same run, the floor: a bare loop doing users.info, one durable bbolt
// commit and chat.postMessage through slack-go, to the post received. b.N is
// the number of requests; run it with e.g. -benchtime=1000x (at most
// 4096x: the early look-ups' queue holds 4096, and the benchmark waits for
// every request's).
//
// cpu_ms/req and floor_cpu_ms/req are the process's CPU time per request
// over each (the simulators' included, in both): a figure that a slow
// spell of the shared machine moves much less than the latencies, for
// comparing two builds.
func BenchmarkApprovalMessageLatency(b *testing.B) {
	const rate = 500
	n := b.N
	lw := startLatencyWorld(b, n)
	w := lw.w
	ctx := b.Context()
	// The clock starts when the simulator begins to write the envelope
	// (Ack.Sent), as in BenchmarkGrantLatency; the simulator's own
	// building of the slash command's payload, from the SlashCommand
	// call, is reported apart (call_p50_ms).
	called, sent := make([]time.Time, n), make([]time.Time, n)
	slackBefore, oktaBefore := w.slack.CallCount(), w.okta.CallCount()
	cpu := startCPU()
	b.ResetTimer()
	res := w.slack.SendMany(ctx, n, rate, func(i int) (slacktest.Ack, error) {
		called[i] = time.Now()
		ack, err := w.slack.SlashCommand(lw.slack[i], "/sym", "req prod-admin 1h "+marker("rq", i), demoChannel)
		sent[i] = ack.Sent
		return ack, err
	})
	if res.Failed > 0 {
		b.Fatalf("requests: %d of %d failed: %v", res.Failed, res.Sent, res.FirstErr)
	}
	ps := newPostScan(w.slack, demoChannel, "rq")
	ps.seen = slackBefore // the requests' posts come after
	lw.wait(b, "the approval messages", func() bool { return ps.found(n) })
	b.StopTimer()
	// The requests' early look-ups give way to the requests coming in, so
	// some run after the last message is posted: they are done, and in
	// the CPU figure, before the floor runs. Each makes two Okta calls
	// (the requester's user and groups), counted first because that
	// costs the process nothing.
	lw.wait(b, "the early look-ups' Okta calls", func() bool { return w.okta.CallCount()-oktaBefore >= 2*n })
	lw.waitPrechecked(b, n)
	cpu.report(b, n, "cpu_ms/req")
	posts := ps.scan()
	got, fromCall := make(latencies, n), make(latencies, n)
	for i := range n {
		got[i] = posts[i].Sub(sent[i])
		fromCall[i] = posts[i].Sub(called[i])
	}
	methods := map[string]int{}
	for _, c := range w.slack.CallsFrom(slackBefore) {
		methods[c.Method]++
	}
	oktaCalls := w.okta.CallCount()

	// The floors, same simulators, same pace: users.info, commit, post.
	// The first posts the approval message symbot posted for the same
	// request (its text, blocks and metadata, with the marker changed),
	// so that the post carries the same bytes; the second a one-line text,
	// as this floor did before 2026-12-02 (session 7).
	msgs := approvalMessages(b, w.slack.CallsFrom(slackBefore), n)
	api := slack.New(w.slack.BotToken, slack.OptionAPIURL(w.slack.APIURL()))
	floorLoop := func(kind string, post func(i int) []slack.MsgOption) latencies {
		db := floorDB(b, w.dir, kind)
		started := make([]time.Time, n)
		cpu := startCPU()
		err := paced(ctx, n, rate, func(i int) error {
			started[i] = time.Now()
			if _, err := api.GetUserInfoContext(ctx, lw.slack[i]); err != nil {
				return err
			}
			if err := floorCommit(db, marker(kind, i)); err != nil {
				return err
			}
			_, _, err := api.PostMessageContext(ctx, demoChannel, post(i)...)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		if kind == "fm" {
			cpu.report(b, n, "floor_cpu_ms/req")
		}
		fposts := newPostScan(w.slack, demoChannel, kind).scan()
		floor := make(latencies, n)
		for i := range n {
			floor[i] = fposts[i].Sub(started[i])
		}
		return floor
	}
	floor := floorLoop("fm", func(i int) []slack.MsgOption { return msgs[i] })
	textFloor := floorLoop("fl", func(i int) []slack.MsgOption {
		return []slack.MsgOption{slack.MsgOptionText("floor "+marker("fl", i), false)}
	})
	report(b, got, floor)
	b.ReportMetric(ms(textFloor.pct(0.50)), "text_floor_p50_ms")
	b.ReportMetric(float64(got.pct(0.50))/float64(textFloor.pct(0.50)), "p50_x_text_floor")
	b.ReportMetric(ms(fromCall.pct(0.50)), "call_p50_ms")
	b.ReportMetric(ms(res.P50), "ack_p50_ms")
	b.ReportMetric(ms(res.P99), "ack_p99_ms")
	for m, c := range methods {
		b.ReportMetric(float64(c)/float64(n), "slack_"+m+"/req")
	}
	b.ReportMetric(float64(oktaCalls)/float64(n), "okta_calls/req")
}

// rawBlock is a block as a post carried it, sent again as it was.
type rawBlock struct {
	typ slack.MessageBlockType
	raw json.RawMessage
}

func (r rawBlock) BlockType() slack.MessageBlockType { return r.typ }
func (r rawBlock) ID() string                        { return "" }
func (r rawBlock) MarshalJSON() ([]byte, error)      { return r.raw, nil }

// approvalMessages returns, for each of the n requests, the options that
// post again the approval message symbot posted for it (found in calls by
// its rq marker): the same text, blocks and metadata, with the marker
// changed to fm's. It fails on a post whose parameters it would not send
// again (so that the floor never posts less than symbot did).
func approvalMessages(b *testing.B, calls []slacktest.Call, n int) [][]slack.MsgOption {
	b.Helper()
	out := make([][]slack.MsgOption, n)
	for _, c := range calls {
		if c.Method != "chat.postMessage" || c.Error != "" || c.Params.Get("channel") != demoChannel {
			continue
		}
		m := markerRE.FindStringSubmatch(c.Params.Get("text") + c.Params.Get("blocks"))
		if m == nil || m[1] != "rq" {
			continue
		}
		i, _ := strconv.Atoi(m[2])
		if i >= n || out[i] != nil {
			continue
		}
		re := func(v string) string { return strings.ReplaceAll(v, marker("rq", i), marker("fm", i)) }
		for k := range c.Params {
			switch k {
			case "channel", "text", "blocks", "metadata", "token":
			default:
				b.Fatalf("the approval message's post has parameter %q, which the floor does not send", k)
			}
		}
		opts := []slack.MsgOption{slack.MsgOptionText(re(c.Params.Get("text")), false)}
		if v := c.Params.Get("blocks"); v != "" {
			var raws []json.RawMessage
			if err := json.Unmarshal([]byte(re(v)), &raws); err != nil {
				b.Fatalf("approval message blocks: %v", err)
			}
			blocks := make([]slack.Block, len(raws))
			for j, raw := range raws {
				var head struct {
					Type slack.MessageBlockType `json:"type"`
				}
				if err := json.Unmarshal(raw, &head); err != nil {
					b.Fatalf("approval message block: %v", err)
				}
				blocks[j] = rawBlock{typ: head.Type, raw: raw}
			}
			opts = append(opts, slack.MsgOptionBlocks(blocks...))
		}
		if v := c.Params.Get("metadata"); v != "" {
			var md slack.SlackMetadata
			if err := json.Unmarshal([]byte(re(v)), &md); err != nil {
				b.Fatalf("approval message metadata: %v", err)
			}
			opts = append(opts, slack.MsgOptionMetadata(md))
		}
		out[i] = opts
	}
	for i, o := range out {
		if o == nil {
			b.Fatalf("no approval message found for request %d", i)
		}
	}
	return out
}
