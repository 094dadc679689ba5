// The request record's JSON, written by hand: the same bytes that
// json.Marshal writes for a requestRecord, at a sixth of the time.
//
// Why: every command and job that changes a request encodes it inside its
// transaction, and a new request's commit encodes three (the request, and
// the records of the request before it: its approval message and its
// early look-ups), about 12 µs each with encoding/json's reflection. The
// stored format does not change: TestAppendRequestIsJSONMarshal holds
// this encoder to json.Marshal byte for byte, for every field of random
// requests, found by reflection, and for strings and times that encoding
// escapes, replaces or refuses.

package store

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/symbot/symbot"
)

// appendRequest appends r's stored form (requestRecord's JSON) to dst.
// It fails, as json.Marshal does, on a time with no JSON form (a year
// outside 0-9999).
func appendRequest(dst []byte, r *symbot.Request) ([]byte, error) {
	e := recEncoder{b: append(dst, '{')}
	e.str("ID", r.ID)
	e.str("Flow", r.Flow)
	e.str("Target", r.Target)
	e.str("GroupID", r.GroupID)
	if r.Requester != (symbot.Person{}) {
		e.key("Requester")
		e.person(r.Requester)
	}
	e.int("Duration", int64(r.Duration))
	e.str("Reason", r.Reason)
	e.time("StartAt", r.StartAt)
	e.str("State", string(r.State))
	e.time("CreatedAt", r.CreatedAt)
	e.time("UpdatedAt", r.UpdatedAt)
	array(&e, "Approvals", r.Approvals, func(d symbot.Decision) {
		outer := e.open()
		e.strMember("By", d.By)
		e.strMember("Name", d.Name)
		e.key("At")
		e.timeValue(d.At)
		e.strMember("Note", d.Note)
		e.strMember("OktaUserID", d.OktaUserID)
		e.close(outer)
	})
	array(&e, "Transitions", r.Transitions, func(t symbot.Transition) {
		outer := e.open()
		e.strMember("From", string(t.From))
		e.strMember("To", string(t.To))
		e.strMember("By", t.By)
		e.key("At")
		e.timeValue(t.At)
		e.strMember("Note", t.Note)
		e.close(outer)
	})
	e.str("ExtensionOf", r.ExtensionOf)
	e.strs("ExtendedBy", r.ExtendedBy)
	e.time("TimeoutAt", r.TimeoutAt)
	e.time("WarnAt", r.WarnAt)
	e.bool("Warned", r.Warned)
	e.time("ExpiresAt", r.ExpiresAt)
	e.time("GrantedAt", r.GrantedAt)
	e.str("OktaUserID", r.OktaUserID)
	e.str("OktaLogin", r.OktaLogin)
	e.bool("GrantChecked", r.GrantChecked)
	e.bool("Preexisting", r.Preexisting)
	e.bool("Removed", r.Removed)
	e.bool("Kept", r.Kept)
	e.str("RemovalNote", r.RemovalNote)
	e.time("PrecheckedAt", r.PrecheckedAt)
	e.str("PreOktaUserID", r.PreOktaUserID)
	e.str("PreOktaLogin", r.PreOktaLogin)
	e.bool("PreMember", r.PreMember)
	e.str("FailReason", r.FailReason)
	if r.Message != (symbot.MessageRef{}) {
		e.key("Message")
		e.messageRef(r.Message)
	}
	e.str("Rule", r.Rule)
	e.int("RuleApprovals", int64(r.RuleApprovals))
	if a := r.RuleApprovers; a != nil {
		e.key("RuleApprovers")
		outer := e.open()
		e.key("Users")
		if a.Users == nil {
			e.b = append(e.b, "null"...)
		} else {
			e.strList(a.Users)
		}
		e.strMember("OktaGroup", a.OktaGroup)
		e.key("Anyone")
		e.b = strconv.AppendBool(e.b, a.Anyone)
		e.close(outer)
	}
	e.str("RuleNote", r.RuleNote)
	e.time("NudgeAt", r.NudgeAt)
	e.int("Escalated", int64(r.Escalated))
	e.int("Reminders", int64(r.Reminders))
	e.strs("BackupApprovers", r.BackupApprovers)
	array(&e, "Reposts", r.Reposts, e.messageRef)
	e.bool("BreakGlass", r.BreakGlass)
	e.time("ReviewDue", r.ReviewDue)
	e.int("ReviewAlerts", int64(r.ReviewAlerts))
	e.str("ReviewedBy", r.ReviewedBy)
	e.time("ReviewedAt", r.ReviewedAt)
	e.str("ReviewNote", r.ReviewNote)
	e.str("Nonce", r.Nonce)
	if e.err != nil {
		return nil, e.err
	}
	return append(e.b, '}'), nil
}

// recEncoder writes a JSON object's members, each under omitzero unless
// written through key (or strMember); open and close nest an object.
type recEncoder struct {
	b      []byte
	fields int
	err    error
}

// key starts the member named k (a plain ASCII name).
func (e *recEncoder) key(k string) {
	if e.fields > 0 {
		e.b = append(e.b, ',')
	}
	e.fields++
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

// open starts a nested object, whose members follow (through key), and
// returns what close needs to go on with the enclosing object's.
func (e *recEncoder) open() (outer int) {
	outer, e.fields = e.fields, 0
	e.b = append(e.b, '{')
	return outer
}

// close ends the nested object that open (which returned outer) started.
func (e *recEncoder) close(outer int) {
	e.b = append(e.b, '}')
	e.fields = outer
}

// strMember writes member k, the string v, even if v is empty.
func (e *recEncoder) strMember(k, v string) {
	e.key(k)
	e.str1(v)
}

func (e *recEncoder) str(k, v string) {
	if v != "" {
		e.key(k)
		e.b = appendJSONString(e.b, v)
	}
}

func (e *recEncoder) int(k string, v int64) {
	if v != 0 {
		e.key(k)
		e.b = strconv.AppendInt(e.b, v, 10)
	}
}

func (e *recEncoder) bool(k string, v bool) {
	if v {
		e.key(k)
		e.b = append(e.b, "true"...)
	}
}

// time writes t unless it is zero (time.Time's IsZero, as omitzero uses).
func (e *recEncoder) time(k string, t time.Time) {
	if !t.IsZero() {
		e.key(k)
		e.timeValue(t)
	}
}

// timeValue writes t as time.Time's MarshalJSON does.
func (e *recEncoder) timeValue(t time.Time) {
	e.b = append(e.b, '"')
	b, err := t.AppendText(e.b)
	if err != nil {
		if e.err == nil {
			e.err = err
		}
		return
	}
	e.b = append(b, '"')
}

// strs writes a string slice unless it is nil (an empty one is "[]").
func (e *recEncoder) strs(k string, v []string) {
	array(e, k, v, e.str1)
}

// strList writes v as an array, nil included (as "[]"; callers write
// null themselves).
func (e *recEncoder) strList(v []string) {
	e.elems(len(v), func(i int) { e.str1(v[i]) })
}

func (e *recEncoder) str1(s string) { e.b = appendJSONString(e.b, s) }

// array writes member k as an array of v's elements, each written by
// elem, unless v is nil (an empty one is "[]"), as omitzero does.
func array[T any](e *recEncoder, k string, v []T, elem func(T)) {
	if v == nil {
		return
	}
	e.key(k)
	e.elems(len(v), func(i int) { elem(v[i]) })
}

// elems writes an array of n elements, each written by elem(i).
func (e *recEncoder) elems(n int, elem func(i int)) {
	e.b = append(e.b, '[')
	for i := range n {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		elem(i)
	}
	e.b = append(e.b, ']')
}

func (e *recEncoder) person(p symbot.Person) {
	e.strObject("SlackID", p.SlackID, "Name", p.Name, "Email", p.Email)
}

func (e *recEncoder) messageRef(m symbot.MessageRef) {
	e.strObject("Channel", m.Channel, "TS", m.TS)
}

// strObject writes an object of string members, every one written (no
// omitzero): names (plain ASCII) and values alternating.
func (e *recEncoder) strObject(kv ...string) {
	outer := e.open()
	for i := 0; i+1 < len(kv); i += 2 {
		e.strMember(kv[i], kv[i+1])
	}
	e.close(outer)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way encoding/json's
// Marshal does: with HTML escaping (<, >, & as \u003c...), the short
// escapes \b \f \n \r \t, other control bytes as \u00XX, U+2028 and
// U+2029 escaped, and each byte of bad UTF-8 as \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
