package okta

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/okta/okta-sdk-golang/v2/okta"
)

// The SDK gives up on 429 with the plain error "too many requests" and a
// nil *Response; without a status from the transport that is still a
// rate limit.
func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		resp   *okta.Response
		err    error
		status int // seen by the transport
		want   kind
	}{
		{"too many requests, nil response, no status", nil, errors.New("too many requests"), 0, kindRate},
		{"too many requests, nil response", nil, errors.New("too many requests"), 429, kindRate},
		{"okta E0000047", nil, &okta.Error{ErrorCode: "E0000047"}, 0, kindRate},
		{"invalid token", nil, &okta.Error{ErrorCode: "E0000011", ErrorSummary: "Invalid token provided"}, 401, kindAuth},
		{"not found", nil, &okta.Error{ErrorCode: "E0000007"}, 404, kindNotFound},
		{"forbidden", nil, &okta.Error{ErrorCode: "E0000006"}, 403, kindForbidden},
		{"server error", nil, &okta.Error{ErrorCode: "E0000009"}, 503, kindUnavailable},
		{"timeout", nil, &url.Error{Op: "Get", URL: "http://x", Err: context.DeadlineExceeded}, 0, kindUnavailable},
		{"connection closed", nil, &url.Error{Op: "Put", URL: "http://x", Err: fmt.Errorf("%w: EOF", errConnClosed)}, 0, kindUnavailable},
		{"bad request", nil, &okta.Error{ErrorCode: "E0000001"}, 400, kindOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.resp, tt.err, &trace{status: tt.status})
			if got.kind != tt.want {
				t.Errorf("kind = %v, want %v (%s)", got.kind, tt.want, got)
			}
		})
	}
}
