// The executor's local queue: the jobs it claimed ahead of its workers,
// taken in the store's claim order (rank, then ID).

package symbot

import (
	"cmp"
	"container/heap"
	"sync"
)

// jobQueue holds the jobs the executor claimed ahead of this process's
// workers. A worker takes the waiting job of the lowest (ClaimRank, ID),
// the order in which the store claims due jobs, so that a removal claimed
// behind a burst of Slack notices runs next, not after them. A lane never
// has two jobs here (the store claims only a lane's lowest ID, and the
// next one only once it is done), so rank never reorders a lane.
type jobQueue struct {
	mu     sync.Mutex
	wake   sync.Cond
	jobs   jobHeap
	closed bool
}

func newJobQueue() *jobQueue {
	q := &jobQueue{}
	q.wake.L = &q.mu
	return q
}

// push adds a claimed job.
func (q *jobQueue) push(j Job) {
	q.mu.Lock()
	heap.Push(&q.jobs, j)
	q.mu.Unlock()
	q.wake.Signal()
}

// pop waits for a job and takes the first by rank; false once the queue
// is closed and empty. Jobs pushed before close are still taken.
func (q *jobQueue) pop() (Job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.jobs) == 0 && !q.closed {
		q.wake.Wait()
	}
	if len(q.jobs) == 0 {
		return Job{}, false
	}
	return heap.Pop(&q.jobs).(Job), true
}

// close ends the queue: pop returns what is left, then false.
func (q *jobQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake.Broadcast()
}

// jobHeap is a heap of jobs by (ClaimRank of the kind, ID).
type jobHeap []Job

func (h jobHeap) Len() int { return len(h) }
func (h jobHeap) Less(i, j int) bool {
	return cmp.Or(cmp.Compare(ClaimRank(h[i].Kind), ClaimRank(h[j].Kind)), cmp.Compare(h[i].ID, h[j].ID)) < 0
}
func (h jobHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *jobHeap) Push(x any)   { *h = append(*h, x.(Job)) }
func (h *jobHeap) Pop() any {
	old := *h
	n := len(old)
	j := old[n-1]
	old[n-1] = Job{}
	*h = old[:n-1]
	return j
}
