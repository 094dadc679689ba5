package awsauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/symbot/symbot"
	"github.com/symbot/symbot/awsauth"
	"github.com/symbot/symbot/awsauth/awstest"
)

func TestChainThroughHop(t *testing.T) {
	w := newWorld(t)
	src := mustNew(t, w.cfg)

	got, err := src.Token(t.Context())
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if got != oktaToken {
		t.Fatalf("Token = %q, want the secret's token", got)
	}

	calls := w.srv.Calls()
	if len(calls) != 3 {
		t.Fatalf("got %d calls, want 3 (hop, role, secret): %+v", len(calls), calls)
	}
	hop, role, sec := calls[0], calls[1], calls[2]
	if hop.Action != awstest.OpAssumeRole || hop.RoleArn != hopARN || hop.Caller != "arn:aws:iam::"+awstest.DefaultAccount+":user/"+baseAKID || hop.ExternalID != "" {
		t.Errorf("first call = %+v, want AssumeRole %s by the base user without external id", hop, hopARN)
	}
	if role.Action != awstest.OpAssumeRole || role.RoleArn != roleARN || role.Caller != "arn:aws:sts::111111111111:assumed-role/symbot-hop/symbot" || role.ExternalID != extID {
		t.Errorf("second call = %+v, want AssumeRole %s by the hop session with external id %s", role, roleARN, extID)
	}
	if role.DurationSeconds != 3600 {
		t.Errorf("DurationSeconds = %d, want 3600", role.DurationSeconds)
	}
	if sec.Action != awstest.OpGetSecretValue || sec.SecretID != secretName || sec.Caller != "arn:aws:sts::222222222222:assumed-role/symbot-connector/symbot" {
		t.Errorf("third call = %+v, want GetSecretValue %s by the connector session", sec, secretName)
	}

	id, err := src.AssumeRole(t.Context())
	if err != nil {
		t.Fatalf("AssumeRole: %v", err)
	}
	if want := "arn:aws:sts::222222222222:assumed-role/symbot-connector/symbot"; id.ARN != want || id.Account != "222222222222" {
		t.Errorf("AssumeRole = %+v, want ARN %s in account 222222222222", id, want)
	}
	if id.Expires.IsZero() {
		t.Errorf("AssumeRole Expires is zero, want the session's expiry")
	}
	base, err := src.BaseIdentity(t.Context())
	if err != nil {
		t.Fatalf("BaseIdentity: %v", err)
	}
	if want := "arn:aws:iam::" + awstest.DefaultAccount + ":user/" + baseAKID; base.ARN != want {
		t.Errorf("BaseIdentity ARN = %s, want %s", base.ARN, want)
	}
	if n := assumeCalls(w.srv); n[hopARN] != 1 || n[roleARN] != 1 {
		t.Errorf("AssumeRole calls = %v, want each role once (credentials are cached)", n)
	}
}

func TestSecretByARNAndPerHopExternalID(t *testing.T) {
	w := newWorld(t)
	w.srv.AddRole(awstest.Role{ARN: hopARN, ExternalID: "hop-ext-1", TrustedPrincipals: []string{baseAKID}})
	cfg := w.cfg
	cfg.SecretID = w.srv.SecretARN(secretName)
	cfg.HopExternalIDs = []string{"hop-ext-1"}
	info, err := mustNew(t, cfg).ReadSecret(t.Context())
	if err != nil {
		t.Fatalf("ReadSecret: %v", err)
	}
	if info.Name != secretName || info.ARN != cfg.SecretID || info.VersionID == "" || info.Region != region {
		t.Errorf("ReadSecret = %+v, want name %s, ARN %s and a version", info, secretName, cfg.SecretID)
	}
}

func TestAssumeRoleDenied(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(w *world, cfg *awsauth.Config)
		deniedOn string
	}{
		{"wrong external id", func(w *world, cfg *awsauth.Config) { cfg.ExternalID = "wrong-ext" }, roleARN},
		{"missing external id", func(w *world, cfg *awsauth.Config) { cfg.ExternalID = "" }, roleARN},
		{"hop does not trust base user", func(w *world, cfg *awsauth.Config) {
			w.srv.AddRole(awstest.Role{ARN: hopARN, TrustedPrincipals: []string{"AKIAOTHERUSER0000000"}})
		}, hopARN},
		{"role does not trust hop", func(w *world, cfg *awsauth.Config) {
			w.srv.AddRole(awstest.Role{ARN: roleARN, ExternalID: extID, TrustedPrincipals: []string{"arn:aws:iam::111111111111:role/other"}})
		}, roleARN},
		{"unknown role", func(w *world, cfg *awsauth.Config) { cfg.RoleARN = "arn:aws:iam::222222222222:role/missing" }, "arn:aws:iam::222222222222:role/missing"},
		{"injected refusal", func(w *world, cfg *awsauth.Config) {
			w.srv.Inject(awstest.OpAssumeRole, awstest.Fault{Refuse: true})
		}, hopARN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			cfg := w.cfg
			tt.setup(w, &cfg)
			src := mustNew(t, cfg)
			for _, step := range []struct {
				name string
				run  func() error
			}{
				{"Token", func() error { _, err := src.Token(t.Context()); return err }},
				{"AssumeRole", func() error { _, err := src.AssumeRole(t.Context()); return err }},
			} {
				err := step.run()
				if err == nil {
					t.Fatalf("%s: no error, want assume role denied", step.name)
				}
				if !errors.Is(err, symbot.ErrAccessDenied) {
					t.Errorf("%s: %v, want it to wrap symbot.ErrAccessDenied", step.name, err)
				}
				var e *awsauth.Error
				if !errors.As(err, &e) || e.Step != awsauth.StepAssumeRole || e.Role != tt.deniedOn {
					t.Errorf("%s: error %#v, want *awsauth.Error step %q role %s", step.name, e, awsauth.StepAssumeRole, tt.deniedOn)
				}
				for _, want := range []string{"assume role " + tt.deniedOn + " denied", "trust policy", "external_id"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: error %q does not contain %q", step.name, err, want)
					}
				}
			}
			if n, _ := w.srv.CountCalls(awstest.OpGetSecretValue); n != 0 {
				t.Errorf("GetSecretValue called %d times after a failed AssumeRole, want 0", n)
			}
		})
	}
}

func TestChainedSessionOverOneHour(t *testing.T) {
	w := newWorld(t)
	cfg := w.cfg
	cfg.SessionDuration = 2 * time.Hour

	_, err := awsauth.New(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "role chaining limits sessions to 1 hour") {
		t.Fatalf("New with a 2h chained session: %v, want the role chaining limit", err)
	}
	if !errors.Is(err, awsauth.ErrInvalidConfig) {
		t.Errorf("error %v does not match ErrInvalidConfig", err)
	}
	var ce *awsauth.ConfigError
	if !errors.As(err, &ce) || ce.Field != "session_duration" {
		t.Errorf("error %#v, want ConfigError on session_duration", err)
	}
	if calls := w.srv.Calls(); len(calls) != 0 {
		t.Errorf("refused config still made %d calls", len(calls))
	}

	// Without hops, 2h is not chaining and is allowed locally.
	single := cfg
	single.HopRoles = nil
	if err := single.Validate(); err != nil {
		t.Errorf("Validate 2h without hops: %v, want nil", err)
	}

	// Forced past the local check, STS refuses a chained 2h session too.
	awsCfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	hop, err := sts.NewFromConfig(awsCfg).AssumeRole(t.Context(), &sts.AssumeRoleInput{
		RoleArn: aws.String(hopARN), RoleSessionName: aws.String("forced"),
	})
	if err != nil {
		t.Fatalf("assume hop: %v", err)
	}
	hc := hop.Credentials
	chained := sts.NewFromConfig(awsCfg, func(o *sts.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(*hc.AccessKeyId, *hc.SecretAccessKey, *hc.SessionToken)
	})
	_, err = chained.AssumeRole(t.Context(), &sts.AssumeRoleInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("forced"), ExternalId: aws.String(extID),
		DurationSeconds: aws.Int32(7200),
	})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationError" ||
		ae.ErrorMessage() != "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining." {
		t.Fatalf("chained 2h AssumeRole: %v, want ValidationError about the 1 hour session limit", err)
	}
}

func TestSecretErrors(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(w *world, cfg *awsauth.Config)
		kind      error
		step      awsauth.Step
		contains  []string
		notWanted []string
	}{
		{
			name: "missing secret",
			setup: func(w *world, cfg *awsauth.Config) {
				cfg.SecretID = "symbot/nope"
				w.srv.AllowSecret(roleARN, "symbot/nope")
			},
			kind:     symbot.ErrSecretNotFound,
			step:     awsauth.StepReadSecret,
			contains: []string{`"symbot/nope"`, region, "secret not found"},
		},
		{
			name: "access denied",
			setup: func(w *world, cfg *awsauth.Config) {
				w.srv.PutSecret("symbot/other", oktaToken)
				cfg.SecretID = "symbot/other"
			},
			kind:     symbot.ErrAccessDenied,
			step:     awsauth.StepReadSecret,
			contains: []string{`"symbot/other"`, roleARN, "secretsmanager:GetSecretValue", "resource policy/KMS key"},
		},
		{
			name: "injected refusal",
			setup: func(w *world, cfg *awsauth.Config) {
				w.srv.Inject(awstest.OpGetSecretValue, awstest.Fault{Refuse: true})
			},
			kind:     symbot.ErrAccessDenied,
			step:     awsauth.StepReadSecret,
			contains: []string{"access denied"},
		},
		{
			name:      "json without the key",
			setup:     func(w *world, cfg *awsauth.Config) { cfg.SecretJSONKey = "api_token" },
			kind:      awsauth.ErrSecretFormat,
			step:      awsauth.StepParseSecret,
			contains:  []string{`no JSON key "api_token"`, `keys present: ["note", "okta_api_token"]`},
			notWanted: []string{"rotated by hand"},
		},
		{
			name:     "json but no key configured",
			setup:    func(w *world, cfg *awsauth.Config) { cfg.SecretJSONKey = "" },
			kind:     awsauth.ErrSecretFormat,
			step:     awsauth.StepParseSecret,
			contains: []string{`keys ["note", "okta_api_token"]`, "set okta.token_json_key"},
		},
		{
			name:     "plain string but key configured",
			setup:    func(w *world, cfg *awsauth.Config) { w.srv.PutSecret(secretName, oktaToken) },
			kind:     awsauth.ErrSecretFormat,
			step:     awsauth.StepParseSecret,
			contains: []string{"not a JSON object", `"okta_api_token"`},
		},
		{
			name:     "value not a string",
			setup:    func(w *world, cfg *awsauth.Config) { w.srv.PutSecret(secretName, `{"okta_api_token":{"v":"x"}}`) },
			kind:     awsauth.ErrSecretFormat,
			step:     awsauth.StepParseSecret,
			contains: []string{"an object under JSON key"},
		},
		{
			name:     "empty string",
			setup:    func(w *world, cfg *awsauth.Config) { w.srv.PutSecret(secretName, " \n"); cfg.SecretJSONKey = "" },
			kind:     awsauth.ErrSecretFormat,
			step:     awsauth.StepParseSecret,
			contains: []string{"empty SecretString"},
		},
		{
			name: "binary secret",
			setup: func(w *world, cfg *awsauth.Config) {
				w.srv.PutSecretBinary(secretName, []byte(oktaToken))
				cfg.SecretJSONKey = ""
			},
			kind:     awsauth.ErrSecretFormat,
			step:     awsauth.StepParseSecret,
			contains: []string{"binary secret (SecretBinary)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			cfg := w.cfg
			tt.setup(w, &cfg)
			src := mustNew(t, cfg)
			_, err := src.Token(t.Context())
			if err == nil {
				t.Fatal("Token: no error")
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %v, want it to match %v", err, tt.kind)
			}
			var e *awsauth.Error
			if !errors.As(err, &e) || e.Step != tt.step || e.SecretID != cfg.SecretID {
				t.Errorf("error %#v, want *awsauth.Error step %q secret %q", e, tt.step, cfg.SecretID)
			}
			for _, want := range tt.contains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			for _, bad := range append(tt.notWanted, oktaToken) {
				if strings.Contains(err.Error(), bad) {
					t.Errorf("error %q contains secret material %q", err, bad)
				}
			}
			if _, err2 := src.ReadSecret(t.Context()); !errors.Is(err2, tt.kind) {
				t.Errorf("ReadSecret: %v, want it to match %v", err2, tt.kind)
			}
		})
	}
}

func TestPlainStringSecret(t *testing.T) {
	w := newWorld(t)
	w.srv.PutSecret(secretName, oktaToken+"\n")
	cfg := w.cfg
	cfg.SecretJSONKey = ""
	got, err := mustNew(t, cfg).Token(t.Context())
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if got != oktaToken {
		t.Errorf("Token = %q, want the plain secret string without its newline", got)
	}
}

func TestTokenCached(t *testing.T) {
	w := newWorld(t)
	clock := newFakeClock()
	src := mustNew(t, edited(w.cfg, func(c *awsauth.Config) { c.Now = clock.Now }))
	for i := range 2 {
		if _, err := src.Token(t.Context()); err != nil {
			t.Fatalf("Token %d: %v", i, err)
		}
	}
	if n, _ := w.srv.CountCalls(awstest.OpGetSecretValue); n != 1 {
		t.Errorf("two Token calls made %d GetSecretValue calls, want 1", n)
	}
	clock.Advance(awsauth.DefaultSecretTTL + time.Second)
	if _, err := src.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, _ := w.srv.CountCalls(awstest.OpGetSecretValue); n != 2 {
		t.Errorf("Token after the TTL made %d GetSecretValue calls in all, want 2", n)
	}
}

func TestRefreshAfterRotation(t *testing.T) {
	w := newWorld(t)
	src := mustNew(t, w.cfg)
	ctx := t.Context()
	old, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}

	rotated := "00RotatedTokenValue-0000000000000001"
	w.srv.PutSecret(secretName, `{"okta_api_token":"`+rotated+`"}`)
	if got, _ := src.Token(ctx); got != old {
		t.Errorf("Token right after rotation = %q, want the cached %q", got, old)
	}
	got, err := src.Refresh(ctx, old)
	if err != nil || got != rotated {
		t.Fatalf("Refresh(stale) = %q, %v; want the rotated token", got, err)
	}
	// A late caller with the old stale token gets the new one without a read.
	if got, _ := src.Refresh(ctx, old); got != rotated {
		t.Errorf("second Refresh(old) = %q, want %q", got, rotated)
	}
	if n, _ := w.srv.CountCalls(awstest.OpGetSecretValue); n != 2 {
		t.Errorf("GetSecretValue calls = %d, want 2 (first read, one refresh)", n)
	}

	// Concurrent refreshes of the same stale token share one read.
	rotated2 := "00RotatedTokenValue-0000000000000002"
	w.srv.PutSecret(secretName, `{"okta_api_token":"`+rotated2+`"}`)
	w.srv.Inject(awstest.OpGetSecretValue, awstest.Fault{Latency: 50 * time.Millisecond})
	const n = 16
	var wg sync.WaitGroup
	results := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = src.Refresh(ctx, rotated) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || results[i] != rotated2 {
			t.Errorf("concurrent Refresh %d = %q, %v; want %q", i, results[i], errs[i], rotated2)
		}
	}
	if got, _ := w.srv.CountCalls(awstest.OpGetSecretValue); got != 3 {
		t.Errorf("GetSecretValue calls = %d after %d concurrent refreshes, want 3 (one more)", got, n)
	}
}

func TestCredentialsRefreshedBeforeExpiry(t *testing.T) {
	tests := []struct {
		name      string
		lifetime  time.Duration
		wantRoles int
	}{
		{"long-lived session is reused", 0, 1},
		{"session inside the expiry window is renewed", time.Minute, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.srv.AddRole(awstest.Role{ARN: roleARN, ExternalID: extID, TrustedPrincipals: []string{hopARN}, CredentialLifetime: tt.lifetime})
			src := mustNew(t, edited(w.cfg, func(c *awsauth.Config) { c.ExpiryWindow = 5 * time.Minute }))
			for i := range 2 {
				if _, err := src.ReadSecret(t.Context()); err != nil {
					t.Fatalf("ReadSecret %d: %v", i, err)
				}
			}
			n := assumeCalls(w.srv)
			if n[roleARN] != tt.wantRoles {
				t.Errorf("AssumeRole %s calls = %d, want %d", roleARN, n[roleARN], tt.wantRoles)
			}
			if n[hopARN] != 1 {
				t.Errorf("AssumeRole %s calls = %d, want 1 (the hop's session is long-lived)", hopARN, n[hopARN])
			}
			// Every read succeeded: renewal happened before the old session
			// expired (the simulator would answer ExpiredToken otherwise).
			if _, failed := w.srv.CountCalls(awstest.OpGetSecretValue); failed != 0 {
				t.Errorf("%d GetSecretValue calls failed", failed)
			}
		})
	}
}

func TestNoBaseCredentials(t *testing.T) {
	w := newWorld(t)
	setAWSEnv(t, w.srv.URL(), false)
	src := mustNew(t, w.cfg)
	for _, step := range []struct {
		name string
		run  func() error
	}{
		{"Token", func() error { _, err := src.Token(t.Context()); return err }},
		{"BaseIdentity", func() error { _, err := src.BaseIdentity(t.Context()); return err }},
		{"AssumeRole", func() error { _, err := src.AssumeRole(t.Context()); return err }},
	} {
		err := step.run()
		if !errors.Is(err, awsauth.ErrNoCredentials) {
			t.Fatalf("%s: %v, want ErrNoCredentials", step.name, err)
		}
		var e *awsauth.Error
		if !errors.As(err, &e) || e.Step != awsauth.StepBaseCredentials {
			t.Errorf("%s: %#v, want step %q", step.name, e, awsauth.StepBaseCredentials)
		}
		if want := "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run on an instance/pod with a role"; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error %q, want it to start with %q", step.name, err, want)
		}
	}
	if calls := w.srv.Calls(); len(calls) != 0 {
		t.Errorf("got %d calls without credentials, want 0", len(calls))
	}
}

func TestServerErrorsRetried(t *testing.T) {
	t.Run("GetSecretValue 5xx twice then ok", func(t *testing.T) {
		w := newWorld(t)
		w.srv.Inject(awstest.OpGetSecretValue, awstest.Fault{ErrorRate: 1, Count: 2})
		got, err := mustNew(t, w.cfg).Token(t.Context())
		if err != nil || got != oktaToken {
			t.Fatalf("Token = %q, %v; want the token after retries", got, err)
		}
		if total, failed := w.srv.CountCalls(awstest.OpGetSecretValue); total != 3 || failed != 2 {
			t.Errorf("GetSecretValue calls = %d (%d failed), want 3 (2 failed)", total, failed)
		}
	})
	t.Run("AssumeRole 5xx once then ok", func(t *testing.T) {
		w := newWorld(t)
		w.srv.Inject(awstest.OpAssumeRole, awstest.Fault{ErrorRate: 1, Count: 1})
		if _, err := mustNew(t, w.cfg).Token(t.Context()); err != nil {
			t.Fatalf("Token: %v", err)
		}
	})
	t.Run("GetSecretValue 5xx forever", func(t *testing.T) {
		w := newWorld(t)
		w.srv.Inject(awstest.OpGetSecretValue, awstest.Fault{ErrorRate: 1})
		_, err := mustNew(t, w.cfg).Token(t.Context())
		if !errors.Is(err, symbot.ErrUnavailable) {
			t.Fatalf("Token: %v, want ErrUnavailable", err)
		}
		if total, _ := w.srv.CountCalls(awstest.OpGetSecretValue); total != 3 {
			t.Errorf("GetSecretValue attempts = %d, want 3 (the SDK default)", total)
		}
	})
}

func TestTokenServesStaleWhenRereadFails(t *testing.T) {
	w := newWorld(t)
	clock := newFakeClock()
	var logs bytes.Buffer
	src := mustNew(t, edited(w.cfg, func(c *awsauth.Config) {
		c.Now = clock.Now
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}))
	if _, err := src.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.srv.Inject(awstest.OpGetSecretValue, awstest.Fault{ErrorRate: 1})
	clock.Advance(awsauth.DefaultSecretTTL + time.Second)
	got, err := src.Token(t.Context())
	if err != nil || got != oktaToken {
		t.Fatalf("Token during an outage = %q, %v; want the cached token", got, err)
	}
	if !strings.Contains(logs.String(), "using the cached token") {
		t.Errorf("no warning logged: %s", logs.String())
	}
	before, _ := w.srv.CountCalls(awstest.OpGetSecretValue)
	if _, err := src.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	if after, _ := w.srv.CountCalls(awstest.OpGetSecretValue); after != before {
		t.Errorf("Token retried Secrets Manager at once (%d -> %d calls), want it to wait", before, after)
	}
	if _, err := src.Refresh(t.Context(), oktaToken); !errors.Is(err, symbot.ErrUnavailable) {
		t.Errorf("Refresh during an outage: %v, want ErrUnavailable", err)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	w := newWorld(t)
	w.srv.Inject(awstest.OpGetSecretValue, awstest.Fault{Latency: time.Minute, Count: 1})
	src := mustNew(t, w.cfg)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := src.Token(ctx); errc <- err }()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Token after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Token did not return after its context was cancelled")
	}
}

// TestCloseEndsRead: Close ends a shared secret read in flight (it no
// longer runs on for its minute-long timeout), and later reads fail at once.
func TestCloseEndsRead(t *testing.T) {
	w := newWorld(t)
	w.srv.Inject(awstest.OpGetSecretValue, awstest.Fault{Latency: time.Minute, Count: 1})
	src := mustNew(t, w.cfg)
	// A caller that gives up at once still starts the shared read, which
	// now hangs for a minute.
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := src.Token(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("Token(cancelled ctx) = %v, want context.Canceled", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Refresh waits for the read in flight, if any: it must have ended.
	ctx, stop := context.WithTimeout(t.Context(), 10*time.Second)
	defer stop()
	if _, err := src.Refresh(ctx, ""); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Refresh after Close = %v, want the read ended by Close", err)
	}
	if tok, err := src.Token(t.Context()); err == nil {
		t.Errorf("Token after Close = %q, want an error", tok)
	}
}

func TestTokenNeverLeaks(t *testing.T) {
	w := newWorld(t)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var texts []string

	src := mustNew(t, edited(w.cfg, func(c *awsauth.Config) { c.Logger = logger }))
	tok, err := src.Token(t.Context())
	if err != nil || tok != oktaToken {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	if _, err := src.Refresh(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	info, err := src.ReadSecret(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("source", "src", src, "info", info)
	texts = append(texts, fmt.Sprintf("%v|%+v|%#v|%s|%+v", src, src, src, src, info))

	// Failures whose secrets hold the token somewhere.
	secrets := map[string]string{
		"wrong key":     `{"other":"` + oktaToken + `"}`,
		"key not str":   `{"okta_api_token":["` + oktaToken + `"]}`,
		"not json":      oktaToken + " trailing words",
		"broken json":   `{"okta_api_token":"` + oktaToken,
		"spaces in key": `{"okta_api_token":"` + oktaToken + ` x"}`,
	}
	for name, value := range secrets {
		w.srv.PutSecret(secretName, value)
		for _, key := range []string{jsonKey, ""} {
			cfg := w.cfg
			cfg.SecretJSONKey = key
			s := mustNew(t, edited(cfg, func(c *awsauth.Config) { c.Logger = logger }))
			if _, err := s.Token(t.Context()); err == nil {
				t.Errorf("%s (key %q): no error", name, key)
			} else {
				texts = append(texts, err.Error(), fmt.Sprintf("%+v %#v", err, err))
			}
		}
	}
	texts = append(texts, logs.String())
	for _, c := range w.srv.Calls() {
		texts = append(texts, fmt.Sprintf("%+v", c))
	}
	for _, s := range texts {
		if strings.Contains(s, oktaToken) {
			t.Errorf("token leaked in %q", s)
		}
	}
	if !strings.Contains(logs.String(), "read okta token") {
		t.Errorf("expected log lines were not written; the check above proves nothing: %s", logs.String())
	}
}

func TestConfigValidate(t *testing.T) {
	good := awsauth.Config{RoleARN: roleARN, ExternalID: extID, HopRoles: []string{hopARN}, SecretID: secretName}
	tests := []struct {
		name  string
		edit  func(c *awsauth.Config)
		field string // "" = valid
	}{
		{"valid", func(c *awsauth.Config) {}, ""},
		{"no roles at all", func(c *awsauth.Config) { c.RoleARN, c.ExternalID, c.HopRoles = "", "", nil }, ""},
		{"secret id missing", func(c *awsauth.Config) { c.SecretID = "" }, "secret_id"},
		{"secret arn malformed", func(c *awsauth.Config) { c.SecretID = "arn:aws:s3:::bucket" }, "secret_id"},
		{"secret arn other region", func(c *awsauth.Config) {
			c.Region = "eu-west-1"
			c.SecretID = "arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf"
		}, "secret_id"},
		{"role arn not a role", func(c *awsauth.Config) { c.RoleARN = "arn:aws:iam::1:user/bob" }, "role_arn"},
		{"hop not an arn", func(c *awsauth.Config) { c.HopRoles = []string{"symbot-hop"} }, "hop_roles[0]"},
		{"hops without role", func(c *awsauth.Config) { c.RoleARN, c.ExternalID = "", "" }, "role_arn"},
		{"external id without role", func(c *awsauth.Config) { c.RoleARN, c.HopRoles = "", nil }, "role_arn"},
		{"too many hop external ids", func(c *awsauth.Config) { c.HopExternalIDs = []string{"ab", "cd"} }, "hop_external_ids"},
		{"external id bad chars", func(c *awsauth.Config) { c.ExternalID = "has space" }, "external_id"},
		{"session name bad", func(c *awsauth.Config) { c.SessionName = "a b" }, "session_name"},
		{"session under 15m", func(c *awsauth.Config) { c.SessionDuration = 10 * time.Minute }, "session_duration"},
		{"chained over 1h", func(c *awsauth.Config) { c.SessionDuration = 61 * time.Minute }, "session_duration"},
		{"single over 12h", func(c *awsauth.Config) { c.HopRoles = nil; c.SessionDuration = 13 * time.Hour }, "session_duration"},
		{"single 12h", func(c *awsauth.Config) { c.HopRoles = nil; c.SessionDuration = 12 * time.Hour }, ""},
		{"negative ttl", func(c *awsauth.Config) { c.SecretTTL = -time.Second }, "secret_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			c.HopRoles = append([]string(nil), good.HopRoles...)
			tt.edit(&c)
			err := c.Validate()
			var ce *awsauth.ConfigError
			switch {
			case tt.field == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tt.field != "" && (!errors.As(err, &ce) || ce.Field != tt.field):
				t.Errorf("Validate: %v, want a ConfigError on %s", err, tt.field)
			}
		})
	}
}

func TestNoRegion(t *testing.T) {
	w := newWorld(t)
	t.Setenv("AWS_REGION", "")
	cfg := w.cfg
	cfg.Region = ""
	_, err := awsauth.New(t.Context(), cfg)
	var ce *awsauth.ConfigError
	if !errors.As(err, &ce) || ce.Field != "region" || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Errorf("New without a region: %v, want a ConfigError on region naming AWS_REGION", err)
	}
}

func TestWithAWSConfig(t *testing.T) {
	w := newWorld(t)
	setAWSEnv(t, "", false) // nothing from the environment
	awsCfg := aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(baseAKID, baseSecret, ""),
		BaseEndpoint: aws.String(w.srv.URL()),
	}
	got, err := mustNew(t, edited(w.cfg, func(c *awsauth.Config) { c.AWSConfig = &awsCfg })).Token(t.Context())
	if err != nil || got != oktaToken {
		t.Fatalf("Token with an injected aws.Config = %q, %v", got, err)
	}
}

func TestSingleEndpointURL(t *testing.T) {
	w := newWorld(t)
	t.Setenv("AWS_ENDPOINT_URL_STS", "")
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "")
	t.Setenv("AWS_ENDPOINT_URL", w.srv.URL())
	got, err := mustNew(t, w.cfg).Token(t.Context())
	if err != nil || got != oktaToken {
		t.Fatalf("Token via AWS_ENDPOINT_URL = %q, %v", got, err)
	}
}

func TestEndpointDown(t *testing.T) {
	w := newWorld(t)
	src := mustNew(t, w.cfg)
	w.srv.Close()
	_, err := src.Token(t.Context())
	if !errors.Is(err, symbot.ErrUnavailable) {
		t.Fatalf("Token with STS down: %v, want ErrUnavailable", err)
	}
	var e *awsauth.Error
	if !errors.As(err, &e) || e.Step != awsauth.StepAssumeRole || e.Role != hopARN {
		t.Errorf("error %#v, want the first hop's assume role step", e)
	}
}

func TestWithStaticEndpoint(t *testing.T) {
	w := newWorld(t)
	setAWSEnv(t, "http://127.0.0.1:1", false) // the environment points nowhere useful
	src, err := awsauth.New(t.Context(), edited(w.cfg, func(c *awsauth.Config) { c.AWSConfig = awsauth.StaticEndpoint(w.srv.URL(), baseAKID, baseSecret) }))
	if err != nil {
		t.Fatal(err)
	}
	got, err := src.Token(t.Context())
	if err != nil || got != oktaToken {
		t.Fatalf("Token with a static endpoint = %q, %v", got, err)
	}
}

func TestBaseCredentialsRejected(t *testing.T) {
	w := newWorld(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNUSER00000")
	_, err := mustNew(t, w.cfg).BaseIdentity(t.Context())
	var e *awsauth.Error
	if !errors.As(err, &e) || e.Step != awsauth.StepCallerIdentity {
		t.Fatalf("BaseIdentity with unknown keys: %v, want an *awsauth.Error at step %q", err, awsauth.StepCallerIdentity)
	}
	if want := "the credentials were rejected (InvalidClientTokenId): check they are current"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}
