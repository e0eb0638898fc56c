package bench

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/cache"
	"staple/certs"
	"staple/ocspfetch"
	"staple/stapler"
)

// SelfCPU returns the CPU time, user and system, this process has used so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sweepSetup is a stapler watching the sweep leaves, as staple serve's (ocspfetch.Client with its defaults,
// the stapler's default per-host and overall limits, a bbolt cache), its first fetch of every leaf done.
type sweepSetup struct {
	st     *stapler.Stapler
	store  *cache.Store
	keys   []certs.Key
	signed []signedResponse // for the bare signature check
}

type signedResponse struct {
	signer *x509.Certificate
	alg    x509.SignatureAlgorithm
	tbs    []byte
	sig    []byte
}

// newSweep makes the stapler; an empty dir keeps it in memory (no Storage), to tell persisting from the rest.
func (r *Run) newSweep(ctx context.Context, dir string) (*sweepSetup, error) {
	cfg := stapler.Config{Fetcher: &ocspfetch.Client{UserAgent: "staple-bench"}}
	var store *cache.Store
	if dir != "" {
		var err error
		if store, err = cache.Open(filepath.Join(dir, "cache.db"), cache.Options{}); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		cfg.Storage = store
	}
	st, err := stapler.New(cfg)
	if err != nil {
		if store != nil {
			store.Close()
		}
		return nil, fmt.Errorf("bench: %w", err)
	}
	s := &sweepSetup{st: st, store: store}
	for _, leaf := range r.Lab.Sweep {
		key, err := st.Watch(chain(leaf, r.Lab.CA))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("bench: %w", err)
		}
		s.keys = append(s.keys, key)
	}
	if err := st.Start(); err != nil {
		s.close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	// Start fetches every certificate watched; wait for all of them, then keep what the bare check needs.
	err = waitUntil(ctx, 5*time.Minute, 50*time.Millisecond, func() (bool, error) {
		for _, k := range s.keys {
			if st.Staple(k) == nil {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("bench: the first fetch of %d certificates did not finish: %w", len(s.keys), err)
	}
	for _, k := range s.keys {
		p, err := ocsp.ParseResponse(st.Staple(k), nil)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("bench: %w", err)
		}
		s.signed = append(s.signed, signedResponse{signer: p.Certificate, alg: p.SignatureAlgorithm, tbs: p.TBSResponseData, sig: p.Signature})
	}
	return s, nil
}

func (s *sweepSetup) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.st.Close(ctx)
	if s.store != nil {
		s.store.Close()
	}
}

// refreshAll refreshes every key at once, as a sweep finding them all due does (Stapler.RefreshAll: the
// scheduler's queue, its limits per responder host and overall, one waiter). It checks each one came back
// verified.
func (s *sweepSetup) refreshAll(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	infos, err := s.st.RefreshAll(ctx)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	failed := len(s.keys) - len(infos)
	var firstErr error
	for _, in := range infos {
		if in.LastError != "" || in.Fetched.Before(start) {
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: the refresh did not bring a new verified response: %s", in.Key, in.LastError)
			}
		}
	}
	if failed > 0 {
		return 0, fmt.Errorf("bench: %d of %d refreshes failed, first: %w", failed, len(s.keys), firstErr)
	}
	return time.Since(start), nil
}

// bareCheck checks every response's signature with x509's CheckSignature, nothing else: the work no
// stapler can avoid.
func (s *sweepSetup) bareCheck() error {
	for _, r := range s.signed {
		if err := r.signer.CheckSignature(r.alg, r.tbs, r.sig); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// Sweep refreshes the sweep leaves through a stapler against staple responder, in rounds interleaved with
// the same stapler kept in memory only and the bare signature check of the same responses, and reports wall
// time, this process's CPU per verified response and the ratio. The load generator's process is the
// stapler's: nothing else runs in it then.
func (r *Run) Sweep(ctx context.Context, rounds int) error {
	if len(r.Lab.Sweep) == 0 {
		return nil
	}
	dir, err := r.Env.subdir("sweep")
	if err != nil {
		return err
	}
	r.logf("refresh sweep: watching %d certificates and fetching each once (bbolt cache, then in memory)", len(r.Lab.Sweep))
	disk, err := r.newSweep(ctx, dir)
	if err != nil {
		return err
	}
	defer disk.close()
	mem, err := r.newSweep(ctx, "")
	if err != nil {
		return err
	}
	defer mem.close()
	n := float64(len(disk.keys))
	var walls, cpus, memCPUs, bare, respCPU []float64
	sweep := func(s *sweepSetup, name string, cpuOut *[]float64, i int) error {
		rc0, err := r.StapleResponder.CPU()
		if err != nil {
			return err
		}
		c0 := SelfCPU()
		wall, err := s.refreshAll(ctx)
		if err != nil {
			return err
		}
		c1 := SelfCPU()
		rc1, err := r.StapleResponder.CPU()
		if err != nil {
			return err
		}
		*cpuOut = append(*cpuOut, float64((c1-c0).Microseconds())/n)
		if s == disk {
			walls = append(walls, wall.Seconds())
			respCPU = append(respCPU, float64((rc1-rc0).Microseconds())/n)
		}
		r.logf("round %d/%d sweep of %d, %s: %v, %.1f µs CPU per verified response", i+1, rounds, len(s.keys), name, wall.Round(time.Millisecond), (*cpuOut)[len(*cpuOut)-1])
		return nil
	}
	check := func(i int) error {
		c0 := SelfCPU()
		if err := disk.bareCheck(); err != nil {
			return err
		}
		bare = append(bare, float64((SelfCPU()-c0).Microseconds())/n)
		r.logf("round %d/%d bare CheckSignature: %.1f µs CPU per response", i+1, rounds, bare[len(bare)-1])
		return nil
	}
	for i := range rounds {
		steps := []func() error{
			func() error { return sweep(disk, "bbolt cache", &cpus, i) },
			func() error { return sweep(mem, "in memory", &memCPUs, i) },
			func() error { return check(i) },
		}
		if i%2 == 1 {
			slices.Reverse(steps)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
	}
	ratio := Median(RoundRatios(cpus, bare))
	t := Table{
		Title: fmt.Sprintf("Refresh sweep: %s certificates refreshed against staple responder", thousands(int64(len(disk.keys)))),
		Note: fmt.Sprintf("A stapler as staple serve runs it (ocspfetch.Client, %d per responder host, %d in flight, bbolt cache "+
			"in the work directory) refreshes every certificate at once; each response is fetched over HTTP keep-alive, "+
			"verified in full (RFC 6960: CertID, delegated signer, its issuer's signature, validity) and stored. The same "+
			"stapler without storage tells persisting from fetching and verifying. The bare check is x509's CheckSignature on "+
			"the same responses (ECDSA P-256 signer). CPU is the stapler process's own; medians of %d interleaved rounds, the "+
			"ratios medians of per-round ratios.", stapler.DefaultMaxPerHost, stapler.DefaultMaxInFlight, rounds),
		Header: []string{"measure", "median"},
	}
	t.Row("wall time of the sweep (bbolt cache)", fmt.Sprintf("%.2f s", Median(walls)))
	t.Row("verified responses per second", fmtRate(n/Median(walls)))
	t.Row("stapler CPU µs per verified response, bbolt cache", fmtMicros(Median(cpus)))
	t.Row("stapler CPU µs per verified response, in memory", fmtMicros(Median(memCPUs)))
	t.Row("bare CheckSignature CPU µs per response", fmtMicros(Median(bare)))
	t.Row("ratio, bbolt cache / bare check", fmtRatio(ratio))
	t.Row("ratio, in memory / bare check", fmtRatio(Median(RoundRatios(memCPUs, bare))))
	t.Row("staple responder CPU µs per response (its own CPU)", fmtMicros(Median(respCPU)))
	r.Report.Add(t)
	r.Report.Goal(Goal{Name: "Refresh: CPU per verified response vs the bare signature check", Want: "≤ 1.50×", Got: fmtRatio(ratio), Met: ratio <= 1.5})
	return nil
}
