package service

import (
	"context"
	"fmt"
	"net"
	"time"
)

// announce logs that the service serves, tells Options.Started, and prints the banner for a person at a
// terminal.
func (s *Service) announce(ctx context.Context, a Addrs, bg *group) {
	ev := s.log.Info().Str("listen", a.TLS).Str("data_dir", s.cfg.DataDir).Str("admin_socket", a.AdminSocket).
		Int("certificates", len(s.front.sites.Load().all)).Bool("ready", s.stapler.Ready())
	if a.Metrics != "" {
		ev = ev.Str("metrics", "http://"+a.Metrics+"/metrics")
	}
	if a.Responder != "" {
		ev = ev.Str("responder", "http://"+a.Responder)
	}
	if a.LabResponder != "" {
		ev = ev.Str("lab_responder", "http://"+a.LabResponder)
	}
	ev.Str("version", s.opts.Version).Msg("staple serving")
	if s.opts.Started != nil {
		s.opts.Started(a)
	}
	if s.opts.Banner != nil {
		bg.run("banner", func() error { s.printBanner(ctx, a); return nil })
	}
}

// printBanner tells a person at a terminal where the service is and how to see its staple, once the first
// fetch has had a few seconds to land.
func (s *Service) printBanner(ctx context.Context, a Addrs) {
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !s.stapler.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			goto print
		case <-tick.C:
		}
	}
print:
	w := s.opts.Banner
	host, port, _ := net.SplitHostPort(a.TLS)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	connect := net.JoinHostPort(host, port)
	if s.opts.Lab == nil {
		fmt.Fprintf(w, "staple is serving TLS on %s (admin socket %s)\n", a.TLS, a.AdminSocket)
		fmt.Fprintf(w, "  see the staple:  openssl s_client -connect %s -status </dev/null\n", connect)
		return
	}
	root := s.opts.Lab.RootFile
	status := "stapling"
	if !s.stapler.Ready() {
		status = "not stapling yet (the first fetch from the lab responder has not landed; see the log)"
	}
	fmt.Fprintf(w, `
staple is serving https://localhost:%s/ from its embedded lab, %s.
  the lab CA:       %s
  see the staple:   openssl s_client -connect %s -servername localhost -status -CAfile %s </dev/null
  the status page:  curl --cacert %s https://localhost:%s/
  the cache:        staple cache ls --data-dir %s
Stop with Ctrl-C.

`, port, status, root, connect, root, root, port, s.cfg.DataDir)
}
