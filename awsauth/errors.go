// Errors: which step of the chain failed (base credentials, a role, the
// secret) and why, in words that say what to fix, mapped to the symbot
// errors.

package awsauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/symbot/symbot"
)

// Step names one stage of the credential chain, so a preflight can say
// which one failed.
type Step string

// Steps, in the order they run.
const (
	StepBaseCredentials Step = "base credentials"
	StepAssumeRole      Step = "assume role"
	StepCallerIdentity  Step = "caller identity"
	StepReadSecret      Step = "read secret"
	StepParseSecret     Step = "parse secret"
)

// Errors of this package, besides the symbot ones (ErrAccessDenied,
// ErrSecretNotFound, ErrUnavailable, ErrRateLimited) that Error also wraps.
var (
	// ErrNoCredentials: the default chain found no base credentials.
	ErrNoCredentials = errors.New("no AWS credentials found")
	// ErrSecretFormat: the secret exists but does not hold a usable token.
	ErrSecretFormat = errors.New("secret does not hold a usable token")
	// ErrInvalidConfig: Config is not usable; see ConfigError.
	ErrInvalidConfig = errors.New("invalid AWS configuration")
)

// Error is a failure of one step of the chain. Its text says what failed
// and what to check; it never holds the secret's value.
type Error struct {
	Step     Step
	Role     string // StepAssumeRole: the role ARN
	SecretID string // StepReadSecret, StepParseSecret
	Region   string
	// Kind is the sentinel the error matches with errors.Is, e.g.
	// symbot.ErrAccessDenied; nil if none fits.
	Kind error
	msg  string
	Err  error // the underlying SDK error, if any
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.msg
	}
	return e.msg + ": " + e.Err.Error()
}

// Unwrap returns Kind and Err.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// ConfigError is a Config field with a bad value. It matches ErrInvalidConfig.
type ConfigError struct {
	Field   string // e.g. "session_duration"
	Problem string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("aws config %s: %s", e.Field, e.Problem)
}

// Is makes ConfigError match ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// earlier returns the *Error of an earlier step found inside err, so the
// root cause of a chained failure is reported rather than its echo.
func earlier(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

const noCredsHint = "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run on an instance/pod with a role"

// transient classifies errors that retrying later can fix.
func transient(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if _, ok := retry.DefaultThrottleErrorCodes[ae.ErrorCode()]; ok {
			return symbot.ErrRateLimited
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return symbot.ErrUnavailable
	}
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusTooManyRequests {
		return symbot.ErrRateLimited
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, context.DeadlineExceeded) {
		return symbot.ErrUnavailable
	}
	var me *retry.MaxAttemptsError
	if errors.As(err, &me) {
		return symbot.ErrUnavailable
	}
	return nil
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func assumeRoleError(arn, region string, err error) error {
	if e, ok := earlier(err); ok {
		return e
	}
	e := &Error{Step: StepAssumeRole, Role: arn, Region: region, Err: err}
	switch code := apiCode(err); code {
	case "AccessDenied":
		e.Kind = symbot.ErrAccessDenied
		e.msg = "assume role " + arn + " denied: check the role's trust policy allows the base principal and that aws.external_id matches the sts:ExternalId condition"
	case "ValidationError":
		e.Kind = ErrInvalidConfig
		e.msg = "assume role " + arn + " refused the request: check aws.session_duration (at most 1 hour when roles are chained, and at most the role's MaxSessionDuration) and aws.session_name"
	case "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch":
		e.Kind = symbot.ErrAccessDenied
		e.msg = "assume role " + arn + ": the calling credentials were rejected (" + code + "): check they are current and belong to this account's partition"
	case "RegionDisabledException":
		e.msg = "assume role " + arn + ": STS is not activated in region " + region + ": activate it in IAM account settings or use another region"
	default:
		e.Kind = transient(err)
		e.msg = "assume role " + arn
	}
	return e
}

func callerIdentityError(region string, err error) error {
	if e, ok := earlier(err); ok {
		return e
	}
	e := &Error{Step: StepCallerIdentity, Region: region, Kind: transient(err), Err: err,
		msg: "get caller identity (sts:GetCallerIdentity) in region " + region}
	switch code := apiCode(err); {
	case code == "InvalidClientTokenId" || code == "ExpiredToken" || code == "SignatureDoesNotMatch":
		e.msg += ": the credentials were rejected (" + code + "): check they are current (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and belong to this account's partition"
	case e.Kind == symbot.ErrUnavailable:
		e.msg += ": STS did not answer: check the network path to STS (and AWS_ENDPOINT_URL_STS or AWS_ENDPOINT_URL if set)"
	}
	return e
}

// secretError says what failed reading secret id, which the config key
// setting names, as principal.
func secretError(id, setting, region, principal string, err error) error {
	if e, ok := earlier(err); ok {
		return e
	}
	e := &Error{Step: StepReadSecret, SecretID: id, Region: region, Err: err}
	as := ""
	if principal != "" {
		as = " as " + principal
	}
	var nf *smtypes.ResourceNotFoundException
	var df *smtypes.DecryptionFailure
	switch code := apiCode(err); {
	case errors.As(err, &nf):
		e.Kind = symbot.ErrSecretNotFound
		e.msg = fmt.Sprintf("read secret %q in region %s: secret not found: check the secret name or ARN (%s in symbot.yml) and that the secret lives in region %s", id, region, setting, region)
	case code == "AccessDeniedException" || code == "AccessDenied":
		e.Kind = symbot.ErrAccessDenied
		e.msg = fmt.Sprintf("read secret %q in region %s%s: access denied: check secretsmanager:GetSecretValue on the role's policy and the secret's resource policy/KMS key", id, region, as)
	case errors.As(err, &df):
		e.Kind = symbot.ErrAccessDenied
		e.msg = fmt.Sprintf("read secret %q in region %s%s: decryption failed: check kms:Decrypt on the secret's KMS key for the role", id, region, as)
	case code == "ExpiredTokenException" || code == "UnrecognizedClientException":
		e.Kind = symbot.ErrAccessDenied
		e.msg = fmt.Sprintf("read secret %q in region %s: the role's credentials were rejected (%s): check the machine's clock, and that region %s is enabled for the account", id, region, code, region)
	default:
		e.Kind = transient(err)
		e.msg = fmt.Sprintf("read secret %q in region %s", id, region)
	}
	return e
}
