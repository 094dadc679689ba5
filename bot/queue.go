// The fair work queue: slow work is queued per person and taken in turn,
// decisions before reads.

package bot

import (
	"context"
	"sync"
)

// taskClass orders work: decisions and requests before reads.
type taskClass int

const (
	classAct  taskClass = iota // clicks, decisions, requests, forms: someone is waiting on them
	classRead                  // whoami, list, and notices: answered when nothing else waits
	numClasses
)

// task is one piece of slow work (Engine and Slack calls) for a person.
type task struct {
	name  string
	user  string
	class taskClass
	fn    func(ctx context.Context)
}

// fairQueue holds slow work per person and hands it to workers fairly: one
// task of a person at a time, people taken in turn, decisions before
// reads, and reads on at most readSlots workers at once. One person's flood
// then costs that person time, not anyone else.
type fairQueue struct {
	mu        sync.Mutex
	cond      *sync.Cond
	people    map[string]*personQueue
	turn      []string // people with queued work, in the order they get their turn
	queued    int
	readsBusy int
	idle      int // workers waiting in take

	max       int // tasks queued in all
	perPerson int // tasks queued for one person
	readSlots int
	stopped   bool
}

type personQueue struct {
	tasks   [numClasses][]task
	running bool
}

func (p *personQueue) len() int {
	n := 0
	for _, ts := range p.tasks {
		n += len(ts)
	}
	return n
}

func newFairQueue(max, perPerson, readSlots int) *fairQueue {
	q := &fairQueue{people: map[string]*personQueue{}, max: max, perPerson: perPerson, readSlots: max1(readSlots)}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func max1(n int) int { return max(n, 1) }

// push queues t; it reports false when the queue, or t.user's share of
// it, is full.
func (q *fairQueue) push(t task) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.people[t.user]
	if q.queued >= q.max || p != nil && p.len() >= q.perPerson {
		return false
	}
	if p == nil {
		p = &personQueue{}
		q.people[t.user] = p
		q.turn = append(q.turn, t.user)
	}
	p.tasks[t.class] = append(p.tasks[t.class], t)
	q.queued++
	q.cond.Signal()
	return true
}

// take waits for a task that may run now and returns it, or ok=false once
// the queue is stopped and nothing more may run.
func (q *fairQueue) take() (task, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if t, ok := q.nextLocked(); ok {
			if q.queued > 0 {
				// More may be runnable: pass the wake-up on to one more
				// idle worker (a wake-up this worker took for a task that
				// someone else ran is not lost this way).
				q.cond.Signal()
			}
			return t, true
		}
		if q.stopped {
			return task{}, false
		}
		q.idle++
		q.cond.Wait()
		q.idle--
	}
}

// nextLocked pops the first runnable task: the first class with one, the
// first person in turn order who is not running anything.
func (q *fairQueue) nextLocked() (task, bool) {
	for c := range numClasses {
		if c == classRead && q.readsBusy >= q.readSlots {
			continue
		}
		for i, user := range q.turn {
			p := q.people[user]
			if p.running || len(p.tasks[c]) == 0 {
				continue
			}
			t := p.tasks[c][0]
			p.tasks[c][0] = task{}
			p.tasks[c] = p.tasks[c][1:]
			p.running = true
			q.queued--
			if c == classRead {
				q.readsBusy++
			}
			// This person's turn is used: to the back of the line.
			q.turn = append(append(q.turn[:i:i], q.turn[i+1:]...), user)
			return t, true
		}
	}
	return task{}, false
}

// done marks t finished, letting its person's next task run.
//
// It wakes one idle worker for each task that may have become runnable
// (the person's next one; another person's read when t held a read slot),
// not every idle worker: the others would only find nothing and wait again.
func (q *fairQueue) done(t task) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.class == classRead {
		q.readsBusy--
		if q.queued > 0 {
			q.cond.Signal()
		}
	}
	p := q.people[t.user]
	p.running = false
	if p.len() > 0 {
		q.cond.Signal()
	} else {
		delete(q.people, t.user)
		for i, u := range q.turn {
			if u == t.user {
				q.turn = append(q.turn[:i], q.turn[i+1:]...)
				break
			}
		}
	}
}

// start lets take hand out work (again, after a stop).
func (q *fairQueue) start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = false
}

// stop makes take return ok=false once nothing more may run.
func (q *fairQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	q.cond.Broadcast()
}

// len is the number of tasks waiting.
func (q *fairQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued
}
