package bot_test

import (
	"testing"
	"time"

	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

// TestQuietSocketConnectionIsReplaced: a Socket Mode connection on which
// Slack sends nothing, not even a ping, for Config.SocketPingTimeout is
// replaced by a new one, and requests go on over it; one that Slack pings
// is kept.
func TestQuietSocketConnectionIsReplaced(t *testing.T) {
	// Generous beside the 50 ms pings, so that a test machine's pauses
	// under the race detector do not pass for a quiet connection.
	const timeout = time.Second
	h := MustHarness(t,
		withBotConfig(func(c *bot.Config) { c.SocketPingTimeout = timeout }),
		withServer(func(s *slacktest.Server) { s.PingInterval = 50 * time.Millisecond }))
	h.waitFor("connected", h.bot.Connected)
	// Pinged every 50 ms and answering: 50 pongs span more than two
	// timeouts, without a reconnect.
	from := h.s.Pongs()
	h.waitFor("50 pongs", func() bool { return h.s.Pongs() >= from+50 })
	if st := h.bot.Stats(); st.Reconnects != 0 {
		t.Fatalf("Stats = %+v with pings every 50ms, want no reconnect", st)
	}
	h.s.SetPings(false)
	h.waitFor("a quiet connection replaced", func() bool { return h.bot.Stats().Reconnects >= 1 })
	h.s.SetPings(true)
	h.waitFor("connected again", h.bot.Connected)
	r, _ := h.request(alice, "admin 1h after a quiet connection")
	if r == nil {
		t.Fatal("no request after the reconnect")
	}
}
