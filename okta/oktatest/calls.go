package oktatest

// CallCount returns how many requests have been recorded since the start
// or the last ResetCalls. It copies nothing.
func (s *Server) CallCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// CallsFrom returns the requests recorded after the first n (in order; nil
// when there are none yet). A reader that polls the calls while a client
// runs, keeping the count it has read, copies only what is new under the
// lock every request takes to be recorded, where Calls copies the whole log
// each time. ResetCalls starts the count again from 0.
func (s *Server) CallsFrom(n int) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	n = max(n, 0)
	if n >= len(s.calls) {
		return nil
	}
	out := make([]Call, len(s.calls)-n)
	copy(out, s.calls[n:])
	return out
}
