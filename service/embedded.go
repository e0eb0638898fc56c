package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"staple/certs"
	"staple/lab"
)

// DefaultLabResponderURL is where the embedded lab's responder listens, and so the AIA OCSP URL of the
// certificates it issues. It is not lab.DefaultResponderURL, so that a 'staple responder' for another lab can
// run beside 'staple serve'.
const DefaultLabResponderURL = "http://127.0.0.1:8889"

// LabDir is the embedded lab's directory under the data directory.
const LabDir = "lab"

// embeddedLabName is the certificate the embedded default serves.
const embeddedLabName = "localhost"

// embeddedLab is staple serve's default with no configuration: a lab CA under the data directory, a
// localhost certificate from it, and the lab's responder in the same process.
type embeddedLab struct {
	lab  *lab.Lab
	addr string // where the responder listens: the host of the lab's responder URL
	cert string
}

// prepareEmbeddedLab makes (once) the lab and its localhost certificate under the data directory, and
// makes the certificate the one site. A certificate that expires within a day is issued anew.
func prepareEmbeddedLab(cfg *Config, log zerolog.Logger) (*embeddedLab, error) {
	dir := filepath.Join(cfg.DataDir, LabDir)
	l, err := lab.Open(dir)
	if errors.Is(err, lab.ErrNotLab) {
		if _, statErr := os.Stat(filepath.Join(dir, lab.ConfigFile)); errors.Is(statErr, os.ErrNotExist) {
			l, err = lab.Init(dir, lab.InitOptions{ResponderURL: cfg.labResponderURL()})
			if err == nil {
				log.Info().Str("lab", dir).Str("responder_url", l.ResponderURL).Msg("made the embedded lab CA")
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("service: the embedded lab in %s: %w", dir, err)
	}
	e := &embeddedLab{lab: l, cert: l.Path(lab.CertsDir, embeddedLabName+".pem")}
	u, err := url.Parse(l.ResponderURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("service: the embedded lab's responder URL %q: not an http URL", l.ResponderURL)
	}
	e.addr = u.Host
	if u.Port() == "" {
		e.addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if err := e.ensureLeaf(log); err != nil {
		return nil, err
	}
	cfg.Sites = []Site{{Cert: e.cert, Key: l.Path(lab.CertsDir, embeddedLabName+".key")}}
	return e, nil
}

// ensureLeaf issues the localhost certificate when there is none, or when the one there expires within a
// day (the old files are kept beside it, renamed with their serial).
func (e *embeddedLab) ensureLeaf(log zerolog.Logger) error {
	keyFile := e.lab.Path(lab.CertsDir, embeddedLabName+".key")
	if chain, err := certs.LoadChain(e.cert, keyFile, ""); err == nil {
		if time.Until(chain.Leaf.NotAfter) > 24*time.Hour {
			return nil
		}
		old := fmt.Sprintf("%s-%s", embeddedLabName, chain.Leaf.SerialNumber.Text(16))
		for _, ext := range []string{".pem", ".key"} {
			if err := os.Rename(e.lab.Path(lab.CertsDir, embeddedLabName+ext), e.lab.Path(lab.CertsDir, old+ext)); err != nil {
				return fmt.Errorf("service: renewing the embedded lab's certificate: %w", err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("service: the embedded lab's certificate: %w", err)
	}
	is, err := e.lab.Issue(lab.IssueOptions{Names: []string{embeddedLabName, "127.0.0.1", "::1"}})
	if err != nil {
		return fmt.Errorf("service: issuing the embedded lab's certificate: %w", err)
	}
	log.Info().Str("cert", is.CertFile).Str("serial", is.Entry.Serial.Text(16)).Time("not_after", is.Cert.NotAfter).
		Msg("issued the embedded lab's localhost certificate")
	return nil
}

// source returns the lab's signing responder source, every serial pre-signed.
func (e *embeddedLab) source(log zerolog.Logger) (*lab.Source, error) {
	cfg := e.lab.SourceConfig()
	cfg.Log = log.With().Str("component", "lab-responder").Logger()
	src, err := lab.NewSource(cfg)
	if err != nil {
		return nil, fmt.Errorf("service: the embedded lab's responder: %w", err)
	}
	if _, err := src.Presign(context.Background()); err != nil {
		return nil, fmt.Errorf("service: the embedded lab's responder: %w", err)
	}
	return src, nil
}

// printBanner tells a person at a terminal where the service is and how to see its staple, once the
// first fetch has had a few seconds to land.
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
	if s.lab == nil {
		fmt.Fprintf(w, "staple is serving TLS on %s (admin socket %s)\n", a.TLS, a.AdminSocket)
		fmt.Fprintf(w, "  see the staple:  openssl s_client -connect %s -status </dev/null\n", connect)
		return
	}
	root := s.lab.lab.Path(lab.RootCertFile)
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

// labResponderURL is the responder URL for a new embedded lab.
func (c *Config) labResponderURL() string {
	if c.LabResponderURL != "" {
		return c.LabResponderURL
	}
	return DefaultLabResponderURL
}
