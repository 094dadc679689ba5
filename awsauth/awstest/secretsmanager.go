package awstest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

type getSecretValueInput struct {
	SecretID     string `json:"SecretId"`
	VersionID    string `json:"VersionId"`
	VersionStage string `json:"VersionStage"`
}

type getSecretValueOutput struct {
	ARN           string   `json:"ARN"`
	CreatedDate   float64  `json:"CreatedDate"`
	Name          string   `json:"Name"`
	SecretBinary  []byte   `json:"SecretBinary,omitempty"` // base64, as on the wire
	SecretString  *string  `json:"SecretString,omitempty"`
	VersionID     string   `json:"VersionId"`
	VersionStages []string `json:"VersionStages"`
}

func (s *Server) serveSecretsManager(w http.ResponseWriter, r *http.Request, target string) {
	call := Call{Service: ServiceSecretsManager, AccessKeyID: callerKey(r), Caller: callerKey(r)}
	_, call.Action, _ = strings.Cut(target, ".")
	out, e := s.secretsManager(r, &call)
	if e != nil {
		call.Err = e.code
		b, _ := json.Marshal(map[string]string{"__type": e.code, "Message": e.message})
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(e.status)
		_, _ = w.Write(b)
	} else {
		b, err := json.Marshal(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write(b)
	}
	s.record(call)
}

func (s *Server) secretsManager(r *http.Request, call *Call) (*getSecretValueOutput, *apiError) {
	if !strings.HasPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.") || call.Action != OpGetSecretValue {
		return nil, &apiError{http.StatusBadRequest, "UnknownOperationException", "The operation " + r.Header.Get("X-Amz-Target") + " is not supported by this simulator"}
	}
	var in getSecretValueInput
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		return nil, &apiError{http.StatusBadRequest, "SerializationException", "cannot decode the request body"}
	}
	call.SecretID = in.SecretID

	p, aerr, kind := s.admit(r, call)
	switch kind {
	case "refuse":
		return nil, &apiError{http.StatusBadRequest, "AccessDeniedException", fmt.Sprintf("User: %s is not authorized to perform: secretsmanager:GetSecretValue on resource: %s (injected fault)", call.Caller, in.SecretID)}
	case "5xx":
		if mrandBool() {
			return nil, &apiError{http.StatusInternalServerError, "InternalServiceError", "An error occurred on the server side."}
		}
		return nil, &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "Service is unavailable. Please try again later."}
	}
	if aerr != nil {
		code := map[string]string{
			"MissingAuthenticationToken": "MissingAuthenticationTokenException",
			"InvalidClientTokenId":       "UnrecognizedClientException",
			"ExpiredToken":               "ExpiredTokenException",
		}[aerr.code]
		return nil, &apiError{http.StatusBadRequest, code, aerr.msg}
	}
	if in.SecretID == "" {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterException", "SecretId is required"}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.lookupSecret(in.SecretID)
	name := in.SecretID
	if sec != nil {
		name = sec.name
	}
	if !s.allowedLocked(p, name, "*") {
		return nil, &apiError{http.StatusBadRequest, "AccessDeniedException", fmt.Sprintf("User: %s is not authorized to perform: secretsmanager:GetSecretValue on resource: %s because no identity-based policy allows the secretsmanager:GetSecretValue action", p.arn, in.SecretID)}
	}
	if sec == nil || len(sec.versions) == 0 {
		return nil, &apiError{http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret."}
	}
	v := sec.versions[len(sec.versions)-1]
	stage := "AWSCURRENT"
	if in.VersionID != "" || (in.VersionStage != "" && in.VersionStage != "AWSCURRENT") {
		found := false
		for i, vv := range sec.versions {
			if vv.id == in.VersionID || (in.VersionStage == "AWSPREVIOUS" && i == len(sec.versions)-2) {
				v, found = vv, true
				if i != len(sec.versions)-1 {
					stage = "AWSPREVIOUS"
				}
			}
		}
		if !found {
			return nil, &apiError{http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId or VersionStage."}
		}
	}
	return &getSecretValueOutput{
		ARN:           sec.arn,
		CreatedDate:   float64(v.created.UnixMilli()) / 1000,
		Name:          sec.name,
		SecretBinary:  v.bin,
		SecretString:  v.str,
		VersionID:     v.id,
		VersionStages: []string{stage},
	}, nil
}

// lookupSecret finds a secret by name, full ARN, or ARN without the random
// six-character suffix, as Secrets Manager does.
func (s *Server) lookupSecret(id string) *secret {
	if sec := s.secrets[id]; sec != nil && !strings.HasPrefix(id, "arn:") {
		return sec
	}
	if !strings.HasPrefix(id, "arn:") {
		return nil
	}
	for _, sec := range s.secrets {
		if sec.arn == id || sec.arn[:len(sec.arn)-7] == id {
			return sec
		}
	}
	return nil
}

// allowedLocked reports whether p may use resource (a secret name, or
// "s3:<bucket>"), or everything that wildcard stands for ("*" for every
// secret, "s3:*" for every bucket): allowed to its role (any session of
// it) or to its access key id. s.mu must be held.
func (s *Server) allowedLocked(p *principal, resource, wildcard string) bool {
	for _, who := range []string{p.role, p.akid} {
		if who == "" {
			continue
		}
		if s.allow[who][resource] || s.allow[who][wildcard] {
			return true
		}
	}
	return false
}
