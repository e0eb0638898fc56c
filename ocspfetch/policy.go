package ocspfetch

import (
	"time"
)

// Policy holds the refresh policy's settings. The zero Policy uses the defaults documented on each field.
type Policy struct {
	// Margin is the least time before NextUpdate at which a refresh is scheduled. Zero means 1 h; it never
	// exceeds a quarter of the validity window.
	Margin time.Duration
	// NoNextUpdateTTL is how long a response without NextUpdate is valid after its ThisUpdate. Zero means 1 h.
	NoNextUpdateTTL time.Duration
	// Jitter is the fraction by which refresh times are spread, either way. Zero means 0.1 (±10%); negative
	// disables jitter.
	Jitter float64
	// BackoffMin and BackoffMax bound the retry delay after failures while a valid response is held. Zero
	// means 1 min and 1 h.
	BackoffMin, BackoffMax time.Duration
	// BackoffUnstapledMin and BackoffUnstapled bound it when no valid response is held, so that nothing is
	// stapled until the next try: a responder back from an outage is asked again within seconds to a couple
	// of minutes, not an hour. Zero means 10 s and 2 min; neither exceeds BackoffMax.
	BackoffUnstapledMin, BackoffUnstapled time.Duration
}

func (p Policy) margin() time.Duration     { return orDefault(p.Margin, time.Hour) }
func (p Policy) ttl() time.Duration        { return orDefault(p.NoNextUpdateTTL, time.Hour) }
func (p Policy) backoffMin() time.Duration { return orDefault(p.BackoffMin, time.Minute) }
func (p Policy) backoffMax() time.Duration { return orDefault(p.BackoffMax, time.Hour) }
func (p Policy) backoffUnstapled() time.Duration {
	return min(orDefault(p.BackoffUnstapled, 2*time.Minute), p.backoffMax())
}
func (p Policy) backoffUnstapledMin() time.Duration {
	return min(orDefault(p.BackoffUnstapledMin, 10*time.Second), p.backoffUnstapled())
}

// TTL returns how long a response without NextUpdate stays valid (NoNextUpdateTTL or its default).
func (p Policy) TTL() time.Duration { return p.ttl() }

func (p Policy) jitter() float64 {
	switch {
	case p.Jitter < 0:
		return 0
	case p.Jitter == 0:
		return 0.1
	}
	return p.Jitter
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// RefreshAt returns when to fetch a new response for one that was just accepted at now: the midpoint of
// [ThisUpdate, Expiry], never after Expiry minus the margin, spread by ±Jitter of the time to wait. A
// responder's Cache-Control max-age (RFC 5019 §6.1) may make it earlier, never later: Boulder-style headers
// give a max-age up to nextUpdate, which would leave less room for an outage than the midpoint; a max-age
// under BackoffMin is taken as BackoffMin, so a responder that says "no-cache" is not asked in a loop.
// rnd returns a uniform number in [0, 1); nil means no jitter. The result is never before now.
func (p Policy) RefreshAt(r *Response, now time.Time, rnd func() float64) time.Time {
	expiry := r.Expiry(p.ttl())
	window := expiry.Sub(r.ThisUpdate)
	at := r.ThisUpdate.Add(window / 2)
	if r.HTTP.HasMaxAge {
		if fresh := now.Add(max(r.HTTP.MaxAge, p.backoffMin())); fresh.Before(at) {
			at = fresh
		}
	}
	margin := min(p.margin(), window/4)
	latest := expiry.Add(-margin)
	if at.After(latest) {
		at = latest
	}
	if wait := at.Sub(now); wait > 0 && rnd != nil {
		at = now.Add(p.spread(wait, rnd))
		if at.After(latest) {
			at = latest
		}
	}
	if at.Before(now) {
		return now
	}
	return at
}

// Backoff returns when to retry after the failures-th consecutive failure (1 for the first). With a valid
// response held (validUntil, its expiry, after now) the delay is BackoffMin doubling up to BackoffMax, and
// never more than a quarter of the time that response has left (nor less than BackoffUnstapledMin), so the
// retries come closer as its expiry nears; with none held (validUntil zero or past) it is BackoffUnstapledMin
// doubling up to BackoffUnstapled. Either is spread by ±Jitter. A responder's Retry-After (zero when absent)
// postpones the retry, but not past that quarter of what the held response has left.
func (p Policy) Backoff(failures int, now, validUntil time.Time, retryAfter time.Duration, rnd func() float64) time.Time {
	first, limit := p.backoffMin(), p.backoffMax()
	held := validUntil.After(now)
	if !held {
		first, limit = p.backoffUnstapledMin(), p.backoffUnstapled()
	}
	d := min(first, limit)
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	d = max(p.spread(min(d, limit), rnd), retryAfter)
	if held { // closer as the expiry nears, but not closer than the first delay with nothing held
		d = min(d, max(validUntil.Sub(now)/4, p.backoffUnstapledMin()))
	}
	return now.Add(max(d, 0))
}

// Idle returns when to look again at a certificate with nothing to ask (no responder URL): BackoffMax,
// spread by ±Jitter.
func (p Policy) Idle(now time.Time, rnd func() float64) time.Time {
	return now.Add(p.spread(p.backoffMax(), rnd))
}

// spread moves d by ±Jitter of itself; rnd returns a uniform number in [0, 1), nil means no jitter.
func (p Policy) spread(d time.Duration, rnd func() float64) time.Duration {
	if rnd == nil {
		return d
	}
	return d + time.Duration(float64(d)*p.jitter()*(2*rnd()-1))
}
