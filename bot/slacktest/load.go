package slacktest

import (
	"context"
	"slices"
	"sync"
	"time"
)

// LoadResult summarises a paced run of driving calls.
type LoadResult struct {
	Sent, Acked, Failed int
	Elapsed             time.Duration // from the first send to the last ack
	P50, P99, Max       time.Duration // Ack.Latency percentiles of the acked calls
	FirstErr            error
}

// SendMany starts send(i) for i in [0,n) at perSecond calls per second
// (each in its own goroutine, so slow acks do not slow the pace) and waits
// for all of them. send is typically a closure over SlashCommand or
// ClickButton, which are safe for concurrent use. It stops starting new
// calls when ctx ends.
func (s *Server) SendMany(ctx context.Context, n, perSecond int, send func(i int) (Ack, error)) LoadResult {
	var (
		mu   sync.Mutex
		res  LoadResult
		lats []time.Duration
		wg   sync.WaitGroup
	)
	interval := time.Duration(0)
	if perSecond > 0 {
		interval = time.Second / time.Duration(perSecond)
	}
	start := time.Now()
	for i := range n {
		if interval > 0 {
			due := start.Add(time.Duration(i) * interval)
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		res.Sent++
		wg.Go(func() {
			ack, err := send(i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed++
				if res.FirstErr == nil {
					res.FirstErr = err
				}
				return
			}
			res.Acked++
			lats = append(lats, ack.Latency)
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(lats)
	if len(lats) > 0 {
		res.P50 = lats[len(lats)/2]
		res.P99 = lats[min(len(lats)-1, len(lats)*99/100)]
		res.Max = lats[len(lats)-1]
	}
	return res
}
