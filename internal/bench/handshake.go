package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"staple/internal/loadgen"
)

// Load is how the TLS servers are driven: the same for every server of a case.
type Load struct {
	Window  time.Duration // one run
	Warmup  time.Duration // one unmeasured run of each target before the rounds
	Workers int           // concurrent client connections
}

// HandshakeTarget returns the target that drives p with full (or, with resume, resumed) handshakes of the
// given version, asking for status, and measures p's own CPU time around it. A full
// handshake without a staple, or a resumed run that mostly does not resume, is an error: the server is
// not doing what is measured.
func HandshakeTarget(name string, p *Proc, leaf *Leaf, version uint16, resume bool, load Load) Target {
	return Target{Name: name, Run: func(ctx context.Context, d time.Duration) (Sample, error) {
		o := loadgen.Options{
			Addr: p.Addr, ServerName: leaf.Name, Version: version, Workers: load.Workers, Duration: d,
			Resume: resume, CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
		}
		if !resume {
			o.Staple = func(der []byte, _ tls.ConnectionState) error {
				if len(der) == 0 {
					return errNoStaple
				}
				return nil
			}
		}
		cpu0, err := p.CPU()
		if err != nil {
			return Sample{}, err
		}
		res, err := loadgen.Run(ctx, o)
		if err != nil {
			return Sample{}, err
		}
		cpu1, err := p.CPU()
		if err != nil {
			return Sample{}, err
		}
		switch {
		case res.Handshakes == 0 && res.Errors == 0:
			return Sample{}, ErrNothingDone
		case res.Handshakes == 0:
			return Sample{}, p.failure(fmt.Errorf("no handshake completed (%d errors, first: %v)", res.Errors, res.FirstError))
		case res.Errors*100 > res.Handshakes:
			return Sample{}, p.failure(fmt.Errorf("%d of %d handshakes failed, first: %v", res.Errors, res.Handshakes+res.Errors, res.FirstError))
		case res.BadStaples > 0:
			return Sample{}, p.failure(fmt.Errorf("%d of %d full handshakes without a staple", res.BadStaples, res.Handshakes))
		case resume && res.Resumed*10 < res.Handshakes*9:
			return Sample{}, p.failure(fmt.Errorf("only %d of %d handshakes resumed", res.Resumed, res.Handshakes))
		}
		return Sample{Ops: res.Handshakes, Elapsed: res.Elapsed, CPU: cpu1 - cpu0, Errors: res.Errors}, nil
	}}
}
