package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"strings"
	"time"

	"staple/lab"
)

// Run is one make bench: the servers' environment, the lab, how hard and how long to drive them, and the
// report being written.
type Run struct {
	Env    *Env
	Lab    *Lab
	Load   Load
	Rounds int
	// HTTPWorkers is the concurrency of the responder measures.
	HTTPWorkers int
	Report      *Report
	Log         func(string)
	// StapleResponder is the lab's responder process (staple responder), which the stapling servers fetched
	// from and which the responder measure drives.
	StapleResponder *Proc
}

func (r *Run) logf(format string, args ...any) {
	if r.Log != nil {
		r.Log(fmt.Sprintf(format, args...))
	}
}

// Server names, as the tables show them.
const (
	nameStaple        = "staple serve"
	nameStapleBoring  = "staple serve (boringcrypto)"
	nameStapleOpenSSL = "staple serve (-tags openssl)"
	nameNginx         = "nginx 1.22 (OpenSSL 3.0)"
	nameStatic        = "Go crypto/tls, static staple"
)

// handshakeGroup is the servers of one key type, running together for the full and resumed handshakes.
type handshakeGroup struct {
	kt      lab.KeyType
	leaf    *Leaf
	servers []namedProc // staple serve first, then the others
}

type namedProc struct {
	name string
	p    *Proc
}

func (g *handshakeGroup) find(name string) *Proc {
	for _, s := range g.servers {
		if s.name == name {
			return s.p
		}
	}
	return nil
}

// startGroup starts staple serve (and its boringcrypto build), nginx and the static server for kt.
// responderListen is given to staple serve for its caching responder.
func (r *Run) startGroup(kt lab.KeyType, responderListen string) (*handshakeGroup, error) {
	leaf := r.Lab.Leaves[kt]
	g := &handshakeGroup{kt: kt, leaf: leaf}
	p, err := r.Env.StartStapleServe("staple-"+string(kt), r.Env.Staple, leaf, responderListen)
	if err != nil {
		return nil, err
	}
	g.servers = append(g.servers, namedProc{nameStaple, p})
	if r.Env.StapleBoring != "" {
		if p, err = r.Env.StartStapleServe("staple-boring-"+string(kt), r.Env.StapleBoring, leaf, ""); err != nil {
			return nil, err
		}
		g.servers = append(g.servers, namedProc{nameStapleBoring, p})
	}
	if r.Env.StapleOpenSSL != "" && kt == lab.KeyRSA {
		if p, err = r.Env.StartStapleServe("staple-openssl-"+string(kt), r.Env.StapleOpenSSL, leaf, ""); err != nil {
			return nil, err
		}
		g.servers = append(g.servers, namedProc{nameStapleOpenSSL, p})
	}
	if p, err = r.Env.StartNginx("nginx-"+string(kt), leaf); err != nil {
		return nil, err
	}
	g.servers = append(g.servers, namedProc{nameNginx, p})
	if p, err = r.Env.StartStatic("static-"+string(kt), leaf); err != nil {
		return nil, err
	}
	g.servers = append(g.servers, namedProc{nameStatic, p})
	return g, nil
}

func (g *handshakeGroup) stop() {
	for _, s := range g.servers {
		s.p.Stop(5 * time.Second)
	}
}

func keyTypeName(kt lab.KeyType) string {
	if kt == lab.KeyRSA {
		return "RSA-2048"
	}
	return "ECDSA P-256"
}

// fullHandshakes measures full handshakes of both versions on g and adds their rows to t and the goals.
func (r *Run) fullHandshakes(ctx context.Context, g *handshakeGroup, t *Table) error {
	perVersion := map[uint16]map[string]Series{}
	defer func() {
		if g.kt == lab.KeyRSA && len(perVersion) == 2 {
			r.Report.Note(rsaBuilds(perVersion))
		}
	}()
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		caseName := keyTypeName(g.kt) + ", " + tlsVersionName(v)
		r.logf("full handshakes, %s", caseName)
		var targets []Target
		for _, s := range g.servers {
			targets = append(targets, HandshakeTarget(s.name, s.p, g.leaf, v, false, r.Load))
		}
		series, err := Interleave(ctx, r.Rounds, r.Load.Window, r.Load.Warmup, targets, r.Log)
		if err != nil {
			return err
		}
		byName := map[string]Series{}
		for _, s := range series {
			byName[s.Name] = s
		}
		perVersion[v] = byName
		nginx, static := byName[nameNginx], byName[nameStatic]
		for _, s := range series {
			t.Row(caseName, s.Name, fmtRate(Median(s.Rates())), fmtMicros(Median(s.CPUs())), fmtPercent(Median(s.Utils())),
				fmtRatio(Median(RoundRatios(s.CPUs(), nginx.CPUs()))), fmtRatio(Median(RoundRatios(s.CPUs(), static.CPUs()))))
		}
		r.handshakeGoals(g.kt, v, byName)
	}
	return nil
}

func (r *Run) handshakeGoals(kt lab.KeyType, v uint16, byName map[string]Series) {
	caseName := keyTypeName(kt) + ", " + tlsVersionName(v)
	nginx, static := byName[nameNginx], byName[nameStatic]
	limit, want := 0.90, "≤ 0.90×"
	if kt == lab.KeyRSA {
		limit, want = 1.00, "≤ 1.00×"
	}
	for _, name := range []string{nameStaple, nameStapleBoring, nameStapleOpenSSL} {
		s, ok := byName[name]
		if !ok {
			continue
		}
		x := Median(RoundRatios(s.CPUs(), nginx.CPUs()))
		r.Report.Goal(Goal{Name: caseName + ": " + name + " CPU per full handshake vs nginx", Want: want, Got: fmtRatio(x), Met: x <= limit})
	}
	s := byName[nameStaple]
	x := Median(RoundRatios(s.CPUs(), static.CPUs()))
	r.Report.Goal(Goal{Name: caseName + ": staple serve (stapling from its cache) vs the static-staple Go server", Want: "≤ 1.03×", Got: fmtRatio(x), Met: x <= 1.03})
}

// rsaBuilds says, with the figures, which build serves RSA certificates best and which one is the default.
func rsaBuilds(perVersion map[uint16]map[string]Series) string {
	cpu := func(name string) string {
		var parts []string
		for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			s, ok := perVersion[v][name]
			if !ok {
				return ""
			}
			parts = append(parts, fmtMicros(Median(s.CPUs())))
		}
		return strings.Join(parts, " / ")
	}
	vs := func(name, base string) string {
		var parts []string
		for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			s, ok := perVersion[v][name]
			b, ok2 := perVersion[v][base]
			if !ok || !ok2 {
				return "–"
			}
			parts = append(parts, fmtRatio(Median(RoundRatios(s.CPUs(), b.CPUs()))))
		}
		return strings.Join(parts, " / ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**RSA-2048, which build** (server CPU µs per full handshake, TLS 1.3 / TLS 1.2): the default pure Go build %s "+
		"(%s nginx's); nginx %s.", cpu(nameStaple), vs(nameStaple, nameNginx), cpu(nameNginx))
	if c := cpu(nameStapleBoring); c != "" {
		fmt.Fprintf(&b, " GOEXPERIMENT=boringcrypto (BoringSSL's FIPS module through cgo) %s: %s the pure Go build's, %s nginx's.",
			c, vs(nameStapleBoring, nameStaple), vs(nameStapleBoring, nameNginx))
	}
	if c := cpu(nameStapleOpenSSL); c != "" {
		fmt.Fprintf(&b, " -tags openssl (RSA signatures through the system's libcrypto, cgo) %s: %s the pure Go build's, %s nginx's.",
			c, vs(nameStapleOpenSSL, nameStaple), vs(nameStapleOpenSSL, nameNginx))
	}
	ratio13 := func(name, base string) float64 {
		s, ok := perVersion[tls.VersionTLS13][name]
		b, ok2 := perVersion[tls.VersionTLS13][base]
		if !ok || !ok2 {
			return math.NaN()
		}
		return Median(RoundRatios(s.CPUs(), b.CPUs()))
	}
	b.WriteString(" The RSA signature is most of an RSA handshake, and Go's crypto/rsa computes it about three times slower than " +
		"OpenSSL 3 does on this CPU, BoringSSL's module in between. The default build stays pure Go (no C toolchain to build " +
		"it, no libcrypto to run it, one static binary)")
	if x := ratio13(nameStapleBoring, nameStaple); !math.IsNaN(x) {
		fmt.Fprintf(&b, "; boringcrypto takes %.0f%% off the pure Go build's CPU (TLS 1.3)", 100*(1-x))
		if x > 0.8 {
			b.WriteString(", which does not justify cgo")
		}
	}
	if x := ratio13(nameStapleOpenSSL, nameStaple); !math.IsNaN(x) {
		fmt.Fprintf(&b, "; -tags openssl takes %.0f%% off, to %s nginx's (TLS 1.3): sites that serve mostly RSA certificates "+
			"should build with `go build -tags openssl` (cgo, libssl-dev to build, libcrypto 3 to run)", 100*(1-x), fmtRatio(ratio13(nameStapleOpenSSL, nameNginx)))
	}
	b.WriteString(".")
	return b.String()
}

// resumedHandshakes measures resumed handshakes of both versions on g: staple serve through its session
// store, nginx and the static server through their tickets.
func (r *Run) resumedHandshakes(ctx context.Context, g *handshakeGroup, t *Table) error {
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		caseName := keyTypeName(g.kt) + ", " + tlsVersionName(v)
		r.logf("resumed handshakes, %s", caseName)
		var targets []Target
		for _, name := range []string{nameStaple, nameNginx, nameStatic} {
			targets = append(targets, HandshakeTarget(name, g.find(name), g.leaf, v, true, r.Load))
		}
		series, err := Interleave(ctx, r.Rounds, r.Load.Window, r.Load.Warmup, targets, r.Log)
		if err != nil {
			return err
		}
		nginx := series[1]
		for _, s := range series {
			t.Row(caseName, s.Name, fmtRate(Median(s.Rates())), fmtMicros(Median(s.CPUs())), fmtPercent(Median(s.Utils())),
				fmtRatio(Median(RoundRatios(s.CPUs(), nginx.CPUs()))))
		}
	}
	return nil
}

// Handshakes runs the full and resumed handshake measures for both key types, and the responder measure
// while the ECDSA group (whose staple serve has the caching responder) runs.
func (r *Run) Handshakes(ctx context.Context) error {
	full := Table{
		Title: "Full TLS handshakes (no resumption, the client asks for status)",
		Note: fmt.Sprintf("Medians of %d interleaved runs of %v, %d concurrent clients (Go, internal/loadgen, X25519), "+
			"every server pinned to one CPU (GOMAXPROCS=1 for Go), the client on the other. Server CPU is the server process's "+
			"own user+system time from /proc; ratios are medians of per-round ratios of CPU per handshake, the figure the goals "+
			"are on. Handshakes per second are bounded by the one-CPU client wherever the server's CPU use is well below 100%%.", r.Rounds, r.Load.Window, r.Load.Workers),
		Header: []string{"case", "server", "handshakes/s", "server CPU µs/handshake", "server CPU use", "CPU vs nginx", "CPU vs Go static"},
	}
	resumed := Table{
		Title: "Resumed TLS handshakes",
		Note: "staple serve resumes through its default, sessions sealed in tickets under the ticket keys it keeps in its cache " +
			"(sessions = \"tickets\"); nginx and the Go server through their own tickets. Same method as above.",
		Header: []string{"case", "server", "handshakes/s", "server CPU µs/handshake", "server CPU use", "CPU vs nginx"},
	}
	responderListen, err := FreeAddr()
	if err != nil {
		return err
	}
	for _, kt := range []lab.KeyType{lab.KeyECDSA, lab.KeyRSA} {
		listen := ""
		if kt == lab.KeyECDSA {
			listen = responderListen
		}
		g, err := r.startGroup(kt, listen)
		if err != nil {
			return err
		}
		err = r.fullHandshakes(ctx, g, &full)
		if err == nil && kt == lab.KeyECDSA {
			if err = r.resumedHandshakes(ctx, g, &resumed); err == nil {
				err = r.Responders(ctx, g.find(nameStaple), responderListen)
			}
		}
		g.stop()
		if err != nil {
			return err
		}
	}
	r.Report.Tables = append([]Table{full, resumed}, r.Report.Tables...)
	return nil
}

// Responders measures OCSP GETs on one pre-signed serial: staple responder and staple serve's caching
// responder against openssl ocsp -index, on new connections (one request each, the only way openssl ocsp
// serves) and, for staple, on kept-alive connections.
func (r *Run) Responders(ctx context.Context, serve *Proc, cachingAddr string) error {
	leaf := r.Lab.Leaves[lab.KeyECDSA]
	path, err := GetPath(leaf.Cert, leaf.Issuer)
	if err != nil {
		return err
	}
	caching := *serve // the same process, measured on its other listener
	caching.Name, caching.Addr = "staple serve --responder-listen", cachingAddr
	ossl, err := r.Env.StartOpenSSLResponder("openssl-ocsp", r.Lab, path)
	if err != nil {
		return err
	}
	defer ossl.Stop(5 * time.Second)
	for _, p := range []*Proc{r.StapleResponder, &caching} {
		c, err := dialRaw(p.Addr)
		if err != nil {
			return p.failure(err)
		}
		_, err = c.get(path, false)
		c.close()
		if err != nil {
			return p.failure(fmt.Errorf("GET %s: %w", path, err))
		}
	}
	r.logf("responders, GET on one pre-signed serial")
	load := func(addr string, keepAlive bool) HTTPLoad {
		return HTTPLoad{Addr: addr, Path: path, KeepAlive: keepAlive, Workers: r.HTTPWorkers, Window: r.Load.Window}
	}
	const (
		respNew   = "staple responder, new connections"
		respKA    = "staple responder, keep-alive"
		cacheNew  = "staple serve caching responder, new connections"
		cacheKA   = "staple serve caching responder, keep-alive"
		opensslNm = "openssl ocsp -index, new connections"
	)
	targets := []Target{
		HTTPTarget(respNew, r.StapleResponder, load(r.StapleResponder.Addr, false)),
		HTTPTarget(respKA, r.StapleResponder, load(r.StapleResponder.Addr, true)),
		HTTPTarget(cacheNew, &caching, load(cachingAddr, false)),
		HTTPTarget(cacheKA, &caching, load(cachingAddr, true)),
		HTTPTarget(opensslNm, ossl, load(ossl.Addr, false)),
	}
	series, err := Interleave(ctx, r.Rounds, r.Load.Window, r.Load.Warmup, targets, r.Log)
	if err != nil {
		return err
	}
	ossls := series[len(series)-1]
	t := Table{
		Title: "OCSP responders: GET on one pre-signed serial",
		Note: fmt.Sprintf("Medians of %d interleaved runs of %v, %d concurrent connections from a raw HTTP/1.x client in Go, each "+
			"responder pinned to one CPU. openssl ocsp answers one request per connection (HTTP/1.0), so the like-for-like "+
			"comparison is on new connections; keep-alive is how staplers and caches talk to staple. A responder whose CPU use is "+
			"well below 100%% was waiting for the one-CPU client: its CPU per GET says how far it would go.", r.Rounds, r.Load.Window, r.HTTPWorkers),
		Header: []string{"responder", "GET/s", "server CPU µs/GET", "server CPU use", "GET/s vs openssl", "CPU/GET vs openssl"},
	}
	for _, s := range series {
		t.Row(s.Name, fmtRate(Median(s.Rates())), fmtMicros(Median(s.CPUs())), fmtPercent(Median(s.Utils())),
			fmtRatio(Median(RoundRatios(s.Rates(), ossls.Rates()))), fmtRatio(Median(RoundRatios(s.CPUs(), ossls.CPUs()))))
	}
	r.Report.Add(t)
	for _, s := range series[:len(series)-1] {
		x := Median(RoundRatios(s.Rates(), ossls.Rates()))
		r.Report.Goal(Goal{Name: "Responder: " + s.Name + " vs openssl ocsp (new connections)", Want: "≥ 10×", Got: fmtRatio(x), Met: x >= 10})
	}
	return nil
}
