// Package state opens where staple serve keeps its state: the cache file in the data directory, or a fleet's
// etcd. With it come the TLS session ticket keys and sessions at rest (so that resumption survives a restart
// and, in a fleet, works on every node), and in a fleet the election that says which node fetches, the watch
// that brings what the other nodes store, and the claims of what this node serves.
package state

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"staple/cache"
	"staple/certs"
	"staple/config"
	"staple/fleet"
	"staple/stapler"
	"staple/tlsserver"
)

// State is where the engine's state lives. It is safe for concurrent use once opened.
type State struct {
	// Storage is the engine's storage; Path says where it is, for people (a file, or etcd's endpoints).
	Storage stapler.Storage
	Path    string

	store *cache.Store // the cache file; nil in a fleet
	fleet *node        // nil when the node stands alone
}

// Run starts a background loop of the service, named for its log.
type Run func(name string, loop func() error)

// Open opens the cache file of cfg's data directory (moving a corrupt one aside when reset is set), or
// joins the fleet of cfg's [fleet] table. now is the clock (nil: time.Now).
// In a fleet the cache file is the node's near cache: its own copy of what it staples, which it reads at
// start, so that it staples at once whether etcd answers or not (fleet.NearStore).
func Open(cfg *config.Config, reset bool, now func() time.Time, log zerolog.Logger) (*State, error) {
	st, err := openCache(filepath.Join(cfg.DataDir, config.DatabaseName), reset, now, log)
	if err != nil {
		return nil, err
	}
	if !cfg.Fleet.Enabled() {
		return &State{store: st, Storage: st, Path: st.Path()}, nil
	}
	n, err := join(cfg, now, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	near := &fleet.NearStore{Fleet: n.store, Near: st, Log: log.With().Str("component", "fleet").Logger()}
	return &State{store: st, fleet: n, Storage: near, Path: near.Path()}, nil
}

// Close releases the cache file, and the fleet's etcd client.
func (s *State) Close() {
	if s.fleet != nil {
		s.fleet.cli.Close()
	}
	s.store.Close()
}

// Fleet reports whether the state is a fleet's.
func (s *State) Fleet() bool { return s.fleet != nil }

// Role is the stapler's Role: the election's in a fleet (Follower until the election has settled, see
// Elect), nil (Solo) otherwise.
func (s *State) Role() func() stapler.Role {
	if s.fleet == nil {
		return nil
	}
	return s.fleet.role
}

// ServedBy names the nodes of the fleet that serve a certificate; nil outside a fleet.
func (s *State) ServedBy() func(certs.Key) ([]string, error) {
	if s.fleet == nil {
		return nil
	}
	return s.fleet.store.ServedBy
}

// KeepSessions gives srv its ticket keys and, with sessions = "store", its session store: in the cache file
// (sessions written behind the handshake), or in a fleet's etcd (ticket keys shared, and followed as the
// leader rotates them).
func (s *State) KeepSessions(ctx context.Context, cfg *config.Config, srv *tlsserver.Server, now func() time.Time, run Run, log zerolog.Logger) {
	// A store that fails or hangs costs resumptions, never a handshake: say so, at most once a minute.
	storeLog := log.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute})
	srv.SessionStoreError = func(err error) {
		storeLog.Warn().Err(err).Msg("TLS session store failed; handshakes go on without it (sampled: at most one a minute)")
	}
	if n := s.fleet; n != nil {
		near := ticketKeyStore{s.store}
		srv.TicketKeyStore = fleetTicketKeys{fleet: n.tickets, near: near}
		if n.sessions != nil {
			srv.NewSession, srv.ResumeSession = n.sessions.NewSession, n.sessions.ResumeSession
		}
		run("fleet-tickets", func() error {
			return n.tickets.Watch(ctx, func(k tlsserver.TicketKeys) error {
				if err := near.SaveTicketKeys(k); err != nil {
					log.Warn().Err(err).Msg("the fleet's ticket keys not kept in the near cache")
				}
				return srv.UseTicketKeys(k)
			})
		})
		return
	}
	srv.TicketKeyStore = ticketKeyStore{s.store}
	if cfg.Sessions == "store" {
		sessions := &tlsserver.WriteBehindSessionStore{Backend: s.store, TTL: cfg.SessionTTL.Duration, Now: now}
		run("sessions", func() error {
			sessions.Run(ctx, func(err error) { log.Warn().Err(err).Msg("TLS sessions not stored") })
			return nil
		})
		srv.NewSession, srv.ResumeSession = sessions.NewSession, sessions.ResumeSession
	}
}

// RotateTicketKeys rotates the session ticket keys (the previous key still decrypts): srv's, kept in the
// cache file, or in a fleet the shared ones, by the leader alone and only when period has mostly passed since
// the last rotation anywhere in the fleet (every node takes the new keys up by its watch). It reports
// whether the keys were rotated.
func (s *State) RotateTicketKeys(ctx context.Context, srv *tlsserver.Server, period time.Duration) (bool, error) {
	if n := s.fleet; n != nil {
		if n.elector.Role() != stapler.Leader {
			return false, nil
		}
		return n.tickets.RotateIfDue(ctx, period*9/10)
	}
	return true, srv.RotateTicketKeys()
}

// openCache opens the cache file; a corrupt one is moved aside when reset is set.
func openCache(path string, reset bool, now func() time.Time, log zerolog.Logger) (*cache.Store, error) {
	st, err := cache.Open(path, cache.Options{Now: now})
	if errors.Is(err, cache.ErrCorrupt) && reset {
		t := time.Now()
		if now != nil {
			t = now()
		}
		moved, rerr := cache.Reset(path, t)
		if rerr != nil {
			return nil, fmt.Errorf("state: --reset-cache: %w", rerr)
		}
		log.Warn().Str("moved_to", moved).Msg("the corrupt cache file was moved aside; starting with an empty cache")
		st, err = cache.Open(path, cache.Options{Now: now})
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return st, nil
}

// ticketKeyStore keeps the TLS server's session ticket keys in the cache file, so that tickets issued before
// a restart still resume. The file is 0600: the keys are secrets and are never logged.
type ticketKeyStore struct{ st *cache.Store }

var _ tlsserver.TicketKeyStore = ticketKeyStore{}

func (t ticketKeyStore) LoadTicketKeys() (tlsserver.TicketKeys, error) {
	k, err := t.st.TicketKeys()
	if errors.Is(err, cache.ErrNotFound) {
		return tlsserver.TicketKeys{}, nil
	}
	if err != nil {
		return tlsserver.TicketKeys{}, err
	}
	return tlsserver.TicketKeys{Current: k.Current, Previous: k.Previous, Created: k.Rotated}, nil
}

func (t ticketKeyStore) SaveTicketKeys(k tlsserver.TicketKeys) error {
	return t.st.PutTicketKeys(cache.TicketKeys{Current: k.Current, Previous: k.Previous, Rotated: k.Created})
}

// fleetTicketKeys are a fleet node's ticket keys: the fleet's, shared through etcd, as the node last kept
// them in its near cache, so that it serves at once at start, resuming the fleet's tickets, whether etcd
// answers or not (the watch then brings the fleet's current keys). A node that has kept none asks the fleet.
type fleetTicketKeys struct {
	fleet tlsserver.TicketKeyStore
	near  ticketKeyStore
}

func (k fleetTicketKeys) LoadTicketKeys() (tlsserver.TicketKeys, error) {
	if kept, err := k.near.LoadTicketKeys(); err == nil && kept.Current != nil {
		return kept, nil
	}
	return k.fleet.LoadTicketKeys()
}

func (k fleetTicketKeys) SaveTicketKeys(keys tlsserver.TicketKeys) error {
	return errors.Join(k.near.SaveTicketKeys(keys), k.fleet.SaveTicketKeys(keys))
}
