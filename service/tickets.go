package service

import (
	"context"
	"time"

	"github.com/robfig/cron/v3"

	"staple/stapler"
)

// rotateTickets rotates the TLS session ticket keys on the [tickets] rotate schedule (the previous key still
// decrypts): this node's, kept in the cache file, or in a fleet the shared ones, by the leader, when a period
// has passed since the last rotation anywhere in the fleet. The schedule stops when Run returns.
func (s *Service) rotateTickets(ctx context.Context, closing *closers) error {
	spec := s.cfg.Tickets.Rotate
	if spec == "" {
		return nil
	}
	sched, err := stapler.ParseSchedule(spec)
	if err != nil {
		return s.cfg.Errorf("tickets.rotate", "%v", err)
	}
	rotate := s.rotateTicketKeys
	if s.state.fleet != nil {
		rotate = func() { s.rotateFleetTicketKeys(ctx, sched) }
	}
	c := cron.New()
	c.Schedule(sched, cron.FuncJob(rotate))
	c.Start()
	closing.add(func() { <-c.Stop().Done() })
	return nil
}

func (s *Service) rotateTicketKeys() {
	if err := s.front.tls.RotateTicketKeys(); err != nil {
		s.log.Error().Err(err).Msg("session ticket keys rotated but not stored: a restart will not resume earlier sessions")
		return
	}
	s.log.Info().Msg("session ticket keys rotated (the previous key still decrypts)")
}

// rotateFleetTicketKeys rotates the fleet's ticket keys when this node leads and a period of sched has
// passed since the last rotation anywhere in the fleet; every node picks the new keys up through the watch.
func (s *Service) rotateFleetTicketKeys(ctx context.Context, sched cron.Schedule) {
	n := s.state.fleet
	if n.elector.Role() != stapler.Leader {
		return
	}
	rotated, err := n.tickets.RotateIfDue(ctx, period(sched, s.now())*9/10)
	switch {
	case err != nil:
		s.log.Error().Err(err).Msg("the fleet's session ticket keys were not rotated")
	case rotated:
		s.log.Info().Msg("the fleet's session ticket keys rotated (the previous key still decrypts)")
	}
}

// period is the time between two runs of sched, from now.
func period(sched cron.Schedule, now time.Time) time.Duration {
	first := sched.Next(now)
	return sched.Next(first).Sub(first)
}
