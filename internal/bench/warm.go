package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/config"
	"staple/lab"
	"staple/ocspfetch"
	"staple/stapler"
)

// fillCache writes a cache file holding the served leaf's certificate and verified response, and n more
// entries: copies of that record under n distinct keys (the lab CA's key hash, serials from 1,000,000), so
// that the file, its records and the index are those of n certificates. It returns how long writing took.
func fillCache(path string, leaf *Leaf, n int) (time.Duration, error) {
	now := time.Now()
	resp, err := ocspfetch.Verify(leaf.Staple, leaf.Cert, leaf.Issuer, now, ocspfetch.VerifyOptions{})
	if err != nil {
		return 0, fmt.Errorf("bench: the staple of %s: %w", leaf.Name, err)
	}
	var policy ocspfetch.Policy
	expires := resp.Expiry(policy.TTL())
	refresh := resp.ThisUpdate.Add(resp.NextUpdate.Sub(resp.ThisUpdate) / 2)
	rec := stapler.ResponseRecord(resp, expires, refresh)
	cert := cache.Cert{Leaf: leaf.Cert.Raw, Issuer: leaf.Issuer.Raw, URLs: certs.OCSPURLs(leaf.Cert), Added: now}
	start := time.Now()
	st, err := cache.Open(path, cache.Options{})
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer st.Close()
	put := func(key certs.Key) error {
		if err := st.PutCert(key, cert); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if err := st.PutResponse(key, rec); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		return nil
	}
	if err := put(certs.NewKey(leaf.Issuer, leaf.Cert)); err != nil {
		return 0, err
	}
	for i := range n {
		if err := put(certs.KeyFor(leaf.Issuer.RawSubjectPublicKeyInfo, big.NewInt(int64(1_000_000+i)))); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("bench: %w", err)
	}
	return out.Close()
}

// warmRun is one start of staple serve on a copy of a cache file.
type warmRun struct {
	firstStaple time.Duration // from exec to the end of the first stapled handshake
	rss         int64         // resident memory just after it
}

// startWarm copies template into a new data directory, execs staple serve on it with leaf's site, and
// handshakes until one is stapled: the handshake waits in the listen backlog while the service starts.
func (r *Run) startWarm(ctx context.Context, name, template string, leaf *Leaf, timeout time.Duration) (warmRun, error) {
	dir, err := r.Env.subdir(name)
	if err != nil {
		return warmRun{}, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return warmRun{}, fmt.Errorf("bench: %w", err)
	}
	if err := copyFile(filepath.Join(data, config.DatabaseName), template); err != nil {
		return warmRun{}, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return warmRun{}, err
	}
	start := time.Now()
	p, err := StartProc(name, dir, r.Env.ServerCPU, goEnv, r.Env.Staple, "serve", "--cert", leaf.CertFile, "--key", leaf.KeyFile,
		"--listen", addr, "--data-dir", data, "--log-level", "warn", "--log-format", "text")
	if err != nil {
		return warmRun{}, err
	}
	defer p.Stop(10 * time.Second)
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: leaf.Name}
	deadline := start.Add(timeout)
	for {
		if p.Exited() {
			return warmRun{}, p.failure(fmt.Errorf("exited before its first stapled handshake"))
		}
		left := time.Until(deadline)
		if left <= 0 {
			rss, _ := p.RSS()
			return warmRun{firstStaple: -1, rss: rss}, nil // resident memory at the timeout
		}
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: left}, Config: cfg}
		hctx, cancel := context.WithTimeout(ctx, left)
		c, err := d.DialContext(hctx, "tcp", addr)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return warmRun{}, ctx.Err()
			}
			time.Sleep(2 * time.Millisecond) // not listening yet
			continue
		}
		stapled := len(c.(*tls.Conn).ConnectionState().OCSPResponse) > 0
		c.Close()
		if !stapled {
			return warmRun{}, p.failure(fmt.Errorf("the first handshake after start carried no staple: the cached response was not served"))
		}
		w := warmRun{firstStaple: time.Since(start)}
		if w.rss, err = p.RSS(); err != nil {
			return warmRun{}, err
		}
		return w, nil
	}
}

// stapleAlone opens path and starts a stapler on it in this process, as staple serve's warm start does
// before anything else: it returns the time from opening the file to the first Staple of leaf, and the
// live heap the started stapler holds (after a collection), the file closed again.
func stapleAlone(path string, leaf *Leaf) (time.Duration, uint64, error) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	store, err := cache.Open(path, cache.Options{})
	if err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	defer store.Close()
	st, err := stapler.New(stapler.Config{Fetcher: &ocspfetch.Client{}, Storage: store})
	if err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	if err := st.Start(); err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	if st.Staple(certs.NewKey(leaf.Issuer, leaf.Cert)) == nil {
		return 0, 0, errors.New("bench: the stapler did not serve the cached response after its warm start")
	}
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st.Close(ctx)
	runtime.KeepAlive(st)
	return took, after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc), nil
}

// WarmStart times staple serve from exec to its first stapled handshake with entries cached responses,
// against the same start with only its own, in interleaved rounds, and derives the memory per entry.
func (r *Run) WarmStart(ctx context.Context, entries, rounds int) error {
	leaf := r.Lab.Leaves[lab.KeyECDSA]
	dir, err := r.Env.subdir("warm")
	if err != nil {
		return err
	}
	small, large := filepath.Join(dir, "one.db"), filepath.Join(dir, "many.db")
	if _, err := fillCache(small, leaf, 0); err != nil {
		return err
	}
	r.logf("warm start: filling a cache file with %d entries", entries)
	gen, err := fillCache(large, leaf, entries)
	if err != nil {
		return err
	}
	st, _ := os.Stat(large)
	r.logf("warm start: %d entries written in %v (%d MB)", entries, gen.Round(time.Millisecond), st.Size()>>20)
	// A start that has not stapled by timeout is recorded as "> timeout", and the large file is not started
	// again: repeating a run that only says "longer than" would spend minutes of make bench's budget.
	const timeout = 20 * time.Second
	var base, many []warmRun
	manyTimedOut := false
	var aloneBase, aloneMany, heapBase, heapMany []float64
	for i := range rounds {
		order := []bool{false, true}
		if i%2 == 1 {
			order = []bool{true, false}
		}
		for _, big := range order {
			if big && manyTimedOut {
				continue
			}
			tmpl, name := small, fmt.Sprintf("warm-one-%d", i)
			if big {
				tmpl, name = large, fmt.Sprintf("warm-many-%d", i)
			}
			w, err := r.startWarm(ctx, name, tmpl, leaf, timeout)
			if err != nil {
				return err
			}
			if big && w.firstStaple < 0 {
				manyTimedOut = true
			}
			copyPath := filepath.Join(dir, name+"-alone.db")
			if err := copyFile(copyPath, tmpl); err != nil {
				return err
			}
			took, heap, err := stapleAlone(copyPath, leaf)
			os.Remove(copyPath)
			if err != nil {
				return err
			}
			if big {
				aloneMany, heapMany = append(aloneMany, took.Seconds()), append(heapMany, float64(heap))
			} else {
				aloneBase, heapBase = append(aloneBase, took.Seconds()), append(heapBase, float64(heap))
			}
			r.logf("round %d/%d %s: first stapled handshake after %v, RSS %d MB; the stapler alone: first staple after %v, heap %d MB",
				i+1, rounds, name, w.firstStaple.Round(time.Millisecond), w.rss>>20, took.Round(time.Millisecond), heap>>20)
			if big {
				many = append(many, w)
			} else {
				base = append(base, w)
			}
		}
	}
	med := func(ws []warmRun, f func(warmRun) float64) float64 {
		xs := make([]float64, len(ws))
		for i, w := range ws {
			xs[i] = f(w)
		}
		return Median(xs)
	}
	secs := func(w warmRun) float64 {
		if w.firstStaple < 0 {
			return timeout.Seconds() // did not staple within the timeout: counted as the timeout
		}
		return w.firstStaple.Seconds()
	}
	rss := func(w warmRun) float64 { return float64(w.rss) }
	tBase, tMany := med(base, secs), med(many, secs)
	heapPerEntry := (Median(heapMany) - Median(heapBase)) / float64(entries)
	t := Table{
		Title: fmt.Sprintf("Warm start with %s cached entries", thousands(int64(entries))),
		Note: fmt.Sprintf("staple serve exec'd on a copy of a cache file (bbolt, in the work directory) holding its site's verified "+
			"response and %s more entries (copies of that record under distinct keys, written with the cache package in %v, %d MB), "+
			"against the same start with its own entry only; a TLS client dials from the exec on and the time is the end of its first "+
			"stapled handshake. The other entries here are certificates no site serves: staple serve forgets them in the background "+
			"once it serves (one pass over the index, one transaction per 5,000 keys). The stapler alone is the same "+
			"cache file opened and loaded by stapler.Start in the benchmark's process, timed to the first Staple, with its live heap "+
			"after a collection. Medians of %d interleaved starts each (a start that had not stapled after %v is not repeated).",
			thousands(int64(entries)), gen.Round(time.Millisecond), st.Size()>>20, rounds, timeout),
		Header: []string{"measure", "1 entry", thousands(int64(entries)) + " entries"},
	}
	t.Row("staple serve: exec to first stapled handshake", fmt.Sprintf("%.3f s", tBase), fmtSeconds(tMany, timeout))
	manyRSS := fmt.Sprintf("%d MB", int64(med(many, rss))>>20)
	if manyTimedOut {
		manyRSS += " (at the timeout)"
	}
	t.Row("staple serve: resident memory then", fmt.Sprintf("%d MB", int64(med(base, rss))>>20), manyRSS)
	t.Row("stapler alone: cache opened to first staple", fmt.Sprintf("%.3f s", Median(aloneBase)), fmt.Sprintf("%.3f s", Median(aloneMany)))
	t.Row("stapler alone: live heap per cached entry", "", fmt.Sprintf("%s bytes", thousands(int64(heapPerEntry))))
	r.Report.Add(t)
	r.Report.Goal(Goal{Name: fmt.Sprintf("Warm start: first stapled handshake with %s entries", thousands(int64(entries))), Want: "≤ 1 s",
		Got: fmtSeconds(tMany, timeout), Met: tMany <= 1})
	return nil
}

func fmtSeconds(s float64, timeout time.Duration) string {
	if s >= timeout.Seconds() {
		return fmt.Sprintf("> %.0f s", timeout.Seconds())
	}
	return fmt.Sprintf("%.3f s", s)
}
