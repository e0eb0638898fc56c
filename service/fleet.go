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

// joinFleet connects to the fleet's etcd (without waiting for it: a node staples from memory while etcd is
// away) and starts the election.
func (s *Service) joinFleet(ctx context.Context) (*fleetNode, error) {
	fc := s.cfg.FleetConfig(s.base)
	fc.Now = s.opts.Now
	cli, err := fleet.Connect(fc)
	if err != nil {
		return nil, s.cfg.Errorf("fleet", "%v", err)
	}
	n := &fleetNode{cfg: fc, cli: cli, store: fleet.NewStore(cli, fc), tickets: fleet.NewTicketKeys(cli, fc)}
	name := s.cfg.Fleet.Node
	if name == "" {
		host, _ := os.Hostname()
		name = net.JoinHostPort(host, s.cfg.Listen)
	}
	n.elector = fleet.NewElector(cli, fc, name)
	n.name = name
	n.elector.OnChange = func(r stapler.Role) {
		if st := s.stapler; st != nil {
			st.RoleChanged()
		}
		s.log.Info().Str("role", r.String()).Str("leader", n.elector.Leader()).Msg("fleet role")
	}
	if s.cfg.Sessions == "store" {
		n.sessions = fleet.NewSessions(cli, fc, s.cfg.SessionTTL.Duration)
	}
	return n, nil
}

// settle waits, before the stapler starts, until the election knows a leader or two lease TTLs have passed:
// otherwise every node would start as one with no leader in sight and fetch for itself.
func (n *fleetNode) settle(ctx context.Context) {
	t := time.NewTimer(2 * n.elector.TTL())
	defer t.Stop()
	select {
	case <-n.elector.Settled():
	case <-t.C:
	case <-ctx.Done():
	}
}

func (n *fleetNode) close() { n.cli.Close() }

// selfFetchMargin is the stapler's SelfFetchMargin from the [fleet] table.
func (f FleetConfig) selfFetchMargin() time.Duration {
	if f.SelfFetch != nil && !*f.SelfFetch {
		return -1
	}
	return f.SelfFetchMargin.Duration
}

// rotationPeriod is the time between two runs of a cron spec, from now.
func rotationPeriod(spec string, now time.Time) (time.Duration, error) {
	sched, err := stapler.ParseSchedule(spec)
	if err != nil {
		return 0, err
	}
	first := sched.Next(now)
	return sched.Next(first).Sub(first), nil
}

// rotateFleetTicketKeys rotates the fleet's ticket keys when this node leads and a period has passed since
// the last rotation anywhere in the fleet; every node picks the new keys up through the watch.
func (s *Service) rotateFleetTicketKeys(ctx context.Context) {
	n := s.fleet
	if n.elector.Role() != stapler.Leader {
		return
	}
	period, err := rotationPeriod(s.cfg.Tickets.Rotate, s.now())
	if err != nil {
		s.log.Error().Err(err).Msg("tickets.rotate")
		return
	}
	rotated, err := n.tickets.RotateIfDue(ctx, period*9/10)
	switch {
	case err != nil:
		s.log.Error().Err(err).Msg("the fleet's session ticket keys were not rotated")
	case rotated:
		s.log.Info().Msg("the fleet's session ticket keys rotated (the previous key still decrypts)")
	}
}

func (n *fleetNode) describe() string {
	return fmt.Sprintf("etcd %v %s", n.cfg.Endpoints, n.store.Path())
}
