package bot

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

func TestFairQueueDecisionsBeforeReadsPeopleInTurn(t *testing.T) {
	q := newFairQueue(100, 10, 1)
	push := func(user string, c taskClass, name string) {
		t.Helper()
		if !q.push(task{name: name, user: user, class: c}) {
			t.Fatalf("push %s refused", name)
		}
	}
	for _, n := range []string{"x-read1", "x-read2", "x-read3"} {
		push("X", classRead, n)
	}
	push("X", classAct, "x-act")
	push("Y", classAct, "y-act1")
	push("Y", classAct, "y-act2")
	push("Z", classRead, "z-read")

	var got []string
	take := func() task {
		t.Helper()
		tk, ok := q.nextLocked()
		if !ok {
			t.Fatalf("nothing to take after %v", got)
		}
		got = append(got, tk.name)
		return tk
	}
	a := take() // x-act: decisions first, X came first
	b := take() // y-act1: Y's turn
	c := take() // z-read: X and Y are busy, so Z's read runs (one read slot)
	if tk, ok := q.nextLocked(); ok {
		t.Fatalf("took %s while X, Y and the read slot are busy", tk.name)
	}
	q.done(a)
	q.done(b)
	q.done(c)
	for q.len() > 0 {
		q.done(take())
	}
	want := []string{"x-act", "y-act1", "z-read", "y-act2", "x-read1", "x-read2", "x-read3"}
	if len(got) != len(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
}

func TestFairQueueBoundsOnePerson(t *testing.T) {
	q := newFairQueue(100, 3, 1)
	for i := range 3 {
		if !q.push(task{user: "X"}) {
			t.Fatalf("push %d refused", i)
		}
	}
	if q.push(task{user: "X"}) {
		t.Errorf("a 4th task of one person was queued, want refused")
	}
	if !q.push(task{user: "Y"}) {
		t.Errorf("another person's task was refused")
	}
}

// Workers that each run take/done, as Bot.work does: every task runs, one
// at a time per person and in its order, and idle workers are woken for
// work that becomes runnable (a lost wake-up hangs the test).
func TestFairQueueWorkersRunEverythingInPersonOrder(t *testing.T) {
	const workers, people, each = 4, 12, 40
	q := newFairQueue(people*each, each, 2)
	var (
		mu      sync.Mutex
		running = map[string]bool{}
		next    = map[string]int{}
		wg      sync.WaitGroup
		errs    = make(chan string, people*each)
	)
	startWorkers(q, workers)
	defer q.stop()
	wg.Add(people * each)
	for i := range each {
		for p := range people {
			user := fmt.Sprintf("U%d", p)
			class := classAct
			if p%3 == 0 {
				class = classRead
			}
			if !q.push(task{user: user, class: class, fn: func(context.Context) {
				defer wg.Done()
				mu.Lock()
				if running[user] {
					errs <- fmt.Sprintf("%s: task %d ran beside another of the same person", user, i)
				}
				if next[user] != i {
					errs <- fmt.Sprintf("%s: task %d ran when %d was next", user, i, next[user])
				}
				running[user] = true
				mu.Unlock()
				runtime.Gosched()
				mu.Lock()
				running[user] = false
				next[user]++
				mu.Unlock()
			}}) {
				t.Fatalf("push %s %d refused", user, i)
			}
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// A task's end can make two tasks runnable (its person's next one, and
// another person's read waiting for the read slot it held): both start.
func TestFairQueueWakesAWorkerPerRunnableTask(t *testing.T) {
	const workers = 3
	q := newFairQueue(100, 10, 1)
	started := make(chan string, 4)
	release := make(chan struct{})
	startWorkers(q, workers)
	defer q.stop()
	block := func(name string) func(context.Context) {
		return func(context.Context) { started <- name; <-release }
	}
	q.push(task{user: "A", class: classRead, fn: block("a-read")})
	if got := <-started; got != "a-read" {
		t.Fatalf("started %s, want a-read", got)
	}
	q.push(task{user: "A", class: classAct, fn: block("a-act")})   // waits for A's read
	q.push(task{user: "B", class: classRead, fn: block("b-read")}) // waits for the read slot
	waitIdle(t, q, workers-1)                                      // the two others wait in take
	release <- struct{}{}                                          // A's read ends
	got := map[string]bool{<-started: true, <-started: true}
	if !got["a-act"] || !got["b-read"] {
		t.Fatalf("started %v, want a-act and b-read", got)
	}
	close(release)
}

// waitIdle waits until n workers wait in q.take.
func waitIdle(t *testing.T, q *fairQueue, n int) {
	t.Helper()
	for {
		q.mu.Lock()
		idle := q.idle
		q.mu.Unlock()
		if idle == n {
			return
		}
		runtime.Gosched()
	}
}

// startWorkers runs n workers on q, each taking tasks until q stops.
func startWorkers(q *fairQueue, n int) {
	for range n {
		go func() {
			for {
				tk, ok := q.take()
				if !ok {
					return
				}
				tk.fn(context.Background())
				q.done(tk)
			}
		}()
	}
}
