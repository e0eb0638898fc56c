package service

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/fleet"
	"staple/stapler"
)

// fleetNode is this node's part of a fleet: the etcd client, the shared store, the election, the watch and
// the shared ticket keys and sessions.
type fleetNode struct {
	cfg      fleet.Config
	cli      *clientv3.Client
	store    *fleet.Store
	elector  *fleet.Elector
	name     string // this node's, in the election and its claims
	tickets  *fleet.TicketKeys
	sessions *fleet.Sessions // nil unless sessions = "store"
}

// FleetConfig returns the fleet package's configuration of the [fleet] table.
func (c *Config) FleetConfig(log zerolog.Logger) fleet.Config {
	f := c.Fleet
	return fleet.Config{
		Endpoints: f.Endpoints, Prefix: f.Prefix,
		CertFile: f.CertFile, KeyFile: f.KeyFile, CAFile: f.CAFile,
		Username: f.Username, Password: f.Password,
		LeaseTTL: f.LeaseTTL.Duration, UnservedAfter: f.unservedAfter(),
		Logger: log.With().Str("component", "fleet").Logger(),
	}
}

// unservedAfter is fleet.Config's UnservedAfter from the [fleet] table: negative (never) when
// remove_unserved is false.
func (f FleetConfig) unservedAfter() time.Duration {
	if f.RemoveUnserved != nil && !*f.RemoveUnserved {
		return -1
	}
	return f.UnservedAfter.Duration
}

// selfFetchMargin is the stapler's SelfFetchMargin from the [fleet] table.
func (f FleetConfig) selfFetchMargin() time.Duration {
	if f.SelfFetch != nil && !*f.SelfFetch {
		return -1
	}
	return f.SelfFetchMargin.Duration
}

// joinFleet connects to the fleet's etcd, without waiting for it: a node staples from memory while etcd is
// away.
func joinFleet(cfg *Config, now func() time.Time, log zerolog.Logger) (*fleetNode, error) {
	fc := cfg.FleetConfig(log)
	fc.Now = now
	cli, err := fleet.Connect(fc)
	if err != nil {
		return nil, cfg.Errorf("fleet", "%v", err)
	}
	n := &fleetNode{cfg: fc, cli: cli, store: fleet.NewStore(cli, fc), tickets: fleet.NewTicketKeys(cli, fc), name: cfg.Fleet.Node}
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

// elect runs the election, telling st when the node's role changes, and waits, before st starts, until the
// election knows a leader or two lease TTLs have passed: otherwise every node would start as one with no
// leader in sight and fetch for itself.
func (n *fleetNode) elect(ctx context.Context, bg *group, st *stapler.Stapler, log zerolog.Logger) {
	n.elector.OnChange = func(r stapler.Role) {
		st.RoleChanged()
		log.Info().Str("role", r.String()).Str("leader", n.elector.Leader()).Msg("fleet role")
	}
	bg.run("fleet-election", func() error { return n.elector.Run(ctx) })
	t := time.NewTimer(2 * n.elector.TTL())
	defer t.Stop()
	select {
	case <-n.elector.Settled():
	case <-t.C:
	case <-ctx.Done():
	}
}

// follow runs, once st has started, the watch that offers st what other nodes store, and the claims that
// tell the fleet which certificates this node serves.
func (n *fleetNode) follow(ctx context.Context, bg *group, st *stapler.Stapler) {
	watcher := fleet.NewWatcher(n.cli, n.cfg, st)
	bg.run("fleet-watch", func() error { return watcher.Run(ctx) })
	claims := fleet.NewClaims(n.cli, n.cfg, n.name, st.Watched, func() bool { return n.elector.Role() == stapler.Leader })
	bg.run("fleet-claims", func() error { return claims.Run(ctx) })
}

func (n *fleetNode) close() { n.cli.Close() }

func (n *fleetNode) describe() string {
	return fmt.Sprintf("etcd %v %s", n.cfg.Endpoints, n.store.Path())
}
