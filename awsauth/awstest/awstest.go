// Package awstest is a wire-level simulator of the AWS STS, Secrets Manager
// and S3 (PutObject) APIs that symbot uses, served on 127.0.0.1 for tests and
// for `symbot demo`.
//
// One Server answers both services on one URL, so AWS_ENDPOINT_URL (or the
// per-service AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_SECRETS_MANAGER) can
// point at it. Requests are told apart the way AWS tells them apart: Secrets
// Manager requests carry an X-Amz-Target header (JSON 1.1 protocol), STS
// requests are form posts with an Action (query protocol), S3 requests are
// REST calls whose SigV4 credential scope names the s3 service.
//
// The caller is identified from the access key id in the SigV4 Authorization
// header; signatures are not checked. Base credentials are registered with
// AddUser; AssumeRole issues temporary credentials and remembers which role
// they belong to, so role chaining, ExternalId conditions, trust and secret
// access control behave as they do on AWS.
package awstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Account and region the simulator pretends to live in.
const (
	DefaultAccount = "123456789012"
	DefaultRegion  = "us-east-1"
)

// Operation names, as used by Inject and recorded in Call.Action.
const (
	OpAssumeRole        = "AssumeRole"
	OpGetCallerIdentity = "GetCallerIdentity"
	OpGetSecretValue    = "GetSecretValue"
)

// Service names recorded in Call.Service.
const (
	ServiceSTS            = "sts"
	ServiceSecretsManager = "secretsmanager"
)

// Role is an IAM role that callers may assume.
type Role struct {
	// ARN is arn:aws:iam::<account>:role/<name>.
	ARN string
	// ExternalID, when set, is the sts:ExternalId condition of the trust
	// policy: AssumeRole without exactly this ExternalId is denied.
	ExternalID string
	// TrustedPrincipals lists who may assume the role: access key ids of
	// users added with AddUser, and role ARNs (any session of that role).
	// Empty trusts every known caller.
	TrustedPrincipals []string
	// MaxSessionDuration is the role's maximum session; 0 means 1 hour, the
	// AWS default.
	MaxSessionDuration time.Duration
	// CredentialLifetime, when positive, overrides how long the issued
	// credentials live (a simulator knob to exercise refresh before expiry).
	CredentialLifetime time.Duration
}

// Fault changes how the server answers one operation.
type Fault struct {
	// Latency delays the answer.
	Latency time.Duration
	// ErrorRate is the probability (0..1) of a 5xx answer
	// (InternalFailure/ServiceUnavailable on STS, InternalServiceError on
	// Secrets Manager).
	ErrorRate float64
	// Refuse answers AccessDenied (AccessDeniedException on Secrets Manager).
	Refuse bool
	// Count is how many matching requests the fault applies to; 0 is forever.
	// Every matching request uses one, whether or not ErrorRate fired.
	Count int
}

// Call is one request the server answered. It never holds secret values or
// credentials other than access key ids.
type Call struct {
	Service         string // ServiceSTS, ServiceSecretsManager or ServiceS3
	Action          string // e.g. OpAssumeRole
	Caller          string // ARN of the calling principal; the access key id if unknown
	AccessKeyID     string
	RoleArn         string // AssumeRole
	ExternalID      string // AssumeRole
	SecretID        string // GetSecretValue, as the caller sent it; PutObject: bucket/key
	DurationSeconds int    // AssumeRole, 0 if not sent
	Err             string // error code answered; "" on success
	At              time.Time
}

type principal struct {
	akid    string
	arn     string
	userID  string
	account string
	// session credentials only
	role    string // role ARN
	token   string
	expires time.Time
}

func (p *principal) isSession() bool { return p.role != "" }

type secretVersion struct {
	id      string
	str     *string
	bin     []byte
	created time.Time
}

type secret struct {
	name     string
	arn      string
	versions []secretVersion // last is AWSCURRENT
}

// Server is the simulator. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	users    map[string]*principal // by access key id (base users)
	sessions map[string]*principal // by access key id (issued by AssumeRole)
	roles    map[string]Role
	secrets  map[string]*secret // by name
	allow    map[string]map[string]bool
	calls    []Call
	faults   map[string]*Fault
	buckets  map[string]map[string]*Object // S3: bucket -> key -> object
	now      func() time.Time
}

// NewServer starts a simulator on 127.0.0.1. Close it when done.
func NewServer() *Server {
	s := &Server{
		users:    map[string]*principal{},
		sessions: map[string]*principal{},
		roles:    map[string]Role{},
		secrets:  map[string]*secret{},
		allow:    map[string]map[string]bool{},
		faults:   map[string]*Fault{},
		now:      time.Now,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL is the base URL of both services, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// AddUser registers base (long-term) credentials. The user's ARN is
// arn:aws:iam::<DefaultAccount>:user/<accessKeyID>.
func (s *Server) AddUser(accessKeyID, secretAccessKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[accessKeyID] = &principal{
		akid:    accessKeyID,
		arn:     "arn:aws:iam::" + DefaultAccount + ":user/" + accessKeyID,
		userID:  "AIDA" + accessKeyID,
		account: DefaultAccount,
	}
}

// AddRole registers (or replaces) a role that callers may assume.
func (s *Server) AddRole(r Role) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.TrustedPrincipals = append([]string(nil), r.TrustedPrincipals...)
	s.roles[r.ARN] = r
}

// PutSecret stores value as the new current version of the named string
// secret, creating it if needed (putting again is a rotation), and returns
// the new version id.
func (s *Server) PutSecret(name, value string) string {
	v := value
	return s.put(name, secretVersion{str: &v})
}

// PutSecretBinary stores a binary (SecretBinary) version of the named secret.
func (s *Server) PutSecretBinary(name string, value []byte) string {
	return s.put(name, secretVersion{bin: append([]byte{}, value...)})
}

func (s *Server) put(name string, v secretVersion) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[name]
	if sec == nil {
		sec = &secret{
			name: name,
			arn:  fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", DefaultRegion, DefaultAccount, name, randString(6, alnum)),
		}
		s.secrets[name] = sec
	}
	v.id = uuid()
	v.created = s.now()
	sec.versions = append(sec.versions, v)
	return v.id
}

// SecretARN returns the ARN of the named secret, or "" if there is none.
func (s *Server) SecretARN(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sec := s.secrets[name]; sec != nil {
		return sec.arn
	}
	return ""
}

// AllowSecret lets principal read the named secret. principal is a role ARN
// (any session of that role) or the access key id of a user; secretName "*"
// allows every secret. Nobody may read a secret they are not allowed.
func (s *Server) AllowSecret(principal, secretName string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.allow[principal] == nil {
		s.allow[principal] = map[string]bool{}
	}
	s.allow[principal][secretName] = true
}

// Inject sets the fault for an operation (OpAssumeRole, OpGetCallerIdentity,
// OpGetSecretValue, or "*" for every operation), replacing any earlier one.
func (s *Server) Inject(op string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = &f
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// Calls returns a copy of every call answered so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CountCalls returns how many calls of action were answered, and how many
// of those failed.
func (s *Server) CountCalls(action string) (total, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		if c.Action == action {
			total++
			if c.Err != "" {
				failed++
			}
		}
	}
	return total, failed
}

// ResetCalls forgets the recorded calls.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.At = s.now()
	s.calls = append(s.calls, c)
}

// fault returns what to do for op: a delay, and an error kind ("" none,
// "refuse", "5xx").
func (s *Server) fault(op string) (time.Duration, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults[op]
	key := op
	if f == nil {
		f, key = s.faults["*"], "*"
	}
	if f == nil {
		return 0, ""
	}
	if f.Count > 0 {
		f.Count--
		if f.Count == 0 {
			delete(s.faults, key)
		}
	}
	switch {
	case f.Refuse:
		return f.Latency, "refuse"
	case f.ErrorRate > 0 && mrand.Float64() < f.ErrorRate:
		return f.Latency, "5xx"
	}
	return f.Latency, ""
}

// callerKey returns the access key id from a SigV4 Authorization header:
// "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/sts/aws4_request, ...".
func callerKey(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	_, after, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	akid, _, _ := strings.Cut(after, "/")
	return strings.TrimSpace(akid)
}

// apiError is an error answer; each service writes it in its protocol
// (query XML for STS, JSON 1.1 for Secrets Manager).
type apiError struct {
	status  int
	code    string
	message string
}

// admit identifies the caller (recording it in call) and applies the
// injected fault's latency. It returns the principal or the authentication
// failure, and the fault kind: "", "refuse" or "5xx". Both services answer
// an injected fault before an authentication failure.
func (s *Server) admit(r *http.Request, call *Call) (*principal, *authError, string) {
	p, aerr := s.identify(r)
	if p != nil {
		call.Caller = p.arn
	}
	delay, kind := s.fault(call.Action)
	sleep(r, delay)
	return p, aerr, kind
}

// authError is an authentication failure: code and message.
type authError struct {
	code, msg string
	status    int
}

// identify finds the calling principal.
func (s *Server) identify(r *http.Request) (*principal, *authError) {
	akid := callerKey(r)
	if akid == "" {
		return nil, &authError{"MissingAuthenticationToken", "Request is missing Authentication Token", http.StatusForbidden}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.users[akid]; p != nil {
		return p, nil
	}
	p := s.sessions[akid]
	if p == nil {
		return nil, &authError{"InvalidClientTokenId", "The security token included in the request is invalid.", http.StatusForbidden}
	}
	if r.Header.Get("X-Amz-Security-Token") != p.token {
		return nil, &authError{"InvalidClientTokenId", "The security token included in the request is invalid.", http.StatusForbidden}
	}
	if !s.now().Before(p.expires) {
		return nil, &authError{"ExpiredToken", "The security token included in the request is expired", http.StatusForbidden}
	}
	return p, nil
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Amzn-RequestId", uuid())
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		s.serveSecretsManager(w, r, target)
		return
	}
	if scopeService(r) == ServiceS3 || r.Method == http.MethodPut {
		s.serveS3(w, r)
		return
	}
	s.serveSTS(w, r)
}

// sleep waits d or until the request is abandoned.
func sleep(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

const (
	alnum  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	upper  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	base64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

func randString(n int, alphabet string) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand does not fail
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func mrandBool() bool { return mrand.IntN(2) == 0 }
