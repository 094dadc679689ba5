package symbot_test

import (
	"testing"
	"time"

	"github.com/symbot/symbot"
)

// FuzzParseDuration: ParseDuration never panics, and what it accepts
// formats back to the same duration.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"15m", "1h", "1d", "2d12h", "1w", "90s", "", "x", "-1h", "1d-1h", "99999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := symbot.ParseDuration(s)
		if err != nil || d <= 0 || d%time.Second != 0 || d > 100*365*24*time.Hour {
			return
		}
		back, err := symbot.ParseDuration(symbot.FormatDuration(d))
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %v; FormatDuration gives %q which parses to %v, %v", s, d, symbot.FormatDuration(d), back, err)
		}
	})
}
