package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/ocsp"

	"staple/admin"
	"staple/certs"
	"staple/config"
	"staple/internal/testpki"
)

// world is a PKI with a fake responder and certificate files for sites, valid in real time (the TLS clients
// of the tests check real time).
type world struct {
	t    *testing.T
	dir  string
	ca   *testpki.CA
	resp *testpki.Responder
	pool *x509.CertPool
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir()}
	root := testpki.NewRoot(t, "service test root", testpki.ECDSAP256)
	w.ca = root.NewIntermediate(t, "service test CA", testpki.ECDSAP256)
	w.resp = testpki.NewResponder(t, w.ca, testpki.ResponderOptions{Now: time.Now, Validity: time.Hour})
	w.pool = root.Pool()
	return w
}

// leaf issues a certificate for names pointing at the responder and writes it as chain and key files.
func (w *world) leaf(name string, names ...string) (certFile, keyFile string, l *testpki.Leaf) {
	w.t.Helper()
	now := time.Now()
	l = w.ca.Issue(w.t, testpki.LeafOptions{DNSNames: names, OCSPURLs: []string{w.resp.URL},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour)})
	certFile, keyFile = filepath.Join(w.dir, name+".pem"), filepath.Join(w.dir, name+".key")
	if err := os.WriteFile(certFile, l.ChainPEM(), 0o600); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, l.KeyPEM(), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return certFile, keyFile, l
}

// running is a service started in process by run.
type running struct {
	addrs  Addrs
	cancel context.CancelFunc
	done   chan error
	reload chan func() (*config.Config, error)
	once   sync.Once
}

func run(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	r := &running{done: make(chan error, 1), reload: make(chan func() (*config.Config, error))}
	started := make(chan Addrs, 1)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.done <- Run(ctx, cfg, Options{Version: "test", Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
			Reload: r.reload, Started: func(a Addrs) { started <- a }})
	}()
	select {
	case r.addrs = <-started:
	case err := <-r.done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not start within 30 s")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends the service and checks that Run returns nil; it may be called again.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run returned %v after its context ended", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30 s of its context ending")
		}
	})
}

// dial makes a TLS handshake asking for status and returns the connection state.
func (w *world) dial(t *testing.T, addr, sni string) (*tls.Conn, tls.ConnectionState) {
	t.Helper()
	// Without SNI, and for a name that falls back to the default site, there is no name to verify: the
	// callers check which certificate they got.
	cfg := &tls.Config{RootCAs: w.pool, ServerName: sni, InsecureSkipVerify: sni == "" || strings.HasPrefix(sni, "unverified.")}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s (%s): %v", addr, sni, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.ConnectionState()
}

// waitStapled dials until a staple comes, and checks it verifies for the leaf.
func (w *world) waitStapled(t *testing.T, addr, sni string, leaf *testpki.Leaf) []byte {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, st := w.dial(t, addr, sni)
		c.Close()
		if st.OCSPResponse != nil {
			r, err := ocsp.ParseResponseForCert(st.OCSPResponse, leaf.Cert, w.ca.Cert)
			if err != nil || r.Status != ocsp.Good {
				t.Fatalf("staple for %s: %v, status %v", sni, err, r)
			}
			return st.OCSPResponse
		}
		if time.Now().After(deadline) {
			t.Fatalf("no staple for %s within 15 s", sni)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServiceSitesExportsResponderMetrics runs a service with two sites (the default one showing the status
// page, one proxying to an upstream), an export with a reload command, the metrics and the caching responder,
// and checks each from the outside.
func TestServiceSitesExportsResponderMetrics(t *testing.T) {
	w := newWorld(t)
	aCert, aKey, aLeaf := w.leaf("a", "a.test")
	bCert, bKey, bLeaf := w.leaf("b", "b.test")
	upstream := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "upstream saw proto=%s host=%s", r.Header.Get("X-Forwarded-Proto"), r.Host)
	}))
	defer upstream.Close()
	marker := filepath.Join(w.dir, "reloaded")
	cfg := &config.Config{
		DataDir: filepath.Join(w.dir, "data"), Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", ResponderListen: "127.0.0.1:0",
		Fetch: config.Fetch{Sweep: "@every 1s"},
		Sites: []config.Site{
			{Cert: aCert, Key: aKey},
			{Names: []string{"b.test"}, Cert: bCert, Key: bKey, Upstream: upstream.URL},
		},
		Exports: []config.Export{
			{Cert: aCert, Path: "{cert}.ocsp", Reload: []string{"touch", marker}},
			{Path: filepath.Join(w.dir, "{key}.b64"), Format: "base64"},
		},
	}
	r := run(t, cfg)

	staple := w.waitStapled(t, r.addrs.TLS, "a.test", aLeaf)
	w.waitStapled(t, r.addrs.TLS, "b.test", bLeaf)
	_, st := w.dial(t, r.addrs.TLS, "")
	if len(st.PeerCertificates) == 0 || !st.PeerCertificates[0].Equal(aLeaf.Cert) || st.OCSPResponse == nil {
		t.Errorf("a client without SNI did not get the default site with its staple")
	}

	// The upstream site proxies, the default site shows the status page with the connection's staple.
	get := func(sni, accept string) string {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.pool, ServerName: sni}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "https://"+r.addrs.TLS+"/", nil)
		req.Header.Set("Accept", accept)
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET via %s: %v", sni, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if body := get("b.test", "*/*"); !strings.Contains(body, "upstream saw proto=https host="+r.addrs.TLS) {
		t.Errorf("the proxied site answered %q", body)
	}
	// A certificate held but served by no site here (imported; in a fleet, another node's) is not published
	// on the public status page.
	_, _, held := w.leaf("held", "held.test")
	imp := admin.ImportRequest{DER: w.ca.Respond(t, held.Cert, testpki.ResponseOptions{ThisUpdate: time.Now()}), Chain: held.ChainPEM()}
	if _, err := admin.NewClient(r.addrs.AdminSocket).Import(context.Background(), imp); err != nil {
		t.Fatal(err)
	}
	var doc statusDoc
	if err := json.Unmarshal([]byte(get("a.test", "application/json")), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Certificates) != 2 || doc.Certificates[0].Status != "good" || doc.Certificates[1].Status != "good" || !doc.Ready {
		t.Errorf("status page: %+v", doc)
	}
	if c := doc.Connection; c == nil || c.ServerName != "a.test" || c.Version == "" {
		t.Errorf("status page connection: %+v", c)
	}
	heldRef, _ := certs.ParseKey(certs.NewKey(w.ca.Cert, held.Cert).String())
	if _, err := admin.NewClient(r.addrs.AdminSocket).Remove(context.Background(), heldRef); err != nil {
		t.Fatal(err)
	}

	// Exports: the DER next to the certificate (HAProxy's layout) and base64 per key; the reload ran.
	waitFor(t, func() bool { _, err := os.Stat(marker); return err == nil }, "the export's reload command")
	der, err := os.ReadFile(aCert + ".ocsp")
	if err != nil || !bytes.Equal(der, staple) {
		t.Errorf("%s.ocsp: %v, %d bytes, want the %d-byte staple", aCert, err, len(der), len(staple))
	}
	b64s, _ := filepath.Glob(filepath.Join(w.dir, "*.b64"))
	if len(b64s) != 2 {
		t.Errorf("base64 exports %v, want one per certificate", b64s)
	}
	for _, f := range b64s {
		data, _ := os.ReadFile(f)
		if _, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data))); err != nil {
			t.Errorf("%s is not base64: %v", f, err)
		}
	}

	// The caching responder answers for the watched certificates with the cached bytes, and nothing else.
	req, _ := ocsp.CreateRequest(aLeaf.Cert, w.ca.Cert, nil)
	url := "http://" + r.addrs.Responder + "/" + base64.StdEncoding.EncodeToString(req)
	body, hdr := httpGet(t, url)
	if !bytes.Equal(body, staple) {
		t.Errorf("caching responder: %d bytes, want the staple (%d bytes)", len(body), len(staple))
	}
	if !strings.Contains(hdr.Get("Cache-Control"), "max-age=") || hdr.Get("ETag") == "" {
		t.Errorf("caching responder headers: %v", hdr)
	}
	other := w.ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"other.test"}})
	req, _ = ocsp.CreateRequest(other.Cert, w.ca.Cert, nil)
	body, _ = httpGet(t, "http://"+r.addrs.Responder+"/"+base64.StdEncoding.EncodeToString(req))
	if _, err := ocsp.ParseResponse(body, nil); !isStatus(err, ocsp.Unauthorized) {
		t.Errorf("caching responder for an unwatched certificate: %v, want unauthorized", err)
	}

	// Metrics.
	body, _ = httpGet(t, "http://"+r.addrs.Metrics+"/metrics")
	for _, want := range []string{`staple_handshakes_total{outcome="stapled",reason=""}`, "staple_ready 1", "staple_fetch_duration_seconds_count"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The admin socket serves the same entries, and a refresh through it fetches.
	client := admin.NewClient(r.addrs.AdminSocket)
	es, err := client.Entries(context.Background())
	if err != nil || len(es) != 2 || len(es[0].Names) == 0 || !es[0].Watched {
		t.Errorf("admin entries: %v, %+v", err, es)
	}
	before, _ := w.resp.Counts()
	if _, err := client.Refresh(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if after, _ := w.resp.Counts(); after < before+2 {
		t.Errorf("refresh of every entry made %d requests, want 2", after-before)
	}
	st2, err := client.Stats(context.Background())
	if err != nil || !st2.Ready || !st2.Healthy || st2.Handshakes == 0 || st2.Stapled == 0 {
		t.Errorf("admin stats: %v, %+v", err, st2)
	}
}

// TestServiceReload replaces a site's certificate and drops another through a reload: new handshakes get the
// new certificate with its staple, the dropped site's name falls back to the default, and the cache forgets
// the old certificates.
func TestServiceReload(t *testing.T) {
	w := newWorld(t)
	aCert, aKey, aLeaf := w.leaf("a", "a.test")
	bCert, bKey, bLeaf := w.leaf("b", "b.test")
	cfg := &config.Config{DataDir: filepath.Join(w.dir, "data"), Listen: "127.0.0.1:0",
		Sites: []config.Site{{Cert: aCert, Key: aKey}, {Names: []string{"b.test", "unverified.b.test"}, Cert: bCert, Key: bKey}}}
	r := run(t, cfg)
	w.waitStapled(t, r.addrs.TLS, "b.test", bLeaf)
	w.waitStapled(t, r.addrs.TLS, "a.test", aLeaf)

	// A bad configuration changes nothing.
	r.reload <- func() (*config.Config, error) { return nil, errors.New("the file does not parse") }
	renewedCert, renewedKey, renewedLeaf := w.leaf("a-renewed", "a.test")
	renewed := renewedLeaf.Cert
	next := &config.Config{DataDir: cfg.DataDir, Listen: cfg.Listen, Sites: []config.Site{{Cert: renewedCert, Key: renewedKey}}}
	r.reload <- func() (*config.Config, error) { return next, nil }
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, st := w.dial(t, r.addrs.TLS, "a.test")
		if st.PeerCertificates[0].Equal(renewed) && st.OCSPResponse != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not served with a staple within 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, st := w.dial(t, r.addrs.TLS, "unverified.b.test"); !st.PeerCertificates[0].Equal(renewed) {
		t.Error("the dropped site's name did not fall back to the default")
	}
	es, _ := admin.NewClient(r.addrs.AdminSocket).Entries(context.Background())
	if len(es) != 1 {
		t.Errorf("after the reload the cache holds %d entries, want the renewed one only: %+v", len(es), es)
	}
}

func httpGet(t *testing.T, url string) ([]byte, http.Header) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return body, resp.Header
}

func isStatus(err error, status ocsp.ResponseStatus) bool {
	var re ocsp.ResponseError
	return errors.As(err, &re) && re.Status == status
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 15 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServiceForgetsUnservedAtStart restarts a service with a renewed certificate in place of the old one
// (renewed while it was stopped): the old entry leaves the cache instead of being refreshed forever.
func TestServiceForgetsUnservedAtStart(t *testing.T) {
	w := newWorld(t)
	aCert, aKey, aLeaf := w.leaf("a", "a.test")
	dataDir := filepath.Join(w.dir, "data")
	r := run(t, &config.Config{DataDir: dataDir, Listen: "127.0.0.1:0", Sites: []config.Site{{Cert: aCert, Key: aKey}}})
	w.waitStapled(t, r.addrs.TLS, "a.test", aLeaf)
	r.stop(t)

	nCert, nKey, nLeaf := w.leaf("a-new", "a.test")
	r = run(t, &config.Config{DataDir: dataDir, Listen: "127.0.0.1:0", Sites: []config.Site{{Cert: nCert, Key: nKey}}})
	w.waitStapled(t, r.addrs.TLS, "a.test", nLeaf)
	var es []admin.Entry
	var err error
	waitFor(t, func() bool { // the old entry is dropped in the background, once serving has begun
		es, err = admin.NewClient(r.addrs.AdminSocket).Entries(context.Background())
		return err == nil && len(es) == 1
	}, "the old entry dropped")
	if !strings.HasSuffix(es[0].Key, ":"+strings.ToLower(nLeaf.Cert.SerialNumber.Text(16))) {
		t.Errorf("entries after a restart with a renewed certificate: %+v", es)
	}
}

// TestServiceResumption resumes TLS sessions across a restart of the service, both ways sessions can live:
// in tickets under the ticket keys kept in the cache (the default), and in the cache's session store.
func TestServiceResumption(t *testing.T) {
	for _, mode := range []string{"tickets", "store"} {
		t.Run(mode, func(t *testing.T) {
			w := newWorld(t)
			aCert, aKey, aLeaf := w.leaf("a", "a.test")
			cfg := func() *config.Config {
				return &config.Config{DataDir: filepath.Join(w.dir, "data"), Listen: "127.0.0.1:0", Sessions: mode,
					Sites: []config.Site{{Cert: aCert, Key: aKey}}}
			}
			r := run(t, cfg())
			w.waitStapled(t, r.addrs.TLS, "a.test", aLeaf)
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				cache := tls.NewLRUClientSessionCache(4)
				conf := &tls.Config{RootCAs: w.pool, ServerName: "a.test", ClientSessionCache: cache, MinVersion: v, MaxVersion: v}
				resumed := func(addr string) bool {
					c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
					c.Read(make([]byte, 1)) // a TLS 1.3 ticket comes after the handshake
					return c.ConnectionState().DidResume
				}
				if resumed(r.addrs.TLS) || !resumed(r.addrs.TLS) {
					t.Errorf("%s: the second connection did not resume", versionName(v))
				}
				r.stop(t)
				r = run(t, cfg())
				if !resumed(r.addrs.TLS) {
					t.Errorf("%s: no resumption after a restart", versionName(v))
				}
			}
		})
	}
}

func versionName(v uint16) string { return tls.VersionName(v) }
