package state

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/config"
	"staple/fleet"
	"staple/stapler"
)

// node is this node's part of a fleet: the etcd client, the shared store, the election, and the shared
// ticket keys and sessions.
type node struct {
	cfg      fleet.Config
	cli      *clientv3.Client
	store    *fleet.Store
	elector  *fleet.Elector
	name     string // this node's, in the election and its claims
	tickets  *fleet.TicketKeys
	sessions *fleet.Sessions // nil unless sessions = "store"
	settled  atomic.Bool     // the election knows a leader, or has given up waiting for one
}

// role is the stapler's Role: Follower until the election has settled, so that a node starting with no
// leader in sight yet does not fetch for itself what the leader is about to fetch; the election's after.
func (n *node) role() stapler.Role {
	if !n.settled.Load() {
		return stapler.Follower
	}
	return n.elector.Role()
}

// join connects to the fleet's etcd, without waiting for it: a node staples from memory while etcd is away.
func join(cfg *config.Config, now func() time.Time, log zerolog.Logger) (*node, error) {
	fc := cfg.FleetConfig(log)
	fc.Now = now
	cli, err := fleet.Connect(fc)
	if err != nil {
		return nil, cfg.Errorf("fleet", "%v", err)
	}
	n := &node{cfg: fc, cli: cli, store: fleet.NewStore(cli, fc), tickets: fleet.NewTicketKeys(cli, fc), name: cfg.Fleet.Node}
	if n.name == "" {
		host, _ := os.Hostname()
		n.name = net.JoinHostPort(host, cfg.Listen)
	}
	n.elector = fleet.NewElector(cli, fc, n.name)
	if cfg.Sessions == "store" {
		n.sessions = fleet.NewSessions(cli, fc, cfg.SessionTTL.Duration)
	}
	return n, nil
}

// Elect runs, in a fleet, the election, telling st when the node's role changes. Until the election knows
// a leader, or two lease TTLs have passed, the node is a follower: it staples what it holds (the near cache,
// then what the other nodes store) and fetches nothing of its own accord, so that nodes starting together do
// not each fetch for themselves. Outside a fleet it does nothing. It does not wait: st starts and staples at
// once.
func (s *State) Elect(ctx context.Context, run Run, st *stapler.Stapler, log zerolog.Logger) {
	n := s.fleet
	if n == nil {
		return
	}
	n.elector.OnChange = func(r stapler.Role) {
		st.RoleChanged()
		log.Info().Str("role", r.String()).Str("leader", n.elector.Leader()).Msg("fleet role")
	}
	run("fleet-election", func() error { return n.elector.Run(ctx) })
	run("fleet-settle", func() error {
		t := time.NewTimer(2 * n.elector.TTL())
		defer t.Stop()
		select {
		case <-n.elector.Settled():
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
		n.settled.Store(true)
		st.RoleChanged()
		return nil
	})
}

// Follow runs, in a fleet and once st has started, the watch that offers st what other nodes store, and the
// claims that tell the fleet which certificates this node serves. Outside a fleet it does nothing.
func (s *State) Follow(ctx context.Context, run Run, st *stapler.Stapler) {
	n := s.fleet
	if n == nil {
		return
	}
	watcher := fleet.NewWatcher(n.cli, n.cfg, st)
	watcher.Near = s.store
	run("fleet-watch", func() error { return watcher.Run(ctx) })
	claims := fleet.NewClaims(n.cli, n.cfg, n.name, st.Watched, func() bool { return n.elector.Role() == stapler.Leader })
	run("fleet-claims", func() error { return claims.Run(ctx) })
}
