package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/certs"
)

// DefaultUnservedAfter is Config.UnservedAfter's default.
const DefaultUnservedAfter = time.Hour

// maxTxnOps is how many operations one claims transaction carries (etcd refuses more than 128 by default).
const maxTxnOps = 128

// Claims tells the fleet which certificates this node serves, so that the leader can remove those that no
// node serves any more: a certificate renewed while its node was stopped, or served only by a node that left
// the fleet, would otherwise stay in the store for good, fetched by every leader and stapled by nobody.
//
// A node claims each certificate it watches with a key of its own, P served/<key>/<lease>, under a lease that
// its keep-alive holds while the node lives: a node that stops loses its claims with its lease, at once when
// it stops cleanly, within the lease's TTL when it dies. The leader reads the certificates and the claims
// and removes, in a transaction that checks that no claim has appeared meanwhile, a certificate nobody has
// claimed for Config.UnservedAfter (default 1 h: long enough for a node's restart, or a fleet's rolling one);
// a node that serves it after all writes it back when it sees the removal (Watcher, Stapler.Withdraw). The
// time a certificate has gone unclaimed is counted by the leader in memory, from its first look: a new leader
// starts counting afresh, which errs on the side of keeping.
//
// Claims is safe for concurrent use; Run it once.
type Claims struct {
	store   *Store
	node    string
	watched func() []certs.Key
	leads   func() bool
	log     zerolog.Logger
	now     func() time.Time
	ttl     int64         // the claims lease, in seconds
	grace   time.Duration // Config.UnservedAfter; negative: never remove
	every   time.Duration // how often claims are brought in line with what the node watches
	collect time.Duration // how often the leader looks for unclaimed certificates

	unclaimed map[certs.Key]time.Time // leader only: since when each certificate has been seen unclaimed
	lastLook  time.Time

	claimed, released, removed, leases atomic.Uint64
}

// NewClaims returns the claims of the node called node (its name, for humans) in the fleet cfg describes,
// through cli: watched lists the certificates the node serves (Stapler.Watched), leads says whether it leads
// the fleet now (the Elector's Role is Leader).
func NewClaims(cli *clientv3.Client, cfg Config, node string, watched func() []certs.Key, leads func() bool) *Claims {
	grace := cfg.UnservedAfter
	if grace == 0 {
		grace = DefaultUnservedAfter
	}
	// Claims follow what the node watches, and the leader looks, at a tenth of the grace or more often: a
	// certificate just watched is claimed long before the grace runs out.
	step := max(grace/10, 100*time.Millisecond)
	if grace < 0 {
		step = time.Minute
	}
	return &Claims{store: NewStore(cli, cfg), node: node, watched: watched, leads: leads,
		log: cfg.Logger.With().Str("component", "fleet").Logger(), now: cfg.now,
		ttl: 3 * cfg.leaseSeconds(), grace: grace,
		every: min(step, 5*time.Second), collect: min(step, time.Minute),
		unclaimed: map[certs.Key]time.Time{}}
}

// ClaimsStats counts what Claims did.
type ClaimsStats struct {
	// Claimed and Released count claims written and withdrawn; Removed counts certificates removed from the
	// store because nobody claimed them; Leases counts the claims leases granted (one more after each loss).
	Claimed, Released, Removed, Leases uint64
}

// Stats returns the counters.
func (c *Claims) Stats() ClaimsStats {
	return ClaimsStats{Claimed: c.claimed.Load(), Released: c.released.Load(), Removed: c.removed.Load(),
		Leases: c.leases.Load()}
}

// Run keeps the node's claims, and on the leader removes the certificates nobody claims, until ctx ends;
// then it revokes the claims lease (the node's claims go at once) and returns nil.
func (c *Claims) Run(ctx context.Context) error {
	rerun(ctx, 5*time.Second, time.Minute, c.hold, func(err error) {
		c.log.Warn().Err(err).Msg("fleet claims lost; claiming again")
	})
	return nil
}

// hold grants a claims lease, keeps it alive, and claims under it until ctx ends or the lease is lost.
func (c *Claims) hold(ctx context.Context) error {
	st := c.store
	grant, err := call(ctx, st.cli, st.timeout, func(ctx context.Context) (*clientv3.LeaseGrantResponse, error) {
		return st.cli.Grant(ctx, c.ttl)
	})
	if err != nil {
		return err
	}
	c.leases.Add(1)
	lease := grant.ID
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	alive, err := st.cli.KeepAlive(kctx, lease)
	if err != nil {
		return fmt.Errorf("fleet: claims lease: %w", err)
	}
	defer func() {
		if ctx.Err() != nil { // stopping: the claims go now, not a TTL later
			rctx, rcancel := context.WithTimeout(context.Background(), st.timeout)
			st.cli.Revoke(rctx, lease)
			rcancel()
		}
	}()
	claimed := map[certs.Key]bool{}
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	for {
		if err := c.reconcile(lease, claimed); err != nil {
			c.log.Warn().Err(err).Msg("fleet claims not brought up to date; trying again")
		}
		c.look()
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-alive:
			if !ok {
				return errors.New("fleet: claims lease lost")
			}
		case <-tick.C:
		}
	}
}

// reconcile claims what the node watches and has not claimed under lease, and withdraws the claims of what
// it no longer watches; claimed is what is claimed under lease, kept up to date.
func (c *Claims) reconcile(lease clientv3.LeaseID, claimed map[certs.Key]bool) error {
	want := map[certs.Key]bool{}
	var ops []clientv3.Op
	var add, drop []certs.Key
	for _, k := range c.watched() {
		want[k] = true
		if !claimed[k] {
			ops = append(ops, clientv3.OpPut(c.store.keys.claim(k, lease), c.node, clientv3.WithLease(lease)))
			add = append(add, k)
		}
	}
	for k := range claimed {
		if !want[k] {
			ops = append(ops, clientv3.OpDelete(c.store.keys.claim(k, lease)))
			drop = append(drop, k)
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), maxTxnOps)
		st := c.store
		_, err := call(st.ctx, st.cli, st.timeout, func(ctx context.Context) (*clientv3.TxnResponse, error) {
			return st.cli.Txn(ctx).Then(ops[:n]...).Commit()
		})
		if err != nil {
			return err
		}
		for range n {
			if len(add) > 0 {
				claimed[add[0]] = true
				add = add[1:]
				c.claimed.Add(1)
			} else {
				delete(claimed, drop[0])
				drop = drop[1:]
				c.released.Add(1)
			}
		}
		ops = ops[n:]
	}
	return nil
}

// forget drops what look counted: only what successive looks of one leader saw unclaimed counts.
func (c *Claims) forget() {
	clear(c.unclaimed)
	c.lastLook = time.Time{}
}

// look is the leader's part: every c.collect, it reads the certificates and the claims and removes what has
// gone unclaimed for c.grace. A node that does not lead forgets what it counted.
func (c *Claims) look() {
	if !c.leads() {
		c.forget()
		return
	}
	now := c.now()
	if c.grace < 0 || (!c.lastLook.IsZero() && now.Sub(c.lastLook) < c.collect) {
		return
	}
	c.lastLook = now
	stored := map[certs.Key]bool{}
	st := c.store
	_, err := st.scan(st.keys.dir(dirCerts), true, func(kv *mvccpb.KeyValue) error {
		if k, err := st.keys.parse(dirCerts, string(kv.Key)); err == nil {
			stored[k] = true
		}
		return nil
	})
	if err != nil {
		c.log.Warn().Err(err).Msg("fleet certificates not read for unserved ones")
		c.forget() // a certificate claimed meanwhile must not be counted as unclaimed throughout
		return
	}
	served := map[certs.Key]bool{}
	_, err = st.scan(st.keys.dir(dirServed), true, func(kv *mvccpb.KeyValue) error {
		if k, err := st.keys.parseClaim(string(kv.Key)); err == nil {
			served[k] = true
		}
		return nil
	})
	if err != nil {
		c.log.Warn().Err(err).Msg("fleet claims not read for unserved certificates")
		c.forget()
		return
	}
	for k := range c.unclaimed {
		if !stored[k] || served[k] {
			delete(c.unclaimed, k)
		}
	}
	for k := range stored {
		if served[k] {
			continue
		}
		since, seen := c.unclaimed[k]
		if !seen {
			c.unclaimed[k] = now
			continue
		}
		if now.Sub(since) < c.grace {
			continue
		}
		removed, err := st.RemoveUnclaimed(k)
		switch {
		case err != nil:
			c.log.Warn().Err(err).Str("key", k.String()).Msg("unserved certificate not removed from the fleet's store")
		case removed:
			delete(c.unclaimed, k)
			c.removed.Add(1)
			c.log.Info().Str("key", k.String()).Stringer("unserved_for", now.Sub(since).Round(time.Second)).
				Msg("certificate no node serves removed from the fleet's store")
		default:
			delete(c.unclaimed, k) // claimed meanwhile
		}
	}
}
