// Package okta is the Okta adapter: it resolves people to Okta users and
// adds, removes and checks group memberships through okta-sdk-golang, with
// token refresh on 401, one shared rate limiter and bounded retries.
package okta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/okta/okta-sdk-golang/v2/okta"

	"github.com/symbot/symbot"
)

// Defaults for the optional Config fields.
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultRetryBudget    = 30 * time.Second
	DefaultBackoffMin     = 200 * time.Millisecond
	DefaultBackoffMax     = 5 * time.Second
	DefaultPageSize       = 500
)

// Config configures a Directory. Only OrgURL is required.
type Config struct {
	// OrgURL is the Okta org, e.g. https://example.okta.com. Plain http://
	// is accepted only for loopback hosts (simulators).
	OrgURL string
	// Overrides maps a Slack user id or an email address to an Okta login;
	// it wins over the lookup by email.
	Overrides map[string]string
	// RequestTimeout bounds one HTTP attempt (default 10s).
	RequestTimeout time.Duration
	// RetryBudget bounds the time one API request spends on attempts,
	// backoff and rate-limit waits (default 30s).
	RetryBudget time.Duration
	// BackoffMin and BackoffMax shape the exponential backoff with jitter
	// between retries of 5xx answers and timeouts (defaults 200ms, 5s).
	BackoffMin, BackoffMax time.Duration
	// PageSize is the limit used when listing group members (default 500,
	// Okta allows up to 1000).
	PageSize int
	// Logger receives retry and failure reports; never a token.
	Logger *slog.Logger
	// Transport is the base HTTP transport (default: a clone of
	// http.DefaultTransport).
	Transport http.RoundTripper
	// OnCall, if set, is called after every Directory method with the
	// method name, the result (as in Stats) and the duration.
	OnCall func(op, result string, d time.Duration)
	// Now is the clock for retry budgets, rate-limit windows and call
	// durations (default time.Now). Waits use real timers.
	Now func() time.Time
}

// Directory is the Okta implementation of symbot.Directory. It is safe for
// concurrent use.
type Directory struct {
	orgURL     string
	insecure   bool // http:// on loopback
	overrides  map[string]string
	reqTimeout time.Duration
	budget     time.Duration
	backMin    time.Duration
	backMax    time.Duration
	pageSize   int
	log        *slog.Logger
	onCall     func(op, result string, d time.Duration)
	now        func() time.Time
	tokens     TokenSource
	httpClient *http.Client
	lim        *limiter

	mu  sync.Mutex             // serialises building clients
	cur atomic.Pointer[client] // the SDK client bound to the current token

	statsMu sync.Mutex
	stats   map[string]int64
}

var _ symbot.Directory = (*Directory)(nil)

// TokenSource hands out the Okta API token and fetches it anew when the
// Directory finds it stale (Okta rejected it). awsauth.Source is one.
type TokenSource interface {
	// Token returns the current token, from cache when fresh.
	Token(ctx context.Context) (string, error)
	// Refresh fetches the token again unless it already changed from stale
	// (another caller refreshed it), and returns the new token.
	Refresh(ctx context.Context, stale string) (string, error)
}

// client is an SDK client bound to one token.
type client struct {
	token string
	c     *okta.Client
}

// New validates cfg and returns a Directory that takes its API token from
// tokens. It does no I/O: the token is fetched on the first call.
func New(cfg Config, tokens TokenSource) (*Directory, error) {
	if tokens == nil {
		return nil, errors.New("okta directory: no token source")
	}
	org, insecure, err := checkOrgURL(cfg.OrgURL)
	if err != nil {
		return nil, err
	}
	overrides := make(map[string]string, len(cfg.Overrides))
	for k, v := range cfg.Overrides {
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if err := ValidateOverride(k, v); err != nil {
			return nil, fmt.Errorf("okta override %q -> %q: %w", k, v, err)
		}
		overrides[overrideKey(k)] = v
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Directory{
		orgURL:     org,
		insecure:   insecure,
		overrides:  overrides,
		reqTimeout: orDefault(cfg.RequestTimeout, DefaultRequestTimeout),
		budget:     orDefault(cfg.RetryBudget, DefaultRetryBudget),
		backMin:    orDefault(cfg.BackoffMin, DefaultBackoffMin),
		backMax:    orDefault(cfg.BackoffMax, DefaultBackoffMax),
		pageSize:   cfg.PageSize,
		log:        cfg.Logger,
		onCall:     cfg.OnCall,
		tokens:     tokens,
		now:        cfg.Now,
		lim:        newLimiter(cfg.Now),
		stats:      map[string]int64{},
	}
	if d.pageSize <= 0 {
		d.pageSize = DefaultPageSize
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	base := cfg.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		base = t
	}
	d.httpClient = &http.Client{Transport: &observer{base: base, now: d.now}}
	return d, nil
}

func orDefault(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}

func overrideKey(k string) string {
	if strings.Contains(k, "@") {
		return strings.ToLower(k)
	}
	return k
}

// client returns the SDK client for the current token, building a new one
// when the token changed.
func (d *Directory) client(ctx context.Context) (*client, error) {
	tok, err := d.tokens.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("get okta api token: %w", err)
	}
	return d.clientFor(tok)
}

func (d *Directory) clientFor(tok string) (*client, error) {
	if c := d.cur.Load(); c != nil && c.token == tok {
		return c, nil
	}
	if tok == "" {
		return nil, fmt.Errorf("okta api token is empty: check the secret that holds it: %w", symbot.ErrTokenRejected)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.cur.Load(); c != nil && c.token == tok {
		return c, nil
	}
	// NewClient first reads ~/.okta/okta.yaml, an .okta.yaml beside the SDK
	// and OKTA_CLIENT_* / OKTA_TESTING_* variables, and there is no option
	// to skip that; the options below set every field that matters, so they
	// win over anything found there.
	_, sdk, err := okta.NewClient(context.Background(),
		okta.WithOrgUrl(d.orgURL),
		okta.WithToken(tok),
		okta.WithAuthorizationMode("SSWS"),
		okta.WithClientId(""),
		okta.WithScopes(nil),
		okta.WithClientAssertion(""),
		okta.WithPrivateKeyId(""),
		okta.WithPrivateKeySigner(nil),
		okta.WithCache(false),
		okta.WithHttpClientPtr(d.httpClient),
		okta.WithTestingDisableHttpsCheck(d.insecure),
		okta.WithUserAgentExtra("symbot"),
		// One attempt per SDK call: this package's limiter and retry loop
		// are the single source of truth for waiting and retrying.
		okta.WithRateLimitMaxRetries(0),
		okta.WithRateLimitMaxBackOff(1),
		okta.WithRequestTimeout(0),
		okta.WithConnectionTimeout(int64(d.reqTimeout/time.Second)+1),
	)
	if err != nil {
		return nil, fmt.Errorf("build okta client: %w", err)
	}
	c := &client{token: tok, c: sdk}
	d.cur.Store(c)
	return c, nil
}

// --- calls, retries and errors ---

type kind int

const (
	kindOther kind = iota
	kindNotFound
	kindAuth
	kindForbidden
	kindRate
	kindUnavailable
	kindCanceled
)

// failure is one failed attempt, classified.
type failure struct {
	kind    kind
	status  int    // 0 when no answer came
	code    string // Okta errorCode
	summary string // Okta errorSummary, or the transport error
}

func (f failure) String() string {
	switch {
	case f.status == 0:
		return f.summary
	case f.code != "":
		return fmt.Sprintf("HTTP %d %s: %s", f.status, f.code, f.summary)
	case f.summary != "":
		return fmt.Sprintf("HTTP %d: %s", f.status, f.summary)
	}
	return fmt.Sprintf("HTTP %d", f.status)
}

// classify turns the SDK's answer into a failure. The SDK returns a nil
// *Response when it gives up on 429 ("too many requests") and on transport
// errors, so the status observed by the transport is used as well.
func classify(resp *okta.Response, err error, tr *trace) failure {
	f := failure{status: tr.status}
	if resp != nil && resp.Response != nil {
		f.status = resp.StatusCode
	}
	var oe *okta.Error
	if errors.As(err, &oe) {
		f.code, f.summary = oe.ErrorCode, oe.ErrorSummary
	} else {
		f.summary = err.Error()
	}
	switch {
	case f.status == http.StatusUnauthorized || f.code == "E0000011":
		f.kind = kindAuth
	case f.status == http.StatusTooManyRequests || f.code == "E0000047" || err.Error() == "too many requests":
		f.kind = kindRate
		if f.status == 0 {
			f.status = http.StatusTooManyRequests
		}
	case f.status == http.StatusNotFound:
		f.kind = kindNotFound
	case f.status == http.StatusForbidden:
		f.kind = kindForbidden
	case f.status >= 500:
		f.kind = kindUnavailable
	case f.status == 0 && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		f.kind = kindUnavailable
		f.summary = "no answer in time"
	case f.status == 0:
		var ne net.Error
		var oe *net.OpError
		if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, errConnClosed) || errors.Is(err, io.ErrUnexpectedEOF) {
			f.kind = kindUnavailable
		}
	}
	return f
}

// attemptFunc makes one SDK call with the client.
type attemptFunc func(ctx context.Context, c *okta.Client) (*okta.Response, error)

// notFoundFunc maps a 404 answer (with Okta's summary) to a domain error.
type notFoundFunc func(summary string) error

// do runs fn with retries: a 401 refreshes the token and retries once; 429,
// 5xx, timeouts and connection failures retry with backoff (or until the
// rate-limit reset) within the retry budget.
func (d *Directory) do(ctx context.Context, op string, notFound notFoundFunc, fn attemptFunc) error {
	start := d.now()
	bctx, cancel := context.WithTimeout(ctx, d.budget)
	defer cancel()
	refreshed := false
	var last failure
	for attempt := 1; ; attempt++ {
		c, err := d.client(ctx)
		if err != nil {
			return err
		}
		if err := d.lim.wait(bctx); err != nil {
			if ctx.Err() != nil {
				return d.canceled(ctx, op, last, attempt-1)
			}
			var we *waitError
			switch {
			case errors.As(err, &we):
				return fmt.Errorf("okta %s: the okta rate limit is spent and resets in %s, beyond the %s retry budget: %w", op, we.wait.Round(time.Second), d.budget, symbot.ErrRateLimited)
			case last.kind == kindUnavailable:
				return d.exhausted(op, last, attempt-1, start)
			}
			return fmt.Errorf("okta %s: no room under the okta rate limit within the %s retry budget: %w", op, d.budget, symbot.ErrRateLimited)
		}
		d.count("attempts")
		tr := &trace{}
		actx, acancel := context.WithTimeout(bctx, d.reqTimeout)
		resp, err := fn(context.WithValue(actx, traceKey{}, tr), c.c)
		acancel()
		d.lim.done(tr)
		if err == nil {
			return nil
		}
		f := classify(resp, err, tr)
		if ctx.Err() != nil {
			return d.canceled(ctx, op, f, attempt)
		}
		if f.kind == kindUnavailable && f.status == 0 && bctx.Err() != nil && last.kind != kindOther {
			// The budget ended during this attempt: report what went wrong before.
			return d.exhausted(op, last, attempt, start)
		}
		switch f.kind {
		case kindAuth:
			if refreshed {
				return fmt.Errorf("okta %s: okta rejected the api token again after it was refreshed (%s): put a valid token in the secret (okta.token_secret); okta deactivates tokens unused for 30 days: %w", op, f, symbot.ErrTokenRejected)
			}
			refreshed = true
			d.count("token_refreshes")
			d.log.InfoContext(ctx, "okta rejected the api token; refreshing it", "op", op)
			nt, rerr := d.tokens.Refresh(ctx, c.token)
			if rerr != nil {
				return fmt.Errorf("okta %s: okta rejected the api token (%s) and refreshing it failed: %w: %w", op, f, symbot.ErrTokenRejected, rerr)
			}
			if nt == c.token {
				return fmt.Errorf("okta %s: okta rejected the api token (%s) and the secret still holds the same token: create a new token and put it in the secret (okta.token_secret): %w", op, f, symbot.ErrTokenRejected)
			}
			if _, err := d.clientFor(nt); err != nil {
				return err
			}
			continue
		case kindNotFound:
			if notFound != nil {
				return notFound(f.summary)
			}
			return fmt.Errorf("okta %s: not found (%s)", op, f)
		case kindForbidden:
			return fmt.Errorf("okta %s: the api token's admin role may not do this (%s): give the token's admin role the permission to view users and groups and manage group membership, with this group and user in its resource set: %w", op, f, symbot.ErrAccessDenied)
		case kindRate:
			last = f
			d.count("http_429")
			if d.lim.blocked() {
				// The limiter waits until the reset (or says it is too far).
				d.count("retries")
				d.log.WarnContext(ctx, "okta rate limit hit; retrying after the reset", "op", op, "attempt", attempt)
				continue
			}
		case kindUnavailable:
			last = f
		default:
			return fmt.Errorf("okta %s: %s", op, f)
		}
		// Retry after backoff with jitter, within the budget.
		delay := d.backoff(attempt)
		if d.now().Add(delay).After(start.Add(d.budget)) {
			return d.exhausted(op, last, attempt, start)
		}
		d.count("retries")
		d.log.WarnContext(ctx, "okta call failed; retrying", "op", op, "attempt", attempt, "error", last.String(), "wait", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return d.canceled(ctx, op, last, attempt)
		}
	}
}

func (d *Directory) backoff(attempt int) time.Duration {
	b := d.backMin << min(attempt-1, 20)
	if b > d.backMax || b <= 0 {
		b = d.backMax
	}
	return b/2 + rand.N(b/2+1)
}

func (d *Directory) exhausted(op string, last failure, attempts int, start time.Time) error {
	took := d.now().Sub(start).Round(time.Millisecond)
	if last.kind == kindRate {
		return fmt.Errorf("okta %s: still rate limited (%s) after %d attempts in %s: %w", op, last, attempts, took, symbot.ErrRateLimited)
	}
	return fmt.Errorf("okta %s: okta did not answer successfully (%s) after %d attempts in %s: %w", op, last, attempts, took, symbot.ErrUnavailable)
}

func (d *Directory) canceled(ctx context.Context, op string, last failure, attempts int) error {
	if attempts == 0 || last.kind == kindOther {
		return fmt.Errorf("okta %s: %w", op, context.Cause(ctx))
	}
	return fmt.Errorf("okta %s: stopped after %d attempts, last: %s: %w", op, attempts, last, context.Cause(ctx))
}

// --- stats ---

// Stats returns counters: one per method result ("ok", "user_not_found",
// "user_not_active", "group_not_found", "token_rejected", "rate_limited",
// "unavailable", "access_denied", "canceled", "error") and per HTTP
// attempt ("attempts", "retries", "token_refreshes", "http_429",
// "throttled": waits for a rate-limit reset).
func (d *Directory) Stats() map[string]int64 {
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	out := make(map[string]int64, len(d.stats)+1)
	for k, v := range d.stats {
		out[k] = v
	}
	out["throttled"] = d.lim.throttled.Load()
	return out
}

func (d *Directory) count(key string) {
	d.statsMu.Lock()
	d.stats[key]++
	d.statsMu.Unlock()
}

// Result names the outcome of a Directory call as Stats counts it.
func Result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, symbot.ErrUserNotFound):
		return "user_not_found"
	case errors.Is(err, symbot.ErrUserNotActive):
		return "user_not_active"
	case errors.Is(err, symbot.ErrGroupNotFound):
		return "group_not_found"
	case errors.Is(err, symbot.ErrTokenRejected):
		return "token_rejected"
	case errors.Is(err, symbot.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, symbot.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, symbot.ErrAccessDenied):
		return "access_denied"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "error"
}

func (d *Directory) observe(op string, start time.Time, err error) {
	r := Result(err)
	d.count(r)
	if d.onCall != nil {
		d.onCall(op, r, d.now().Sub(start))
	}
}

// --- transport ---

type traceKey struct{}

// trace is what the transport saw of one attempt's HTTP answer.
type trace struct {
	status    int
	hasRL     bool
	limit     int
	remaining int
	reset     int64     // epoch seconds, server clock
	serverNow time.Time // the Date header; zero if absent
	received  time.Time
}

var errConnClosed = errors.New("connection closed before an answer")

// observer records status and rate-limit headers of every answer into the
// attempt's trace, and turns io.EOF into a plain error: the SDK retries
// io.EOF in a tight loop on its own, and retries belong to Directory.do.
type observer struct {
	base http.RoundTripper
	now  func() time.Time
}

func (o *observer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.base.RoundTrip(req)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %v", errConnClosed, err)
		}
		return nil, err
	}
	if tr, ok := req.Context().Value(traceKey{}).(*trace); ok {
		tr.fill(resp, o.now())
	}
	return resp, nil
}
