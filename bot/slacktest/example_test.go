package slacktest_test

import (
	"context"
	"fmt"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/symbot/symbot/bot/slacktest"
)

// A Socket Mode app built on slack-go answers a slash command with a
// message; the test drives it as a person and reads what it posted.
func Example() {
	srv := slacktest.NewServer()
	defer srv.Close()
	srv.AddUser(slacktest.User{ID: "U1", Name: "alice", Email: "alice@example.com"})
	srv.AddChannel(slacktest.Channel{ID: "C1", Name: "access", Members: []string{"U1"}, BotIsMember: true})

	api := slack.New(srv.BotToken, slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(srv.AppToken))
	client := socketmode.New(api)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = client.RunContext(ctx) }()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case evt := <-client.Events:
				if cmd, ok := evt.Data.(slack.SlashCommand); ok {
					_ = client.Ack(*evt.Request)
					_, _, _ = api.PostMessageContext(ctx, cmd.ChannelID, slack.MsgOptionText("hi "+cmd.UserName, false))
				}
			}
		}
	}()

	if err := srv.WaitFor(ctx, srv.Connected); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := srv.SlashCommand("U1", "/sym", "hello", "C1"); err != nil {
		fmt.Println(err)
		return
	}
	_ = srv.WaitFor(ctx, func() bool { return len(srv.Messages("C1")) == 1 })
	fmt.Println(srv.Messages("C1")[0].Text)
	// Output: hi alice
}
