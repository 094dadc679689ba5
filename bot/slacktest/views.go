package slacktest

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// viewRequest is the view object an app sends to views.open/update/push.
type viewRequest struct {
	Type            string          `json:"type"`
	Title           *textObject     `json:"title"`
	Close           *textObject     `json:"close"`
	Submit          *textObject     `json:"submit"`
	Blocks          json.RawMessage `json:"blocks"`
	PrivateMetadata string          `json:"private_metadata"`
	CallbackID      string          `json:"callback_id"`
	ExternalID      string          `json:"external_id"`
	ClearOnClose    bool            `json:"clear_on_close"`
	NotifyOnClose   bool            `json:"notify_on_close"`
}

type textObject struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// parseView validates a view the way Slack does for the usual mistakes.
func parseView(raw json.RawMessage) (*viewRequest, json.RawMessage, *apiError) {
	var vr viewRequest
	if len(raw) == 0 {
		return nil, nil, slackErrMsgs("invalid_arguments", "missing required field: view")
	}
	if err := json.Unmarshal(raw, &vr); err != nil {
		return nil, nil, slackErrMsgs("invalid_arguments", "view is not a valid object: "+err.Error())
	}
	var problems []string
	check := func(ptr string, t *textObject, required bool) {
		if t == nil {
			if required {
				problems = append(problems, "missing required field: "+ptr+" [json-pointer:/view/"+ptr+"]")
			}
			return
		}
		if t.Type != "plain_text" {
			problems = append(problems, "must be plain_text [json-pointer:/view/"+ptr+"/type]")
		}
		if n := utf8.RuneCountInString(t.Text); n == 0 || n > 24 {
			problems = append(problems, "must be between 1 and 24 characters [json-pointer:/view/"+ptr+"/text]")
		}
	}
	if vr.Type != "modal" {
		problems = append(problems, fmt.Sprintf("type must be modal, got %q [json-pointer:/view/type]", vr.Type))
	}
	check("title", vr.Title, true)
	check("close", vr.Close, false)
	check("submit", vr.Submit, false)
	if len(vr.PrivateMetadata) > 3000 {
		problems = append(problems, "must be less than 3001 characters [json-pointer:/view/private_metadata]")
	}
	if len(vr.CallbackID) > 255 {
		problems = append(problems, "must be less than 256 characters [json-pointer:/view/callback_id]")
	}
	if len(problems) > 0 {
		return nil, nil, slackErrMsgs("invalid_arguments", problems...)
	}
	if len(vr.Blocks) == 0 || string(vr.Blocks) == "null" {
		vr.Blocks = json.RawMessage("[]")
	}
	blocks, ae := normalizeBlocks(vr.Blocks, 100, "view")
	if ae != nil {
		return nil, nil, ae
	}
	if vr.Submit == nil && hasInputBlock(blocks) {
		return nil, nil, slackErrMsgs("invalid_arguments", "a view with input blocks needs a submit button [json-pointer:/view/submit]")
	}
	return &vr, blocks, nil
}

func hasInputBlock(blocks json.RawMessage) bool {
	var bs []struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(blocks, &bs)
	for _, b := range bs {
		if b.Type == "input" {
			return true
		}
	}
	return false
}

func (v *View) apply(vr *viewRequest, blocks json.RawMessage) {
	v.Type = vr.Type
	v.CallbackID = vr.CallbackID
	v.PrivateMetadata = vr.PrivateMetadata
	v.ExternalID = vr.ExternalID
	v.Title, v.Submit = "", ""
	if vr.Title != nil {
		v.Title = vr.Title.Text
	}
	if vr.Submit != nil {
		v.Submit = vr.Submit.Text
	}
	v.NotifyOnClose = vr.NotifyOnClose
	v.Blocks = blocks
	v.Hash = fmt.Sprintf("%d.%s", time.Now().Unix(), randHex(4))
}

// viewJSON is the view object Slack returns and puts in interaction payloads.
func (s *Server) viewJSON(v *View, state map[string]any) map[string]any {
	if state == nil {
		state = map[string]any{}
	}
	out := map[string]any{
		"id": v.ID, "team_id": s.TeamID, "type": v.Type, "blocks": v.Blocks,
		"private_metadata": v.PrivateMetadata, "callback_id": v.CallbackID,
		"state": map[string]any{"values": state}, "hash": v.Hash,
		"title":        map[string]any{"type": "plain_text", "text": v.Title, "emoji": true},
		"root_view_id": v.RootViewID, "previous_view_id": nil, "app_id": s.AppID,
		"external_id": v.ExternalID, "bot_id": s.BotID, "app_installed_team_id": s.TeamID,
		"clear_on_close": false, "notify_on_close": v.NotifyOnClose,
	}
	if v.PreviousViewID != "" {
		out["previous_view_id"] = v.PreviousViewID
	}
	if v.Submit != "" {
		out["submit"] = map[string]any{"type": "plain_text", "text": v.Submit, "emoji": true}
	}
	return out
}

// takeTriggerLocked exchanges a trigger_id once.
func (s *Server) takeTriggerLocked(id string) (*trigger, *apiError) {
	if id == "" {
		return nil, slackErrMsgs("invalid_arguments", "missing required field: trigger_id")
	}
	t, ok := s.triggers[id]
	switch {
	case !ok:
		return nil, slackErr("invalid_trigger_id")
	case t.used:
		return nil, slackErr("exchanged_trigger_id")
	case s.TriggerTTL > 0 && time.Since(t.issued) > s.TriggerTTL:
		return nil, slackErr("expired_trigger_id")
	}
	t.used = true
	return t, nil
}

func (s *Server) newViewLocked(user string, vr *viewRequest, blocks json.RawMessage) *View {
	v := &View{ID: s.newIDLocked("V"), User: user}
	v.apply(vr, blocks)
	s.views[v.ID] = v
	s.viewSeq = append(s.viewSeq, v)
	return v
}

func (s *Server) apiViewsOpen(r *apiRequest) (map[string]any, *apiError) {
	vr, blocks, ae := parseView(r.body["view"])
	if ae != nil {
		return nil, ae
	}
	t, ae := s.takeTriggerLocked(r.get("trigger_id"))
	if ae != nil {
		return nil, ae
	}
	for _, old := range s.viewSeq {
		if old.User == t.user {
			old.Closed = true
		}
	}
	v := s.newViewLocked(t.user, vr, blocks)
	v.RootViewID = v.ID
	return map[string]any{"view": s.viewJSON(v, nil)}, nil
}

func (s *Server) apiViewsPush(r *apiRequest) (map[string]any, *apiError) {
	vr, blocks, ae := parseView(r.body["view"])
	if ae != nil {
		return nil, ae
	}
	t, ae := s.takeTriggerLocked(r.get("trigger_id"))
	if ae != nil {
		return nil, ae
	}
	prev, ok := s.views[t.viewID]
	if !ok || prev.Closed {
		return nil, slackErrMsgs("invalid_arguments", "views.push needs a trigger_id from an interaction inside an open modal")
	}
	depth := 1
	for p := prev; p.PreviousViewID != ""; p = s.views[p.PreviousViewID] {
		depth++
	}
	if depth >= 3 {
		return nil, slackErr("push_limit_reached")
	}
	v := s.newViewLocked(t.user, vr, blocks)
	v.RootViewID, v.PreviousViewID = prev.RootViewID, prev.ID
	return map[string]any{"view": s.viewJSON(v, nil)}, nil
}

func (s *Server) apiViewsUpdate(r *apiRequest) (map[string]any, *apiError) {
	vr, blocks, ae := parseView(r.body["view"])
	if ae != nil {
		return nil, ae
	}
	var v *View
	if id := r.get("view_id"); id != "" {
		v = s.views[id]
	} else if ext := r.get("external_id"); ext != "" {
		for _, cand := range s.viewSeq {
			if cand.ExternalID == ext {
				v = cand
			}
		}
	} else {
		return nil, slackErrMsgs("invalid_arguments", "view_id or external_id is required")
	}
	if v == nil {
		return nil, slackErr("not_found")
	}
	if h := r.get("hash"); h != "" && h != v.Hash {
		return nil, slackErr("hash_conflict")
	}
	v.apply(vr, blocks)
	v.Updates++
	return map[string]any{"view": s.viewJSON(v, nil)}, nil
}
