package postgres

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestMerge: row writes of one kind join one statement unless that would
// move a write across another write of the same row or across a write that
// is not a row write.
func TestMerge(t *testing.T) {
	put := func(id string) heldWrite {
		return heldWrite{op: "put request", sql: "put1", want: -1, row: putRequestRows, key: id, args: []any{id, "U1", "active", (*int64)(nil), []byte("{}")}}
	}
	job := func(row *rowWrite, op string, want int64, id string) heldWrite {
		n, _ := strconv.ParseInt(id, 10, 64)
		args := make([]any, len(row.types))
		for i, typ := range row.types { // a row of zero values of the right types
			args[i] = map[string]any{"int8": int64(0), "int4": int32(0), "text": "", "bool": false}[typ]
		}
		args[0] = n
		return heldWrite{op: op, sql: op + "1", want: want, row: row, key: id, args: args}
	}
	add := func(id string) heldWrite { return job(addJobRows, "add job", -1, id) }
	upd := func(id string) heldWrite { return job(updateJobRows, "update job", 1, id) }
	del := func(id string) heldWrite { return job(deleteJobRows, "delete job", 1, id) }
	audit := func(seq string) heldWrite { return job(appendAuditRows, "append audit", -1, seq) }
	other := heldWrite{op: "move the job id counter", sql: "setval", want: -1}

	// A statement in short: its op and the keys of its rows.
	type stmt struct {
		op   string
		keys string
		want int64
	}
	tests := []struct {
		name string
		in   []heldWrite
		want []stmt
	}{
		{"one", []heldWrite{put("R1")}, []stmt{{"put request", "R1", -1}}},
		{"job completions", []heldWrite{
			put("R1"), add("10"), add("11"), del("5"), audit("1"),
			put("R2"), add("12"), add("13"), del("6"), audit("2"),
		}, []stmt{
			{"put request", "R1 R2", -1}, {"add job", "10 11 12 13", -1}, {"delete job", "5 6", 2}, {"append audit", "1 2", -1},
		}},
		{"a row written twice stays in order", []heldWrite{
			put("R1"), put("R2"), put("R1"), put("R3"),
		}, []stmt{
			{"put request", "R1 R2", -1}, {"put request", "R1 R3", -1},
		}},
		{"insert, update and delete of one job", []heldWrite{
			add("1"), upd("1"), add("2"), del("1"), upd("2"), upd("3"),
		}, []stmt{
			{"add job", "1 2", -1}, {"update job", "1 2 3", 3}, {"delete job", "1", 1},
		}},
		{"a different row may move ahead", []heldWrite{
			add("1"), del("1"), add("2"),
		}, []stmt{
			{"add job", "1 2", -1}, {"delete job", "1", 1},
		}},
		{"nothing moves across other statements", []heldWrite{
			put("R1"), other, put("R2"), add("1"),
		}, []stmt{
			{"put request", "R1", -1}, {"move the job id counter", "", -1}, {"put request", "R2", -1}, {"add job", "1", -1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := merge(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var got []stmt
			for _, w := range out {
				op, _, _ := strings.Cut(w.op, " (")
				s := stmt{op: op, want: w.want}
				if len(w.args) > 0 { // the key, or the array of keys of a merged statement
					s.keys = keysOf(w.args[0])
				}
				got = append(got, s)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("merge:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

// TestMergeRefusesWrongTypes: a row write whose arguments do not fit its
// kind's arrays fails the flush (and so the transaction) with an error.
func TestMergeRefusesWrongTypes(t *testing.T) {
	w := heldWrite{op: "add job", sql: "add1", want: -1, row: addJobRows, key: "1", args: []any{"not an id"}}
	w2 := w
	w2.key = "2"
	if _, err := merge([]heldWrite{w, w2}); err == nil || !strings.Contains(err.Error(), "argument 1 is a string, not int8") {
		t.Errorf("merge of a bad row write: err %v", err)
	}
}

// keysOf renders the first argument of a statement: one key, or an array
// of them.
func keysOf(a any) string {
	switch v := a.(type) {
	case string:
		return v
	case []string:
		return strings.Join(v, " ")
	case int64:
		return strconv.FormatInt(v, 10)
	case []*int64:
		var s []string
		for _, p := range v {
			s = append(s, strconv.FormatInt(*p, 10))
		}
		return strings.Join(s, " ")
	}
	return fmt.Sprintf("%T", a)
}
