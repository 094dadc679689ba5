// Package pagerduty answers whether a person is on call now, from
// PagerDuty's REST API v2 (GET /oncalls), for the rules' on-call checks.
// People are matched by email; answers are cached briefly.
package pagerduty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/symbot/symbot"
)

// DefaultURL is PagerDuty's REST API.
const DefaultURL = "https://api.pagerduty.com"

// Defaults.
const (
	DefaultCacheTTL = time.Minute
	DefaultPageSize = 100 // PagerDuty's largest page
	DefaultTokenTTL = 5 * time.Minute
	requestTimeout  = 10 * time.Second
)

// Config configures a Client.
type Config struct {
	BaseURL string // default DefaultURL
	// Schedules and EscalationPolicies are what OnCall asks about: on call
	// now in any of the schedules, or at the first level of any of the
	// escalation policies.
	Schedules          []string
	EscalationPolicies []string
	CacheTTL           time.Duration // how long an answer is reused; default 1m, negative: never
	TokenTTL           time.Duration // how long the token is used before it is read again; default 5m
	PageSize           int           // default 100
	HTTPClient         *http.Client  // default: one with a 10 s timeout
	Logger             *slog.Logger
	Now                func() time.Time
}

// TokenSource returns the PagerDuty API token (from Secrets Manager).
type TokenSource func(ctx context.Context) (string, error)

// Error is a failed PagerDuty call. It never holds the token.
type Error struct {
	Status  int    // HTTP status; 0 for a network error
	Code    int    // PagerDuty's error code, if it gave one
	Message string // what went wrong, for people
	Err     error  // the underlying error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("pagerduty: ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d: ", e.Status)
	}
	b.WriteString(e.Message)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is match symbot's sentinels: ErrTokenRejected (401, 403),
// ErrRateLimited (429), ErrUnavailable (5xx, network), ErrNotFound (404).
func (e *Error) Is(target error) bool {
	switch target {
	case symbot.ErrTokenRejected:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	case symbot.ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case symbot.ErrUnavailable:
		return e.Status == 0 || e.Status >= 500
	case symbot.ErrNotFound:
		return e.Status == http.StatusNotFound
	}
	return false
}

// Client asks PagerDuty who is on call. It is safe for concurrent use.
type Client struct {
	cfg   Config
	token TokenSource
	http  *http.Client
	log   *slog.Logger

	mu      sync.Mutex
	cache   map[string]entry // query -> on-call emails
	tok     string
	tokAt   time.Time
	fetches int
}

type entry struct {
	emails map[string]bool
	at     time.Time
}

// New returns a client; it makes no network calls.
func New(cfg Config, token TokenSource) *Client {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultURL
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.PageSize <= 0 || cfg.PageSize > DefaultPageSize {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg, token: token, http: cfg.HTTPClient, log: cfg.Logger, cache: map[string]entry{}}
	if c.http == nil {
		c.http = &http.Client{Timeout: requestTimeout}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// OnCall reports whether the person with this email is on call now in any
// of the configured schedules, or at the first level of any of the
// configured escalation policies.
func (c *Client) OnCall(ctx context.Context, email string) (bool, error) {
	if len(c.cfg.Schedules)+len(c.cfg.EscalationPolicies) == 0 {
		return false, errors.New("pagerduty: no schedules or escalation policies are configured to be on call in: list schedule ids under pagerduty.schedules or policy ids under pagerduty.escalation_policies in symbot.yml")
	}
	if len(c.cfg.Schedules) > 0 {
		on, err := c.onCall(ctx, email, query{schedules: c.cfg.Schedules})
		if err != nil || on {
			return on, err
		}
	}
	if len(c.cfg.EscalationPolicies) > 0 {
		return c.onCall(ctx, email, query{policies: c.cfg.EscalationPolicies, firstLevel: true})
	}
	return false, nil
}

// OnCallIn reports whether the person with this email is on call now in
// the schedule.
func (c *Client) OnCallIn(ctx context.Context, email, scheduleID string) (bool, error) {
	return c.onCall(ctx, email, query{schedules: []string{scheduleID}})
}

// query is one GET /oncalls question.
type query struct {
	schedules, policies []string
	firstLevel          bool // only escalation level 1 counts
}

func (q query) key() string {
	return "s=" + strings.Join(q.schedules, ",") + "&p=" + strings.Join(q.policies, ",") + "&l1=" + strconv.FormatBool(q.firstLevel)
}

func (c *Client) onCall(ctx context.Context, email string, q query) (bool, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return false, errors.New("pagerduty: no email to find the person by: PagerDuty users are matched by the email on their Slack profile, so the requester needs one there")
	}
	emails, err := c.onCallEmails(ctx, q)
	if err != nil {
		return false, err
	}
	return emails[email], nil
}

// onCallEmails returns who is on call for q, from the cache when the
// answer is fresh.
func (c *Client) onCallEmails(ctx context.Context, q query) (map[string]bool, error) {
	k := q.key()
	now := c.cfg.Now()
	c.mu.Lock()
	if e, ok := c.cache[k]; ok && c.cfg.CacheTTL > 0 && now.Sub(e.at) < c.cfg.CacheTTL {
		c.mu.Unlock()
		return e.emails, nil
	}
	c.mu.Unlock()
	emails, err := c.fetch(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.cache[k] = entry{emails: emails, at: now}
	c.mu.Unlock()
	return emails, nil
}

type oncallsPage struct {
	Oncalls []struct {
		User struct {
			ID    string `json:"id"`
			Type  string `json:"type"`
			Email string `json:"email"`
		} `json:"user"`
		EscalationLevel int `json:"escalation_level"`
	} `json:"oncalls"`
	More bool `json:"more"`
}

// maxPages bounds one question's paging, in case the API keeps saying more.
const maxPages = 100

func (c *Client) fetch(ctx context.Context, q query) (map[string]bool, error) {
	emails := map[string]bool{}
	for page, offset := 0, 0; ; page++ {
		if page == maxPages {
			return nil, &Error{Message: fmt.Sprintf("more than %d pages of on-calls", maxPages)}
		}
		v := url.Values{}
		for _, s := range q.schedules {
			v.Add("schedule_ids[]", s)
		}
		for _, p := range q.policies {
			v.Add("escalation_policy_ids[]", p)
		}
		v.Add("include[]", "users")
		v.Set("limit", strconv.Itoa(c.cfg.PageSize))
		v.Set("offset", strconv.Itoa(offset))
		var p oncallsPage
		if err := c.get(ctx, "/oncalls?"+v.Encode(), &p); err != nil {
			return nil, err
		}
		for _, o := range p.Oncalls {
			if q.firstLevel && o.EscalationLevel != 1 {
				continue
			}
			if o.User.Email == "" {
				return nil, &Error{Message: fmt.Sprintf("on-call user %s came without an email (include[]=users ignored?)", o.User.ID)}
			}
			emails[strings.ToLower(o.User.Email)] = true
		}
		if !p.More || len(p.Oncalls) == 0 {
			return emails, nil
		}
		offset += len(p.Oncalls)
	}
}

// Schedule returns the name of the schedule id, or an error wrapping
// symbot.ErrNotFound when PagerDuty has no such schedule (check --live).
func (c *Client) Schedule(ctx context.Context, id string) (string, error) {
	var out struct {
		Schedule struct {
			Name string `json:"name"`
		} `json:"schedule"`
	}
	if err := c.get(ctx, "/schedules/"+url.PathEscape(id), &out); err != nil {
		return "", err
	}
	return out.Schedule.Name, nil
}

// EscalationPolicy returns the name of the escalation policy id, or an
// error wrapping symbot.ErrNotFound when PagerDuty has no such policy.
func (c *Client) EscalationPolicy(ctx context.Context, id string) (string, error) {
	var out struct {
		Policy struct {
			Name string `json:"name"`
		} `json:"escalation_policy"`
	}
	if err := c.get(ctx, "/escalation_policies/"+url.PathEscape(id), &out); err != nil {
		return "", err
	}
	return out.Policy.Name, nil
}

// get GETs path into out, reading the token again once if PagerDuty
// rejects it (it may have been rotated).
func (c *Client) get(ctx context.Context, path string, out any) error {
	tok, err := c.apiToken(ctx, false)
	if err != nil {
		return err
	}
	err = c.do(ctx, tok, path, out)
	if errors.Is(err, symbot.ErrTokenRejected) {
		if tok, err2 := c.apiToken(ctx, true); err2 == nil {
			err = c.do(ctx, tok, path, out)
		}
	}
	return err
}

func (c *Client) apiToken(ctx context.Context, fresh bool) (string, error) {
	now := c.cfg.Now()
	c.mu.Lock()
	if !fresh && c.tok != "" && now.Sub(c.tokAt) < c.cfg.TokenTTL {
		t := c.tok
		c.mu.Unlock()
		return t, nil
	}
	c.mu.Unlock()
	tok, err := c.token(ctx)
	if err != nil {
		return "", fmt.Errorf("pagerduty: read the API token: %w", err)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", errors.New("pagerduty: the API token secret is empty: put the PagerDuty REST API token in the secret named by pagerduty.token_secret")
	}
	c.mu.Lock()
	c.tok, c.tokAt = tok, now
	c.mu.Unlock()
	return tok, nil
}

func (c *Client) do(ctx context.Context, tok, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+path, nil)
	if err != nil {
		return &Error{Message: "build request", Err: err}
	}
	req.Header.Set("Authorization", "Token token="+tok)
	req.Header.Set("Accept", "application/vnd.pagerduty+json;version=2")
	req.Header.Set("Content-Type", "application/json")
	c.mu.Lock()
	c.fetches++
	c.mu.Unlock()
	resp, err := c.http.Do(req)
	if err != nil {
		// Never the URL's query: nothing secret there, but keep it short.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &Error{Message: "request failed", Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return &Error{Status: resp.StatusCode, Message: "read response", Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Message string   `json:"message"`
				Code    int      `json:"code"`
				Errors  []string `json:"errors"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		msg := e.Error.Message
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		if len(e.Error.Errors) > 0 {
			msg += " (" + strings.Join(e.Error.Errors, "; ") + ")"
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			msg += ": check the API token in pagerduty.token_secret"
		case http.StatusTooManyRequests:
			msg += ": rate limited"
		}
		return &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: symbot.OneLine(symbot.TruncateRunes(msg, 300))}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return &Error{Status: resp.StatusCode, Message: "not the JSON PagerDuty sends", Err: err}
	}
	return nil
}

// Fetches counts the HTTP requests made so far (the cache's effect).
func (c *Client) Fetches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches
}
