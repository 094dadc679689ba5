package bot

import (
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
