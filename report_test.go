package symbot_test

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/symbot/symbot"
)

func TestAccessReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.start(t)
		start := time.Now()
		r := h.mustGrant(t, alice, "admin", time.Hour)
		time.Sleep(20 * time.Minute)
		if _, err := h.eng.Revoke(t.Context(), r.ID, bob, "done"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		denied := h.mustSubmit(t, carol, "ro", time.Hour)
		if _, err := h.eng.Deny(t.Context(), denied.ID, bob, "no"); err != nil {
			t.Fatal(err)
		}
		rep, err := h.eng.AccessReport(t.Context(), start, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Rows) != 2 {
			t.Fatalf("rows = %+v, want the grant and the denied request", rep.Rows)
		}
		g := rep.Rows[0]
		if g.RequestID != r.ID || g.Requester.SlackID != "UALICE" || g.Reason != "fix the outage" || len(g.Approvers) != 1 || g.Approvers[0].By != "UBOB" ||
			g.State != symbot.StateRevoked || g.DecidedBy != "UBOB" || g.Held != 20*time.Minute {
			t.Errorf("grant row = %+v", g)
		}
		if d := rep.Rows[1]; d.State != symbot.StateDenied || !d.GrantedAt.IsZero() || d.Held != 0 {
			t.Errorf("denied row = %+v", d)
		}
		var md, cv bytes.Buffer
		if err := rep.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"| " + r.ID + " | alice (alice@example.com) | prod/admin (GADMIN) | fix the outage | bob | ", "20m0s", "revoked by UBOB", "Standing members"} {
			if !strings.Contains(md.String(), want) {
				t.Errorf("markdown lacks %q:\n%s", want, md.String())
			}
		}
		if err := rep.WriteCSV(&cv); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&cv).ReadAll()
		if err != nil || len(rows) != 3 || rows[1][len(rows[1])-1] != "1200" {
			t.Errorf("csv rows = %v, %v; want a header and 2 rows, the grant held 1200 s", rows, err)
		}
		// A later period without activity has no rows.
		later, _ := h.eng.AccessReport(t.Context(), time.Now().Add(time.Minute), time.Now().Add(time.Hour))
		if len(later.Rows) != 0 {
			t.Errorf("empty period rows = %+v", later.Rows)
		}
		// A grant made before the period and held through it is reported,
		// though nothing about it was recorded in the period.
		held := h.mustGrant(t, dave, "ro", 4*time.Hour)
		time.Sleep(time.Hour)
		from := time.Now()
		time.Sleep(time.Hour)
		quiet, err := h.eng.AccessReport(t.Context(), from, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(quiet.Rows) != 1 || quiet.Rows[0].RequestID != held.ID || quiet.Rows[0].Held != 2*time.Hour {
			t.Errorf("quiet period rows = %+v, want %s held 2h by the period's end", quiet.Rows, held.ID)
		}
	})
}

func TestAccessReportNamesBreakGlass(t *testing.T) {
	flow := testFlow()
	flow.BreakGlass = &symbot.BreakGlass{MaxDuration: time.Hour}
	h := newHarness(t, nil, flow)
	start := time.Now()
	r, err := h.eng.BreakGlass(t.Context(), alice, symbot.RequestInput{Target: "admin", Duration: time.Hour, Reason: "outage"})
	if err != nil {
		t.Fatal(err)
	}
	row := func() string {
		rep, err := h.eng.AccessReport(t.Context(), start, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var md bytes.Buffer
		if err := rep.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		return md.String()
	}
	if got := row(); !strings.Contains(got, "break-glass, no approval, not reviewed") {
		t.Errorf("report of unreviewed break-glass access:\n%s", got)
	}
	if _, err := h.eng.Acknowledge(t.Context(), r.ID, bob, "ok"); err != nil {
		t.Fatal(err)
	}
	if got := row(); !strings.Contains(got, "break-glass, no approval, reviewed by UBOB") {
		t.Errorf("report of reviewed break-glass access:\n%s", got)
	}
}

func TestAccessReportMarkdownEscapesUserText(t *testing.T) {
	rep := &symbot.AccessReport{Rows: []symbot.AccessRow{{RequestID: "SYM-1", Requester: symbot.Person{Name: "eve|x"}, Reason: "a | b <script> [link](http://x)\nnew line", State: symbot.StatePending}}}
	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	line := strings.Split(md.String(), "\n")[6]
	if strings.Count(line, " | ") != 8 || strings.Contains(line, "<script>") || strings.Contains(line, "](") {
		t.Errorf("row %q: user text broke the table or carries markup", line)
	}
}
