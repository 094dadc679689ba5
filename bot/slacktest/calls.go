package slacktest

// CallCount returns how many Web API calls have been recorded so far. It
// copies nothing, so a reader can take it as a mark and later read only
// the calls made since with CallsFrom.
func (s *Server) CallCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// CallsFrom returns the calls recorded after the first n (in order; nil
// when there are none yet). A reader that polls the calls while the app
// runs, keeping the count it has read, copies only what is new under the
// lock every Web API call takes to be recorded, where Calls copies the
// whole log each time. The log only grows, so n from CallCount or from the
// length of an earlier answer stays valid.
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
