package ocspfetch_test

import (
	"testing"
	"time"

	"staple/ocspfetch"
)

func fixed(v float64) func() float64 { return func() float64 { return v } }

func TestRefreshAt(t *testing.T) {
	e := now
	h := time.Hour
	resp := func(this, next time.Time, maxAge time.Duration) *ocspfetch.Response {
		r := &ocspfetch.Response{ThisUpdate: this, NextUpdate: next}
		if maxAge > 0 {
			r.HTTP.MaxAge, r.HTTP.HasMaxAge = maxAge, true
		}
		return r
	}
	tests := []struct {
		name string
		p    ocspfetch.Policy
		r    *ocspfetch.Response
		rnd  func() float64
		want time.Time
	}{
		{"midpoint of a day", ocspfetch.Policy{}, resp(e.Add(-h), e.Add(23*h), 0), nil, e.Add(11 * h)},
		{"midpoint of a week (BR)", ocspfetch.Policy{}, resp(e, e.Add(7*24*h), 0), nil, e.Add(84 * h)},
		{"max-age later than the midpoint changes nothing", ocspfetch.Policy{}, resp(e.Add(-h), e.Add(23*h), 15*h), nil, e.Add(11 * h)},
		{"max-age earlier than the midpoint", ocspfetch.Policy{}, resp(e.Add(-h), e.Add(23*h), h), nil, e.Add(h)},
		{"max-age under BackoffMin counts as BackoffMin", ocspfetch.Policy{}, resp(e.Add(-h), e.Add(23*h), time.Second), nil, e.Add(time.Minute)},
		{"Boulder-style max-age up to nextUpdate: the midpoint", ocspfetch.Policy{}, resp(e.Add(-h), e.Add(23*h), 23*h), nil, e.Add(11 * h)},
		{"custom margin caps a wide jitter", ocspfetch.Policy{Margin: 3 * h, Jitter: 0.9}, resp(e.Add(-h), e.Add(23*h), 0), fixed(0.999), e.Add(20 * h)},
		{"margin at most a quarter of the window", ocspfetch.Policy{}, resp(e.Add(-90*time.Minute), e.Add(30*time.Minute), 0), nil, e},
		{"midpoint before the margin", ocspfetch.Policy{}, resp(e, e.Add(2*h), 5*h), nil, e.Add(h)},
		{"past the midpoint already: now", ocspfetch.Policy{}, resp(e.Add(-20*h), e.Add(4*h), 0), nil, e},
		{"expired: now", ocspfetch.Policy{}, resp(e.Add(-48*h), e.Add(-h), 0), nil, e},
		{"no nextUpdate: midpoint of the TTL", ocspfetch.Policy{}, resp(e.Add(-10*time.Minute), time.Time{}, 0), nil, e.Add(20 * time.Minute)},
		{"no nextUpdate, custom TTL", ocspfetch.Policy{NoNextUpdateTTL: 4 * h}, resp(e, time.Time{}, 0), nil, e.Add(2 * h)},
		{"no nextUpdate, max-age earlier than the TTL's midpoint", ocspfetch.Policy{}, resp(e, time.Time{}, 10*time.Minute), nil, e.Add(10 * time.Minute)},
		{"jitter low end", ocspfetch.Policy{}, resp(e.Add(-h), e.Add(23*h), 0), fixed(0), e.Add(11*h - 66*time.Minute)},
		{"jitter middle", ocspfetch.Policy{}, resp(e.Add(-h), e.Add(23*h), 0), fixed(0.5), e.Add(11 * h)},
		{"jitter 20%", ocspfetch.Policy{Jitter: 0.2}, resp(e.Add(-h), e.Add(23*h), 0), fixed(0), e.Add(11*h - 132*time.Minute)},
		{"jitter disabled", ocspfetch.Policy{Jitter: -1}, resp(e.Add(-h), e.Add(23*h), 0), fixed(0), e.Add(11 * h)},
		{"jitter never past the margin", ocspfetch.Policy{Jitter: 0.9, Margin: 2 * h}, resp(e.Add(-h), e.Add(5*h), 0), fixed(0.999), e.Add(3*h + 30*time.Minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.RefreshAt(tc.r, e, tc.rnd); !got.Equal(tc.want) {
				t.Errorf("RefreshAt = %v, want %v", got.Sub(e), tc.want.Sub(e))
			}
		})
	}
}

// Whatever the random source says, the refresh time stays within ±10% of the wait, before the margin and
// not before now.
func TestRefreshAtJitterBounds(t *testing.T) {
	r := &ocspfetch.Response{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(23 * time.Hour)}
	p := ocspfetch.Policy{}
	base := p.RefreshAt(r, now, nil)
	wait := base.Sub(now)
	lo, hi := base.Add(-wait/10), base.Add(wait/10)
	for i := range 1000 {
		v := float64(i) / 1000
		got := p.RefreshAt(r, now, fixed(v))
		if got.Before(lo) || got.After(hi) || got.After(r.NextUpdate.Add(-time.Hour)) {
			t.Fatalf("rnd %v: %v outside [%v, %v]", v, got.Sub(now), lo.Sub(now), hi.Sub(now))
		}
	}
}

func TestBackoff(t *testing.T) {
	m := time.Minute
	held := now.Add(24 * time.Hour) // the expiry of a response held, far enough not to shorten anything
	tests := []struct {
		name       string
		p          ocspfetch.Policy
		failures   int
		validUntil time.Time
		retryAfter time.Duration
		rnd        func() float64
		want       time.Duration
	}{
		{"first failure", ocspfetch.Policy{}, 1, held, 0, nil, m},
		{"second doubles", ocspfetch.Policy{}, 2, held, 0, nil, 2 * m},
		{"sixth", ocspfetch.Policy{}, 6, held, 0, nil, 32 * m},
		{"capped at an hour", ocspfetch.Policy{}, 7, held, 0, nil, 60 * m},
		{"many failures stay capped", ocspfetch.Policy{}, 1000, held, 0, nil, 60 * m},
		{"zero failures counts as the first", ocspfetch.Policy{}, 0, held, 0, nil, m},
		{"custom bounds", ocspfetch.Policy{BackoffMin: 10 * time.Second, BackoffMax: 30 * time.Second}, 3, held, 0, nil, 30 * time.Second},
		{"a quarter of what the held response has left", ocspfetch.Policy{}, 7, now.Add(20 * m), 0, nil, 5 * m},
		{"closer as the held response nears its expiry", ocspfetch.Policy{}, 2, now.Add(4 * m), 0, nil, m},
		{"not closer than the first delay with nothing held", ocspfetch.Policy{}, 2, now.Add(8 * time.Second), 0, nil, 10 * time.Second},
		{"nothing held: first failure in seconds", ocspfetch.Policy{}, 1, time.Time{}, 0, nil, 10 * time.Second},
		{"nothing held: doubles", ocspfetch.Policy{}, 3, time.Time{}, 0, nil, 40 * time.Second},
		{"nothing held: capped at 2 minutes", ocspfetch.Policy{}, 1000, time.Time{}, 0, nil, 2 * m},
		{"an expired held response: capped at 2 minutes", ocspfetch.Policy{}, 7, now.Add(-m), 0, nil, 2 * m},
		{"nothing held: custom bounds", ocspfetch.Policy{BackoffUnstapledMin: 30 * time.Second, BackoffUnstapled: 90 * time.Second}, 4, time.Time{}, 0, nil, 90 * time.Second},
		{"nothing held: never past BackoffMax", ocspfetch.Policy{BackoffMax: time.Minute, BackoffUnstapled: 10 * m}, 9, time.Time{}, 0, nil, m},
		{"nothing held: the first delay not above the cap", ocspfetch.Policy{BackoffUnstapledMin: 20 * m}, 1, time.Time{}, 0, nil, 2 * m},
		{"Retry-After postpones", ocspfetch.Policy{}, 1, time.Time{}, 10 * m, nil, 10 * m},
		{"Retry-After shorter than the backoff", ocspfetch.Policy{}, 5, held, m, nil, 16 * m},
		{"Retry-After not past a quarter of what the held response has left", ocspfetch.Policy{}, 1, now.Add(12 * m), 10 * m, nil, 3 * m},
		{"jitter low end", ocspfetch.Policy{}, 2, time.Time{}, 0, fixed(0), 18 * time.Second},
		{"jitter high end", ocspfetch.Policy{}, 2, time.Time{}, 0, fixed(1), 22 * time.Second},
		{"jitter disabled", ocspfetch.Policy{Jitter: -1}, 2, time.Time{}, 0, fixed(0), 20 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.p.Backoff(tc.failures, now, tc.validUntil, tc.retryAfter, tc.rnd).Sub(now)
			if got != tc.want {
				t.Errorf("Backoff = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExpiryAndTTL(t *testing.T) {
	r := &ocspfetch.Response{ThisUpdate: now}
	if got := r.Expiry(ocspfetch.Policy{}.TTL()); !got.Equal(now.Add(time.Hour)) {
		t.Errorf("Expiry without nextUpdate = %v", got)
	}
	if r.ValidAt(now.Add(time.Hour), time.Hour) || !r.ValidAt(now.Add(59*time.Minute), time.Hour) {
		t.Error("ValidAt around thisUpdate + TTL")
	}
	r.NextUpdate = now.Add(24 * time.Hour)
	if got := r.Expiry(time.Hour); !got.Equal(r.NextUpdate) {
		t.Errorf("Expiry = %v", got)
	}
}
