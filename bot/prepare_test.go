package bot_test

import (
	"testing"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/bot"
)

// TestPreparedPostIsThePlainPost: an approval message prepared ahead
// (PreparePost, while the request commits) and posted with PostPrepared
// reaches Slack exactly as PostRequest posts it: the same text, blocks
// (escaped user text included) and job metadata.
func TestPreparedPostIsThePlainPost(t *testing.T) {
	b, s := MustNotifier(t, bot.Config{ErrorsChannel: chErr})
	f, r := sampleRequest()
	r.Reason = "<!channel> see <https://evil.example|the docs> & more"
	plain, err := b.PostRequest(jobCtx(t.Context(), 7, symbot.JobPost, r.ID, false), f, r)
	if err != nil {
		t.Fatal(err)
	}
	p := b.PreparePost(f, r)
	if p == nil {
		t.Fatal("PreparePost prepared nothing")
	}
	prepared, err := b.PostPrepared(jobCtx(t.Context(), 7, symbot.JobPost, r.ID, false), f, r, p)
	if err != nil {
		t.Fatal(err)
	}
	calls := s.CallsTo("chat.postMessage")
	if len(calls) != 2 {
		t.Fatalf("%d chat.postMessage calls, want 2", len(calls))
	}
	for _, param := range []string{"channel", "text", "blocks", "metadata"} {
		if a, b := calls[0].Params.Get(param), calls[1].Params.Get(param); a != b || a == "" {
			t.Errorf("%s: PostRequest sent %q, PostPrepared sent %q", param, a, b)
		}
	}
	if plain.Channel != prepared.Channel || plain.TS == prepared.TS {
		t.Errorf("refs %+v and %+v: want two messages in one channel", plain, prepared)
	}
}
