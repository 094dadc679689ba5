package slacktest

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits of chat.scheduleMessage and chat.deleteScheduledMessage, as Slack
// documents them.
const (
	// MaxScheduleAhead is how far ahead a message may be scheduled
	// (time_too_far beyond it).
	MaxScheduleAhead = 120 * 24 * time.Hour
	// ScheduleDeleteCutoff is how close to its post_at a scheduled message
	// can no longer be deleted (invalid_scheduled_message_id).
	ScheduleDeleteCutoff = 60 * time.Second
	// MaxScheduledPerWindow scheduled messages may post to one channel
	// within ScheduleWindow (restricted_too_many beyond it).
	MaxScheduledPerWindow = 30
	// ScheduleWindow is the window of MaxScheduledPerWindow.
	ScheduleWindow = 5 * time.Minute
)

// ScheduledMessage is a message the app scheduled with chat.scheduleMessage
// that is still pending: neither posted nor deleted. It is not part of the
// channel's history (Messages) until its PostAt, when the simulator posts it
// as the bot, as Slack does.
type ScheduledMessage struct {
	ID       string // scheduled_message_id, "Q..."
	Channel  string // conversation ID (a user ID given by the app is resolved to the IM)
	PostAt   time.Time
	Created  time.Time
	ThreadTS string
	Text     string
	Blocks   json.RawMessage // nil when the message has no blocks
}

type scheduledState struct {
	ScheduledMessage
	timer *time.Timer
}

// ScheduledMessages returns the pending scheduled messages of a channel
// (every channel when channelID is ""), by post time then scheduling order.
func (s *Server) ScheduledMessages(channelID string) []ScheduledMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ScheduledMessage
	for _, sm := range s.scheduled {
		if channelID == "" || sm.Channel == channelID {
			cp := sm.ScheduledMessage
			cp.Blocks = append(json.RawMessage(nil), sm.Blocks...)
			if len(sm.Blocks) == 0 {
				cp.Blocks = nil
			}
			out = append(out, cp)
		}
	}
	slices.SortFunc(out, func(a, b ScheduledMessage) int {
		if c := a.PostAt.Compare(b.PostAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID) // IDs grow with scheduling order
	})
	return out
}

// apiScheduleMessage is chat.scheduleMessage: the same channel and content
// rules as chat.postMessage, plus post_at, a Unix time in the future and at
// most MaxScheduleAhead away.
func (s *Server) apiScheduleMessage(r *apiRequest) (map[string]any, *apiError) {
	ch, ae := s.resolveChannelLocked(r.get("channel"), true)
	if ae != nil {
		return nil, ae
	}
	raw := r.get("post_at")
	secs, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || secs <= 0 {
		return nil, slackErr("invalid_time")
	}
	now := time.Now()
	postAt := time.Unix(secs, 0)
	switch {
	case !postAt.After(now.Truncate(time.Second)):
		return nil, slackErr("time_in_past")
	case postAt.Sub(now) > MaxScheduleAhead:
		return nil, slackErr("time_too_far")
	}
	text, blocks, _, ae := messageContent(r, true)
	if ae != nil {
		return nil, ae
	}
	threadTS, ae := s.threadLocked(ch.ID, r.get("thread_ts"))
	if ae != nil {
		return nil, ae
	}
	near := 0
	for _, sm := range s.scheduled {
		if sm.Channel == ch.ID && sm.PostAt.Sub(postAt).Abs() < ScheduleWindow {
			near++
		}
	}
	if near >= MaxScheduledPerWindow {
		return nil, slackErr("restricted_too_many")
	}
	sm := &scheduledState{ScheduledMessage: ScheduledMessage{
		ID: s.newIDLocked("Q"), Channel: ch.ID, PostAt: postAt, Created: now,
		ThreadTS: threadTS, Text: text, Blocks: blocks,
	}}
	s.scheduled[sm.ID] = sm
	id := sm.ID
	sm.timer = time.AfterFunc(time.Until(postAt), func() { s.postScheduled(id) })
	msg := map[string]any{
		"type": "delayed_message", "subtype": "bot_message", "text": text,
		"bot_id": s.BotID, "app_id": s.AppID, "team": s.TeamID,
	}
	if len(blocks) > 0 {
		msg["blocks"] = blocks
	}
	return map[string]any{
		"channel":              ch.ID,
		"scheduled_message_id": sm.ID,
		"post_at":              strconv.FormatInt(secs, 10),
		"message":              msg,
	}, nil
}

// postScheduled posts a due scheduled message as the bot, unless it was
// deleted or the server closed. If the bot has meanwhile left the channel
// the message is dropped, as Slack drops it.
func (s *Server) postScheduled(id string) {
	select {
	case <-s.closed:
		return
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sm, ok := s.scheduled[id]
	if !ok {
		return
	}
	delete(s.scheduled, id)
	if ch, ok := s.channels[sm.Channel]; ok && (ch.isIM || ch.BotIsMember) {
		s.postLocked(&Message{Channel: sm.Channel, ThreadTS: sm.ThreadTS, Text: sm.Text, Blocks: sm.Blocks})
	}
	s.notifyLocked()
}

// apiDeleteScheduledMessage is chat.deleteScheduledMessage: the id must
// name a pending message of that channel that is not due within
// ScheduleDeleteCutoff.
func (s *Server) apiDeleteScheduledMessage(r *apiRequest) (map[string]any, *apiError) {
	chID := r.get("channel")
	if _, ok := s.channels[chID]; !ok {
		return nil, slackErr("channel_not_found")
	}
	sm, ok := s.scheduled[r.get("scheduled_message_id")]
	if !ok || sm.Channel != chID || time.Until(sm.PostAt) <= ScheduleDeleteCutoff {
		return nil, slackErr("invalid_scheduled_message_id")
	}
	sm.timer.Stop()
	delete(s.scheduled, sm.ID)
	return map[string]any{}, nil
}

// apiScheduledMessagesList is chat.scheduledMessages.list (one page; the
// optional channel, oldest and latest filter it).
func (s *Server) apiScheduledMessagesList(r *apiRequest) (map[string]any, *apiError) {
	chID := r.get("channel")
	if chID != "" {
		if _, ok := s.channels[chID]; !ok {
			return nil, slackErr("channel_not_found")
		}
	}
	bound := func(key string) (int64, bool, *apiError) {
		v := r.get(key)
		if v == "" {
			return 0, false, nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, false, slackErr("invalid_arguments")
		}
		return int64(f), true, nil
	}
	oldest, hasOldest, ae := bound("oldest")
	if ae != nil {
		return nil, ae
	}
	latest, hasLatest, ae := bound("latest")
	if ae != nil {
		return nil, ae
	}
	var list []*scheduledState
	for _, sm := range s.scheduled {
		at := sm.PostAt.Unix()
		if (chID == "" || sm.Channel == chID) && (!hasOldest || at >= oldest) && (!hasLatest || at <= latest) {
			list = append(list, sm)
		}
	}
	slices.SortFunc(list, func(a, b *scheduledState) int {
		if c := a.PostAt.Compare(b.PostAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	out := make([]map[string]any, 0, len(list))
	for _, sm := range list {
		out = append(out, map[string]any{
			"id": sm.ID, "channel_id": sm.Channel, "post_at": sm.PostAt.Unix(),
			"date_created": sm.Created.Unix(), "text": sm.Text,
		})
	}
	return map[string]any{"scheduled_messages": out, "response_metadata": map[string]any{"next_cursor": ""}}, nil
}

// stopScheduledLocked stops every delivery timer (on Close).
func (s *Server) stopScheduledLocked() {
	for _, sm := range s.scheduled {
		sm.timer.Stop()
	}
}
