package admin

import (
	"context"
	"net"
	"os/user"
	"strconv"

	"github.com/symbot/symbot"
)

// operatorContext puts the operating-system user at the other end of an
// admin connection into its context (symbot.WithOperator), for the audit
// trail; it is http.Server.ConnContext.
func operatorContext(ctx context.Context, c net.Conn) context.Context {
	uid, pid, ok := peerCred(c)
	if !ok {
		return ctx
	}
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil && u.Username != "" {
		name = u.Username
	}
	return symbot.WithOperator(ctx, symbot.Operator{User: name, UID: uid, PID: pid})
}
