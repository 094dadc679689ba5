package postgres_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/store/postgres"
	"github.com/symbot/symbot/store/storetest"
)

// TestLaneCheckUsesTheLaneIndex: the claim's check that a job heads its
// lane looks the lane up in the partial index jobs_lane, whatever the
// table's statistics say. Before, the check's subquery did not imply the
// index's predicate (a lane that is not empty), so the index could never serve it: each
// due job of a lane scanned the whole jobs table, and a burst of a few
// thousand jobs made every claim cost milliseconds of server time.
func TestLaneCheckUsesTheLaneIndex(t *testing.T) {
	st, url := MustOpen(t)
	storetest.MustUpdate(t, st, func(tx symbot.Tx) error {
		for i := range 50 {
			j := &symbot.Job{Kind: symbot.JobPost, RequestID: fmt.Sprintf("R%d", i), Lane: fmt.Sprintf("msg:R%d", i%10), NotBefore: storetest.T0}
			if err := tx.AddJob(j); err != nil {
				return err
			}
		}
		return nil
	})
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	// With sequential scans priced out, the planner scans h by an index
	// if, and only if, one can serve the subquery.
	if _, err := conn.Exec(t.Context(), `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	var plan []struct{ Plan planNode }
	var raw []byte
	if err := conn.QueryRow(t.Context(), `EXPLAIN (FORMAT JSON) SELECT j.id FROM jobs j WHERE `+postgres.HeadOfLane).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &plan); err != nil {
		t.Fatal(err)
	}
	var scans []string
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.Alias == "h" {
			scans = append(scans, n.NodeType+" "+n.IndexName)
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(plan[0].Plan)
	if len(scans) != 1 || (scans[0] != "Index Only Scan jobs_lane" && scans[0] != "Index Scan jobs_lane") {
		t.Errorf("the lane check scans h by %q, want one scan of index jobs_lane\nplan: %s", scans, raw)
	}
}

type planNode struct {
	NodeType  string     `json:"Node Type"`
	Alias     string     `json:"Alias"`
	IndexName string     `json:"Index Name"`
	Plans     []planNode `json:"Plans"`
}
