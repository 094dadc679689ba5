package main

// The identity binding commands: identities (list) and identity reset.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/symbot/symbot/cmd/symbot/internal/admin"
)

func identitiesCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	cmd := newAdminCmd("identities", "", stderr)
	cmd.readOffline()
	asJSON := cmd.jsonFlag()
	c, _, code, ok := cmd.dial(ctx, args, "")
	if !ok {
		return code
	}
	defer c.Close()
	ids, err := c.Identities(ctx)
	mismatched := 0
	code = listEnd(cmd, stdout, *asJSON, ids, err, "no identity bindings yet (a Slack account is bound the first time symbot finds it in Okta)", "SLACK ID\tOKTA USER\tLOGIN\tHOW\tBOUND\tSTATUS", func(id admin.IdentityJSON) string {
		bound := id.BoundAt
		status := id.Status
		if id.Conflict != nil {
			mismatched++
			at := id.Conflict.At
			status = fmt.Sprintf("mismatch: now finds %s (%s) since %s", oneLine(id.Conflict.OktaLogin), oneLine(id.Conflict.OktaUserID), fmtTime(&at))
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", oneLine(id.SlackID), oneLine(id.OktaUserID), dash(oneLine(id.OktaLogin)), dash(oneLine(id.Via)), fmtTime(&bound), status)
	})
	if mismatched > 0 { // counted only when the table is printed
		fmt.Fprintf(stdout, "\n%d binding(s) in mismatch: symbot refuses those accounts until you check each and run `symbot identity reset SLACK_ID`\n", mismatched)
	}
	return code
}

func identityCmd(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "reset" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			c, _ := findCommand("identity")
			fmt.Fprintln(stdout, "Usage: symbot identity "+c.args+"\n\nRemove the binding of a Slack account to its Okta user (after checking a mismatch): its next action binds it anew to the Okta user its profile finds then. Recorded in the audit trail with your OS user. `symbot identities` lists the bindings.")
			return exitOK
		}
		fmt.Fprintln(stderr, "symbot identity: use `symbot identity reset SLACK_ID` (`symbot identities` lists the bindings)")
		return exitUsage
	}
	cmd := newAdminCmd("identity reset", "SLACK_ID [--json] [--config FILE] [--socket PATH]", stderr)
	asJSON := cmd.jsonFlag()
	c, slackID, code, ok := cmd.dial(ctx, args[1:], "Slack user id (see `symbot identities`)")
	if !ok {
		return code
	}
	defer c.Close()
	old, err := c.ResetIdentity(ctx, slackID)
	var ae *admin.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		err = fmt.Errorf("%w: check the id with `symbot identities`", err)
	}
	if err != nil {
		return cmd.fail(err)
	}
	if *asJSON {
		printJSON(stdout, old)
		return exitOK
	}
	was := ""
	if old.Conflict != nil {
		was = fmt.Sprintf(" (in mismatch: its profile found %s, %s)", oneLine(old.Conflict.OktaLogin), oneLine(old.Conflict.OktaUserID))
	}
	fmt.Fprintf(stdout, "reset %s: it was bound to Okta user %s (%s)%s; its next action binds it to the Okta user its profile finds then\n",
		oneLine(old.SlackID), dash(oneLine(old.OktaLogin)), oneLine(old.OktaUserID), was)
	return exitOK
}
