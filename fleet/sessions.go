package fleet

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/cache"
	"staple/tlsserver"
)

// Sessions keeps TLS sessions in etcd, so that a session stored by one node resumes on any other: its
// NewSession and ResumeSession are tlsserver.Server's hooks. Each session is a cache session record (its
// expiry, then the data) under sessions/<hex id>, attached to an etcd lease that deletes it: sessions
// stored within one lease window (a tenth of the TTL, at least a second) share a lease granted for the
// TTL plus the window, so etcd makes one lease per window, not one per session, and deletes every session
// between TTL and TTL plus a window after it was stored. ResumeSession refuses a session past its own
// expiry, so the TTL holds to the second. A session resumes only on nodes that hold the ticket keys it was
// issued under (tlsserver binds sessions to them, so that new keys end every earlier session): share them
// with TicketKeys.
//
// A handshake never fails because of the fleet: when etcd cannot be reached, NewSession drops the session
// (the client will make a full handshake) and ResumeSession answers "not found"; both are counted in Stats.
// Session data holds the session's master secret: nothing here logs it. It is safe for concurrent use.
type Sessions struct {
	cli     *clientv3.Client
	keys    keyspace
	ttl     time.Duration
	window  time.Duration
	timeout time.Duration
	now     func() time.Time
	log     zerolog.Logger

	mu         sync.Mutex
	lease      clientv3.LeaseID
	leaseUntil time.Time // sessions stored before this share lease

	stored, resumed, missed, failed atomic.Uint64
}

// NewSessions returns the session store of the fleet cfg describes, through cli, keeping sessions for ttl
// (zero means tlsserver.DefaultSessionTimeout, Node's 300 s).
func NewSessions(cli *clientv3.Client, cfg Config, ttl time.Duration) *Sessions {
	if ttl <= 0 {
		ttl = tlsserver.DefaultSessionTimeout
	}
	return &Sessions{cli: cli, keys: keyspace{cfg.prefix()}, ttl: ttl, window: max(ttl/10, time.Second),
		timeout: cfg.requestTimeout(), now: cfg.now, log: cfg.Logger.With().Str("component", "fleet").Logger()}
}

// SessionStats counts what a Sessions did.
type SessionStats struct {
	// Stored counts sessions written; Resumed lookups that found one; Missed lookups that did not.
	Stored, Resumed, Missed uint64
	// Failed counts calls that could not reach etcd (dropped sessions, lookups answered "not found").
	Failed uint64
}

// Stats returns the counters.
func (s *Sessions) Stats() SessionStats {
	return SessionStats{Stored: s.stored.Load(), Resumed: s.resumed.Load(), Missed: s.missed.Load(), Failed: s.failed.Load()}
}

// NewSession stores data under id until the TTL has passed. It has Server.NewSession's signature; it returns
// an error only for a session over cache's size limits.
func (s *Sessions) NewSession(ctx context.Context, id, data []byte) error {
	now := s.now()
	rec, err := cache.EncodeSession(id, data, now.Add(s.ttl))
	if err != nil {
		return err
	}
	for attempt := 0; attempt < 2; attempt++ {
		var lease clientv3.LeaseID
		if lease, err = s.leaseFor(ctx, now, attempt > 0); err != nil {
			break
		}
		_, err = call(ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.PutResponse, error) {
			return s.cli.Put(ctx, s.keys.session(id), string(rec), clientv3.WithLease(lease))
		})
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			break // done, or failed for another reason than a lease gone early (revoked by hand)
		}
	}
	if err != nil {
		s.failed.Add(1)
		s.log.Warn().Err(err).Msg("TLS session not stored in the fleet; the client will make a full handshake")
		return nil
	}
	s.stored.Add(1)
	return nil
}

// ResumeSession returns the session stored under id, or nil when there is none, it has expired, or etcd
// cannot be reached. It has Server.ResumeSession's signature and never returns an error.
func (s *Sessions) ResumeSession(ctx context.Context, id []byte) ([]byte, error) {
	if len(id) == 0 || len(id) > cache.MaxSessionIDSize {
		s.missed.Add(1)
		return nil, nil
	}
	resp, err := call(ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.GetResponse, error) {
		return s.cli.Get(ctx, s.keys.session(id))
	})
	if err != nil {
		s.failed.Add(1)
		s.log.Warn().Err(err).Msg("TLS session lookup in the fleet failed; full handshake")
		return nil, nil
	}
	if len(resp.Kvs) == 0 {
		s.missed.Add(1)
		return nil, nil
	}
	data, expires, err := cache.DecodeSession(resp.Kvs[0].Value)
	if err != nil || !s.now().Before(expires) {
		s.missed.Add(1)
		return nil, nil
	}
	s.resumed.Add(1)
	return data, nil
}

// leaseFor returns the lease for a session stored at now: the current window's, or a new one (also when
// renew says the current one is gone). The grant is made without holding the lock; two racing grants leave
// one lease unused, which expires by itself.
func (s *Sessions) leaseFor(ctx context.Context, now time.Time, renew bool) (clientv3.LeaseID, error) {
	s.mu.Lock()
	lease, until := s.lease, s.leaseUntil
	s.mu.Unlock()
	if !renew && lease != 0 && now.Before(until) {
		return lease, nil
	}
	ttl := int64((s.ttl + s.window + time.Second - 1) / time.Second)
	grant, err := call(ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.LeaseGrantResponse, error) {
		return s.cli.Grant(ctx, ttl)
	})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !renew && s.lease != lease && now.Before(s.leaseUntil) {
		return s.lease, nil // another session's grant won the race
	}
	s.lease, s.leaseUntil = grant.ID, now.Add(s.window)
	return grant.ID, nil
}
