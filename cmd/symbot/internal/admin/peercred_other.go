//go:build !linux

package admin

import "net"

// peerCred is not implemented outside Linux: admin actions are then
// recorded as actor "admin" without the operating-system user.
func peerCred(net.Conn) (uid, pid int, ok bool) { return 0, 0, false }
