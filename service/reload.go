package service

import (
	"context"
	"fmt"
	"slices"

	"staple/certs"
	"staple/config"
)

// install watches the certificates of next (a new one is fetched at once) and gives its sites without an
// upstream or a forward the status page. It does not touch the TLS front: the caller swaps it in, then drops
// the previous set's references with unwatch.
func (s *Service) install(next *siteSet) error {
	for _, st := range next.all {
		if st.handler == nil && st.cfg.Forward == "" {
			st.handler = &StatusPage{Entries: s.served, Ready: s.stapler.Ready, Now: s.opts.Now, Version: s.opts.Version}
		}
	}
	var watched []certs.Key
	for _, st := range next.all {
		if !st.watched {
			s.logUnstapled(st)
			continue
		}
		if _, err := s.stapler.Watch(st.chain); err != nil {
			for _, k := range watched {
				s.stapler.Unwatch(k)
			}
			return fmt.Errorf("service: %s: %w", st.name, err)
		}
		watched = append(watched, st.key)
	}
	return nil
}

// unwatch drops the references a set's sites took: a certificate no site serves any more is forgotten.
func (s *Service) unwatch(set *siteSet) {
	for _, st := range set.all {
		if st.watched {
			s.stapler.Unwatch(st.key)
		}
	}
}

func (s *Service) logUnstapled(st *site) {
	if st.noStaple == NoStapleNoIssuer {
		s.log.Warn().Str("site", st.name).Str("cert", st.cfg.Cert).Str("certificate", certs.Describe(st.chain.Leaf)).
			Msg("the certificate's issuer is not in its file: nothing can be fetched or stapled (add the issuing CA to the chain, or issuer = \"CA.pem\")")
	}
}

// reload applies a new configuration: new certificates are watched (and fetched at once), the TLS server
// switches to the new contexts for the next handshakes, certificates no longer served are dropped. On any
// error nothing changes and the error is logged. The files are read off the service's loop: one that blocks
// (a FIFO without a writer) is given up when ctx ends, so that the drain still runs.
func (s *Service) reload(ctx context.Context, load func() (*config.Config, error)) {
	type loaded struct {
		cfg  *config.Config
		next *siteSet
		err  error
	}
	done := make(chan loaded, 1)
	go func() {
		var l loaded
		if l.cfg, l.err = load(); l.err == nil {
			l.err = l.cfg.Check()
		}
		if l.err == nil {
			l.next, l.err = loadSites(l.cfg, s.base)
		}
		done <- l
	}()
	var l loaded
	select {
	case l = <-done:
	case <-ctx.Done():
		s.log.Warn().Msg("reload given up: stopping while its files are still being read")
		return
	}
	cfg, next, err := l.cfg, l.next, l.err
	if err == nil {
		err = s.install(next)
	}
	if err != nil {
		s.log.Error().Err(err).Msg("reload failed: the configuration in force is kept")
		return
	}
	s.warnRestartOnly(cfg)
	prev := s.front.sites.Load()
	if err := s.front.use(next); err != nil {
		s.unwatch(next)
		s.log.Error().Err(err).Msg("reload failed: the configuration in force is kept")
		return
	}
	s.unwatch(prev)
	if s.cached != nil {
		s.cached.Serve(next.certificates())
	}
	s.exportAll(next)
	var renewed []string
	for _, st := range next.all {
		if !slices.ContainsFunc(prev.all, func(p *site) bool { return p.key == st.key }) {
			renewed = append(renewed, st.key.String())
		}
	}
	s.log.Info().Int("sites", len(next.all)).Strs("new_certificates", renewed).Msg("configuration reloaded")
}

// warnRestartOnly says which settings of cfg differ from those in force and take effect only at a restart.
func (s *Service) warnRestartOnly(cfg *config.Config) {
	for key, v := range map[string][2]string{
		"listen": {s.cfg.Listen, cfg.Listen}, "data_dir": {s.cfg.DataDir, cfg.DataDir},
		"metrics_listen": {s.cfg.MetricsListen, cfg.MetricsListen}, "responder_listen": {s.cfg.ResponderListen, cfg.ResponderListen},
	} {
		if v[0] != v[1] {
			s.log.Warn().Str("key", key).Str("in_force", v[0]).Str("new", v[1]).Msg("this setting changes only with a restart")
		}
	}
}

// exportAll queues the exports of every certificate of set that has a staple: files for nginx and HAProxy
// from the first moment (from the warm cache), and after a reload for the sites it added.
func (s *Service) exportAll(set *siteSet) {
	for key := range set.byKey {
		if s.stapler.Staple(key) != nil {
			s.exports.changed(key)
		}
	}
}

// forgetUnserved drops the cached certificates no site serves any more (renewed or removed while the service
// was stopped), as a reload does, so that their responders are not asked for them again.
func (s *Service) forgetUnserved() {
	gone, err := s.stapler.ForgetUnwatched()
	if err != nil {
		s.log.Warn().Err(err).Int("certificates", len(gone)).Msg("cached certificates no site serves could not all be removed from the cache file")
		return
	}
	if len(gone) == 0 {
		return
	}
	ev := s.log.Info().Int("certificates", len(gone))
	if len(gone) <= 10 {
		keys := make([]string, len(gone))
		for i, k := range gone {
			keys[i] = k.String()
		}
		ev = ev.Strs("keys", keys)
	}
	ev.Msg("dropped cached certificates that no site serves any more")
}
