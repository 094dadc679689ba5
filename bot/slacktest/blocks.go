package slacktest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

var blockTypes = map[string]bool{
	"section": true, "actions": true, "context": true, "divider": true, "header": true,
	"input": true, "image": true, "rich_text": true, "markdown": true, "file": true, "video": true,
}

// normalizeBlocks checks a blocks array the way Slack does for the common
// mistakes (bad JSON, unknown types, over-long texts, duplicate IDs, empty
// texts), and fills in block_id and action_id where the app left them out,
// as Slack does when it stores a message or view.
func normalizeBlocks(raw []byte, maxBlocks int, surface string) (json.RawMessage, *apiError) {
	code := "invalid_blocks"
	if surface == "view" {
		code = "invalid_arguments"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var blocks []map[string]any
	if err := dec.Decode(&blocks); err != nil {
		return nil, slackErrMsgs("invalid_blocks_format", "blocks must be a JSON array of objects: "+err.Error())
	}
	if len(blocks) > maxBlocks {
		return nil, slackErrMsgs(code, fmt.Sprintf("no more than %d items allowed [json-pointer:/blocks]", maxBlocks))
	}
	v := &blockValidator{blockIDs: map[string]bool{}, surface: surface}
	for i, b := range blocks {
		v.block(fmt.Sprintf("/blocks/%d", i), b)
	}
	if len(v.problems) > 0 {
		return nil, slackErrMsgs(code, v.problems...)
	}
	out, err := json.Marshal(blocks)
	if err != nil {
		return nil, slackErrMsgs(code, err.Error())
	}
	return out, nil
}

type blockValidator struct {
	surface  string
	blockIDs map[string]bool
	problems []string
}

func (v *blockValidator) fail(ptr, format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf("%s [json-pointer:%s]", fmt.Sprintf(format, args...), ptr))
}

func (v *blockValidator) block(ptr string, b map[string]any) {
	typ, _ := b["type"].(string)
	if !blockTypes[typ] {
		v.fail(ptr+"/type", "unknown block type %q", typ)
		return
	}
	if typ == "input" && v.surface != "view" {
		v.fail(ptr+"/type", "input blocks are only allowed in modals and home tabs")
	}
	id, has := b["block_id"].(string)
	if !has || id == "" {
		id = randBlockID()
		b["block_id"] = id
	}
	if len(id) > 255 {
		v.fail(ptr+"/block_id", "must be less than 256 characters")
	}
	if v.blockIDs[id] {
		v.fail(ptr+"/block_id", "duplicate block_id %q", id)
	}
	v.blockIDs[id] = true
	switch typ {
	case "section":
		text, hasText := b["text"].(map[string]any)
		fields, hasFields := b["fields"].([]any)
		if !hasText && !hasFields {
			v.fail(ptr, "section needs text or fields")
		}
		if hasText {
			v.text(ptr+"/text", text, 3000, "")
		}
		if len(fields) > 10 {
			v.fail(ptr+"/fields", "no more than 10 items allowed")
		}
		for i, f := range fields {
			fm, _ := f.(map[string]any)
			v.text(fmt.Sprintf("%s/fields/%d", ptr, i), fm, 2000, "")
		}
		if acc, ok := b["accessory"].(map[string]any); ok {
			v.element(ptr+"/accessory", acc, map[string]bool{})
		}
	case "header":
		t, _ := b["text"].(map[string]any)
		v.text(ptr+"/text", t, 150, "plain_text")
	case "actions":
		els, _ := b["elements"].([]any)
		if len(els) == 0 || len(els) > 25 {
			v.fail(ptr+"/elements", "actions need 1 to 25 elements")
		}
		seen := map[string]bool{}
		for i, e := range els {
			em, _ := e.(map[string]any)
			v.element(fmt.Sprintf("%s/elements/%d", ptr, i), em, seen)
		}
	case "context":
		els, _ := b["elements"].([]any)
		if len(els) == 0 || len(els) > 10 {
			v.fail(ptr+"/elements", "context needs 1 to 10 elements")
		}
		for i, e := range els {
			em, _ := e.(map[string]any)
			if t, _ := em["type"].(string); t == "image" {
				continue
			}
			v.text(fmt.Sprintf("%s/elements/%d", ptr, i), em, 3000, "")
		}
	case "input":
		l, _ := b["label"].(map[string]any)
		v.text(ptr+"/label", l, 2000, "plain_text")
		el, ok := b["element"].(map[string]any)
		if !ok {
			v.fail(ptr+"/element", "input needs an element")
			return
		}
		v.element(ptr+"/element", el, map[string]bool{})
	}
}

func (v *blockValidator) element(ptr string, e map[string]any, seen map[string]bool) {
	if e == nil {
		v.fail(ptr, "element must be an object")
		return
	}
	typ, _ := e["type"].(string)
	if typ == "" {
		v.fail(ptr+"/type", "element needs a type")
		return
	}
	if typ == "image" {
		return
	}
	id, has := e["action_id"].(string)
	if !has || id == "" {
		id = randBlockID()
		e["action_id"] = id
	}
	if len(id) > 255 {
		v.fail(ptr+"/action_id", "must be less than 256 characters")
	}
	if seen[id] {
		v.fail(ptr+"/action_id", "duplicate action_id %q", id)
	}
	seen[id] = true
	if typ == "button" {
		t, _ := e["text"].(map[string]any)
		v.text(ptr+"/text", t, 75, "plain_text")
		if val, ok := e["value"].(string); ok && utf8.RuneCountInString(val) > 2000 {
			v.fail(ptr+"/value", "must be less than 2001 characters")
		}
		if st, ok := e["style"].(string); ok && st != "primary" && st != "danger" {
			v.fail(ptr+"/style", "must be primary or danger")
		}
	}
}

// text checks a text object: a known type, non-empty, at most max characters.
func (v *blockValidator) text(ptr string, t map[string]any, maxLen int, wantType string) {
	if t == nil {
		v.fail(ptr, "text object required")
		return
	}
	typ, _ := t["type"].(string)
	if typ != "plain_text" && typ != "mrkdwn" {
		v.fail(ptr+"/type", "text type must be plain_text or mrkdwn, got %q", typ)
	}
	if wantType != "" && typ != wantType {
		v.fail(ptr+"/type", "must be %s", wantType)
	}
	s, _ := t["text"].(string)
	if strings.TrimSpace(s) == "" {
		v.fail(ptr+"/text", "must be more than 0 characters")
	}
	if utf8.RuneCountInString(s) > maxLen {
		v.fail(ptr+"/text", "must be less than %d characters", maxLen+1)
	}
}

func randBlockID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// button is an interactive element found in stored blocks.
type button struct {
	blockID string
	element map[string]any
}

// findElement finds the element with actionID in a blocks array (actions
// elements, section accessories, input elements).
func findElement(blocks json.RawMessage, actionID string) (button, bool) {
	if len(blocks) == 0 {
		return button{}, false
	}
	var bs []map[string]any
	if json.Unmarshal(blocks, &bs) != nil {
		return button{}, false
	}
	for _, b := range bs {
		blockID, _ := b["block_id"].(string)
		var candidates []any
		if els, ok := b["elements"].([]any); ok && b["type"] == "actions" {
			candidates = els
		}
		if acc, ok := b["accessory"]; ok {
			candidates = append(candidates, acc)
		}
		if el, ok := b["element"]; ok {
			candidates = append(candidates, el)
		}
		for _, c := range candidates {
			em, _ := c.(map[string]any)
			if id, _ := em["action_id"].(string); id == actionID {
				return button{blockID: blockID, element: em}, true
			}
		}
	}
	return button{}, false
}
