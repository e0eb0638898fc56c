package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"staple/stapler"
)

// Elector takes part, for this node, in the fleet's election of the one node that fetches: a session on an
// etcd lease of Config.LeaseTTL, a campaign under the election prefix, and an observer of who leads. Role
// is the stapler's Config.Role. When the leader dies its lease runs out, and another node's campaign
// succeeds: a new leader within one TTL (and half a second of etcd's lease checks), well inside the two TTLs
// the fleet promises. A leader that resigns (Run's context ends) hands over at once.
//
// While etcd is unreachable the node's own lease runs out, as its client sees it, about one TTL after the
// last renewal (plus the client's half-second check), and Role turns NoLeader, for the leader too: on the far
// side of a partition another node may have taken over. For the moment between the old leader's lease running
// out at etcd and its client noticing, two nodes may both fetch; the newer-only write (Store.PutResponse)
// keeps that harmless.
//
// An Elector is safe for concurrent use; Run it once.
type Elector struct {
	cli     *clientv3.Client
	prefix  string
	name    string
	ttl     int64
	timeout time.Duration
	log     zerolog.Logger

	// OnChange, when set before Run, is called after every change of role, in order, from Run's goroutines.
	// It must not block for long (Stapler.RoleChanged does not).
	OnChange func(stapler.Role)

	role    atomic.Int32
	leader  atomic.Pointer[string]
	mu      sync.Mutex // serializes changes of role and OnChange calls
	settled chan struct{}
	once    sync.Once
}

// NewElector returns the elector of the node called name (unique in the fleet: a host name, or host:port).
// Its role is NoLeader until Run has found who leads.
func NewElector(cli *clientv3.Client, cfg Config, name string) *Elector {
	e := &Elector{cli: cli, prefix: keyspace{cfg.prefix()}.election(), name: name, ttl: cfg.leaseSeconds(),
		timeout: cfg.requestTimeout(), log: cfg.Logger.With().Str("component", "fleet").Str("node", name).Logger(),
		settled: make(chan struct{})}
	e.role.Store(int32(stapler.NoLeader))
	empty := ""
	e.leader.Store(&empty)
	return e
}

// Role is this node's part in the fleet now: Leader, Follower (a leader is in sight), or NoLeader. It is an
// atomic load, for the stapler's scheduler.
func (e *Elector) Role() stapler.Role { return stapler.Role(e.role.Load()) }

// Leader returns the name of the leader in sight, "" when there is none.
func (e *Elector) Leader() string { return *e.leader.Load() }

// Settled is closed once the node has first known who leads (itself or another). A node waits for it,
// for a bounded time, before starting its stapler, so that nodes starting together do not all fetch for
// themselves while nobody is yet in sight.
func (e *Elector) Settled() <-chan struct{} { return e.settled }

// TTL is the election's lease.
func (e *Elector) TTL() time.Duration { return time.Duration(e.ttl) * time.Second }

func (e *Elector) set(role stapler.Role, leader string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := stapler.Role(e.role.Load())
	e.leader.Store(&leader)
	if old == role {
		return
	}
	e.role.Store(int32(role))
	if role == stapler.Leader || role == stapler.Follower {
		e.once.Do(func() { close(e.settled) })
	}
	e.log.Info().Stringer("role", role).Stringer("was", old).Str("leader", leader).Msg("fleet role changed")
	if e.OnChange != nil {
		e.OnChange(role)
	}
}

// errLeaseLost ends a term whose lease ran out (etcd unreachable for a TTL, or the lease revoked).
var errLeaseLost = errors.New("fleet: election lease lost")

// Run campaigns until ctx ends, starting a new session (a new lease) whenever one is lost, and resigns then,
// so that another node takes over at once. It returns nil when ctx ends.
func (e *Elector) Run(ctx context.Context) error {
	defer e.set(stapler.NoLeader, "")
	rerun(ctx, e.TTL()/2, e.TTL(), e.term, func(err error) {
		e.set(stapler.NoLeader, "")
		e.log.Warn().Err(err).Msg("fleet election session ended; starting another")
	})
	return nil
}

// term is one session: a lease, a campaign, then leadership or observation until the lease is lost or ctx
// ends.
func (e *Elector) term(ctx context.Context) error {
	grant, err := call(ctx, e.cli, e.timeout, func(ctx context.Context) (*clientv3.LeaseGrantResponse, error) {
		return e.cli.Grant(ctx, e.ttl)
	})
	if err != nil {
		return err
	}
	sess, err := concurrency.NewSession(e.cli, concurrency.WithLease(grant.ID), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("fleet: election session: %w", err)
	}
	el := concurrency.NewElection(sess, e.prefix)
	ours := fmt.Sprintf("%s/%x", e.prefix, grant.ID)
	tctx, cancel := context.WithCancel(ctx)

	observed := make(chan struct{})
	go func() {
		defer close(observed)
		for resp := range el.Observe(tctx) {
			if len(resp.Kvs) == 1 && string(resp.Kvs[0].Key) != ours && tctx.Err() == nil {
				e.set(stapler.Follower, string(resp.Kvs[0].Value))
			}
		}
	}()
	// The campaign's goroutine is not waited for: cancelled, it resigns with the client's own context,
	// which waits for etcd when etcd is away. The lease, revoked or expired, takes the key with it anyway.
	won := make(chan error, 1)
	go func() { won <- el.Campaign(tctx, e.name) }()

	err = e.hold(ctx, won, observed, sess)
	cancel()
	<-observed // no Follower from this term after it ends
	e.close(ctx, sess)
	return err
}

// hold waits for the campaign, then holds the role until the lease is lost or ctx ends.
func (e *Elector) hold(ctx context.Context, won <-chan error, observed <-chan struct{}, sess *concurrency.Session) error {
	select {
	case err := <-won:
		if err != nil {
			return fmt.Errorf("fleet: campaign: %w", err)
		}
		e.set(stapler.Leader, e.name)
	case <-observed:
		return errors.New("fleet: election observer stopped")
	case <-sess.Done():
		return errLeaseLost
	case <-ctx.Done():
		return nil
	}
	select {
	case <-sess.Done():
		return errLeaseLost
	case <-ctx.Done():
		return nil
	}
}

// close ends a term's session. When Run's context has ended the lease is revoked (with a deadline of its
// own), which deletes the node's election key, so that a successor takes over at once; otherwise the lease
// is left to expire.
func (e *Elector) close(ctx context.Context, sess *concurrency.Session) {
	sess.Orphan()
	if ctx.Err() == nil {
		return
	}
	e.set(stapler.NoLeader, "")
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.timeout)
	defer cancel()
	if _, err := e.cli.Revoke(rctx, sess.Lease()); err != nil {
		e.log.Warn().Err(err).Msg("fleet election: revoking the lease at shutdown")
	}
}
