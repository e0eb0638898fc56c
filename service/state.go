package service

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"staple/cache"
	"staple/stapler"
	"staple/tlsserver"
)

// state is where the engine's state lives: the cache file in the data directory, or a fleet's etcd. Either
// way it also keeps the TLS session ticket keys (and, with sessions = "store", the sessions), so that
// resumption survives a restart and, in a fleet, works across nodes.
type state struct {
	store   *cache.Store // the cache file; nil in a fleet
	fleet   *fleetNode   // nil when the node stands alone
	storage stapler.Storage
	path    string // where the responses live, for the admin API
}

// openState opens the cache file (moving a corrupt one aside when o.ResetCache) or joins the fleet.
func openState(cfg *Config, o Options, log zerolog.Logger) (*state, error) {
	if cfg.Fleet.Enabled() {
		n, err := joinFleet(cfg, o.Now, log)
		if err != nil {
			return nil, err
		}
		return &state{fleet: n, storage: n.store, path: n.describe()}, nil
	}
	st, err := openCache(filepath.Join(cfg.DataDir, DatabaseName), o.ResetCache, o.Now, log)
	if err != nil {
		return nil, err
	}
	return &state{store: st, storage: st, path: st.Path()}, nil
}

func (st *state) close() {
	if st.fleet != nil {
		st.fleet.close()
		return
	}
	st.store.Close()
}

// role is the stapler's Role: the election's in a fleet, nil (Solo) otherwise.
func (st *state) role() func() stapler.Role {
	if st.fleet == nil {
		return nil
	}
	return st.fleet.elector.Role
}

// keepSessions gives srv its ticket keys and, with sessions = "store", its session store: in the cache file
// (sessions written behind the handshake), or in a fleet's etcd (ticket keys shared, and followed as the
// leader rotates them).
func (st *state) keepSessions(ctx context.Context, cfg *Config, srv *tlsserver.Server, o Options, bg *group, log zerolog.Logger) {
	if n := st.fleet; n != nil {
		srv.TicketKeyStore = n.tickets
		if n.sessions != nil {
			srv.NewSession, srv.ResumeSession = n.sessions.NewSession, n.sessions.ResumeSession
		}
		bg.run("fleet-tickets", func() error { return n.tickets.Watch(ctx, srv.UseTicketKeys) })
		return
	}
	srv.TicketKeyStore = ticketKeyStore{st.store}
	if cfg.Sessions == "store" {
		sessions := &tlsserver.WriteBehindSessionStore{Backend: st.store, TTL: cfg.SessionTTL.Duration, Now: o.Now}
		bg.run("sessions", func() error {
			sessions.Run(ctx, func(err error) { log.Warn().Err(err).Msg("TLS sessions not stored") })
			return nil
		})
		srv.NewSession, srv.ResumeSession = sessions.NewSession, sessions.ResumeSession
	}
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
			return nil, fmt.Errorf("service: --reset-cache: %w", rerr)
		}
		log.Warn().Str("moved_to", moved).Msg("the corrupt cache file was moved aside; starting with an empty cache")
		st, err = cache.Open(path, cache.Options{Now: now})
	}
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
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
