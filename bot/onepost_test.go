package bot_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
	"github.com/symbot/symbot/store"
)

// jobCtx is the context the executor gives a job's Notifier calls.
func jobCtx(ctx context.Context, id uint64, kind symbot.JobKind, requestID string, retry bool) context.Context {
	return symbot.ContextWithJobAttempt(ctx, symbot.JobAttempt{JobID: id, Kind: kind, RequestID: requestID,
		CreatedAt: time.Now().Add(-time.Minute), Retry: retry})
}

// jobOf returns the job id in m's metadata, failing when m has none.
func jobOf(t *testing.T, m slacktest.Message) string {
	t.Helper()
	if m.Metadata == nil || m.Metadata.EventType != bot.JobEventType {
		t.Fatalf("message %q has metadata %+v, want event_type %s", m.Text, m.Metadata, bot.JobEventType)
	}
	return string(m.Metadata.EventPayload)
}

// TestRetriedPostIgnoresAnotherAppsMessage: another app in the channel
// can attach any metadata, even a copy of a job's. A retry must adopt only
// a message this app posted: adopting the other app's would leave the
// approval message unposted and point the request (and its later updates)
// at a message symbot cannot edit.
func TestRetriedPostIgnoresAnotherAppsMessage(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{ErrorsChannel: chErr})
	f, r := sampleRequest()
	forged := s.PostAsOtherApp(chAcc, "B0OTHERAPP", "looks like symbot's", &slacktest.Metadata{
		EventType:    bot.JobEventType,
		EventPayload: []byte(`{"job_id":"71","request_id":"` + r.ID + `","kind":"post"}`),
	})
	ref, err := b.PostRequest(jobCtx(t.Context(), 71, symbot.JobPost, r.ID, true), f, r)
	if err != nil {
		t.Fatal(err)
	}
	if ref == (symbot.MessageRef{Channel: forged.Channel, TS: forged.TS}) {
		t.Fatal("the retry adopted another app's message that carried the job's metadata")
	}
	var own int
	for _, m := range s.Messages(chAcc) {
		if m.OtherApp == "" && m.Metadata != nil && strings.Contains(jobOf(t, m), `"job_id":"71"`) {
			own++
			if m.Ref() != (slacktest.MessageRef{Channel: ref.Channel, TS: ref.TS}) {
				t.Errorf("PostRequest returned %+v, but its message is %+v", ref, m.Ref())
			}
		}
	}
	if own != 1 {
		t.Errorf("approval messages posted by symbot for job 71: %d, want 1", own)
	}
	// Its own message is still found by a later retry.
	again, err := b.PostRequest(jobCtx(t.Context(), 71, symbot.JobPost, r.ID, true), f, r)
	if err != nil {
		t.Fatal(err)
	}
	if again != ref {
		t.Errorf("a second retry returned %+v, want symbot's own message %+v", again, ref)
	}
}

// TestRetriedPostPagesThroughHistory: history comes newest first, 200 a
// page, so an earlier attempt's message behind a busy channel is on a
// later page: the look-up follows the cursor to it, and stops after 5
// pages (1,000 messages), posting again, rather than read on without end.
func TestRetriedPostPagesThroughHistory(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{ErrorsChannel: chErr})
	f, r := sampleRequest()
	ctx := t.Context()
	ref, err := b.PostRequest(jobCtx(ctx, 91, symbot.JobPost, r.ID, false), f, r)
	if err != nil {
		t.Fatal(err)
	}
	filler := func(n int) {
		for i := range n {
			s.PostAsOtherApp(chAcc, "B0BUSYAPP", fmt.Sprintf("busy %d", i), nil)
		}
	}
	filler(450) // the message is on the third page
	again, err := b.PostRequest(jobCtx(ctx, 91, symbot.JobPost, r.ID, true), f, r)
	if err != nil {
		t.Fatal(err)
	}
	if again != ref {
		t.Errorf("retry behind 450 messages returned %+v, want the earlier message %+v", again, ref)
	}
	if n := len(s.CallsTo("conversations.history")); n != 3 {
		t.Errorf("history pages read %d, want 3", n)
	}
	if n := len(s.CallsTo("chat.postMessage")); n != 1 {
		t.Errorf("chat.postMessage calls %d, want 1 (the first attempt only)", n)
	}

	filler(600) // now 1,050 messages are newer than it
	beyond, err := b.PostRequest(jobCtx(ctx, 91, symbot.JobPost, r.ID, true), f, r)
	if err != nil {
		t.Fatal(err)
	}
	if beyond == ref {
		t.Error("found a message beyond the look-up's bound of 1,000 messages")
	}
	if n := len(s.CallsTo("conversations.history")); n != 3+5 {
		t.Errorf("history pages read %d, want 3 + 5 (the bound)", n)
	}
}

// TestRetriedPostFindsEarlierMessage: a job's first attempt posts its
// message with the job's metadata and makes no other call; a retry of the
// same job finds that message in the channel's history (or the DM's, or
// the thread's) and returns it without posting again; a retry whose
// first attempt never reached Slack posts once.
func TestRetriedPostFindsEarlierMessage(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{ErrorsChannel: chErr})
	f, r := sampleRequest()
	ctx := t.Context()

	// The approval message.
	ref, err := b.PostRequest(jobCtx(ctx, 41, symbot.JobPost, r.ID, false), f, r)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.CallsTo("conversations.history")); n != 0 {
		t.Errorf("a first attempt read history %d times, want 0 (no look-up on the hot path)", n)
	}
	msgs := s.Messages(chAcc)
	if len(msgs) != 1 {
		t.Fatalf("approval messages %d, want 1", len(msgs))
	}
	if got := jobOf(t, msgs[0]); got != `{"job_id":"41","kind":"post","request_id":"SYM-9"}` {
		t.Errorf("metadata payload %s, want job 41, kind post, request SYM-9", got)
	}
	// Other messages in the channel since: another request's, untagged.
	for i := range 3 {
		_, o := sampleRequest()
		o.ID = fmt.Sprintf("SYM-%d", 100+i)
		if _, err := b.PostRequest(jobCtx(ctx, uint64(50+i), symbot.JobPost, o.ID, false), f, o); err != nil {
			t.Fatal(err)
		}
	}
	again, err := b.PostRequest(jobCtx(ctx, 41, symbot.JobPost, r.ID, true), f, r)
	if err != nil {
		t.Fatal(err)
	}
	if again != ref {
		t.Errorf("retry returned %+v, want the earlier message %+v", again, ref)
	}
	if n := len(s.Messages(chAcc)); n != 4 {
		t.Errorf("messages in the channel after the retry %d, want 4 (nothing posted again)", n)
	}
	if n := len(s.CallsTo("conversations.history")); n != 1 {
		t.Errorf("history reads %d, want 1", n)
	}

	// The DM.
	if err := b.NotifyUser(jobCtx(ctx, 42, symbot.JobNotify, r.ID, false), alice, f, r, symbot.EventApproved); err != nil {
		t.Fatal(err)
	}
	if err := b.NotifyUser(jobCtx(ctx, 42, symbot.JobNotify, r.ID, true), alice, f, r, symbot.EventApproved); err != nil {
		t.Fatal(err)
	}
	if dms := s.DMs(alice); len(dms) != 1 {
		t.Errorf("DMs after a retried notify job %d, want 1", len(dms))
	} else if got := jobOf(t, dms[0]); !strings.Contains(got, `"job_id":"42"`) {
		t.Errorf("DM metadata %s, want job 42", got)
	}

	// The thread reply of an update.
	r.Message = ref
	r.State = symbot.StateApproved
	for _, retry := range []bool{false, true} {
		if err := b.UpdateRequest(jobCtx(ctx, 43, symbot.JobUpdate, r.ID, retry), f, r, symbot.EventApproved); err != nil {
			t.Fatal(err)
		}
	}
	if th := s.Thread(ref.Channel, ref.TS); len(th) != 2 {
		t.Errorf("thread after a retried update: %d messages, want the parent and 1 reply", len(th))
	}

	// A retry of a job whose first attempt never reached Slack posts.
	if err := b.NotifyUser(jobCtx(ctx, 44, symbot.JobNotify, r.ID, true), alice, f, r, symbot.EventGranted); err != nil {
		t.Fatal(err)
	}
	if dms := s.DMs(alice); len(dms) != 2 {
		t.Errorf("DMs after a retry that found nothing %d, want 2", len(dms))
	}
	if n := len(s.Messages(chErr)); n != 0 {
		t.Errorf("alerts %d, want none", n)
	}
}

// TestRetryWithoutHistoryScopePostsAndSaysSo: a workspace that has not
// granted the history scopes: a retried job posts as before (it never
// fails over the look-up) and the operators are told once how to fix it.
func TestRetryWithoutHistoryScopePostsAndSaysSo(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{ErrorsChannel: chErr})
	s.SetScopes("chat:write", "commands", "im:write", "users:read", "users:read.email")
	f, r := sampleRequest()
	ctx := t.Context()
	for i := range 2 {
		if _, err := b.PostRequest(jobCtx(ctx, uint64(60+i), symbot.JobPost, r.ID, true), f, r); err != nil {
			t.Fatalf("retried post without channels:history: %v", err)
		}
	}
	if err := b.NotifyUser(jobCtx(ctx, 70, symbot.JobNotify, r.ID, true), alice, f, r, symbot.EventApproved); err != nil {
		t.Fatalf("retried DM without im:history: %v", err)
	}
	if n := len(s.Messages(chAcc)); n != 2 {
		t.Errorf("approval messages %d, want 2 (posted without the look-up)", n)
	}
	if n := len(s.DMs(alice)); n != 1 {
		t.Errorf("DMs %d, want 1", n)
	}
	alerts := s.Messages(chErr)
	var texts []string
	for _, m := range alerts {
		texts = append(texts, m.Text)
	}
	if len(alerts) != 2 {
		t.Fatalf("alerts %d, want 2 (once for channels:history, once for im:history): %q", len(alerts), texts)
	}
	for i, want := range []string{"channels:history", "im:history"} {
		for _, w := range []string{want, "Reinstall the Slack app", "manifest.yml", "twice"} {
			if !strings.Contains(texts[i], w) {
				t.Errorf("alert %q lacks %q", texts[i], w)
			}
		}
	}
}

// TestRetriedPostRateLimitedLookupWaits: a look-up Slack rate limits is
// not a reason to post blind: the job gets a retryable error and nothing
// is posted.
func TestRetriedPostRateLimitedLookupWaits(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{ErrorsChannel: chErr})
	f, r := sampleRequest()
	s.RateLimitNext("conversations.history", 20*time.Second, 1)
	_, err := b.PostRequest(jobCtx(t.Context(), 80, symbot.JobPost, r.ID, true), f, r)
	var ra *symbot.RetryAfterError
	if !errors.Is(err, symbot.ErrRateLimited) || !errors.As(err, &ra) || ra.After != 20*time.Second {
		t.Fatalf("retried post with a rate-limited look-up: %v, want ErrRateLimited after 20s", err)
	}
	if n := len(s.CallsTo("chat.postMessage")); n != 0 {
		t.Errorf("posted %d times while the look-up was rate limited, want 0", n)
	}
}

// postThenDie is the Notifier of a process that dies right after Slack
// accepted its approval message: the store goes away before the job can
// record the message.
type postThenDie struct {
	*bot.Bot
	st   *store.Store
	died chan struct{}
}

func (n *postThenDie) PostRequest(ctx context.Context, f *symbot.Flow, r *symbot.Request) (symbot.MessageRef, error) {
	return n.die(n.Bot.PostRequest(ctx, f, r))
}

// PostPrepared: the first attempt posts the message prepared while its
// request committed (the Bot is a symbot.PostPreparer).
func (n *postThenDie) PostPrepared(ctx context.Context, f *symbot.Flow, r *symbot.Request, p symbot.PreparedPost) (symbot.MessageRef, error) {
	return n.die(n.Bot.PostPrepared(ctx, f, r, p))
}

func (n *postThenDie) die(ref symbot.MessageRef, err error) (symbot.MessageRef, error) {
	if err == nil {
		_ = n.st.Close()
		close(n.died)
	}
	return ref, err
}

// TestCrashAfterPostAdoptsMessage: the first attempt of the post job puts
// the approval message in Slack and the process dies before the job
// records it. After the restart the job runs again, finds the message by
// its metadata and records it: one approval message, which the later
// updates edit.
func TestCrashAfterPostAdoptsMessage(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{ErrorsChannel: chErr})
	path := filepath.Join(t.TempDir(), "symbot.db")
	dir := newFakeDir()
	dir.addUser("00ualice", "alice@example.com")
	dir.addUser("00ubob", "bob@example.com")
	flows := testFlows()

	st, err := store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dying := &postThenDie{Bot: b, st: st, died: make(chan struct{})}
	eng, err := symbot.NewEngine(st, dir, dying, flows)
	if err != nil {
		t.Fatal(err)
	}
	eng.Runtime.ShutdownGrace = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	requester := symbot.Actor{Person: symbot.Person{SlackID: alice, Name: "alice", Email: "alice@example.com"}}
	r, err := eng.Submit(t.Context(), requester, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "crash after post"})
	if err != nil {
		t.Fatal(err)
	}
	<-dying.died
	cancel()
	<-done
	if n := len(s.Messages(chAcc)); n != 1 {
		t.Fatalf("approval messages before the restart %d, want 1", n)
	}

	st, err = store.Open(path, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err = symbot.NewEngine(st, dir, b, flows)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := eng.Get(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages(chAcc)
	if len(msgs) != 1 {
		t.Fatalf("approval messages after the restart %d, want 1", len(msgs))
	}
	if got.Message.TS != msgs[0].TS || got.Message.Channel != chAcc {
		t.Errorf("recorded message %+v, want the one posted before the crash (%s)", got.Message, msgs[0].TS)
	}
	if n := len(s.CallsTo("conversations.history")); n != 1 {
		t.Errorf("history reads %d, want 1 (by the retry)", n)
	}
	// The updates edit that message.
	if _, err := eng.Cancel(t.Context(), r.ID, requester); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.RunDueJobs(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Message(slacktest.MessageRef{Channel: chAcc, TS: msgs[0].TS}); m.Updates == 0 {
		t.Errorf("the adopted approval message was not updated when the request was cancelled")
	}
	if n := len(s.Messages(chErr)); n != 0 {
		t.Errorf("alerts %d, want none", n)
	}
}
