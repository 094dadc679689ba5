package slacktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// verificationToken is the deprecated per-app token Slack still puts in payloads.
const verificationToken = "simverificationtoken"

func (s *Server) issueTriggerLocked(user, viewID string) string {
	id := fmt.Sprintf("%d.%d.%s", time.Now().Unix(), 1000+s.seq, randHex(16))
	s.seq++
	s.triggers[id] = &trigger{user: user, issued: time.Now(), viewID: viewID}
	return id
}

func (s *Server) issueResponseURLLocked(user, channel, msgTS string) string {
	id := randHex(16)
	s.responseURLs[id] = &responseTarget{user: user, channel: channel, msgTS: msgTS, issued: time.Now()}
	return s.base + "/response/" + id
}

func (s *Server) userRefLocked(userID string) (*User, error) {
	u, ok := s.users[userID]
	if !ok {
		return nil, fmt.Errorf("slacktest: unknown user %q: add it with AddUser", userID)
	}
	return u, nil
}

func (s *Server) channelName(ch *channelState) string {
	if ch.isIM {
		return "directmessage"
	}
	if ch.IsPrivate {
		return "privategroup"
	}
	return ch.Name
}

// SlashCommand sends a slash_commands envelope as userID typing
// "command text" in channelID ("" means the user's IM with the bot) and
// returns the ack. The payload carries a fresh trigger_id and response_url.
func (s *Server) SlashCommand(userID, command, text, channelID string) (Ack, error) {
	s.mu.Lock()
	u, err := s.userRefLocked(userID)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	if channelID == "" {
		channelID = s.imLocked(userID)
	}
	ch, ok := s.channels[channelID]
	if !ok {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slacktest: unknown channel %q: add it with AddChannel", channelID)
	}
	payload := map[string]string{
		"token":                 verificationToken,
		"team_id":               s.TeamID,
		"team_domain":           s.TeamDomain,
		"channel_id":            ch.ID,
		"channel_name":          s.channelName(ch),
		"user_id":               u.ID,
		"user_name":             u.Name,
		"command":               command,
		"text":                  text,
		"api_app_id":            s.AppID,
		"is_enterprise_install": "false",
		"response_url":          s.issueResponseURLLocked(u.ID, ch.ID, ""),
		"trigger_id":            s.issueTriggerLocked(u.ID, ""),
	}
	s.mu.Unlock()
	raw, _ := json.Marshal(payload)
	ack, err := s.deliver("slash_commands", raw, 0)
	if err != nil {
		return ack, err
	}
	s.applySlashResponse(u.ID, ch.ID, ack.Payload)
	return ack, nil
}

// applySlashResponse shows a slash command's ack payload as Slack does: an
// ephemeral message to the user, or a channel message for "in_channel".
func (s *Server) applySlashResponse(userID, channelID string, payload json.RawMessage) {
	if len(payload) == 0 {
		return
	}
	var msg struct {
		Text         string          `json:"text"`
		Blocks       json.RawMessage `json:"blocks"`
		ResponseType string          `json:"response_type"`
	}
	if json.Unmarshal(payload, &msg) != nil {
		return
	}
	var blocks json.RawMessage
	if len(msg.Blocks) > 0 && string(msg.Blocks) != "null" {
		var ae *apiError
		if blocks, ae = normalizeBlocks(msg.Blocks, 50, "message"); ae != nil {
			return
		}
	}
	if msg.Text == "" && len(blocks) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Message{Channel: channelID, Text: msg.Text, Blocks: blocks}
	if msg.ResponseType != "in_channel" {
		m.Ephemeral, m.To = true, userID
	}
	s.postLocked(m)
	s.notifyLocked()
}

// interactionLocked returns the fields every interactive payload of type
// typ carries for user u; callers add the rest.
func (s *Server) interactionLocked(typ string, u *User) map[string]any {
	return map[string]any{
		"type":                  typ,
		"team":                  map[string]any{"id": s.TeamID, "domain": s.TeamDomain},
		"user":                  map[string]any{"id": u.ID, "username": u.Name, "name": u.Name, "team_id": s.userTeam(u)},
		"api_app_id":            s.AppID,
		"token":                 verificationToken,
		"enterprise":            nil,
		"is_enterprise_install": false,
	}
}

// openViewLocked returns userID and their open modal viewID.
func (s *Server) openViewLocked(userID, viewID string) (*User, *View, error) {
	u, err := s.userRefLocked(userID)
	if err != nil {
		return nil, nil, err
	}
	v, ok := s.views[viewID]
	if !ok || v.User != userID || v.Closed {
		return nil, nil, fmt.Errorf("slacktest: no open view %q for %s", viewID, userID)
	}
	return u, v, nil
}

// ClickButton sends a block_actions envelope as userID clicking the element
// with actionID in the message's current blocks (a channel message, thread
// reply, DM or an ephemeral message shown to userID).
func (s *Server) ClickButton(userID string, msg MessageRef, actionID string) (Ack, error) {
	s.mu.Lock()
	raw, err := s.blockActionLocked(userID, msg, actionID)
	s.mu.Unlock()
	if err != nil {
		return Ack{}, err
	}
	return s.deliver("interactive", raw, 0)
}

// ClickButtonInDM clicks actionID in the latest message of the bot's IM with
// userID that has such an element.
func (s *Server) ClickButtonInDM(userID, actionID string) (Ack, error) {
	s.mu.Lock()
	im, ok := s.ims[userID]
	s.mu.Unlock()
	if !ok {
		return Ack{}, fmt.Errorf("slacktest: no DM with %q yet", userID)
	}
	return s.ClickButtonInChannel(userID, im, actionID)
}

// ClickButtonInChannel clicks actionID in the latest message of channelID
// (thread replies included) that has such an element.
func (s *Server) ClickButtonInChannel(userID, channelID, actionID string) (Ack, error) {
	ref, ok := s.FindButton(channelID, actionID)
	if !ok {
		return Ack{}, fmt.Errorf("slacktest: no message in %s has an element with action_id %q", channelID, actionID)
	}
	return s.ClickButton(userID, ref, actionID)
}

// FindButton returns the latest message in channelID whose blocks hold an
// element with actionID.
func (s *Server) FindButton(channelID, actionID string) (MessageRef, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.messages) - 1; i >= 0; i-- {
		m := s.messages[i]
		if m.Channel != channelID || m.Deleted {
			continue
		}
		if _, ok := findElement(m.Blocks, actionID); ok {
			return m.Ref(), true
		}
	}
	return MessageRef{}, false
}

func (s *Server) blockActionLocked(userID string, ref MessageRef, actionID string) (json.RawMessage, error) {
	u, err := s.userRefLocked(userID)
	if err != nil {
		return nil, err
	}
	m, ok := s.byTS[ref]
	if !ok || m.Deleted {
		return nil, fmt.Errorf("slacktest: no message %s/%s", ref.Channel, ref.TS)
	}
	if m.Ephemeral && m.To != userID {
		return nil, fmt.Errorf("slacktest: ephemeral message %s/%s is shown to %s, not %s", ref.Channel, ref.TS, m.To, userID)
	}
	b, ok := findElement(m.Blocks, actionID)
	if !ok {
		return nil, fmt.Errorf("slacktest: message %s/%s has no element with action_id %q", ref.Channel, ref.TS, actionID)
	}
	ch := s.channels[m.Channel]
	actionTS := s.nextTSLocked()
	action := map[string]any{}
	for k, v := range b.element {
		if k != "confirm" && k != "url" && k != "accessibility_label" {
			action[k] = v
		}
	}
	action["block_id"] = b.blockID
	action["action_ts"] = actionTS
	container := map[string]any{"type": "message", "message_ts": m.TS, "channel_id": m.Channel, "is_ephemeral": m.Ephemeral}
	if m.ThreadTS != "" {
		container["thread_ts"] = m.ThreadTS
	}
	payload := s.interactionLocked("block_actions", u)
	payload["container"] = container
	payload["trigger_id"] = s.issueTriggerLocked(u.ID, "")
	payload["channel"] = map[string]any{"id": ch.ID, "name": s.channelName(ch)}
	payload["state"] = map[string]any{"values": map[string]any{}}
	payload["response_url"] = s.issueResponseURLLocked(u.ID, m.Channel, m.TS)
	payload["actions"] = []any{action}
	if !m.Ephemeral {
		payload["message"] = s.messageJSON(m, false)
	}
	return json.Marshal(payload)
}

// ViewValue is what a person entered in one input element of a modal.
// Type may be left empty: SubmitView takes it from the view's element.
type ViewValue struct {
	Type                 string   // "plain_text_input", "static_select", "users_select", "datepicker", ...
	Value                string   // text inputs (plain_text_input, number_input, email_text_input, url_text_input)
	SelectedOption       string   // static_select, radio_buttons, external_select: the option's value
	SelectedOptions      []string // multi_static_select, checkboxes: option values
	SelectedUser         string   // users_select
	SelectedUsers        []string // multi_users_select
	SelectedConversation string   // conversations_select
	SelectedChannel      string   // channels_select
	SelectedDate         string   // datepicker, "2026-01-02"
	SelectedTime         string   // timepicker, "13:37"
}

// Text is a ViewValue for a text input.
func Text(v string) ViewValue { return ViewValue{Value: v} }

// Option is a ViewValue for a single select or radio buttons.
func Option(value string) ViewValue { return ViewValue{SelectedOption: value} }

// SubmitView sends a view_submission envelope for userID's open modal
// viewID with values[block_id][action_id]. Input elements not in values
// are submitted with their initial value, as Slack does. The ack payload
// (e.g. {"response_action":"errors","errors":{...}}) is in Ack.Payload and
// applied to the modal: "errors" keeps it open, "update" replaces it,
// "push" stacks a new one, "clear" or an empty ack closes it.
func (s *Server) SubmitView(userID, viewID string, values map[string]map[string]ViewValue) (Ack, error) {
	s.mu.Lock()
	u, v, err := s.openViewLocked(userID, viewID)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	payload := s.interactionLocked("view_submission", u)
	payload["trigger_id"] = s.issueTriggerLocked(u.ID, v.ID)
	payload["view"] = s.viewJSON(v, viewState(v.Blocks, values))
	payload["response_urls"] = []any{}
	raw, err := json.Marshal(payload)
	s.mu.Unlock()
	if err != nil {
		return Ack{}, fmt.Errorf("marshal view submission: %w", err)
	}
	ack, err := s.deliver("interactive", raw, 0)
	if err != nil {
		return ack, err
	}
	s.applyViewResponse(v.ID, ack.Payload)
	return ack, nil
}

func (s *Server) applyViewResponse(viewID string, payload json.RawMessage) {
	var resp struct {
		ResponseAction string            `json:"response_action"`
		View           json.RawMessage   `json:"view"`
		Errors         map[string]string `json:"errors"`
	}
	if len(payload) > 0 {
		_ = json.Unmarshal(payload, &resp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notifyLocked()
	v := s.views[viewID]
	v.Errors = resp.Errors
	switch resp.ResponseAction {
	case "errors":
	case "update":
		if vr, blocks, ae := parseView(resp.View); ae == nil {
			v.apply(vr, blocks)
			v.Updates++
		} else {
			v.Errors = map[string]string{"": "invalid update view: " + ae.code}
		}
	case "push":
		if vr, blocks, ae := parseView(resp.View); ae == nil {
			nv := s.newViewLocked(v.User, vr, blocks)
			nv.RootViewID, nv.PreviousViewID = v.RootViewID, v.ID
		}
	case "clear":
		for _, o := range s.viewSeq {
			if o.User == v.User {
				o.Closed = true
			}
		}
	default:
		v.Closed = true
	}
}

// viewState builds state.values for a submission: every input element of
// the view, with the given value or its initial value.
func viewState(blocks json.RawMessage, values map[string]map[string]ViewValue) map[string]any {
	state := map[string]any{}
	var bs []map[string]any
	_ = json.Unmarshal(blocks, &bs)
	elements := map[string]map[string]map[string]any{} // block -> action -> element
	for _, b := range bs {
		if b["type"] != "input" {
			continue
		}
		blockID, _ := b["block_id"].(string)
		el, _ := b["element"].(map[string]any)
		actionID, _ := el["action_id"].(string)
		if elements[blockID] == nil {
			elements[blockID] = map[string]map[string]any{}
		}
		elements[blockID][actionID] = el
		st := map[string]any{}
		if vv, ok := values[blockID][actionID]; ok {
			st[actionID] = valueJSON(vv, el)
		} else {
			st[actionID] = initialJSON(el)
		}
		state[blockID] = st
	}
	// Values for blocks the view does not have are passed through as given.
	for blockID, acts := range values {
		for actionID, vv := range acts {
			if _, ok := elements[blockID][actionID]; ok {
				continue
			}
			st, _ := state[blockID].(map[string]any)
			if st == nil {
				st = map[string]any{}
				state[blockID] = st
			}
			st[actionID] = valueJSON(vv, nil)
		}
	}
	return state
}

func optionJSON(value string, el map[string]any) map[string]any {
	text := value
	opts, _ := el["options"].([]any)
	groups, _ := el["option_groups"].([]any)
	for _, g := range groups {
		gm, _ := g.(map[string]any)
		more, _ := gm["options"].([]any)
		opts = append(opts, more...)
	}
	for _, o := range opts {
		om, _ := o.(map[string]any)
		if om["value"] == value {
			if t, ok := om["text"].(map[string]any); ok {
				text, _ = t["text"].(string)
			}
		}
	}
	return map[string]any{"text": map[string]any{"type": "plain_text", "text": text, "emoji": true}, "value": value}
}

func valueJSON(v ViewValue, el map[string]any) map[string]any {
	typ := v.Type
	if typ == "" && el != nil {
		typ, _ = el["type"].(string)
	}
	if typ == "" {
		typ = "plain_text_input"
	}
	out := map[string]any{"type": typ}
	switch typ {
	case "static_select", "radio_buttons", "external_select":
		if v.SelectedOption == "" {
			out["selected_option"] = nil
		} else {
			out["selected_option"] = optionJSON(v.SelectedOption, el)
		}
	case "multi_static_select", "checkboxes", "multi_external_select":
		opts := []any{}
		for _, o := range v.SelectedOptions {
			opts = append(opts, optionJSON(o, el))
		}
		out["selected_options"] = opts
	case "users_select":
		out["selected_user"] = nullable(v.SelectedUser)
	case "multi_users_select":
		out["selected_users"] = append([]string{}, v.SelectedUsers...)
	case "conversations_select":
		out["selected_conversation"] = nullable(v.SelectedConversation)
	case "channels_select":
		out["selected_channel"] = nullable(v.SelectedChannel)
	case "datepicker":
		out["selected_date"] = nullable(v.SelectedDate)
	case "timepicker":
		out["selected_time"] = nullable(v.SelectedTime)
	default:
		out["value"] = nullable(v.Value)
	}
	return out
}

func initialJSON(el map[string]any) map[string]any {
	v := ViewValue{}
	v.Value, _ = el["initial_value"].(string)
	if o, ok := el["initial_option"].(map[string]any); ok {
		v.SelectedOption, _ = o["value"].(string)
	}
	if os, ok := el["initial_options"].([]any); ok {
		for _, o := range os {
			om, _ := o.(map[string]any)
			if val, ok := om["value"].(string); ok {
				v.SelectedOptions = append(v.SelectedOptions, val)
			}
		}
	}
	v.SelectedUser, _ = el["initial_user"].(string)
	v.SelectedConversation, _ = el["initial_conversation"].(string)
	v.SelectedChannel, _ = el["initial_channel"].(string)
	v.SelectedDate, _ = el["initial_date"].(string)
	v.SelectedTime, _ = el["initial_time"].(string)
	return valueJSON(v, el)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// handleResponseURL serves the response_url of slash commands and block actions.
func (s *Server) handleResponseURL(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/response/")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	call := Call{Method: "response_url", JSON: body, At: time.Now()}
	var msg struct {
		Text            string          `json:"text"`
		Blocks          json.RawMessage `json:"blocks"`
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
		ThreadTS        string          `json:"thread_ts"`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notifyLocked()
	fail := func(status int, code string) {
		call.Error = code
		s.calls = append(s.calls, call)
		http.Error(w, code, status)
	}
	t, ok := s.responseURLs[id]
	switch {
	case !ok:
		fail(http.StatusNotFound, "no_such_response_url")
		return
	case t.uses >= 5 || time.Since(t.issued) > 30*time.Minute:
		fail(http.StatusNotFound, "used_url")
		return
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		fail(http.StatusBadRequest, "invalid_payload")
		return
	}
	var blocks json.RawMessage
	if len(msg.Blocks) > 0 && string(msg.Blocks) != "null" {
		var ae *apiError
		if blocks, ae = normalizeBlocks(msg.Blocks, 50, "message"); ae != nil {
			fail(http.StatusBadRequest, ae.code)
			return
		}
	}
	t.uses++
	orig := s.byTS[MessageRef{t.channel, t.msgTS}]
	switch {
	case msg.DeleteOriginal && orig != nil:
		orig.Deleted = true
	case msg.ReplaceOriginal && orig != nil:
		orig.Text = msg.Text
		orig.Blocks = blocks
		orig.Updates++
	case msg.ResponseType == "in_channel":
		s.postLocked(&Message{Channel: t.channel, ThreadTS: msg.ThreadTS, Text: msg.Text, Blocks: blocks})
	case msg.Text == "" && len(blocks) == 0:
		fail(http.StatusBadRequest, "no_text")
		return
	default:
		s.postLocked(&Message{Channel: t.channel, Text: msg.Text, Blocks: blocks, Ephemeral: true, To: t.user})
	}
	s.calls = append(s.calls, call)
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// ClickViewButton sends a block_actions envelope for an interactive element
// with actionID inside userID's open modal viewID (a button, or a select
// with dispatch_action). values, if given, fill the view's state and, for
// the clicked element, the action's selection. The trigger_id it carries
// works for views.push.
func (s *Server) ClickViewButton(userID, viewID, actionID string, values map[string]map[string]ViewValue) (Ack, error) {
	s.mu.Lock()
	u, v, err := s.openViewLocked(userID, viewID)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	b, ok := findElement(v.Blocks, actionID)
	if !ok {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slacktest: view %s has no element with action_id %q", viewID, actionID)
	}
	action := map[string]any{}
	for k, val := range b.element {
		if k != "confirm" && k != "url" && k != "accessibility_label" && k != "options" && k != "option_groups" && !strings.HasPrefix(k, "initial_") {
			action[k] = val
		}
	}
	if vv, ok := values[b.blockID][actionID]; ok {
		for k, val := range valueJSON(vv, b.element) {
			action[k] = val
		}
	}
	action["block_id"] = b.blockID
	action["action_ts"] = s.nextTSLocked()
	payload := s.interactionLocked("block_actions", u)
	payload["container"] = map[string]any{"type": "view", "view_id": v.ID}
	payload["trigger_id"] = s.issueTriggerLocked(u.ID, v.ID)
	payload["view"] = s.viewJSON(v, viewState(v.Blocks, values))
	payload["actions"] = []any{action}
	raw, err := json.Marshal(payload)
	s.mu.Unlock()
	if err != nil {
		return Ack{}, fmt.Errorf("marshal block actions: %w", err)
	}
	return s.deliver("interactive", raw, 0)
}

// CloseView closes userID's modal viewID as the person pressing Cancel.
// If the app set notify_on_close, a view_closed envelope is delivered and
// its ack returned; otherwise the zero Ack.
func (s *Server) CloseView(userID, viewID string) (Ack, error) {
	s.mu.Lock()
	u, v, err := s.openViewLocked(userID, viewID)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	v.Closed = true
	s.notifyLocked()
	if !v.NotifyOnClose {
		s.mu.Unlock()
		return Ack{}, nil
	}
	payload := s.interactionLocked("view_closed", u)
	payload["view"] = s.viewJSON(v, viewState(v.Blocks, nil))
	payload["is_cleared"] = false
	raw, err := json.Marshal(payload)
	s.mu.Unlock()
	if err != nil {
		return Ack{}, fmt.Errorf("marshal view closed: %w", err)
	}
	return s.deliver("interactive", raw, 0)
}
