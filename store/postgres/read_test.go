package postgres_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/storetest"
)

// TestOpenReadsGoTogether: ReadOpenRequests made while another is in
// flight go together in one statement once it is answered, and each
// caller gets exactly its person's open requests, in ID order, its own
// copies even when two ask for the same person.
func TestOpenReadsGoTogether(t *testing.T) {
	st, url := MustOpen(t)
	want := map[string][]string{}
	storetest.MustUpdate(t, st, func(tx symbot.Tx) error {
		for i := range 5 {
			u := fmt.Sprintf("U%d", i)
			for j, s := range []symbot.State{symbot.StateActive, symbot.StateExpired, symbot.StatePending} {
				id := fmt.Sprintf("R%d%d", i, j)
				if err := tx.PutRequest(&symbot.Request{ID: id, Requester: symbot.Person{SlackID: u}, State: s}); err != nil {
					return err
				}
				if !s.Final() {
					want[u] = append(want[u], id)
				}
			}
		}
		return nil
	})
	// Hold the table so that the first read waits in flight.
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), `BEGIN; LOCK TABLE requests IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	who := []string{"U0", "U1", "U2", "U3", "U4", "U2", "U9"}
	got := make([][]*symbot.Request, len(who))
	errs := make([]error, len(who))
	var wg sync.WaitGroup
	read := func(i int) {
		wg.Go(func() { got[i], errs[i] = st.ReadOpenRequests(t.Context(), who[i]) })
	}
	read(0)
	storetest.WaitFor(t, 30*time.Second, "the first read in flight", func() bool {
		sent, _ := postgres.OpenReadBatches(st)
		return sent == 1
	})
	for i := 1; i < len(who); i++ {
		read(i)
	}
	storetest.WaitFor(t, 30*time.Second, "the other reads queued", func() bool {
		_, queued := postgres.OpenReadBatches(st)
		return queued == len(who)-1
	})
	if _, err := conn.Exec(t.Context(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, u := range who {
		if errs[i] != nil {
			t.Fatalf("ReadOpenRequests(%s): %v", u, errs[i])
		}
		var ids []string
		for _, r := range got[i] {
			ids = append(ids, r.ID)
			if r.Requester.SlackID != u {
				t.Errorf("ReadOpenRequests(%s) returned %s of %s", u, r.ID, r.Requester.SlackID)
			}
		}
		if !slices.Equal(ids, want[u]) {
			t.Errorf("ReadOpenRequests(%s) = %v, want %v", u, ids, want[u])
		}
	}
	if got[2][0] == got[5][0] {
		t.Error("two reads of U2 share a request: each caller must get its own copies")
	}
	if sent, _ := postgres.OpenReadBatches(st); sent != 2 {
		t.Errorf("sent %d statements, want 2 (the first read, then the 6 that queued behind it)", sent)
	}
}
