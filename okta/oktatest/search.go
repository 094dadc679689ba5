package oktatest

import (
	"errors"
	"strings"
)

// parseExpr parses the subset of Okta's search/filter expressions the
// simulator understands: clauses `attr op "value"` joined by `and` / `or`
// (and binds tighter), where attr is id, status, profile.login,
// profile.email, profile.firstName or profile.lastName, op is eq (case
// insensitive), sw (starts with) or co (contains), and values escape `"`
// and `\` with a backslash.
func parseExpr(expr string) (func(*User) bool, error) {
	toks, err := tokenize(expr)
	if err != nil {
		return nil, err
	}
	var ors [][]func(*User) bool
	var ands []func(*User) bool
	for i := 0; ; {
		if i+3 > len(toks) {
			return nil, errors.New("incomplete clause")
		}
		attr, op, val := toks[i], toks[i+1], toks[i+2]
		if !val.quoted || attr.quoted || op.quoted {
			return nil, errors.New("want attr op \"value\"")
		}
		get := attrGetter(attr.text)
		if get == nil {
			return nil, errors.New("unknown attribute " + attr.text)
		}
		var m func(*User) bool
		want := strings.ToLower(val.text)
		switch strings.ToLower(op.text) {
		case "eq":
			m = func(u *User) bool { return strings.ToLower(get(u)) == want }
		case "sw":
			m = func(u *User) bool { return strings.HasPrefix(strings.ToLower(get(u)), want) }
		case "co":
			m = func(u *User) bool { return strings.Contains(strings.ToLower(get(u)), want) }
		default:
			return nil, errors.New("unknown operator " + op.text)
		}
		ands = append(ands, m)
		i += 3
		if i == len(toks) {
			break
		}
		switch strings.ToLower(toks[i].text) {
		case "and":
		case "or":
			ors = append(ors, ands)
			ands = nil
		default:
			return nil, errors.New("want and/or")
		}
		i++
	}
	ors = append(ors, ands)
	return func(u *User) bool {
		for _, group := range ors {
			all := true
			for _, m := range group {
				if !m(u) {
					all = false
					break
				}
			}
			if all {
				return true
			}
		}
		return false
	}, nil
}

func attrGetter(attr string) func(*User) string {
	switch attr {
	case "id":
		return func(u *User) string { return u.ID }
	case "status":
		return func(u *User) string { return u.Status }
	case "profile.login":
		return func(u *User) string { return u.Login }
	case "profile.email":
		return func(u *User) string { return u.Email }
	case "profile.firstName":
		return func(u *User) string { return u.FirstName }
	case "profile.lastName":
		return func(u *User) string { return u.LastName }
	}
	return nil
}

type token struct {
	text   string
	quoted bool
}

func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '"':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, errors.New("unterminated string")
				}
				if s[i] == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == '"' {
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, token{text: b.String(), quoted: true})
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '"' {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}
