package stapler

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/ocspwire"
)

// Info describes one certificate's staple, for the status page, the admin API and the CLI.
type Info struct {
	Key certs.Key
	// Names are the leaf's DNS names and IP addresses (nil when its certificate is not known).
	Names      []string
	URLs       []string
	MustStaple bool
	// Watched is set while Watch references the certificate; an entry restored from storage and not watched
	// again is still kept fresh. Fetchable is false for a stored response without its certificate.
	Watched, Fetchable bool

	// HasResponse is set when a verified response is held; the fields below it describe that response.
	HasResponse            bool
	Status                 ocspwire.Status
	ThisUpdate, NextUpdate time.Time
	Expires, Fetched       time.Time
	URL                    string // the responder that answered
	// Raw is the DER response held (shared: do not modify).
	Raw []byte
	// Stapled is set when Staple hands out the response now.
	Stapled bool
	// Persisted is set when the response held, if any, and the certificate have reached storage; StoreError
	// says why not, when a write failed (a running stapler writes them again at its next sweep).
	Persisted  bool
	StoreError string

	// NextRefresh is when the next fetch is due; State is "idle", "queued", "fetching" or "persisting".
	NextRefresh time.Time
	State       string
	// Failures counts consecutive failed fetches; LastAttempt, LastReason and LastError describe the last one.
	Failures    int
	LastAttempt time.Time
	LastReason  string
	LastError   string
	// History is the last fetch attempts, oldest first (filled by Entry only).
	History []cache.Attempt

	// Leaf and Issuer are the certificate and its issuer, nil for a stored response whose certificate is
	// not known (shared: do not modify).
	Leaf, Issuer *x509.Certificate
	// Response is the record of the response held, nil when none (shared: do not modify).
	Response *cache.Response

	lastErr error
}

var stateNames = [...]string{idle: "idle", queued: "queued", fetching: "fetching", persisting: "persisting"}

func (s *Stapler) infoLocked(e *entry, now time.Time) Info {
	in := Info{
		Key: e.key, Names: e.names, URLs: e.urls, MustStaple: e.mustStaple, Watched: e.refs > 0, Fetchable: e.fetchable(),
		NextRefresh: e.next, State: stateNames[e.state], Failures: e.failures, LastAttempt: e.lastTry,
		lastErr: e.lastErr, Leaf: e.leaf, Issuer: e.issuer, Response: e.resp,
	}
	if e.lastErr != nil {
		in.LastError, in.LastReason = e.lastErr.Error(), reasonOf(e.lastErr)
	}
	if r := e.resp; r != nil {
		in.HasResponse, in.Status, in.ThisUpdate, in.NextUpdate = true, r.Status, r.ThisUpdate, r.NextUpdate
		in.Expires, in.Fetched, in.URL, in.Raw = r.Expires, r.Fetched, r.URL, r.Raw
		in.Stapled = r.ValidAt(now) && s.stapleable(r.Status)
	}
	in.Persisted = !e.dirty && !e.certDirty
	if !in.Persisted && e.storeErr != nil {
		in.StoreError = e.storeErr.Error()
	}
	return in
}

// Entries returns every certificate the stapler knows, in key order, without history.
func (s *Stapler) Entries() []Info {
	s.loadNames()
	s.mu.Lock()
	now := s.now()
	out := make([]Info, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, s.infoLocked(e, now))
	}
	s.mu.Unlock()
	sortByKey(out)
	return out
}

// loadNames reads, once, the names of the certificates restored from storage whose leaf no Watch or fetch
// has parsed yet: one walk of the stored certificates, outside the lock, parsing only those. Parsed
// certificates are not kept, so a large cache costs its names in memory, not its certificates. Each is
// asked for once: one whose record is missing or does not parse shows no names, and is not read again.
func (s *Stapler) loadNames() {
	if s.cfg.Storage == nil {
		return
	}
	s.mu.Lock()
	missing := map[certs.Key]bool{}
	for key, e := range s.entries {
		if e.hasCert && !e.namesKnown {
			missing[key] = true
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return
	}
	names := map[certs.Key][]string{}
	err := s.cfg.Storage.Certs(func(key certs.Key, c cache.Cert, err error) error {
		if err != nil || !missing[key] {
			return nil
		}
		if leaf, err := x509.ParseCertificate(c.Leaf); err == nil {
			names[key] = certs.Names(leaf)
		}
		return nil
	})
	if err != nil {
		s.log.Warn().Err(err).Msg("stored certificates unreadable: names not shown")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range missing {
		if e := s.entries[key]; e != nil && !e.namesKnown {
			e.names, e.namesKnown = names[key], true
		}
	}
}

// sortByKey puts infos in key order, the order of the cache file.
func sortByKey(infos []Info) {
	slices.SortFunc(infos, func(a, b Info) int { return bytes.Compare(a.Key.Bytes(), b.Key.Bytes()) })
}

// Watched returns the keys of the certificates that a Watch references (what this node serves), in no order.
func (s *Stapler) Watched() []certs.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]certs.Key, 0, len(s.entries))
	for k, e := range s.entries {
		if e.refs > 0 {
			out = append(out, k)
		}
	}
	return out
}

// Entry returns one certificate with its fetch history, its names, and its leaf and issuer (read from
// storage when the stapler does not hold them parsed).
func (s *Stapler) Entry(key certs.Key) (Info, bool) {
	s.mu.Lock()
	e := s.entries[key]
	if e == nil {
		s.mu.Unlock()
		return Info{}, false
	}
	in := s.infoLocked(e, s.now())
	in.History = slices.Clone(e.history)
	s.mu.Unlock()
	if s.cfg.Storage == nil {
		return in, true
	}
	h, err := s.cfg.Storage.History(key)
	if err != nil {
		s.log.Warn().Err(err).Str("key", key.String()).Msg("fetch history unreadable")
	}
	in.History = h
	if in.Leaf == nil && in.Fetchable {
		if in.Leaf, in.Issuer, err = s.storedCertificates(key); err == nil && in.Names == nil {
			in.Names = certs.Names(in.Leaf)
		}
	}
	return in, true
}

// ErrUnhealthy is wrapped by Healthy's errors.
var ErrUnhealthy = errors.New("stapler: unhealthy")

// Healthy returns nil when every response held, and every watched certificate, has reached storage and every
// Must-Staple certificate can be stapled; otherwise an error (wrapping ErrUnhealthy) that says what is wrong.
func (s *Stapler) Healthy() error {
	m := s.Metrics()
	var problems []error
	if m.PersistBacklog > 0 {
		problems = append(problems, fmt.Errorf("%d certificates or responses not yet stored", m.PersistBacklog))
	}
	if m.MustStapleBad > 0 {
		problems = append(problems, fmt.Errorf("%d Must-Staple certificates without a valid response", m.MustStapleBad))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnhealthy, errors.Join(problems...))
}
