package stapler

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"staple/certs"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// EventKind says what happened to a certificate's staple.
type EventKind int

const (
	// StatusChanged: a verified response with a new status was accepted (including the first one). A revoked
	// status is logged at error level.
	StatusChanged EventKind = iota + 1
	// FetchFailed: a fetch failed; the response held, if any, is kept.
	FetchFailed
	// Persisted: a response reached storage.
	Persisted
	// PersistFailed: a response did not reach storage. It is served all the same, and the write is retried
	// at every sweep.
	PersistFailed
	// Expired: the response held reached its expiry and is no longer stapled.
	Expired
	// Updated: a new response was accepted (from a fetch or Import), whatever its status; it comes before the
	// StatusChanged of the same response. Exporters write files on it.
	Updated
)

func (k EventKind) String() string {
	switch k {
	case StatusChanged:
		return "status_changed"
	case FetchFailed:
		return "fetch_failed"
	case Persisted:
		return "persisted"
	case PersistFailed:
		return "persist_failed"
	case Expired:
		return "expired"
	case Updated:
		return "updated"
	}
	return "invalid"
}

// Event is something that happened to one certificate's staple, for Config.OnEvent.
type Event struct {
	Kind EventKind
	Key  certs.Key
	Time time.Time
	// Status is the status of the response held after the event (meaningless when HasResponse is false).
	Status      ocspwire.Status
	HasResponse bool
	// Previous is the status before a StatusChanged, when there was one (HadPrevious).
	Previous    ocspwire.Status
	HadPrevious bool
	// ThisUpdate and NextUpdate are those of the response held.
	ThisUpdate, NextUpdate time.Time
	MustStaple             bool
	// Err and Reason (an ocspfetch.Reason label) describe a FetchFailed or PersistFailed.
	Err    error
	Reason string
	// URL is the responder involved, when one was.
	URL string
	// Latency is how long the fetch behind a FetchFailed or an Updated took (zero for an import).
	Latency time.Duration
}

// event returns an Event about e with the fields every kind shares.
func (s *Stapler) event(kind EventKind, e *entry, now time.Time) Event {
	ev := Event{Kind: kind, Key: e.key, Time: now, MustStaple: e.mustStaple}
	if e.resp != nil {
		ev.Status, ev.HasResponse = e.resp.Status, true
		ev.ThisUpdate, ev.NextUpdate = e.resp.ThisUpdate, e.resp.NextUpdate
	}
	return ev
}

// emit logs events and hands them to the hook. It is called with no lock held.
func (s *Stapler) emit(events []Event) {
	for _, ev := range events {
		s.logEvent(ev)
		if s.cfg.OnEvent != nil {
			s.cfg.OnEvent(ev)
		}
	}
}

func (s *Stapler) logEvent(ev Event) {
	var le *zerolog.Event
	switch ev.Kind {
	case StatusChanged:
		switch ev.Status {
		case ocspwire.Revoked:
			le = s.log.Error()
		case ocspwire.Unknown:
			le = s.log.Warn()
		default:
			le = s.log.Info()
		}
		if ev.HadPrevious {
			le = le.Stringer("previous", ev.Previous)
		}
	case FetchFailed:
		le = s.log.Warn()
		if ev.MustStaple && !(ev.HasResponse && ev.Time.Before(ev.NextUpdate)) {
			le = s.log.Error()
		}
	case Persisted, Updated:
		le = s.log.Debug()
	case PersistFailed, Expired:
		le = s.log.Error()
	default:
		return
	}
	le = le.Str("event", ev.Kind.String()).Str("key", ev.Key.String()).Bool("must_staple", ev.MustStaple)
	if ev.HasResponse {
		le = le.Stringer("status", ev.Status).Time("this_update", ev.ThisUpdate).Time("next_update", ev.NextUpdate)
	}
	if ev.URL != "" {
		le = le.Str("url", ocspfetch.RedactURL(ev.URL))
	}
	if ev.Reason != "" {
		le = le.Str("reason", ev.Reason)
	}
	if ev.Err != nil {
		le = le.Err(ev.Err)
	}
	le.Msg(eventMessages[ev.Kind])
}

var eventMessages = map[EventKind]string{
	StatusChanged: "certificate status changed",
	FetchFailed:   "OCSP fetch failed; keeping the response held",
	Persisted:     "response stored",
	PersistFailed: "response not stored; serving it from memory and retrying the write",
	Expired:       "OCSP response expired; no longer stapled",
	Updated:       "new OCSP response",
}

// counters are the stapler's monotonic counters, updated without locks.
type counters struct {
	fetches         atomic.Uint64
	good            atomic.Uint64
	revoked         atomic.Uint64
	unknown         atomic.Uint64
	revocations     atomic.Uint64
	expired         atomic.Uint64
	persisted       atomic.Uint64
	persistFailures atomic.Uint64
	historyFailures atomic.Uint64
	offered         atomic.Uint64
	peak            atomic.Int64

	mu       sync.Mutex
	failures map[string]uint64
}

func (c *counters) accepted(st ocspwire.Status) {
	switch st {
	case ocspwire.Good:
		c.good.Add(1)
	case ocspwire.Revoked:
		c.revoked.Add(1)
	default:
		c.unknown.Add(1)
	}
}

func (c *counters) failed(reason string) {
	c.mu.Lock()
	if c.failures == nil {
		c.failures = map[string]uint64{}
	}
	c.failures[reason]++
	c.mu.Unlock()
}

func (c *counters) inFlightPeak(n int) {
	for {
		p := c.peak.Load()
		if int64(n) <= p || c.peak.CompareAndSwap(p, int64(n)) {
			return
		}
	}
}

// Metrics is a snapshot of the stapler's counters (monotonic, for Prometheus counters) and gauges.
type Metrics struct {
	// Fetches counts fetches finished, whatever their outcome; Failures counts failed ones by reason
	// (ocspfetch.Reason labels, plus "older_response" and "no_certificate").
	Fetches  uint64
	Failures map[string]uint64
	// Good, Revoked and Unknown count responses accepted by status. Revocations counts changes to revoked.
	Good, Revoked, Unknown, Revocations uint64
	// Expirations counts responses that reached their expiry while held.
	Expirations uint64
	// Persisted and PersistFailures count response writes; HistoryFailures counts history writes that failed.
	Persisted, PersistFailures, HistoryFailures uint64
	// Offered counts responses another node of the fleet stored that were taken by Offer.
	Offered uint64

	// Gauges.
	Entries        int // certificates known
	Stapled        int // certificates with a response that is stapled now
	MustStapleBad  int // Must-Staple certificates without one
	InFlight       int // fetches running
	Queued         int // fetches due and waiting for a slot
	PersistBacklog int // certificates whose response (served) or certificate record is not yet at rest
	PeakInFlight   int // the most fetches ever running at once
}

// Metrics returns a snapshot of the counters and gauges.
func (s *Stapler) Metrics() Metrics {
	m := Metrics{
		Fetches: s.metrics.fetches.Load(), Good: s.metrics.good.Load(), Revoked: s.metrics.revoked.Load(),
		Unknown: s.metrics.unknown.Load(), Revocations: s.metrics.revocations.Load(),
		Expirations: s.metrics.expired.Load(), Persisted: s.metrics.persisted.Load(),
		PersistFailures: s.metrics.persistFailures.Load(), HistoryFailures: s.metrics.historyFailures.Load(),
		Offered:      s.metrics.offered.Load(),
		PeakInFlight: int(s.metrics.peak.Load()), Failures: map[string]uint64{},
	}
	s.metrics.mu.Lock()
	for k, v := range s.metrics.failures {
		m.Failures[k] = v
	}
	s.metrics.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	m.Entries, m.InFlight = len(s.entries), s.busy
	for _, q := range s.queues {
		m.Queued += len(q)
	}
	for _, e := range s.entries {
		valid := e.resp != nil && e.resp.ValidAt(now) && s.stapleable(e.resp.Status)
		if valid {
			m.Stapled++
		} else if e.mustStaple {
			m.MustStapleBad++
		}
		if e.dirty || e.certDirty {
			m.PersistBacklog++
		}
	}
	return m
}
