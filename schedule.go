// Scheduled start: reading the start time people type ("at 18:30",
// "tomorrow 09:00", "2026-12-24 08:00") in their own time zone.

package symbot

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultScheduleHorizon is how far ahead a request may be scheduled when
// the flow does not say (Flow.ScheduleHorizon).
const DefaultScheduleHorizon = 14 * 24 * time.Hour

// MaxScheduleHorizon bounds Flow.ScheduleHorizon.
const MaxScheduleHorizon = 90 * 24 * time.Hour

// StartFormats names the start-time forms ParseStartTime accepts, for
// messages.
const StartFormats = "HH:MM (24-hour, like 18:30), 6:30pm, tomorrow 09:00, friday 14:00, 2026-12-24 09:00 or 2026-12-24T09:00:00Z"

// startError is a start time that could not be read, with why.
func startError(s, problem string) error {
	return &InputError{Field: "start", Problem: fmt.Sprintf("%q is not a start time: %s. Write it as %s", TruncateRunes(s, 40), problem, StartFormats)}
}

// ParseStartTime reads a start time as people write it, in loc (the
// requester's time zone), relative to now:
//
//	18:30, 9:05, 6pm, 6:30pm   the next such time (today, or tomorrow when it has passed)
//	today 18:30, tomorrow 9am
//	monday 09:00 (mon, tue, ...) the next such day (today when the time is still ahead)
//	2026-12-24 09:00, 2026-12-24T09:00
//	2026-12-24T09:00:00Z, 2026-12-24T09:00:00+01:00 (RFC 3339: its own offset)
//
// It does not check that the time is in the future (a dated time may be
// past) or within a flow's horizon: the engine does, with the flow at hand.
func ParseStartTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	raw := s
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	if s == "" {
		return time.Time{}, &InputError{Field: "start", Problem: "missing: write it as " + StartFormats}
	}
	if t, err := time.Parse(time.RFC3339, strings.ToUpper(s)); err == nil {
		return t, nil
	}
	now = now.In(loc)
	day, clock, hasDay := "", s, false
	if d, c, ok := strings.Cut(s, "t"); ok && len(d) == 10 && d[4] == '-' {
		day, clock, hasDay = d, c, true // 2026-12-24T09:00
	} else if d, c, ok := strings.Cut(s, " "); ok && !isMeridiem(c) {
		day, clock, hasDay = d, c, true
	}
	clock = strings.ReplaceAll(clock, " ", "") // "6:30 pm"
	h, m, err := parseClock(clock)
	if err != nil {
		return time.Time{}, startError(raw, err.Error())
	}
	at := func(y int, mo time.Month, d int) time.Time { return time.Date(y, mo, d, h, m, 0, 0, loc) }
	y, mo, d := now.Date()
	if !hasDay {
		t := at(y, mo, d)
		if !t.After(now) {
			t = at(y, mo, d+1)
		}
		return t, nil
	}
	switch day {
	case "today":
		return at(y, mo, d), nil
	case "tomorrow", "tmrw":
		return at(y, mo, d+1), nil
	}
	if wd, ok := weekday(day); ok {
		ahead := (int(wd) - int(now.Weekday()) + 7) % 7
		t := at(y, mo, d+ahead)
		if !t.After(now) {
			t = at(y, mo, d+ahead+7)
		}
		return t, nil
	}
	date, err := time.ParseInLocation("2006-01-02", day, loc)
	if err != nil {
		if len(day) == 10 && day[4] == '-' && day[7] == '-' {
			return time.Time{}, startError(raw, "there is no such date")
		}
		return time.Time{}, startError(raw, "the day must be today, tomorrow, a weekday or a date like 2026-12-24")
	}
	return at(date.Date()), nil
}

func isMeridiem(s string) bool { return s == "am" || s == "pm" }

// parseClock reads 18:30, 9:05, 6pm, 6:30pm, 12am.
func parseClock(s string) (h, m int, err error) {
	mer := ""
	if strings.HasSuffix(s, "am") || strings.HasSuffix(s, "pm") {
		mer, s = s[len(s)-2:], s[:len(s)-2]
	}
	hs, ms, hasMin := strings.Cut(s, ":")
	if hs == "" || len(hs) > 2 || !allDigits(hs) || (hasMin && (len(ms) != 2 || !allDigits(ms))) || (!hasMin && mer == "") {
		return 0, 0, fmt.Errorf("it is not a time of day")
	}
	h, _ = strconv.Atoi(hs)
	if hasMin {
		m, _ = strconv.Atoi(ms)
	}
	if m > 59 {
		return 0, 0, fmt.Errorf("the minutes must be 00-59")
	}
	if mer != "" {
		if h < 1 || h > 12 {
			return 0, 0, fmt.Errorf("with am or pm the hour must be 1-12")
		}
		h %= 12
		if mer == "pm" {
			h += 12
		}
	} else if h > 23 {
		return 0, 0, fmt.Errorf("the hour must be 00-23")
	}
	return h, m, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func weekday(s string) (time.Weekday, bool) {
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		if s == name || s == name[:3] {
			return d, true
		}
	}
	return 0, false
}

// CheckStart checks a requested start time (zero: at once) against now and
// the flow's ScheduleHorizon.
func (f *Flow) CheckStart(start, now time.Time) error {
	if start.IsZero() {
		return nil
	}
	if !start.After(now) {
		return &InputError{Field: "start", Problem: fmt.Sprintf("%s is in the past; pick a later time, or leave the start out to begin as soon as it is approved", start.UTC().Format("2006-01-02 15:04 UTC"))}
	}
	if h := f.scheduleHorizon(); start.After(now.Add(h)) {
		return &InputError{Field: "start", Problem: fmt.Sprintf("%s is too far ahead: flow %s takes requests at most %s in advance", start.UTC().Format("2006-01-02 15:04 UTC"), f.Name, FormatDuration(h))}
	}
	return nil
}
