package slacktest

import (
	"fmt"
	"time"

	"github.com/gorilla/websocket"
)

// SendRaw writes frame, as it is, as one text message on the newest live
// Socket Mode connection (waiting up to DeliveryTimeout for one), and does
// not wait for an ack: for feeding an app malformed or hand-made envelopes.
func (s *Server) SendRaw(frame []byte) error {
	s.mu.Lock()
	timeout := s.DeliveryTimeout
	s.mu.Unlock()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	c, err := s.currentConn(deadline.C)
	if err != nil {
		return fmt.Errorf("send raw frame: %w", err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return fmt.Errorf("send raw frame: %w", err)
	}
	return nil
}
