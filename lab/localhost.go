package lab

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
)

// LocalhostName is the certificate the embedded default serves, and the name of its files in certs/.
const LocalhostName = "localhost"

// Localhost is staple serve's embedded default: a lab (made once, under staple's data directory) with a
// localhost certificate whose AIA names the lab's responder, which staple serve runs in the same process.
type Localhost struct {
	Lab *Lab
	// CertFile and KeyFile are the localhost certificate's chain and key.
	CertFile, KeyFile string
	// Addr is where the lab's responder must listen: the host and port of its responder URL.
	Addr string
}

// OpenLocalhost opens the lab in dir, making it first (with responderURL in its certificates' AIA) when dir
// holds none, and issues the localhost certificate when there is none or the one there expires within a day
// (the old files are kept beside it, named with their serial). now is the clock of that check.
func OpenLocalhost(dir, responderURL string, now time.Time, log zerolog.Logger) (*Localhost, error) {
	l, err := Open(dir)
	if errors.Is(err, ErrNotLab) {
		if _, statErr := os.Stat(filepath.Join(dir, ConfigFile)); errors.Is(statErr, os.ErrNotExist) {
			l, err = Init(dir, InitOptions{ResponderURL: responderURL})
			if err == nil {
				log.Info().Str("lab", dir).Str("responder_url", l.ResponderURL).Msg("made the embedded lab CA")
			} else if errors.Is(err, ErrExists) { // another staple made it meanwhile
				l, err = Open(dir)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lab: the embedded lab in %s: %w", dir, err)
	}
	h := &Localhost{Lab: l, CertFile: l.Path(CertsDir, LocalhostName+".pem"), KeyFile: l.Path(CertsDir, LocalhostName+".key")}
	u, err := url.Parse(l.ResponderURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("lab: the embedded lab's responder URL %q: not an http URL", l.ResponderURL)
	}
	if h.Addr = u.Host; u.Port() == "" {
		h.Addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if err := h.ensureLeaf(now, log); err != nil {
		return nil, err
	}
	return h, nil
}

// ensureLeaf issues the localhost certificate unless one valid for more than a day is there, under the lab's
// lock: of two staples starting at once, the second finds the first's certificate.
func (h *Localhost) ensureLeaf(now time.Time, log zerolog.Logger) error {
	unlock, err := h.Lab.lock()
	if err != nil {
		return fmt.Errorf("lab: the embedded lab's certificate: %w", err)
	}
	defer unlock()
	if chain, err := certs.LoadChain(h.CertFile, h.KeyFile, ""); err == nil {
		if chain.Leaf.NotAfter.Sub(now) > 24*time.Hour {
			return nil
		}
		old := fmt.Sprintf("%s-%s", LocalhostName, chain.Leaf.SerialNumber.Text(16))
		for _, ext := range []string{".pem", ".key"} {
			if err := os.Rename(h.Lab.Path(CertsDir, LocalhostName+ext), h.Lab.Path(CertsDir, old+ext)); err != nil {
				return fmt.Errorf("lab: renewing the embedded lab's certificate: %w", err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lab: the embedded lab's certificate: %w", err)
	}
	is, err := h.Lab.issue(IssueOptions{Names: []string{LocalhostName, "127.0.0.1", "::1"}})
	if err != nil {
		return fmt.Errorf("lab: issuing the embedded lab's certificate: %w", err)
	}
	log.Info().Str("cert", is.CertFile).Str("serial", is.Entry.Serial.Text(16)).Time("not_after", is.Cert.NotAfter).
		Msg("issued the embedded lab's localhost certificate")
	return nil
}

// Source returns the lab's signing responder source with every serial pre-signed, for the responder that
// answers at Addr.
func (h *Localhost) Source(log zerolog.Logger) (*Source, error) {
	cfg := h.Lab.SourceConfig()
	cfg.Log = log
	src, err := NewSource(cfg)
	if err != nil {
		return nil, fmt.Errorf("lab: the embedded lab's responder: %w", err)
	}
	if _, err := src.Presign(context.Background()); err != nil {
		return nil, fmt.Errorf("lab: the embedded lab's responder: %w", err)
	}
	return src, nil
}
