// Parsing the secret value: the token as the whole string, or under a JSON
// key; errors never carry a value.

package awsauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// parseSecret takes the token out of a secret value. Its errors name the
// secret, the key and the keys present, never a value; they name
// keySetting, the symbot.yml key that sets key (okta.token_json_key for
// Config.SecretJSONKey), since that is what the operator sets, and call the
// value what ("the Okta API token").
func parseSecret(id, key, keySetting, what string, str *string, bin []byte) (string, error) {
	bad := func(format string, args ...any) error {
		return &Error{Step: StepParseSecret, SecretID: id, Kind: ErrSecretFormat, msg: fmt.Sprintf("secret %q ", id) + fmt.Sprintf(format, args...)}
	}
	if str == nil {
		if len(bin) > 0 {
			return "", bad("is a binary secret (SecretBinary): store the token as a SecretString")
		}
		return "", bad("has no SecretString: store the token as a SecretString")
	}
	v := strings.TrimSpace(*str)
	if v == "" {
		return "", bad("has an empty SecretString: put %s in it", what)
	}
	var obj map[string]json.RawMessage
	isObject := strings.HasPrefix(v, "{") && json.Unmarshal([]byte(v), &obj) == nil
	if key == "" {
		if isObject {
			return "", bad("holds a JSON object with keys %s: set %s to the key of the token", keyList(obj), keySetting)
		}
		if strings.HasPrefix(v, "{") {
			return "", bad("starts with { but is not valid JSON: fix the JSON, or store only the token")
		}
		if strings.ContainsAny(v, " \t\r\n") {
			return "", bad("holds text with spaces or line breaks, not a bare token: store only the token, or a JSON object and set %s", keySetting)
		}
		return v, nil
	}
	if !isObject {
		return "", bad("is not a JSON object but %s is %q: store {%q: \"<token>\"} or leave %s out", keySetting, key, key, keySetting)
	}
	raw, ok := obj[key]
	if !ok {
		return "", bad("has no JSON key %q; keys present: %s: fix %s or the secret", key, keyList(obj), keySetting)
	}
	var tok string
	if err := json.Unmarshal(raw, &tok); err != nil {
		return "", bad("has %s under JSON key %q, want a string holding the token", describeJSON(raw), key)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", bad("has an empty string under JSON key %q: put %s there", key, what)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", bad("has text with spaces or line breaks under JSON key %q, not a bare token", key)
	}
	return tok, nil
}

func keyList(obj map[string]json.RawMessage) string {
	if len(obj) == 0 {
		return "(none)"
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, fmt.Sprintf("%q", k))
	}
	slices.Sort(keys)
	return "[" + strings.Join(keys, ", ") + "]"
}

// describeJSON names the JSON type of a raw value.
func describeJSON(raw []byte) string {
	t := strings.TrimSpace(string(raw))
	if t == "" {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// SecretString reads another secret with the chain's final credentials
// (the PagerDuty API token, say): its SecretString, or the string under
// jsonKey when it is a JSON object. setting and keySetting are the config
// keys that name the secret and the key, for the messages, which never
// carry a value.
func (s *Source) SecretString(ctx context.Context, id, jsonKey, setting, keySetting string) (string, error) {
	out, err := s.getSecretValue(ctx, id, setting)
	if err != nil {
		return "", err
	}
	v, err := parseSecret(id, jsonKey, keySetting, "the token", out.SecretString, out.SecretBinary)
	var e *Error
	if errors.As(err, &e) {
		e.Region = s.region
	}
	return v, err
}
