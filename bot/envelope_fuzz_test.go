package bot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot/bot"
	"github.com/symbot/symbot/bot/slacktest"
)

// envelopeSeeds are Socket Mode frames in the shapes Slack sends: slash
// commands, block actions (with and without a block_id), view
// submissions, events, hello, disconnect, and some broken ones.
var envelopeSeeds = []string{
	`{"type":"hello","num_connections":1,"debug_info":{"host":"applink-1","build_number":10,"approximate_connection_time":18060},"connection_info":{"app_id":"A0SIM0001"}}`,
	`{"type":"disconnect","reason":"warning","debug_info":{"host":"applink-1"}}`,
	`{"envelope_id":"e1","type":"slash_commands","accepts_response_payload":true,"retry_attempt":0,"retry_reason":"","payload":{"token":"t","team_id":"T0SIM0001","team_domain":"sim","channel_id":"C0ACCESS","channel_name":"access","user_id":"U0ALICE","user_name":"alice","command":"/sym","text":"req admin 1h fix *prod*\n:white_check_mark: \u202eevil","api_app_id":"A0SIM0001","is_enterprise_install":"false","response_url":"http://127.0.0.1:1/response/x","trigger_id":"1.2.abc"}}`,
	`{"envelope_id":"e2","type":"slash_commands","accepts_response_payload":true,"payload":{"user_id":"U0DAVE","command":"/sym","text":"whoami","channel_id":"C0ACCESS"}}`,
	`{"envelope_id":"e3","type":"interactive","accepts_response_payload":true,"payload":{"type":"block_actions","team":{"id":"T0SIM0001","domain":"sim"},"user":{"id":"U0BOB","username":"bob","name":"bob","team_id":"T0SIM0001"},"api_app_id":"A0SIM0001","container":{"type":"message","message_ts":"1.000001","channel_id":"C0ACCESS","is_ephemeral":false},"trigger_id":"1.3.def","channel":{"id":"C0ACCESS","name":"access"},"response_url":"http://127.0.0.1:1/response/y","actions":[{"type":"button","action_id":"sym_approve","block_id":"sym_actions","value":"SYM-1","action_ts":"1.000002","text":{"type":"plain_text","text":"Approve"}}]}}`,
	`{"envelope_id":"e4","type":"interactive","payload":{"type":"block_actions","user":{"id":"U0BOB"},"actions":[{"type":"button","action_id":"sym_deny","block_id":7,"value":"SYM-1"}]}}`,
	`{"envelope_id":"e5","type":"interactive","payload":{"type":"view_submission","user":{"id":"U0ALICE"},"trigger_id":"1.4.ghi","view":{"id":"V1","type":"modal","callback_id":"sym_request","private_metadata":"{\"c\":\"C0ACCESS\"}","state":{"values":{"target":{"target":{"type":"static_select","selected_option":{"value":"prod/admin","text":{"type":"plain_text","text":"Prod admin"}}}},"duration":{"duration":{"type":"static_select","selected_option":{"value":"1h"}}},"reason":{"reason":{"type":"plain_text_input","value":"deploy"}}}}}}}`,
	`{"envelope_id":"e6","type":"interactive","payload":{"type":"view_submission","user":{"id":"U0BOB"},"view":{"callback_id":"sym_note","private_metadata":"not json","state":{"values":{"note":{"note":{"value":null}}}}}}}`,
	`{"envelope_id":"e7","type":"events_api","accepts_response_payload":false,"payload":{"type":"event_callback","event":{"type":"app_mention","user":"U0ALICE","text":"<@U0SYMBOT01> hi"}}}`,
	`{"envelope_id":"e8","type":"interactive","payload":{"type":"view_closed","user":{"id":"U0ALICE"},"view":{"id":"V1"}}}`,
	`{"envelope_id":"e9","type":"interactive","payload":null}`,
	`{"envelope_id":"","type":"slash_commands","payload":{}}`,
	`{"type":"slash_commands","payload":"a string"}`,
	`{"envelope_id":"e10","type":"unknown_type","payload":{"x":[1,2,3]}}`,
	`not json at all`,
	`[]`,
	`{}`,
}

// FuzzSocketModeEnvelope feeds whole Socket Mode frames through the real
// socket loop (symbot's Socket Mode client, socket.go, reading a WebSocket from
// bot/slacktest, then the bot's event loop and handlers) and checks after
// each that symbot still answers: a /sym help from someone else is
// acknowledged with the help text.
func FuzzSocketModeEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s))
	}
	h := MustHarness(f, withBotConfig(func(c *bot.Config) {
		c.Limits.CommandsPerMinute = -1 // the check below runs once per input
		c.Limits.RequestsPerMinute = -1
	}))
	h.request(alice, "admin 1h seed request") // something for clicks to act on
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > 64<<10 {
			return
		}
		if err := h.s.SendRaw(frame); err != nil {
			t.Fatalf("send frame: %v", err)
		}
		// Go's fuzzer has no per-input time limit: a frame that stops
		// symbot from answering must fail here, not hang the run.
		type result struct {
			ack slacktest.Ack
			err error
		}
		done := make(chan result, 1)
		go func() {
			ack, err := h.s.SlashCommand(carol, "/sym", "help", chAcc)
			done <- result{ack, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("after frame %q, /sym help got no answer within 30s", frame)
		}
		if r.err != nil {
			t.Fatalf("after frame %q, /sym help: %v", frame, r.err)
		}
		if got := ackText(t, r.ack); !strings.Contains(got, "/sym whoami") {
			t.Fatalf("after frame %q, /sym help answered %q", frame, got)
		}
	})
}
