package bot

import (
	"errors"
	"strings"
	"testing"
)

// usageOnly is every static usage text, which may legitimately hold "<".
var usageOnly = func() string {
	var b strings.Builder
	for _, s := range []string{"", "req", "req x", "req x 1h", "nope"} {
		if _, err := parseCommand(s, "/sym"); err != nil {
			b.WriteString(err.Error())
		}
	}
	return b.String()
}()

// FuzzParseCommand: whatever people type after /sym, the parser answers
// with a command or a UsageError whose words are escaped (it may echo what
// was typed back into Slack).
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"", "help", "req", "req admin 1h fix prod", "req prod/admin 1d  two  spaces", "list", "whoami",
		"req <!channel> 1h x", "req admin <@U1> y", "bogus <http://evil|ok>", "REQ Admin 15M Upper", "req admin 1h\nmulti\nline"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := parseCommand(text, "/sym")
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("parseCommand(%q) error %T %v, want *UsageError", text, err, err)
			}
			// Our own usage text may show `<target>`; what was typed must
			// never become a mention, a channel ping or a link.
			for _, seq := range []string{"<!", "<@", "<#", "<http", "<mailto"} {
				if strings.Contains(ue.Problem, seq) && !strings.Contains(usageOnly, seq) {
					t.Fatalf("usage error for %q contains %q: %q", text, seq, ue.Problem)
				}
			}
			return
		}
		if c.Kind == cmdRequest && (c.Target == "" || c.Duration == "") {
			t.Fatalf("parseCommand(%q) = request without target or duration: %+v", text, c)
		}
	})
}
