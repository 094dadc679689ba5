package bot

import (
	"testing"
	"time"
)

func TestLocationLoadsEachZoneOnce(t *testing.T) {
	fresh, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no zone data on this host:", err)
	}
	a := location("Europe/Paris", 3600)
	b := location("Europe/Paris", 3600)
	if a.String() != "Europe/Paris" || a != b {
		t.Fatalf("location(Europe/Paris) = %v then %v (%p, %p), want the same loaded zone", a, b, a, b)
	}
	// The same instant in the cached zone and in a fresh load agree.
	when := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	if got, want := when.In(a).Format(time.RFC3339), when.In(fresh).Format(time.RFC3339); got != want {
		t.Fatalf("cached zone gives %s, fresh load %s", got, want)
	}
	// An unknown name (cached as unknown) still falls back to its offset.
	for range 2 {
		if loc := location("Nowhere/Atlantis", -7200); loc.String() != "Nowhere/Atlantis" || when.In(loc).Format("-07:00") != "-02:00" {
			t.Fatalf("location(unknown) = %v, want a fixed zone at -02:00", loc)
		}
	}
}
