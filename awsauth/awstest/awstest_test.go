package awstest_test

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/symbot/symbot/awsauth/awstest"
)

const (
	akid    = "AKIAEXAMPLEUSER00001"
	secret  = "userSecretKeyExample0000000000000000000"
	roleARN = "arn:aws:iam::210987654321:role/reader"
)

// mustClients returns SDK clients on srv signed with the given keys and no
// retries, so every call is one request.
func mustClients(tb testing.TB, srv *awstest.Server, id, key, token string) (*sts.Client, *secretsmanager.Client) {
	tb.Helper()
	cfg := aws.Config{
		Region:       awstest.DefaultRegion,
		Credentials:  credentials.NewStaticCredentialsProvider(id, key, token),
		BaseEndpoint: aws.String(srv.URL()),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	}
	return sts.NewFromConfig(cfg), secretsmanager.NewFromConfig(cfg)
}

func newServer(tb testing.TB) *awstest.Server {
	tb.Helper()
	srv := awstest.NewServer()
	tb.Cleanup(srv.Close)
	srv.AddUser(akid, secret)
	srv.AddRole(awstest.Role{ARN: roleARN, ExternalID: "ext-1", TrustedPrincipals: []string{akid}})
	srv.PutSecret("app/token", "v1")
	srv.AllowSecret(roleARN, "app/token")
	return srv
}

func assume(tb testing.TB, c *sts.Client, in *sts.AssumeRoleInput) *sts.AssumeRoleOutput {
	tb.Helper()
	out, err := c.AssumeRole(tb.Context(), in)
	if err != nil {
		tb.Fatalf("AssumeRole: %v", err)
	}
	return out
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestAssumeRoleAndReadSecret(t *testing.T) {
	srv := newServer(t)
	userSTS, userSM := mustClients(t, srv, akid, secret, "")

	who, err := userSTS.GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(who.Arn), "arn:aws:iam::"+awstest.DefaultAccount+":user/"+akid; got != want {
		t.Errorf("user ARN = %s, want %s", got, want)
	}
	if _, err := userSM.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/token")}); apiCode(err) != "AccessDeniedException" {
		t.Errorf("user reads secret: %v, want AccessDeniedException (only the role may)", err)
	}

	out := assume(t, userSTS, &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("s1"), ExternalId: aws.String("ext-1"), DurationSeconds: aws.Int32(900)})
	c := out.Credentials
	if !strings.HasPrefix(aws.ToString(c.AccessKeyId), "ASIA") || aws.ToString(c.SessionToken) == "" {
		t.Errorf("credentials = %+v, want ASIA key and a session token", c)
	}
	if d := time.Until(aws.ToTime(c.Expiration)); d < 13*time.Minute || d > 16*time.Minute {
		t.Errorf("expires in %v, want about 15m", d)
	}
	if got, want := aws.ToString(out.AssumedRoleUser.Arn), "arn:aws:sts::210987654321:assumed-role/reader/s1"; got != want {
		t.Errorf("assumed role ARN = %s, want %s", got, want)
	}

	roleSTS, roleSM := mustClients(t, srv, *c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken)
	who, err = roleSTS.GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(who.Arn) != aws.ToString(out.AssumedRoleUser.Arn) {
		t.Errorf("session identity = %v, %v; want the assumed role ARN", aws.ToString(who.Arn), err)
	}

	first, err := roleSM.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/token")})
	if err != nil || aws.ToString(first.SecretString) != "v1" {
		t.Fatalf("GetSecretValue = %v, %v; want v1", first, err)
	}
	v2 := srv.PutSecret("app/token", "v2")
	arn := srv.SecretARN("app/token")
	for _, id := range []string{"app/token", arn, arn[:len(arn)-7]} {
		got, err := roleSM.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil || aws.ToString(got.SecretString) != "v2" || aws.ToString(got.VersionId) != v2 || aws.ToString(got.ARN) != arn {
			t.Errorf("GetSecretValue(%s) = %+v, %v; want v2 version %s", id, got, err, v2)
		}
	}
	prev, err := roleSM.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/token"), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(prev.SecretString) != "v1" || aws.ToString(prev.VersionId) != aws.ToString(first.VersionId) {
		t.Errorf("AWSPREVIOUS = %+v, %v; want v1", prev, err)
	}

	srv.AllowSecret(roleARN, "app/missing")
	_, err = roleSM.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/missing")})
	var nf *smtypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("missing secret: %v, want *types.ResourceNotFoundException", err)
	}

	srv.PutSecretBinary("app/bin", []byte{0, 1, 2})
	srv.AllowSecret(roleARN, "*")
	bin, err := roleSM.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/bin")})
	if err != nil || string(bin.SecretBinary) != "\x00\x01\x02" || bin.SecretString != nil {
		t.Errorf("binary secret = %+v, %v", bin, err)
	}
}

func TestAssumeRoleRefusals(t *testing.T) {
	srv := newServer(t)
	srv.AddRole(awstest.Role{ARN: "arn:aws:iam::210987654321:role/next", TrustedPrincipals: []string{roleARN}, MaxSessionDuration: 12 * time.Hour})
	userSTS, _ := mustClients(t, srv, akid, secret, "")
	out := assume(t, userSTS, &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("s"), ExternalId: aws.String("ext-1")})
	c := out.Credentials
	roleSTS, _ := mustClients(t, srv, *c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken)
	forged, _ := mustClients(t, srv, *c.AccessKeyId, *c.SecretAccessKey, "forged")
	unknown, _ := mustClients(t, srv, "AKIAUNKNOWN000000000", "x", "")

	tests := []struct {
		name     string
		client   *sts.Client
		in       sts.AssumeRoleInput
		code     string
		contains string
	}{
		{"wrong external id", userSTS, sts.AssumeRoleInput{RoleArn: aws.String(roleARN), ExternalId: aws.String("bad")}, "AccessDenied", "not authorized to perform: sts:AssumeRole"},
		{"missing external id", userSTS, sts.AssumeRoleInput{RoleArn: aws.String(roleARN)}, "AccessDenied", ""},
		{"untrusted caller", userSTS, sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::210987654321:role/next")}, "AccessDenied", ""},
		{"unknown role", userSTS, sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::1:role/none")}, "AccessDenied", ""},
		{"chained over 1h", roleSTS, sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::210987654321:role/next"), DurationSeconds: aws.Int32(3601)}, "ValidationError", "1 hour session limit for roles assumed by role chaining"},
		{"over max session", userSTS, sts.AssumeRoleInput{RoleArn: aws.String(roleARN), ExternalId: aws.String("ext-1"), DurationSeconds: aws.Int32(7200)}, "ValidationError", "MaxSessionDuration"},
		{"under 15m", userSTS, sts.AssumeRoleInput{RoleArn: aws.String(roleARN), ExternalId: aws.String("ext-1"), DurationSeconds: aws.Int32(899)}, "ValidationError", "greater than or equal to 900"},
		{"forged session token", forged, sts.AssumeRoleInput{RoleArn: aws.String(roleARN)}, "InvalidClientTokenId", ""},
		{"unknown access key", unknown, sts.AssumeRoleInput{RoleArn: aws.String(roleARN)}, "InvalidClientTokenId", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.RoleSessionName = aws.String("s")
			_, err := tt.client.AssumeRole(t.Context(), &in)
			if got := apiCode(err); got != tt.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.code)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
		})
	}

	// A chained session of exactly one hour is fine.
	assume(t, roleSTS, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::210987654321:role/next"), RoleSessionName: aws.String("s"), DurationSeconds: aws.Int32(3600)})
}

func TestExpiredSession(t *testing.T) {
	srv := newServer(t)
	srv.AddRole(awstest.Role{ARN: roleARN, CredentialLifetime: time.Nanosecond})
	userSTS, _ := mustClients(t, srv, akid, secret, "")
	c := assume(t, userSTS, &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("s")}).Credentials
	_, sm := mustClients(t, srv, *c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken)
	_, err := sm.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("app/token")})
	if got := apiCode(err); got != "ExpiredTokenException" {
		t.Errorf("expired session reads secret: %v, want ExpiredTokenException", err)
	}
}

func TestFaultsAndCalls(t *testing.T) {
	srv := newServer(t)
	userSTS, _ := mustClients(t, srv, akid, secret, "")
	who := func() error {
		_, err := userSTS.GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
		return err
	}

	srv.Inject(awstest.OpGetCallerIdentity, awstest.Fault{Refuse: true, Count: 1})
	if err := who(); apiCode(err) != "AccessDenied" {
		t.Errorf("refused call: %v, want AccessDenied", err)
	}
	if err := who(); err != nil {
		t.Errorf("call after a Count 1 fault: %v, want success", err)
	}

	srv.Inject("*", awstest.Fault{ErrorRate: 1})
	for range 4 {
		if code := apiCode(who()); code != "InternalFailure" && code != "ServiceUnavailable" {
			t.Errorf("5xx fault answered %q, want InternalFailure or ServiceUnavailable", code)
		}
	}
	srv.ClearFaults()
	if err := who(); err != nil {
		t.Errorf("after ClearFaults: %v", err)
	}

	calls := srv.Calls()
	if len(calls) != 7 {
		t.Fatalf("recorded %d calls, want 7", len(calls))
	}
	if c := calls[0]; c.Service != awstest.ServiceSTS || c.Action != awstest.OpGetCallerIdentity || c.AccessKeyID != akid || c.Err != "AccessDenied" || c.At.IsZero() {
		t.Errorf("first call = %+v", c)
	}
	if total, failed := srv.CountCalls(awstest.OpGetCallerIdentity); total != 7 || failed != 5 {
		t.Errorf("CountCalls = %d, %d; want 7, 5", total, failed)
	}
	srv.ResetCalls()
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("after ResetCalls %d calls remain", n)
	}
}

// TestWireShapes checks the raw error bodies against AWS's documented shapes.
func TestWireShapes(t *testing.T) {
	srv := newServer(t)

	resp, err := http.PostForm(srv.URL(), url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {roleARN}, "RoleSessionName": {"s"}})
	if err != nil {
		t.Fatal(err)
	}
	var xe struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Error     struct{ Type, Code, Message string }
		RequestID string `xml:"RequestId"`
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := xml.Unmarshal(body, &xe); err != nil || resp.StatusCode != http.StatusForbidden ||
		xe.Error.Type != "Sender" || xe.Error.Code != "MissingAuthenticationToken" || xe.RequestID == "" {
		t.Errorf("unsigned STS call: %d %s (%v), want 403 ErrorResponse/Sender/MissingAuthenticationToken with RequestId", resp.StatusCode, body, err)
	}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL(), strings.NewReader(`{"SecretId":"app/none"}`))
	req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+akid+"/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=00")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var je map[string]string
	err = json.NewDecoder(resp.Body).Decode(&je)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusBadRequest || je["__type"] != "AccessDeniedException" || je["Message"] == "" ||
		resp.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		t.Errorf("denied secret read: %d %v (%v), want 400 {__type: AccessDeniedException, Message}", resp.StatusCode, je, err)
	}
}

// TestS3AWSChunkedBody: an aws-chunked body with a trailing checksum (what
// the SDK sends over HTTPS) is decoded and its trailer checked.
func TestS3AWSChunkedBody(t *testing.T) {
	srv := awstest.NewServer()
	defer srv.Close()
	srv.AddUser("AKIDCHUNK", "secret")
	srv.AddBucket("b")
	srv.AllowBucket("AKIDCHUNK", "b")
	send := func(trailer string) *http.Response {
		body := "5\r\nhello\r\n6\r\n world\r\n0\r\n" + trailer + "\r\n\r\n"
		req, _ := http.NewRequest(http.MethodPut, srv.URL()+"/b/k", strings.NewReader(body))
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDCHUNK/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x")
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
		req.Header.Set("X-Amz-Decoded-Content-Length", "11")
		req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// crc32("hello world") = 0x0d4a1185
	if resp := send("x-amz-checksum-crc32:DUoRhQ=="); resp.StatusCode != http.StatusOK {
		t.Fatalf("good chunked put: %s", resp.Status)
	}
	if objs := srv.Objects("b"); len(objs) != 1 || string(objs[0].Body) != "hello world" {
		t.Errorf("stored %+v, want the decoded body", objs)
	}
	if resp := send("x-amz-checksum-crc32:AAAAAA=="); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad trailing checksum: %s, want 400 BadDigest", resp.Status)
	}
}
