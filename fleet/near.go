package fleet

import (
	"errors"

	"github.com/rs/zerolog"

	"staple/cache"
	"staple/certs"
	"staple/stapler"
)

// NearStore is a fleet node's stapler.Storage: the fleet's store, and the node's own copy of what it staples
// in a cache file of its data directory (the near cache), so that the node staples at once at start whether
// etcd answers or not.
//
// Writes go to the fleet's store, which decides (a stale response or one without its certificate is refused
// there, and then not copied), then to the near cache. While etcd is unreachable they reach the near cache
// alone; the fleet's store refuses them with an error, so the stapler keeps them as its backlog and writes
// them again when etcd returns. The warm start's walks (Certs, Responses, Histories) read the near cache;
// what the other nodes stored reaches the node through the Watcher, which copies it into the near cache too
// (Watcher.Near). Cert falls back to the fleet's store; History prefers it, for the fleet-wide history.
// Safe for concurrent use.
type NearStore struct {
	Fleet *Store
	Near  *cache.Store
	// Log receives the near cache's write failures; the zero Logger logs nothing.
	Log zerolog.Logger
}

var _ stapler.Storage = (*NearStore)(nil)

// Path describes both stores, for humans.
func (s *NearStore) Path() string { return s.Fleet.Path() + ", near cache " + s.Near.Path() }

// copyNear writes to the near cache what the fleet's store took, or could not be asked (fleetErr): not what
// it refused.
func (s *NearStore) copyNear(key certs.Key, fleetErr error, write func() error) {
	if errors.Is(fleetErr, cache.ErrOlder) || errors.Is(fleetErr, ErrNoCert) {
		return
	}
	if err := write(); err != nil && !errors.Is(err, cache.ErrOlder) {
		s.Log.Warn().Err(err).Str("key", key.String()).Msg("near cache not written")
	}
}

// PutCert writes c to the fleet's store, then to the near cache.
func (s *NearStore) PutCert(key certs.Key, c cache.Cert) error {
	err := s.Fleet.PutCert(key, c)
	s.copyNear(key, err, func() error { return s.Near.PutCert(key, c) })
	return err
}

// PutResponse writes r to the fleet's store, then, unless the fleet's store refused it as older or without
// its certificate, to the near cache.
func (s *NearStore) PutResponse(key certs.Key, r cache.Response) error {
	err := s.Fleet.PutResponse(key, r)
	s.copyNear(key, err, func() error { return s.Near.PutResponse(key, r) })
	return err
}

// AddAttempt records a to the fleet's store and the near cache.
func (s *NearStore) AddAttempt(key certs.Key, a cache.Attempt) error {
	err := s.Fleet.AddAttempt(key, a)
	s.copyNear(key, err, func() error { return s.Near.AddAttempt(key, a) })
	return err
}

// Remove forgets key in both stores; the near cache forgets it even when etcd cannot be reached.
func (s *NearStore) Remove(key certs.Key) error {
	return errors.Join(s.Fleet.Remove(key), s.Near.Remove(key))
}

// Certs walks the near cache's certificates, for the warm start.
func (s *NearStore) Certs(fn func(key certs.Key, c cache.Cert, err error) error) error {
	return s.Near.Certs(fn)
}

// Responses walks the near cache's responses, for the warm start.
func (s *NearStore) Responses(fn func(key certs.Key, r cache.Response, err error) error) error {
	return s.Near.Responses(fn)
}

// Histories walks the near cache's histories, for the warm start.
func (s *NearStore) Histories(fn func(key certs.Key, h []cache.Attempt, err error) error) error {
	return s.Near.Histories(fn)
}

// Cert reads key's certificate from the near cache, else from the fleet's store.
func (s *NearStore) Cert(key certs.Key) (cache.Cert, error) {
	c, err := s.Near.Cert(key)
	if err != nil {
		return s.Fleet.Cert(key)
	}
	return c, nil
}

// History reads key's fetch history from the fleet's store (every node's attempts), else the near cache.
func (s *NearStore) History(key certs.Key) ([]cache.Attempt, error) {
	h, err := s.Fleet.History(key)
	if err != nil {
		return s.Near.History(key)
	}
	return h, nil
}

// ServedBy names the nodes that serve key, from the fleet's store.
func (s *NearStore) ServedBy(key certs.Key) ([]string, error) { return s.Fleet.ServedBy(key) }
