package stapler

import (
	"fmt"
	"maps"

	"staple/cache"
	"staple/certs"
)

// warmStart loads the storage: watched certificates become entries, and every stored response that may be
// stapled now goes into the index in one pass.
func (s *Stapler) warmStart() error {
	st := s.cfg.Storage
	if st == nil {
		return nil
	}
	now := s.now()
	loaded := map[certs.Key]*entry{}
	bad := 0
	err := st.Certs(func(key certs.Key, c cache.Cert, err error) error {
		if err != nil {
			bad++
			s.log.Error().Err(err).Msg("stored certificate skipped")
			return nil
		}
		loaded[key] = &entry{key: key, urls: c.URLs, host: responderHost(c.URLs), mustStaple: c.MustStaple, hasCert: true}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stapler: loading certificates: %w", err)
	}
	err = st.Responses(func(key certs.Key, r cache.Response, err error) error {
		if err != nil {
			bad++
			s.log.Error().Err(err).Msg("stored response skipped")
			return nil
		}
		e := loaded[key]
		if e == nil {
			// A response without a certificate (an import): served until it expires, never fetched.
			e = &entry{key: key}
			loaded[key] = e
		}
		e.resp = &r
		return nil
	})
	if err != nil {
		return fmt.Errorf("stapler: loading responses: %w", err)
	}
	if hw, ok := st.(historyWalker); ok {
		err = hw.Histories(func(key certs.Key, h []cache.Attempt, err error) error {
			if e := loaded[key]; e != nil && err == nil {
				e.restoreFailures(h)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("stapler: loading fetch histories: %w", err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for key, e := range loaded {
		if e.resp != nil && e.resp.ValidAt(now) && !e.resp.RefreshAt.IsZero() {
			e.next = e.resp.RefreshAt
		}
		if e.resp != nil && !e.resp.ValidAt(now) {
			e.expiredSeen = true
		}
		if w := s.entries[key]; w != nil {
			// Watched before Start: keep its certificates, take the stored response.
			if w.resp == nil && e.resp != nil {
				w.resp, w.expiredSeen = e.resp, e.expiredSeen
				if w.next.IsZero() {
					w.next = e.next
				}
			}
			loaded[key] = w
		}
	}
	if len(s.entries) == 0 {
		s.entries = loaded
	} else {
		maps.Copy(s.entries, loaded)
	}
	s.index.PutAll(func(yield func(certs.Key, *Staple) bool) {
		for key, e := range loaded {
			r := e.resp
			if r == nil || !r.ValidAt(now) || !s.stapleable(r.Status) {
				continue
			}
			if !yield(key, &Staple{Raw: r.Raw, Expires: r.Expires, Status: r.Status, ThisUpdate: r.ThisUpdate}) {
				return
			}
		}
	})
	s.log.Info().Int("entries", len(loaded)).Int("stapled", s.index.Len()).Int("skipped", bad).Msg("warm start")
	return nil
}

// historyWalker is a Storage that reads every stored fetch history in one pass (cache.Store does), so that the
// warm start knows which certificates were failing.
type historyWalker interface {
	Histories(fn func(key certs.Key, h []cache.Attempt, err error) error) error
}

// restoreFailures takes from e's stored history what the last process knew: the run of failed attempts at
// its end (the backoff goes on from there) and the last attempt, which listings show whether or not a
// service runs.
func (e *entry) restoreFailures(h []cache.Attempt) {
	if len(h) == 0 {
		return
	}
	last := h[len(h)-1]
	e.lastTry, e.failures = last.Time, 0
	for i := len(h) - 1; i >= 0 && !h[i].OK(); i-- {
		e.failures++
	}
	e.retries = e.failures
	if !last.OK() {
		e.lastErr = &StoredFailure{Reason: last.Reason, Text: last.Error}
	}
}

// StoredFailure is the last failure of a certificate's fetches as its stored history tells it, for a
// certificate not fetched since the stapler started. Its Error is the failure's text as it was recorded.
type StoredFailure struct {
	// Reason is the failure's label (ocspfetch.Reason's, or the stapler's own).
	Reason string
	// Text is the error text, empty when none was recorded.
	Text string
}

func (f *StoredFailure) Error() string { return f.Text }
