package symbot

// The export format of the audit trail: JSON lines that every sink writes
// (the file sink as is, the webhook inside its payload, S3 as objects) and
// `symbot audit export` prints, and from which `symbot audit verify
// --against` reads anchors back. One record per line:
//
//	{"type":"entry","id":"42-9f86d081884c7d65","seq":42,"at":"2026-12-01T09:00:00.123456789Z",
//	 "request_id":"SYM-7","actor":"UBOB","action":"approve","detail":"approval 1 of 1",
//	 "prev_hash":"...","key":"k1-...","hash":"..."}
//	{"type":"checkpoint","id":"checkpoint-42-9f86d081884c7d65","seq":42,"hash":"...","key":"k1-...","at":"..."}
//
// id is stable: a record delivered twice (sinks get every record at least
// once) carries the same id, so a receiver can drop duplicates.

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// AuditRecordID is the stable id of an entry in exports: its Seq and the
// start of its hash.
func AuditRecordID(e *AuditEntry) string { return strconv.FormatUint(e.Seq, 10) + "-" + short(e.Hash) }

// ID is the stable id of a checkpoint in exports.
func (c AuditCheckpoint) ID() string {
	return "checkpoint-" + strconv.FormatUint(c.Seq, 10) + "-" + short(c.Hash)
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// auditRecord is one line of the export format.
type auditRecord struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	Seq       uint64 `json:"seq"`
	At        string `json:"at,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Actor     string `json:"actor,omitempty"`
	Action    string `json:"action,omitempty"`
	Detail    string `json:"detail,omitempty"`
	PrevHash  string `json:"prev_hash,omitempty"`
	Key       string `json:"key,omitempty"`
	Hash      string `json:"hash"`
}

func entryRecord(e *AuditEntry) auditRecord {
	return auditRecord{Type: "entry", ID: AuditRecordID(e), Seq: e.Seq, At: e.At.UTC().Format(time.RFC3339Nano),
		RequestID: e.RequestID, Actor: e.Actor, Action: e.Action, Detail: e.Detail, PrevHash: e.PrevHash, Key: e.Key, Hash: e.Hash}
}

func checkpointRecord(c *AuditCheckpoint) auditRecord {
	r := auditRecord{Type: "checkpoint", ID: c.ID(), Seq: c.Seq, Key: c.Key, Hash: c.Hash}
	if !c.At.IsZero() {
		r.At = c.At.UTC().Format(time.RFC3339Nano)
	}
	return r
}

// AppendAuditJSONL appends b's records, one JSON object a line, to dst:
// the entries in order, then the checkpoint if there is one.
func AppendAuditJSONL(dst []byte, b AuditBatch) []byte {
	add := func(r auditRecord) {
		line, err := json.Marshal(r)
		if err != nil {
			panic(err) // strings and numbers only: cannot fail
		}
		dst = append(append(dst, line...), '\n')
	}
	for i := range b.Entries {
		add(entryRecord(&b.Entries[i]))
	}
	if b.Checkpoint != nil {
		add(checkpointRecord(b.Checkpoint))
	}
	return dst
}

// AuditCSVHeader is the header row of WriteAuditCSV.
var AuditCSVHeader = []string{"id", "seq", "at", "request_id", "actor", "action", "detail", "prev_hash", "key", "hash"}

// WriteAuditCSV writes entries as CSV rows (after the header when header
// is true). Cells that a spreadsheet would run as a formula (starting with
// = + - @) are prefixed with a single quote.
func WriteAuditCSV(w io.Writer, entries []AuditEntry, header bool) error {
	cw := csv.NewWriter(w)
	if header {
		if err := cw.Write(AuditCSVHeader); err != nil {
			return fmt.Errorf("write audit csv: %w", err)
		}
	}
	for i := range entries {
		e := &entries[i]
		row := []string{AuditRecordID(e), strconv.FormatUint(e.Seq, 10), e.At.UTC().Format(time.RFC3339Nano),
			CSVCell(e.RequestID), CSVCell(e.Actor), CSVCell(e.Action), CSVCell(e.Detail), e.PrevHash, e.Key, e.Hash}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write audit csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write audit csv: %w", err)
	}
	return nil
}

// CSVCell defuses a cell a spreadsheet would evaluate as a formula.
func CSVCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// ParseAuditAnchors reads checkpoints from what the daemon exported: a
// file sink's JSON lines or S3 objects (entries and checkpoints), saved
// webhook payloads ({"records":[...]}), or the daemon's log (JSON or text
// lines of "audit checkpoint" with audit_seq and audit_head). Every entry
// and checkpoint found is an anchor: the chain must still hold that Seq
// with that Hash. Lines that are none of these are skipped; a file with no
// anchor at all, or with two different hashes for one Seq, is an error.
func ParseAuditAnchors(r io.Reader) ([]AuditCheckpoint, error) {
	seen := map[uint64]AuditCheckpoint{}
	var order []uint64
	add := func(c AuditCheckpoint, line int) error {
		if c.Seq == 0 || c.Hash == "" {
			return nil
		}
		if old, ok := seen[c.Seq]; ok {
			if old.Hash != c.Hash {
				return fmt.Errorf("read anchors: line %d: entry %d has hash %s here but %s earlier: the export itself was altered or mixes two stores", line, c.Seq, short(c.Hash), short(old.Hash))
			}
			if c.At.After(old.At) {
				seen[c.Seq] = c
			}
			return nil
		}
		seen[c.Seq] = c
		order = append(order, c.Seq)
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		cps, err := parseAnchorLine(line)
		if err != nil {
			return nil, fmt.Errorf("read anchors: line %d: %w", n, err)
		}
		for _, c := range cps {
			if err := add(c, n); err != nil {
				return nil, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read anchors: %w", err)
	}
	if len(order) == 0 {
		return nil, errors.New("read anchors: no audit entries or checkpoints found: give a file sink's output, S3 objects, saved webhook payloads or symbot's log")
	}
	out := make([]AuditCheckpoint, 0, len(order))
	for _, s := range order {
		out = append(out, seen[s])
	}
	return out, nil
}

func parseAnchorLine(line []byte) ([]AuditCheckpoint, error) {
	if line[0] != '{' {
		return textLogAnchor(string(line)), nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, nil // not JSON after all: not ours
	}
	if raw, ok := m["records"]; ok {
		var recs []auditRecord
		if err := json.Unmarshal(raw, &recs); err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
		var out []AuditCheckpoint
		for _, r := range recs {
			out = append(out, r.anchor())
		}
		return out, nil
	}
	if _, ok := m["type"]; ok {
		var r auditRecord
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
		if r.Type != "entry" && r.Type != "checkpoint" {
			return nil, nil
		}
		return []AuditCheckpoint{r.anchor()}, nil
	}
	var lg struct {
		Msg  string          `json:"msg"`
		Time time.Time       `json:"time"`
		Seq  json.RawMessage `json:"audit_seq"`
		Head string          `json:"audit_head"`
		Key  string          `json:"audit_key"`
	}
	if err := json.Unmarshal(line, &lg); err != nil || lg.Msg != LogAuditCheckpoint {
		return nil, nil
	}
	seq, err := strconv.ParseUint(strings.Trim(string(lg.Seq), `"`), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("audit_seq %s: not a number", lg.Seq)
	}
	return []AuditCheckpoint{{Seq: seq, Hash: lg.Head, Key: lg.Key, At: lg.Time}}, nil
}

func (r auditRecord) anchor() AuditCheckpoint {
	at, _ := time.Parse(time.RFC3339Nano, r.At)
	return AuditCheckpoint{Seq: r.Seq, Hash: r.Hash, Key: r.Key, At: at}
}

// textLogAnchor reads a checkpoint from a log/slog text line:
// time=... level=INFO msg="audit checkpoint" audit_seq=12 audit_head=ab12...
func textLogAnchor(line string) []AuditCheckpoint {
	if !strings.Contains(line, `msg="`+LogAuditCheckpoint+`"`) {
		return nil
	}
	var c AuditCheckpoint
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "time":
			c.At, _ = time.Parse(time.RFC3339Nano, v)
		case "audit_seq":
			c.Seq, _ = strconv.ParseUint(v, 10, 64)
		case "audit_head":
			c.Hash = v
		case "audit_key":
			c.Key = v
		}
	}
	if c.Seq == 0 || c.Hash == "" {
		return nil
	}
	return []AuditCheckpoint{c}
}

// LogAuditCheckpoint is the message of the log line that exports a
// checkpoint (with attributes audit_seq, audit_head and audit_key).
const LogAuditCheckpoint = "audit checkpoint"
