package okta_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/symbot/symbot/okta"
)

func TestValidateOrgURL(t *testing.T) {
	tests := []struct {
		url, want string // want "": valid
	}{
		{"https://example.okta.com", ""},
		{"https://example.okta.com/", ""},
		{"http://127.0.0.1:8080", ""},
		{"https://example-admin.okta.com/", "example-admin.okta.com is the admin console, not the org: use https://example.okta.com"},
		{"https://acme-admin.oktapreview.com", "use https://acme.oktapreview.com"},
		{"https://example.okta.com/admin/dashboard", "want only a scheme and host"},
		{"http://example.okta.com", "plain http is allowed only for loopback"},
		{"", "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := okta.ValidateOrgURL(tt.url)
			var fe *okta.FieldError
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case tt.want != "" && (!errors.As(err, &fe) || fe.Field != "org_url" || !strings.Contains(fe.Problem, tt.want)):
				t.Errorf("got %v, want an org_url FieldError containing %q", err, tt.want)
			}
		})
	}
}

func TestValidateGroupID(t *testing.T) {
	for _, ok := range []string{"00g1ab2cd3EF4gh5IJ6k", "00g00000000000000001"} {
		if err := okta.ValidateGroupID(ok); err != nil {
			t.Errorf("ValidateGroupID(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"prod-admin", "00gADMIN", "Everyone", "00u1ab2cd3EF4gh5IJ6k", ""} {
		err := okta.ValidateGroupID(bad)
		if err == nil || !strings.Contains(err.Error(), "Directory > Groups") {
			t.Errorf("ValidateGroupID(%q): got %v, want an error saying where to find the id", bad, err)
		}
	}
}

func TestValidateOverride(t *testing.T) {
	tests := []struct {
		key, login string
		want       string // "": valid; else what the problem must tell to do
	}{
		{"U012AB3CD", "jane@example.com", ""},
		{"Jane@Example.com", "jane", ""},
		{"jane", "jane@example.com", "use the person's Slack member ID"},
		{"U012AB3CD", "", "set it to the person's Okta username"},
		{"", "x", "use a Slack user id"},
	}
	for _, tt := range tests {
		err := okta.ValidateOverride(tt.key, tt.login)
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("ValidateOverride(%q, %q) = %v, want a problem containing %q", tt.key, tt.login, err, tt.want)
		}
	}
}
