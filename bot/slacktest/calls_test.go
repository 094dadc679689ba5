package slacktest_test

import (
	"slices"
	"testing"

	"github.com/slack-go/slack"

	"github.com/symbot/symbot/bot/slacktest"
)

// TestCallsFrom: CallCount marks the log and CallsFrom reads only the calls
// recorded after the mark, in order, as copies.
func TestCallsFrom(t *testing.T) {
	srv := newServer(t)
	api := newAPI(srv)
	ctx := t.Context()
	if n := srv.CallCount(); n != 0 {
		t.Fatalf("CallCount of a new server = %d, want 0", n)
	}
	if got := srv.CallsFrom(0); got != nil {
		t.Fatalf("CallsFrom(0) of a new server = %v, want nil", got)
	}
	if _, err := api.GetUserInfoContext(ctx, "U1"); err != nil {
		t.Fatal(err)
	}
	mark := srv.CallCount()
	if mark != 1 {
		t.Fatalf("CallCount after one call = %d, want 1", mark)
	}
	for _, text := range []string{"one", "two"} {
		if _, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText(text, false)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.GetUserInfoContext(ctx, "U404"); err == nil {
		t.Fatal("users.info of an unknown user succeeded")
	}
	got := srv.CallsFrom(mark)
	var methods []string
	for _, c := range got {
		methods = append(methods, c.Method+":"+c.Params.Get("text")+":"+c.Error)
	}
	want := []string{"chat.postMessage:one:", "chat.postMessage:two:", "users.info::user_not_found"}
	if !slices.Equal(methods, want) {
		t.Errorf("CallsFrom(%d) = %q, want %q", mark, methods, want)
	}
	all := srv.Calls()
	if len(all) != 4 || srv.CallCount() != 4 || all[0].Method != "users.info" {
		t.Fatalf("Calls() = %d calls (first %q), CallCount() = %d; want 4, users.info first", len(all), all[0].Method, srv.CallCount())
	}
	if !slices.EqualFunc(srv.CallsFrom(-1), all, func(a, b slacktest.Call) bool { return a.Method == b.Method && a.At.Equal(b.At) }) {
		t.Error("CallsFrom(-1) is not every call")
	}
	if rest := srv.CallsFrom(srv.CallCount()); rest != nil {
		t.Errorf("CallsFrom(CallCount()) = %v, want nil", rest)
	}
	if rest := srv.CallsFrom(100); rest != nil {
		t.Errorf("CallsFrom past the end = %v, want nil", rest)
	}
	// The answer is a copy: changing it leaves the log alone.
	got[0].Method = "changed"
	if c := srv.CallsFrom(mark)[0]; c.Method != "chat.postMessage" {
		t.Errorf("after changing the answer, the log says %q", c.Method)
	}
}
