package bot

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/symbot/symbot"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    command
		wantErr string
	}{
		{"empty opens form", "", command{Kind: cmdModal}, ""},
		{"spaces open form", "   ", command{Kind: cmdModal}, ""},
		{"req opens form", "req", command{Kind: cmdModal}, ""},
		{"req flow", "request prod", command{Kind: cmdModal, Flow: "prod"}, ""},
		{"full request keeps spacing", "req  prod/admin 1h  fix   the <!channel> thing ", command{Kind: cmdRequest, Target: "prod/admin", Duration: "1h", Reason: "fix   the <!channel> thing"}, ""},
		{"case-insensitive verb", "REQ admin 2d x", command{Kind: cmdRequest, Target: "admin", Duration: "2d", Reason: "x"}, ""},
		{"missing reason", "req admin 1h", command{}, "reason is missing"},
		{"list", "list", command{Kind: cmdList}, ""},
		{"ls", "ls", command{Kind: cmdList}, ""},
		{"list extra", "list me", command{}, "takes nothing"},
		{"whoami", "whoami", command{Kind: cmdWhoami}, ""},
		{"help", "help", command{Kind: cmdHelp}, ""},
		{"unknown not repeated", "<!here>", command{}, "I don't know that word"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCommand(tt.in, DefaultCommand)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseCommand(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCommand(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("parseCommand(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestEscapeTrunc(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"fits", "a<b", 10, "a&lt;b"},
		{"cut before entity", "ab<<<<", 9, "ab&lt;…"},
		{"cut at rune", "ééééé", 7, "éé…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := escapeTrunc(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("escapeTrunc(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if len(got) > tt.max {
				t.Errorf("len = %d > %d", len(got), tt.max)
			}
		})
	}
}

func TestRenderRequestStates(t *testing.T) {
	f := &symbot.Flow{Name: "prod", Label: "Production", Channel: "C1", AllowRevoke: true, ApprovalsRequired: 1, ApprovalTimeout: time.Hour,
		Targets: []symbot.Target{{Name: "admin", Label: "Prod admin", GroupID: "G1"}}}
	at := time.Unix(1_800_000_000, 0)
	base := func(s symbot.State) *symbot.Request {
		return &symbot.Request{ID: "SYM-1", Flow: "prod", Target: "admin", Requester: symbot.Person{SlackID: "U1"}, Duration: time.Hour,
			Reason: "<!channel>", State: s, CreatedAt: at, ExpiresAt: at.Add(time.Hour),
			Approvals:   []symbot.Decision{{By: "U2"}},
			Transitions: []symbot.Transition{{From: symbot.StatePending, To: s, By: "U2", At: at, Note: "because <@U9>"}}}
	}
	tests := []struct {
		state   symbot.State
		want    []string
		buttons []string
	}{
		{symbot.StatePending, []string{"Waiting for approval"}, []string{ActionApprove, ActionApproveNote, ActionDeny}},
		{symbot.StateApproved, []string{"Approved", "<@U2>", "granting"}, nil},
		{symbot.StateActive, []string{"Active", "until <!date^1800003600^"}, []string{ActionRevoke}},
		{symbot.StateDenied, []string{"Denied", "<@U2>", "because &lt;@U9&gt;"}, nil},
		{symbot.StateRevoked, []string{"Revoked", "<@U2>", "removing access"}, nil},
		{symbot.StateExpired, []string{"Expired"}, nil},
		{symbot.StateCancelled, []string{"Cancelled"}, nil},
		{symbot.StateTimedOut, []string{"Timed out", "within 1h"}, nil},
		{symbot.StateFailed, []string{"Failed"}, nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			text, blocks := renderRequest(f, base(tt.state))
			raw, err := json.Marshal(blocks)
			if err != nil {
				t.Fatal(err)
			}
			var bs []map[string]any
			_ = json.Unmarshal(raw, &bs)
			var all strings.Builder
			var actions []string
			for _, b := range bs {
				if id, _ := b["block_id"].(string); id == "" {
					t.Errorf("block %v has no block_id", b["type"])
				}
				rb, _ := json.Marshal(b)
				all.Write(rb)
				if els, ok := b["elements"].([]any); ok && b["type"] == "actions" {
					for _, e := range els {
						em := e.(map[string]any)
						actions = append(actions, em["action_id"].(string))
						if em["value"] != "SYM-1" {
							t.Errorf("button value = %v, want the request id only", em["value"])
						}
					}
				}
			}
			s := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(all.String())
			for _, w := range tt.want {
				if !strings.Contains(s, w) {
					t.Errorf("blocks lack %q: %s", w, s)
				}
			}
			if strings.Contains(s, "<!channel>") || strings.Contains(text, "<!channel>") {
				t.Errorf("unescaped reason in %s", s)
			}
			if strings.Join(actions, ",") != strings.Join(tt.buttons, ",") {
				t.Errorf("buttons = %v, want %v", actions, tt.buttons)
			}
		})
	}
}

func TestRecentSetBounded(t *testing.T) {
	s := newRecentSet(3)
	now := time.Unix(0, 0)
	for _, k := range []string{"a", "b", "c", "d"} {
		s.put(k, now, 0, k)
	}
	if _, ok := s.get("a", now); ok {
		t.Error("oldest key kept beyond the bound")
	}
	if v, ok := s.get("d", now); !ok || v != "d" {
		t.Errorf("get(d) = %v, %v", v, ok)
	}
	if !s.add("x", now, time.Second) || s.add("x", now.Add(500*time.Millisecond), time.Second) {
		t.Error("add within the window should report a duplicate")
	}
	if !s.add("x", now.Add(2*time.Second), time.Second) {
		t.Error("add after the window should succeed")
	}
}

func TestDMBodies(t *testing.T) {
	f := &symbot.Flow{Name: "prod", Label: "Production", Channel: "C1", ApprovalsRequired: 1,
		Targets: []symbot.Target{{Name: "admin", Label: "Prod <admin>", GroupID: "G1"}}}
	at := time.Unix(1_800_000_000, 0)
	r := &symbot.Request{ID: "SYM-1", Flow: "prod", Target: "admin", Requester: symbot.Person{SlackID: "U1"}, Duration: time.Hour,
		Reason: "<!channel>", State: symbot.StateActive, ExpiresAt: at.Add(time.Hour), FailReason: "Okta said <nope>",
		Approvals:   []symbot.Decision{{By: "U2"}},
		Transitions: []symbot.Transition{{To: symbot.StateDenied, By: "U2", Note: "<@U3>"}, {To: symbot.StateRevoked, By: "U2"}}}
	tests := []struct {
		ev      symbot.Event
		want    string
		buttons []string
	}{
		{symbot.EventRequested, "waiting for approval in <#C1>", []string{ActionCancel}},
		{symbot.EventApproved, "approved by <@U2>", []string{ActionRelinquish}},
		{symbot.EventGranted, "You are now in *Prod &lt;admin&gt;* in Okta until <!date^1800003600^", []string{ActionRelinquish}},
		{symbot.EventDenied, "denied by <@U2>. — `&lt;@U3&gt;`", nil},
		{symbot.EventWarning, "ends <!date^1800003600^", []string{ActionExtend, ActionRelinquish}},
		{symbot.EventExpired, "expired", nil},
		{symbot.EventRemoved, "removed from Okta", nil},
		{symbot.EventRevoked, "revoked by <@U2>", nil},
		{symbot.EventFailed, "failed: Okta said &lt;nope&gt;. No access was granted", nil},
		{symbot.EventTimedOut, "timed out", nil},
		{symbot.EventCancelled, "was cancelled", nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.ev), func(t *testing.T) {
			body, btns := dmBody(f, r, tt.ev, "U1", at, DefaultCommand)
			if !strings.Contains(body, tt.want) {
				t.Errorf("body = %q, want it to contain %q", body, tt.want)
			}
			if strings.Contains(body, "<!channel>") || strings.Contains(body, "<admin>") {
				t.Errorf("body has unescaped text: %q", body)
			}
			var got []string
			for _, b := range btns {
				raw, _ := json.Marshal(b)
				var m map[string]any
				_ = json.Unmarshal(raw, &m)
				got = append(got, m["action_id"].(string))
				if m["value"] != "SYM-1" {
					t.Errorf("button value = %v", m["value"])
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.buttons, ",") {
				t.Errorf("buttons = %v, want %v", got, tt.buttons)
			}
		})
	}
	// An approver hears about someone else's request in the third person, without buttons.
	body, btns := dmBody(f, r, symbot.EventFailed, "U2", at, DefaultCommand)
	if !strings.HasPrefix(body, "<@U1>'s request") || len(btns) != 0 {
		t.Errorf("approver DM = %q with %d buttons", body, len(btns))
	}
}

// TestSectionsOfStaysWithinSlackLimits: whoami's "would need" lines for
// many flows fill sections of at most maxReplyRunes, at most
// maxWhoamiSections of them, and say how many lines did not fit.
func TestSectionsOfStaysWithinSlackLimits(t *testing.T) {
	var lines []string
	for i := range 500 {
		lines = append(lines, fmt.Sprintf("• `flow%d/target`: %s", i, strings.Repeat("x", 80)))
	}
	blocks := sectionsOf("*Your requests would need:*", lines, "sym_whoami_needs")
	if len(blocks) != maxWhoamiSections {
		t.Fatalf("%d sections, want %d", len(blocks), maxWhoamiSections)
	}
	for i, b := range blocks {
		s := b.(*slack.SectionBlock)
		if n := utf8.RuneCountInString(s.Text.Text); n > maxReplyRunes+40 {
			t.Errorf("section %d holds %d characters", i, n)
		}
	}
	last := blocks[len(blocks)-1].(*slack.SectionBlock).Text.Text
	if !strings.Contains(last, "more") {
		t.Errorf("last section does not say what was left out: %q", last[max(0, len(last)-80):])
	}
	if got := sectionsOf("head", []string{"a", "b"}, "x"); len(got) != 1 || got[0].(*slack.SectionBlock).Text.Text != "head\na\nb" {
		t.Errorf("two short lines: %+v", got)
	}
}
