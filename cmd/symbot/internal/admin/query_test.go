package admin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/admin"
)

// auditOnly is a Service whose Audit records the since it was asked for;
// the test calls nothing else.
type auditOnly struct {
	admin.Service
	since []time.Time
}

func (s *auditOnly) Audit(_ context.Context, since time.Time) ([]symbot.AuditEntry, error) {
	s.since = append(s.since, since)
	return nil, nil
}

// TestAuditSinceQuery: /audit takes an optional RFC 3339 since and answers
// 400, naming the parameter, when it is malformed.
func TestAuditSinceQuery(t *testing.T) {
	svc := &auditOnly{}
	h := admin.NewServer(svc, nil)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name, query string
		status      int
		body        string      // a part of the answer
		since       []time.Time // what Audit was asked for so far
	}{
		{"absent", "", http.StatusOK, `"entries": []`, []time.Time{{}}},
		{"valid", "?since=" + at.Format(time.RFC3339Nano), http.StatusOK, `"entries": []`, []time.Time{{}, at}},
		{"malformed", "?since=yesterday", http.StatusBadRequest, `since: \"yesterday\" is not an RFC 3339 time`, []time.Time{{}, at}},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/audit"+tt.query, nil))
		if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) {
			t.Errorf("%s: got %d %s, want %d with %s", tt.name, rec.Code, rec.Body, tt.status, tt.body)
		}
		if len(svc.since) != len(tt.since) {
			t.Fatalf("%s: Audit called %d times, want %d", tt.name, len(svc.since), len(tt.since))
		}
		for i := range tt.since {
			if !svc.since[i].Equal(tt.since[i]) {
				t.Errorf("%s: Audit call %d since %v, want %v", tt.name, i, svc.since[i], tt.since[i])
			}
		}
	}
}
