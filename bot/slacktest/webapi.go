package slacktest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// apiError is a Slack error answer: {"ok":false,"error":code,...extra}.
type apiError struct {
	code  string
	extra map[string]any
}

func slackErr(code string) *apiError { return &apiError{code: code} }

func slackErrMsgs(code string, msgs ...string) *apiError {
	errs := make([]any, len(msgs))
	for i, m := range msgs {
		errs[i] = m
	}
	return &apiError{code: code, extra: map[string]any{
		"errors":            errs,
		"response_metadata": map[string]any{"messages": msgs},
	}}
}

// apiRequest is one decoded Web API request.
type apiRequest struct {
	form url.Values
	body map[string]json.RawMessage // JSON calls
}

// get returns a parameter from the form or, for JSON calls, a top-level string field.
func (r *apiRequest) get(key string) string {
	if v := r.form.Get(key); v != "" {
		return v
	}
	if raw, ok := r.body[key]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return string(raw)
	}
	return ""
}

func (r *apiRequest) has(key string) bool {
	if _, ok := r.form[key]; ok {
		return true
	}
	_, ok := r.body[key]
	return ok
}

type handlerFunc func(s *Server, r *apiRequest) (map[string]any, *apiError)

type method struct {
	token   string // "bot" or "app"
	scope   string // required bot scope, "" for none; see scopeByChannel
	handler handlerFunc
}

// scopeByChannel lists the methods whose scope depends on the
// conversation (channels:history for a public channel, groups:history for
// a private one, im:history for an IM): their handlers check it, and their
// scope is what a missing_scope fault names as needed.
var scopeByChannel = map[string]bool{"conversations.history": true, "conversations.replies": true}

var methods = map[string]method{
	"auth.test":                   {"bot", "", (*Server).apiAuthTest},
	"apps.connections.open":       {"app", "", (*Server).apiConnectionsOpen},
	"chat.postMessage":            {"bot", "chat:write", (*Server).apiPostMessage},
	"chat.update":                 {"bot", "chat:write", (*Server).apiUpdate},
	"chat.postEphemeral":          {"bot", "chat:write", (*Server).apiPostEphemeral},
	"chat.delete":                 {"bot", "chat:write", (*Server).apiDelete},
	"chat.scheduleMessage":        {"bot", "chat:write", (*Server).apiScheduleMessage},
	"chat.deleteScheduledMessage": {"bot", "chat:write", (*Server).apiDeleteScheduledMessage},
	"chat.scheduledMessages.list": {"bot", "", (*Server).apiScheduledMessagesList},
	"chat.getPermalink":           {"bot", "", (*Server).apiPermalink},
	"conversations.open":          {"bot", "im:write", (*Server).apiConversationsOpen},
	"conversations.info":          {"bot", "channels:read", (*Server).apiConversationsInfo},
	"conversations.members":       {"bot", "channels:read", (*Server).apiConversationsMembers},
	"conversations.history":       {"bot", historyScopes, (*Server).apiConversationsHistory},
	"conversations.replies":       {"bot", historyScopes, (*Server).apiConversationsReplies},
	"users.info":                  {"bot", "users:read", (*Server).apiUsersInfo},
	"users.lookupByEmail":         {"bot", "users:read.email", (*Server).apiLookupByEmail},
	"views.open":                  {"bot", "", (*Server).apiViewsOpen},
	"views.update":                {"bot", "", (*Server).apiViewsUpdate},
	"views.push":                  {"bot", "", (*Server).apiViewsPush},
}

func (s *Server) handleAPI(w http.ResponseWriter, hr *http.Request) {
	name := strings.TrimPrefix(hr.URL.Path, "/api/")
	req, token, err := decodeAPIRequest(hr)
	call := Call{Method: name, Params: req.form, At: time.Now()}
	if req.body != nil {
		raw, _ := json.Marshal(req.body)
		call.JSON = raw
	}
	if err != nil {
		s.finish(call, w, nil, slackErr("invalid_form_data"))
		return
	}

	s.mu.Lock()
	var delay time.Duration
	for _, key := range []string{name, "*"} {
		if q := s.delays[key]; len(q) > 0 {
			delay, s.delays[key] = q[0], q[1:]
			break
		}
	}
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-hr.Context().Done():
			t.Stop()
			call.Error = "client_gone"
			s.mu.Lock()
			s.calls = append(s.calls, call)
			s.notifyLocked()
			s.mu.Unlock()
			return
		case <-s.closed:
			t.Stop()
			return
		}
	}
	s.mu.Lock()
	if f, ok := s.takeFaultLocked(name); ok {
		if f.rateLimit {
			call.Error = "ratelimited"
			s.calls = append(s.calls, call)
			s.notifyLocked()
			s.mu.Unlock()
			secs := int(math.Ceil(f.retryAfter.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"})
			return
		}
		ae := slackErr(f.slackError)
		if f.slackError == "missing_scope" {
			ae = s.missingScopeLocked(methods[name].scope)
		}
		s.mu.Unlock()
		s.finish(call, w, nil, ae)
		return
	}
	m, known := methods[name]
	var (
		resp map[string]any
		ae   *apiError
	)
	switch {
	case !known:
		ae = slackErr("unknown_method")
	case token == "":
		ae = slackErr("not_authed")
	case s.revoked[token]:
		ae = slackErr("token_revoked")
	case token != s.BotToken && token != s.AppToken:
		ae = slackErr("invalid_auth")
	case (m.token == "bot") != (token == s.BotToken):
		ae = slackErr("not_allowed_token_type")
	case m.scope != "" && !scopeByChannel[name] && !s.scopes[m.scope]:
		ae = s.missingScopeLocked(m.scope)
	default:
		resp, ae = m.handler(s, req)
	}
	// Recorded in the same critical section as the call's effect: whoever
	// sees the message or view a call made also sees the call.
	s.finishLocked(call, w, resp, ae)
}

// finish records the call and writes the answer.
func (s *Server) finish(call Call, w http.ResponseWriter, resp map[string]any, ae *apiError) {
	s.mu.Lock()
	s.finishLocked(call, w, resp, ae)
}

// finishLocked records the call, releases s.mu (held by the caller) and
// writes the answer.
func (s *Server) finishLocked(call Call, w http.ResponseWriter, resp map[string]any, ae *apiError) {
	body := map[string]any{"ok": true}
	if ae != nil {
		call.Error = ae.code
		body = map[string]any{"ok": false, "error": ae.code}
		for k, v := range ae.extra {
			body[k] = v
		}
	} else {
		for k, v := range resp {
			body[k] = v
		}
	}
	s.calls = append(s.calls, call)
	s.notifyLocked()
	logger := s.Logger
	s.mu.Unlock()
	if logger != nil {
		logger.Info("slacktest web api call", "method", call.Method, "channel", call.Params.Get("channel"), "error", call.Error)
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) missingScopeLocked(needed string) *apiError {
	if needed == "" {
		needed = "chat:write"
	}
	var provided []string
	for sc := range s.scopes {
		provided = append(provided, sc)
	}
	slices.Sort(provided)
	return &apiError{code: "missing_scope", extra: map[string]any{
		"needed": needed, "provided": strings.Join(provided, ","),
	}}
}

func decodeAPIRequest(hr *http.Request) (*apiRequest, string, error) {
	req := &apiRequest{form: url.Values{}}
	token := ""
	if auth := hr.Header.Get("Authorization"); strings.HasPrefix(auth, "Bearer ") {
		token = strings.TrimPrefix(auth, "Bearer ")
	}
	body, err := io.ReadAll(io.LimitReader(hr.Body, 8<<20))
	if err != nil {
		return req, token, fmt.Errorf("read body: %w", err)
	}
	req.form, _ = url.ParseQuery(hr.URL.RawQuery)
	ct, _, _ := mime.ParseMediaType(hr.Header.Get("Content-Type"))
	switch {
	case ct == "application/json":
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, &req.body); err != nil {
				return req, token, fmt.Errorf("decode json body: %w", err)
			}
		}
		if req.body == nil {
			req.body = map[string]json.RawMessage{}
		}
	case len(body) > 0:
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return req, token, fmt.Errorf("decode form body: %w", err)
		}
		for k, v := range vals {
			req.form[k] = append(req.form[k], v...)
		}
	}
	if t := req.form.Get("token"); t != "" {
		token = t
	}
	req.form.Del("token")
	return req, token, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ---- auth / connections -------------------------------------------------

func (s *Server) apiAuthTest(_ *apiRequest) (map[string]any, *apiError) {
	out := map[string]any{
		"url":                   "https://" + s.TeamDomain + ".slack.com/",
		"team":                  "Symbot Simulator",
		"user":                  "symbot",
		"team_id":               s.TeamID,
		"user_id":               s.botUser,
		"bot_id":                s.BotID,
		"is_enterprise_install": false,
	}
	if s.EnterpriseID != "" {
		out["enterprise_id"] = s.EnterpriseID
	}
	return out, nil
}

func (s *Server) apiConnectionsOpen(_ *apiRequest) (map[string]any, *apiError) {
	ticket := randHex(16)
	s.tickets[ticket] = time.Now()
	host := strings.TrimPrefix(s.base, "http://")
	return map[string]any{"url": "ws://" + host + "/link/?ticket=" + ticket + "&app_id=" + s.AppID}, nil
}

// ---- chat -----------------------------------------------------------------

// resolveChannelLocked finds the conversation a bot post goes to: a channel
// ID, a channel name ("#x" or "x"), an IM ID, or a user ID (the user's IM).
func (s *Server) resolveChannelLocked(ref string, allowUser bool) (*channelState, *apiError) {
	if ref == "" {
		return nil, slackErr("channel_not_found")
	}
	if allowUser && (strings.HasPrefix(ref, "U") || strings.HasPrefix(ref, "W")) {
		u, ok := s.users[ref]
		switch {
		case !ok:
			return nil, slackErr("channel_not_found")
		case u.IsBot:
			return nil, slackErr("cannot_dm_bot")
		case u.Deleted:
			return nil, slackErr("user_disabled")
		}
		return s.channels[s.imLocked(ref)], nil
	}
	ch, ok := s.channels[ref]
	if !ok {
		name := strings.TrimPrefix(ref, "#")
		for _, c := range s.channels {
			if !c.isIM && c.Name == name {
				ch, ok = c, true
				break
			}
		}
	}
	if !ok {
		return nil, slackErr("channel_not_found")
	}
	if !ch.isIM && !ch.BotIsMember {
		if ch.IsPrivate {
			return nil, slackErr("channel_not_found")
		}
		if !allowUser || !s.scopes["chat:write.public"] {
			return nil, slackErr("not_in_channel")
		}
	}
	return ch, nil
}

// messageContent validates text/blocks/attachments parameters.
func messageContent(r *apiRequest, require bool) (text string, blocks json.RawMessage, hasBlocks bool, ae *apiError) {
	text = r.get("text")
	if len(text) > 40000 {
		return "", nil, false, slackErr("msg_too_long")
	}
	if r.has("blocks") {
		hasBlocks = true
		raw := r.get("blocks")
		if r.body != nil {
			raw = string(r.body["blocks"])
		}
		var err *apiError
		blocks, err = normalizeBlocks([]byte(raw), 50, "message")
		if err != nil {
			return "", nil, false, err
		}
	}
	if require && text == "" && len(blocks) <= 2 && r.get("attachments") == "" {
		return "", nil, false, slackErr("no_text")
	}
	return text, blocks, hasBlocks, nil
}

// messageJSON is m as the Web API shows it; its metadata only with
// withMetadata (include_all_metadata, or the poster's own answer).
func (s *Server) messageJSON(m *Message, withMetadata bool) map[string]any {
	out := map[string]any{
		"type": "message", "text": m.Text, "user": m.User, "ts": m.TS, "team": s.TeamID,
	}
	if m.User == s.botUser {
		out["bot_id"] = s.BotID
		out["app_id"] = s.AppID
	} else if m.OtherApp != "" {
		out["bot_id"] = m.OtherApp
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	if len(m.Blocks) > 0 {
		out["blocks"] = m.Blocks
	}
	if withMetadata && m.Metadata != nil {
		out["metadata"] = map[string]any{"event_type": m.Metadata.EventType, "event_payload": m.Metadata.EventPayload}
	}
	return out
}

func (s *Server) apiPostMessage(r *apiRequest) (map[string]any, *apiError) {
	ch, ae := s.resolveChannelLocked(r.get("channel"), true)
	if ae != nil {
		return nil, ae
	}
	text, blocks, _, ae := messageContent(r, true)
	if ae != nil {
		return nil, ae
	}
	threadTS, ae := s.threadLocked(ch.ID, r.get("thread_ts"))
	if ae != nil {
		return nil, ae
	}
	md, warning, ae := messageMetadata(r)
	if ae != nil {
		return nil, ae
	}
	m := s.postLocked(&Message{Channel: ch.ID, ThreadTS: threadTS, Text: text, Blocks: blocks, Metadata: md})
	out := map[string]any{"channel": ch.ID, "ts": m.TS, "message": s.messageJSON(m, true)}
	if warning != "" {
		out["warning"] = warning
		out["response_metadata"] = map[string]any{"warnings": []string{warning}}
	}
	return out, nil
}

// eventTypeOK is Slack's rule for a metadata event_type: letters, digits,
// underscores and hyphens, no periods or other punctuation.
func eventTypeOK(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// messageMetadata reads chat.postMessage's metadata parameter (a JSON
// string in a form post, an object in a JSON body) as Slack does: no
// parameter is no metadata; text that is not a JSON object is the error
// invalid_metadata_format; an object without a valid event_type or with an
// event_payload that is not an object is accepted without its metadata,
// with the warning invalid_metadata_schema.
func messageMetadata(r *apiRequest) (*Metadata, string, *apiError) {
	if !r.has("metadata") {
		return nil, "", nil
	}
	raw := []byte(r.form.Get("metadata"))
	if r.body != nil {
		if b, ok := r.body["metadata"]; ok {
			raw = b
			var s string
			if json.Unmarshal(b, &s) == nil {
				raw = []byte(s) // a JSON call may send it encoded as a string too
			}
		}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, "", slackErr("invalid_metadata_format")
	}
	var eventType string
	payload := bytes.TrimSpace(obj["event_payload"])
	if json.Unmarshal(obj["event_type"], &eventType) != nil || !eventTypeOK(eventType) ||
		len(payload) == 0 || payload[0] != '{' {
		return nil, "invalid_metadata_schema", nil
	}
	var check map[string]any
	if json.Unmarshal(payload, &check) != nil {
		return nil, "invalid_metadata_schema", nil
	}
	return &Metadata{EventType: eventType, EventPayload: append(json.RawMessage(nil), payload...)}, "", nil
}

// threadLocked checks that threadTS ("" for none) names a message in
// channel chID that can take replies and returns the ts of its thread's
// top message (a reply's thread_ts names the top message, as in Slack).
func (s *Server) threadLocked(chID, threadTS string) (string, *apiError) {
	if threadTS == "" {
		return "", nil
	}
	parent, ok := s.byTS[MessageRef{chID, threadTS}]
	if !ok || parent.Ephemeral {
		return "", slackErr("thread_not_found")
	}
	if parent.ThreadTS != "" {
		return parent.ThreadTS, nil
	}
	return threadTS, nil
}

// postLocked records m as a new message from the bot (an ephemeral one when
// m.Ephemeral) with the next ts, and returns it.
func (s *Server) postLocked(m *Message) *Message {
	m.TS, m.User = s.nextTSLocked(), s.botUser
	if m.Ephemeral {
		s.ephem = append(s.ephem, m)
	} else {
		s.messages = append(s.messages, m)
	}
	s.byTS[m.Ref()] = m
	return m
}

// PostAsOtherApp posts a top-level message in channelID as another app
// installed in the workspace would (bot id botID, its own bot user), with
// metadata md (nil: none), and returns its reference. History reads show
// it with that bot_id. It is for tests of code that must tell its own
// messages from other apps'.
func (s *Server) PostAsOtherApp(channelID, botID, text string, md *Metadata) MessageRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.postLocked(&Message{Channel: channelID, Text: text, Metadata: md})
	m.User, m.OtherApp = "U"+botID, botID
	s.notifyLocked()
	return m.Ref()
}

func (s *Server) apiUpdate(r *apiRequest) (map[string]any, *apiError) {
	chID := r.get("channel")
	if _, ok := s.channels[chID]; !ok {
		return nil, slackErr("channel_not_found")
	}
	ts := r.get("ts")
	m, ok := s.byTS[MessageRef{chID, ts}]
	if !ok || m.Deleted || m.Ephemeral {
		return nil, slackErr("message_not_found")
	}
	if m.User != s.botUser {
		return nil, slackErr("cant_update_message")
	}
	text, blocks, hasBlocks, ae := messageContent(r, false)
	if ae != nil {
		return nil, ae
	}
	if r.has("text") {
		m.Text = text
	}
	if hasBlocks {
		m.Blocks = blocks
		if string(blocks) == "[]" {
			m.Blocks = nil
		}
	}
	if m.Text == "" && len(m.Blocks) == 0 {
		return nil, slackErr("no_text")
	}
	m.Updates++
	return map[string]any{"channel": chID, "ts": ts, "text": m.Text, "message": s.messageJSON(m, true)}, nil
}

func (s *Server) apiPostEphemeral(r *apiRequest) (map[string]any, *apiError) {
	userID := r.get("user")
	u, ok := s.users[userID]
	if !ok || u.Deleted {
		return nil, slackErr("user_not_found")
	}
	ch, ae := s.resolveChannelLocked(r.get("channel"), false)
	if ae != nil {
		return nil, ae
	}
	if ch.isIM && ch.user != userID || !ch.isIM && len(ch.Members) > 0 && !slices.Contains(ch.Members, userID) {
		return nil, slackErr("user_not_in_channel")
	}
	text, blocks, _, ae := messageContent(r, true)
	if ae != nil {
		return nil, ae
	}
	m := s.postLocked(&Message{Channel: ch.ID, ThreadTS: r.get("thread_ts"), Text: text, Blocks: blocks, Ephemeral: true, To: userID})
	return map[string]any{"message_ts": m.TS}, nil
}

func (s *Server) apiDelete(r *apiRequest) (map[string]any, *apiError) {
	chID, ts := r.get("channel"), r.get("ts")
	if _, ok := s.channels[chID]; !ok {
		return nil, slackErr("channel_not_found")
	}
	m, ok := s.byTS[MessageRef{chID, ts}]
	if !ok || m.Deleted || m.Ephemeral {
		return nil, slackErr("message_not_found")
	}
	if m.User != s.botUser {
		return nil, slackErr("cant_delete_message")
	}
	m.Deleted = true
	return map[string]any{"channel": chID, "ts": ts}, nil
}

func (s *Server) apiPermalink(r *apiRequest) (map[string]any, *apiError) {
	chID, ts := r.get("channel"), r.get("message_ts")
	if _, ok := s.channels[chID]; !ok {
		return nil, slackErr("channel_not_found")
	}
	if m, ok := s.byTS[MessageRef{chID, ts}]; !ok || m.Deleted || m.Ephemeral {
		return nil, slackErr("message_not_found")
	}
	return map[string]any{
		"channel":   chID,
		"permalink": "https://" + s.TeamDomain + ".slack.com/archives/" + chID + "/p" + strings.ReplaceAll(ts, ".", ""),
	}, nil
}

// ---- conversations --------------------------------------------------------

func (s *Server) channelJSON(ch *channelState) map[string]any {
	out := map[string]any{
		"id": ch.ID, "created": 1700000000, "is_open": true,
		"is_im": ch.isIM, "is_channel": !ch.isIM && !ch.IsPrivate, "is_group": !ch.isIM && ch.IsPrivate,
		"is_private": ch.IsPrivate, "is_member": ch.BotIsMember, "is_archived": false,
	}
	if ch.isIM {
		out["user"] = ch.user
	} else {
		out["name"] = ch.Name
		out["name_normalized"] = ch.Name
		out["num_members"] = len(s.membersLocked(ch))
	}
	return out
}

func (s *Server) membersLocked(ch *channelState) []string {
	members := append([]string(nil), ch.Members...)
	if ch.BotIsMember && !slices.Contains(members, s.botUser) {
		members = append(members, s.botUser)
	}
	return members
}

func (s *Server) apiConversationsOpen(r *apiRequest) (map[string]any, *apiError) {
	if id := r.get("channel"); id != "" {
		ch, ok := s.channels[id]
		if !ok || !ch.isIM {
			return nil, slackErr("channel_not_found")
		}
		return map[string]any{"channel": s.channelJSON(ch), "already_open": true, "no_op": true}, nil
	}
	users := strings.Split(r.get("users"), ",")
	if len(users) != 1 || users[0] == "" {
		return nil, slackErrMsgs("invalid_arguments", "slacktest supports conversations.open with exactly one user")
	}
	u, ok := s.users[users[0]]
	switch {
	case !ok:
		return nil, slackErr("user_not_found")
	case u.IsBot:
		return nil, slackErr("cannot_dm_bot")
	case u.Deleted:
		return nil, slackErr("user_disabled")
	}
	_, existed := s.ims[u.ID]
	ch := s.channels[s.imLocked(u.ID)]
	return map[string]any{"channel": s.channelJSON(ch), "already_open": existed, "no_op": existed}, nil
}

func (s *Server) visibleChannelLocked(id string) (*channelState, *apiError) {
	ch, ok := s.channels[id]
	if !ok || ch.IsPrivate && !ch.BotIsMember {
		return nil, slackErr("channel_not_found")
	}
	return ch, nil
}

func (s *Server) apiConversationsInfo(r *apiRequest) (map[string]any, *apiError) {
	ch, ae := s.visibleChannelLocked(r.get("channel"))
	if ae != nil {
		return nil, ae
	}
	return map[string]any{"channel": s.channelJSON(ch)}, nil
}

func (s *Server) apiConversationsMembers(r *apiRequest) (map[string]any, *apiError) {
	ch, ae := s.visibleChannelLocked(r.get("channel"))
	if ae != nil {
		return nil, ae
	}
	return map[string]any{"members": s.membersLocked(ch), "response_metadata": map[string]any{"next_cursor": ""}}, nil
}

// historyScopes is what a missing_scope fault of conversations.history
// names as needed: the history scope of each kind of conversation.
const historyScopes = "channels:history,groups:history,mpim:history,im:history"

// historyScope is the bot scope conversations.history needs to read ch.
func historyScope(ch *channelState) string {
	switch {
	case ch.isIM:
		return "im:history"
	case ch.IsPrivate:
		return "groups:history"
	}
	return "channels:history"
}

// parseTS reads a Slack timestamp ("1700000000.123456", or whole seconds
// "1700000000", or fewer fraction digits) as microseconds.
func parseTS(s string) (int64, bool) {
	sec, frac, _ := strings.Cut(s, ".")
	if sec == "" || len(frac) > 6 {
		return 0, false
	}
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	us := int64(0)
	if frac != "" {
		f, err := strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
		if err != nil || f < 0 {
			return 0, false
		}
		us = f
	}
	return n*1e6 + us, true
}

// historyCursor is the next_cursor of a conversations.history page that
// ends before the message with ts: like Slack's, base64 of "next_ts:" and
// the ts in microseconds.
func historyCursor(ts int64) string {
	return base64.StdEncoding.EncodeToString([]byte("next_ts:" + strconv.FormatInt(ts, 10)))
}

func parseHistoryCursor(c string) (int64, bool) {
	raw, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	v, ok := strings.CutPrefix(string(raw), "next_ts:")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// readQuery is the window and page of a conversations.history or
// conversations.replies call.
type readQuery struct {
	oldest, latest int64 // microseconds; latest MaxInt64 for now
	inclusive      bool
	withMeta       bool
	limit          int
	cursor         int64 // ts (microseconds) of the page's first message, 0 for the first page
}

// before reports whether ts is older than the window; after, newer.
func (q readQuery) before(ts int64) bool {
	return ts < q.oldest || ts == q.oldest && !q.inclusive
}

func (q readQuery) after(ts int64) bool {
	return ts > q.latest || ts == q.latest && !q.inclusive
}

// readRequestLocked checks a history read of r's channel as Slack does (the
// conversation exists and the bot may see it, holds the history scope of
// its kind, and is in it) and decodes the window and page parameters.
func (s *Server) readRequestLocked(r *apiRequest, defLimit, maxLimit int) (*channelState, readQuery, *apiError) {
	q := readQuery{latest: math.MaxInt64, limit: defLimit}
	ch, ok := s.channels[r.get("channel")]
	if !ok || ch.IsPrivate && !ch.BotIsMember {
		return nil, q, slackErr("channel_not_found")
	}
	if sc := historyScope(ch); !s.scopes[sc] {
		return nil, q, s.missingScopeLocked(sc)
	}
	if !ch.BotIsMember {
		return nil, q, slackErr("not_in_channel")
	}
	truthy := func(k string) bool { v := r.get(k); return v == "1" || v == "true" }
	q.inclusive, q.withMeta = truthy("inclusive"), truthy("include_all_metadata")
	if v := r.get("oldest"); v != "" {
		if q.oldest, ok = parseTS(v); !ok {
			return nil, q, slackErr("invalid_ts_oldest")
		}
	}
	if v := r.get("latest"); v != "" {
		if q.latest, ok = parseTS(v); !ok {
			return nil, q, slackErr("invalid_ts_latest")
		}
	}
	if v := r.get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, q, slackErr("invalid_limit")
		}
		if n > 0 {
			q.limit = min(n, maxLimit)
		}
	}
	if c := r.get("cursor"); c != "" {
		if q.cursor, ok = parseHistoryCursor(c); !ok || q.cursor == 0 {
			return nil, q, slackErr("invalid_cursor")
		}
	}
	return ch, q, nil
}

// apiConversationsReplies answers conversations.replies: the message ts
// and its thread's replies, oldest first, in the window between oldest
// and latest, limit to a page (default and most 1000) with has_more and
// a next_cursor; metadata only with include_all_metadata. It needs what
// conversations.history needs.
func (s *Server) apiConversationsReplies(r *apiRequest) (map[string]any, *apiError) {
	ch, q, ae := s.readRequestLocked(r, 1000, 1000)
	if ae != nil {
		return nil, ae
	}
	parent, ok := s.byTS[MessageRef{ch.ID, r.get("ts")}]
	if !ok || parent.Deleted || parent.Ephemeral {
		return nil, slackErr("thread_not_found")
	}
	top := parent.TS
	if parent.ThreadTS != "" {
		top = parent.ThreadTS // a reply's ts reads its whole thread, as in Slack
	}
	msgs := []map[string]any{}
	hasMore, next := false, ""
	for _, m := range s.messages {
		if m.Channel != ch.ID || m.Deleted || m.TS != top && m.ThreadTS != top {
			continue
		}
		ts, _ := parseTS(m.TS)
		if ts < q.cursor || q.before(ts) {
			continue
		}
		if q.after(ts) {
			break
		}
		if len(msgs) == q.limit {
			hasMore, next = true, historyCursor(ts)
			break
		}
		msgs = append(msgs, s.messageJSON(m, q.withMeta))
	}
	out := map[string]any{"messages": msgs, "has_more": hasMore}
	if hasMore {
		out["response_metadata"] = map[string]any{"next_cursor": next}
	}
	return out, nil
}

// apiConversationsHistory answers conversations.history as Slack does for
// a bot token: the conversation's top-level messages (thread replies are
// read with conversations.replies), newest first, between oldest and
// latest (exclusive unless inclusive), limit to a page (default 100, at
// most 999), with has_more and a next_cursor; metadata only with
// include_all_metadata. The bot must be in the conversation and hold the
// history scope of its kind.
func (s *Server) apiConversationsHistory(r *apiRequest) (map[string]any, *apiError) {
	ch, q, ae := s.readRequestLocked(r, 100, 999)
	if ae != nil {
		return nil, ae
	}
	msgs := []map[string]any{}
	hasMore, next := false, ""
	for i := len(s.messages) - 1; i >= 0; i-- {
		m := s.messages[i]
		if m.Channel != ch.ID || m.Deleted || m.ThreadTS != "" {
			continue
		}
		ts, _ := parseTS(m.TS)
		if q.cursor != 0 && ts > q.cursor || q.after(ts) {
			continue
		}
		if q.before(ts) {
			break // posting order is ts order
		}
		if len(msgs) == q.limit {
			hasMore, next = true, historyCursor(ts)
			break
		}
		msgs = append(msgs, s.messageJSON(m, q.withMeta))
	}
	out := map[string]any{"messages": msgs, "has_more": hasMore, "pin_count": 0}
	if hasMore {
		out["response_metadata"] = map[string]any{"next_cursor": next}
	}
	return out, nil
}

// ---- users ------------------------------------------------------------------

func (s *Server) userJSON(u *User) map[string]any {
	tz := u.TZ
	if tz == "" {
		tz = "America/Los_Angeles"
	}
	offset := 0
	if loc, err := time.LoadLocation(tz); err == nil {
		_, offset = time.Now().In(loc).Zone()
	}
	team := s.userTeam(u)
	profile := map[string]any{
		"real_name": u.RealName, "real_name_normalized": u.RealName,
		"display_name": u.Name, "display_name_normalized": u.Name, "team": team,
	}
	if u.Email != "" && !u.IsBot {
		profile["email"] = u.Email
	}
	if u.IsBot {
		profile["bot_id"] = s.BotID
		profile["api_app_id"] = s.AppID
	}
	out := map[string]any{
		"id": u.ID, "team_id": team, "name": u.Name, "deleted": u.Deleted, "real_name": u.RealName,
		"tz": tz, "tz_label": tz, "tz_offset": offset, "is_bot": u.IsBot, "is_admin": false, "is_owner": false,
		"is_restricted": u.IsRestricted, "is_ultra_restricted": u.IsUltraRestricted, "is_app_user": u.IsAppUser,
		"is_email_confirmed": !u.EmailUnconfirmed && !u.IsBot,
		"profile":            profile,
	}
	if u.IsStranger {
		out["is_stranger"] = true
	}
	if ent := u.EnterpriseID; ent != "" || s.EnterpriseID != "" {
		if ent == "" {
			ent = s.EnterpriseID
		}
		teams := u.EnterpriseTeams
		if teams == nil {
			teams = []string{team}
		}
		out["enterprise_user"] = map[string]any{
			"id": u.ID, "enterprise_id": ent, "enterprise_name": ent + " org",
			"is_admin": false, "is_owner": false, "is_primary_owner": false, "teams": teams,
		}
	}
	return out
}

// userTeam is u's home workspace.
func (s *Server) userTeam(u *User) string {
	if u.TeamID != "" {
		return u.TeamID
	}
	return s.TeamID
}

func (s *Server) apiUsersInfo(r *apiRequest) (map[string]any, *apiError) {
	u, ok := s.users[r.get("user")]
	if !ok {
		return nil, slackErr("user_not_found")
	}
	return map[string]any{"user": s.userJSON(u)}, nil
}

func (s *Server) apiLookupByEmail(r *apiRequest) (map[string]any, *apiError) {
	email := r.get("email")
	for _, id := range s.userSeq {
		if u := s.users[id]; u.Email != "" && strings.EqualFold(u.Email, email) {
			return map[string]any{"user": s.userJSON(u)}, nil
		}
	}
	return nil, slackErr("users_not_found")
}
