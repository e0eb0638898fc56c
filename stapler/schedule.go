package stapler

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"staple/certs"
)

// scheduleParser reads five-field cron specs, six-field ones whose first field is seconds, and descriptors.
var scheduleParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a cron spec as staple's configuration takes them: five fields ("*/5 * * * *"), six
// with seconds first ("30 */5 * * * *"), or a descriptor ("@every 30s", "@hourly"). It is the one parser of
// schedules: the sweep, the rotation of ticket keys and the configuration's checks all use it, so a spec is
// accepted everywhere or nowhere.
func ParseSchedule(spec string) (cron.Schedule, error) {
	sched, err := scheduleParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("stapler: %q is not a cron spec (\"@every 30s\", \"*/5 * * * *\"): %w", spec, err)
	}
	return sched, nil
}

// The scheduler. The cron sweep (Config.Sweep) looks at every entry: an idle entry whose next fetch has come
// is queued, a response that has just expired is dropped from the index and reported, and responses whose
// write failed are written again. Besides the sweep, a new entry is queued at once, and a failing entry arms a
// timer for its retry, so that backoff is honoured to the second rather than to the sweep.
//
// Queued entries wait in one FIFO per responder host. dispatchLocked starts fetches while fewer than
// MaxInFlight are running overall and fewer than MaxPerHost against the entry's host; at most MaxInFlight
// fetch goroutines exist, however many entries are due.

// scheduleLocked queues e if its next fetch has come, or arms its retry timer after a failure.
func (s *Stapler) scheduleLocked(e *entry, now time.Time) {
	if !e.fetchable() || e.state != idle || !s.started || s.closed {
		return
	}
	if !e.next.After(now) {
		if s.mayFetchLocked(e, now) {
			s.enqueueLocked(e)
		}
		return
	}
	if e.retries > 0 && !s.cfg.Manual {
		e.stopTimer()
		key := e.key
		e.timer = time.AfterFunc(e.next.Sub(now), func() { s.wake(key) })
	}
}

// wake is a retry timer firing.
func (s *Stapler) wake(key certs.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[key]
	if e == nil {
		return
	}
	e.timer = nil
	s.scheduleLocked(e, s.now())
	s.dispatchLocked()
}

func (s *Stapler) enqueueLocked(e *entry) {
	e.stopTimer()
	e.state = queued
	s.queues[e.host] = append(s.queues[e.host], e)
}

// dispatchLocked starts queued fetches while the limits allow.
func (s *Stapler) dispatchLocked() {
	if !s.started || s.closed {
		return
	}
	for progress := true; progress && s.busy < s.maxTotal; {
		progress = false
		for host, q := range s.queues {
			if s.busy >= s.maxTotal {
				break
			}
			if s.hostBusy[host] >= s.maxPerHost {
				continue
			}
			// Entries removed while queued are dropped here.
			for len(q) > 0 && q[0].removed {
				q = q[1:]
			}
			if len(q) == 0 {
				delete(s.queues, host)
				continue
			}
			e := q[0]
			s.queues[host] = q[1:]
			e.state = fetching
			s.busy++
			s.hostBusy[host]++
			s.metrics.inFlightPeak(s.busy)
			waiters := e.waiters
			e.waiters = nil
			e.again = false
			s.wg.Add(1)
			go s.fetch(e, waiters)
			progress = true
		}
	}
}

// sweep is the cron job.
func (s *Stapler) sweep() {
	now := s.now()
	var events []Event
	backlog := false
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	for _, e := range s.entries {
		if e.resp != nil && !e.resp.ValidAt(now) && !e.expiredSeen {
			e.expiredSeen = true
			s.index.Delete(e.key)
			s.metrics.expired.Add(1)
			events = append(events, s.event(Expired, e, now))
		}
		backlog = backlog || ((e.dirty || e.certDirty) && e.state == idle)
		s.scheduleLocked(e, now)
	}
	s.dispatchLocked()
	s.mu.Unlock()
	s.emit(events)
	if backlog {
		s.persistBacklog()
	}
}
