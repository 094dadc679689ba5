package awstest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumedRoleUser struct {
	Arn           string `xml:"Arn"`
	AssumedRoleID string `xml:"AssumedRoleId"`
}

type responseMetadata struct {
	RequestID string `xml:"RequestId"`
}

type assumeRoleResponse struct {
	XMLName xml.Name `xml:"AssumeRoleResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Credentials      stsCredentials  `xml:"Credentials"`
		AssumedRoleUser  assumedRoleUser `xml:"AssumedRoleUser"`
		PackedPolicySize int             `xml:"PackedPolicySize"`
	} `xml:"AssumeRoleResult"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type getCallerIdentityResponse struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type stsErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request) {
	call := Call{Service: ServiceSTS, AccessKeyID: callerKey(r), Caller: callerKey(r)}
	e := s.sts(r, w, &call)
	if e != nil {
		call.Err = e.code
		writeSTSError(w, e)
	}
	s.record(call)
}

func writeSTSError(w http.ResponseWriter, e *apiError) {
	var out stsErrorResponse
	out.Xmlns = stsNamespace
	out.Error.Type = "Sender"
	if e.status >= 500 {
		out.Error.Type = "Receiver"
	}
	out.Error.Code = e.code
	out.Error.Message = e.message
	out.RequestID = w.Header().Get("X-Amzn-RequestId")
	writeXML(w, e.status, out)
}

func writeXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

func (s *Server) sts(r *http.Request, w http.ResponseWriter, call *Call) *apiError {
	if r.Method != http.MethodPost {
		return &apiError{http.StatusBadRequest, "InvalidAction", "STS is served by POST in this simulator"}
	}
	if err := r.ParseForm(); err != nil {
		return &apiError{http.StatusBadRequest, "MalformedQueryString", "cannot parse the form body"}
	}
	call.Action = r.PostForm.Get("Action")
	call.RoleArn = r.PostForm.Get("RoleArn")
	call.ExternalID = r.PostForm.Get("ExternalId")
	call.DurationSeconds, _ = strconv.Atoi(r.PostForm.Get("DurationSeconds"))
	if v := r.PostForm.Get("Version"); v != "2011-06-15" {
		return &apiError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version %s", call.Action, v)}
	}
	if call.Action != OpAssumeRole && call.Action != OpGetCallerIdentity {
		return &apiError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version 2011-06-15", call.Action)}
	}

	p, aerr, kind := s.admit(r, call)
	switch kind {
	case "refuse":
		return &apiError{http.StatusForbidden, "AccessDenied", fmt.Sprintf("User: %s is not authorized to perform: sts:%s (injected fault)", call.Caller, call.Action)}
	case "5xx":
		if mrandBool() {
			return &apiError{http.StatusInternalServerError, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure."}
		}
		return &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "Service is unavailable. Please try again later."}
	}
	if aerr != nil {
		return &apiError{aerr.status, aerr.code, aerr.msg}
	}

	if call.Action == OpGetCallerIdentity {
		var out getCallerIdentityResponse
		out.Xmlns = stsNamespace
		out.Result.Arn = p.arn
		out.Result.UserID = p.userID
		out.Result.Account = p.account
		out.Metadata.RequestID = w.Header().Get("X-Amzn-RequestId")
		writeXML(w, http.StatusOK, out)
		return nil
	}
	return s.assumeRole(w, r, p, call)
}

func (s *Server) assumeRole(w http.ResponseWriter, r *http.Request, p *principal, call *Call) *apiError {
	sessionName := r.PostForm.Get("RoleSessionName")
	if call.RoleArn == "" || sessionName == "" {
		return &apiError{http.StatusBadRequest, "ValidationError", "1 validation error detected: RoleArn and RoleSessionName are required"}
	}
	duration := 3600
	if r.PostForm.Has("DurationSeconds") {
		duration = call.DurationSeconds
	}
	switch {
	case duration < 900:
		return &apiError{http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900", duration)}
	case duration > 43200:
		return &apiError{http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200", duration)}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	denied := &apiError{http.StatusForbidden, "AccessDenied", fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", p.arn, call.RoleArn)}
	role, ok := s.roles[call.RoleArn]
	if !ok {
		return denied
	}
	if len(role.TrustedPrincipals) > 0 &&
		!slices.Contains(role.TrustedPrincipals, p.akid) &&
		!slices.Contains(role.TrustedPrincipals, p.arn) &&
		(p.role == "" || !slices.Contains(role.TrustedPrincipals, p.role)) {
		return denied
	}
	if role.ExternalID != "" && call.ExternalID != role.ExternalID {
		return denied
	}
	if p.isSession() && duration > 3600 {
		return &apiError{http.StatusBadRequest, "ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."}
	}
	maxSession := role.MaxSessionDuration
	if maxSession <= 0 {
		maxSession = time.Hour
	}
	if time.Duration(duration)*time.Second > maxSession {
		return &apiError{http.StatusBadRequest, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."}
	}

	lifetime := time.Duration(duration) * time.Second
	if role.CredentialLifetime > 0 {
		lifetime = role.CredentialLifetime
	}
	account, roleName := parseRoleARN(role.ARN)
	roleID := "AROA" + randString(17, upper)
	sess := &principal{
		akid:    "ASIA" + randString(16, upper),
		arn:     fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", account, roleName, sessionName),
		userID:  roleID + ":" + sessionName,
		account: account,
		role:    role.ARN,
		token:   randString(356, base64),
		expires: s.now().Add(lifetime).UTC().Truncate(time.Second),
	}
	s.sessions[sess.akid] = sess

	var out assumeRoleResponse
	out.Xmlns = stsNamespace
	out.Result.Credentials = stsCredentials{
		AccessKeyID:     sess.akid,
		SecretAccessKey: randString(40, base64),
		SessionToken:    sess.token,
		Expiration:      sess.expires.Format(time.RFC3339),
	}
	out.Result.AssumedRoleUser = assumedRoleUser{Arn: sess.arn, AssumedRoleID: sess.userID}
	out.Metadata.RequestID = w.Header().Get("X-Amzn-RequestId")
	writeXML(w, http.StatusOK, out)
	return nil
}

// parseRoleARN splits arn:aws:iam::<account>:role/<path/><name>.
func parseRoleARN(arn string) (account, name string) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 {
		account = parts[4]
		res := parts[5]
		name = res[strings.LastIndex(res, "/")+1:]
	}
	if account == "" {
		account = DefaultAccount
	}
	return account, name
}
