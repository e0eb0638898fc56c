package ocspwire

import (
	"testing"
	"time"
)

func TestStampOrder(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 2, 48, 1, 0, time.UTC)
	// In order, oldest first: Before and Key must agree on every pair.
	stamps := []Stamp{
		{t0.Add(-time.Second), Revoked},
		{t0, Unknown},
		{t0, Good},
		{t0, Revoked},
		{t0.Add(time.Nanosecond), Good},
		{t0.Add(time.Second), Good},
	}
	for i, a := range stamps {
		for j, b := range stamps {
			if got, want := a.Before(b), i < j; got != want {
				t.Errorf("%v.Before(%v) = %v, want %v", a, b, got, want)
			}
			if got, want := a.Key() < b.Key(), i < j; got != want {
				t.Errorf("%q < %q = %v, want %v", a.Key(), b.Key(), got, want)
			}
		}
	}
	// The zone does not matter.
	if a, b := (Stamp{t0, Good}), (Stamp{t0.In(time.FixedZone("x", 3600)), Good}); a.Key() != b.Key() || a.Before(b) || b.Before(a) {
		t.Errorf("zones order differently: %q %q", a.Key(), b.Key())
	}
}
