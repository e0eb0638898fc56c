package service

import (
	"context"
	"time"

	"github.com/robfig/cron/v3"

	"staple/stapler"
)

// rotateTickets rotates the TLS session ticket keys on the [tickets] rotate schedule (state.RotateTicketKeys
// says whose, and when in a fleet). The schedule stops when Run returns.
func (s *Service) rotateTickets(ctx context.Context, closing *closers) error {
	spec := s.cfg.Tickets.Rotate
	if spec == "" {
		return nil
	}
	sched, err := stapler.ParseSchedule(spec)
	if err != nil {
		return s.cfg.Errorf("tickets.rotate", "%v", err)
	}
	c := cron.New()
	c.Schedule(sched, cron.FuncJob(func() { s.rotateTicketKeys(ctx, period(sched, s.now())) }))
	c.Start()
	closing.add(func() { <-c.Stop().Done() })
	return nil
}

func (s *Service) rotateTicketKeys(ctx context.Context, period time.Duration) {
	rotated, err := s.state.RotateTicketKeys(ctx, s.front.tls, period)
	switch {
	case err != nil:
		s.log.Error().Err(err).Msg("session ticket keys not rotated, or rotated but not stored: a restart may not resume earlier sessions")
	case rotated:
		s.log.Info().Bool("fleet", s.state.Fleet()).Msg("session ticket keys rotated (the previous key still decrypts)")
	}
}

// period is the time between two runs of sched, from now.
func period(sched cron.Schedule, now time.Time) time.Duration {
	first := sched.Next(now)
	return sched.Next(first).Sub(first)
}
