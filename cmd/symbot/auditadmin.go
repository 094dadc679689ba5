package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/cmd/symbot/internal/admin"
)

var _ admin.AuditService = (*adminService)(nil)

func (a *adminService) VerifyAuditAgainst(ctx context.Context, cps []symbot.AuditCheckpoint) (int, error) {
	return a.d.engine.VerifyAuditAgainst(ctx, cps)
}

// ExportAudit writes the trail of [since, until) and records who took it.
func (a *adminService) ExportAudit(ctx context.Context, since, until time.Time, format string, w io.Writer) error {
	if format == "" {
		format = "jsonl"
	}
	if format != "jsonl" && format != "csv" {
		return &admin.FormatError{Format: format, Want: "jsonl or csv"}
	}
	es, err := a.d.engine.AuditBetween(ctx, since, until)
	if err != nil {
		return err
	}
	if err := a.record(ctx, "export", fmt.Sprintf("%d entries as %s, %s to %s", len(es), format, stamp(since), stamp(until))); err != nil {
		return err
	}
	if format == "csv" {
		return symbot.WriteAuditCSV(w, es, true)
	}
	_, err = w.Write(symbot.AppendAuditJSONL(nil, symbot.AuditBatch{Entries: es}))
	return err
}

// Report writes the access report of [since, until) and records who took it.
func (a *adminService) Report(ctx context.Context, since, until time.Time, format string, w io.Writer) error {
	if format == "" {
		format = "md"
	}
	if format != "md" && format != "csv" {
		return &admin.FormatError{Format: format, Want: "md or csv"}
	}
	rep, err := a.d.engine.AccessReport(ctx, since, until)
	if err != nil {
		return err
	}
	if err := a.record(ctx, "report", fmt.Sprintf("%d requests as %s, %s to %s", len(rep.Rows), format, stamp(since), stamp(until))); err != nil {
		return err
	}
	if format == "csv" {
		return rep.WriteCSV(w)
	}
	return rep.WriteMarkdown(w)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
