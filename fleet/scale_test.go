package fleet

import (
	"context"
	"math/big"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/cache"
	"staple/certs"
	"staple/internal/testpki"
	"staple/ocspwire"
	"staple/stapler"
)

// The figures of docs/fleet.md: go test ./fleet -run '^$' -bench . -benchtime 3x

// scaleCerts is M, the certificates of the measured fleet.
const scaleCerts = 1000

// responseKinds are the two ends of real responses: a small ECDSA response signed by the issuer, and an
// RSA-2048 one signed by a delegated responder whose certificate it carries.
func responseKinds(b *testing.B) map[string]struct {
	raw        []byte
	leaf, iss  []byte
	responders []string
} {
	kinds := map[string]struct {
		raw        []byte
		leaf, iss  []byte
		responders []string
	}{}
	ec := testpki.NewRoot(b, "scale ECDSA CA", testpki.ECDSAP256)
	ecLeaf := ec.Issue(b, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.example.test/"}})
	kinds["ecdsa-issuer"] = struct {
		raw        []byte
		leaf, iss  []byte
		responders []string
	}{ec.Respond(b, ecLeaf.Cert, testpki.ResponseOptions{}), ecLeaf.Cert.Raw, ec.Cert.Raw, ecLeaf.Cert.OCSPServer}
	rsa := testpki.NewRoot(b, "scale RSA CA", testpki.RSA2048)
	rsaLeaf := rsa.Issue(b, testpki.LeafOptions{KeyType: testpki.RSA2048, OCSPURLs: []string{"http://ocsp.example.test/"}})
	signer := rsa.NewSigner(b, testpki.SignerOptions{NoCheck: true})
	kinds["rsa-delegated"] = struct {
		raw        []byte
		leaf, iss  []byte
		responders []string
	}{rsa.Respond(b, rsaLeaf.Cert, testpki.ResponseOptions{Signer: signer}), rsaLeaf.Cert.Raw, rsa.Cert.Raw, rsaLeaf.Cert.OCSPServer}
	return kinds
}

// BenchmarkRefreshCycle plays what the leader writes for M certificates in one refresh cycle (a newer
// response and a history attempt each) and reports etcd revisions (writes) per certificate, the bytes of a
// response record, etcd's database growth per refresh before compaction, and its size per certificate
// after compaction and defragmentation.
func BenchmarkRefreshCycle(b *testing.B) {
	for name, k := range responseKinds(b) {
		b.Run(name, func(b *testing.B) {
			e := startEtcd(b)
			cfg := e.config(b)
			cli := connect(b, cfg)
			st := NewStore(cli, cfg)
			ctx := context.Background()
			keys := make([]certs.Key, scaleCerts)
			issuerHash := [32]byte{1}
			for i := range keys {
				keys[i] = certs.KeyFor(issuerHash[:], big.NewInt(int64(0x100000+i)))
				if err := st.PutCert(keys[i], cache.Cert{Leaf: k.leaf, Issuer: k.iss, URLs: k.responders, Added: time.Now()}); err != nil {
					b.Fatal(err)
				}
			}
			this := time.Now().Truncate(time.Second)
			rec := func(i int) cache.Response {
				return cache.Response{Raw: k.raw, Status: ocspwire.Good, ProducedAt: this, ThisUpdate: this,
					NextUpdate: this.Add(7 * 24 * time.Hour), Expires: this.Add(7 * 24 * time.Hour),
					RefreshAt: this.Add(84 * time.Hour), Fetched: this, URL: k.responders[0]}
			}
			enc, _ := cache.EncodeResponse(rec(0))
			status := func() *clientv3.StatusResponse {
				s, err := cli.Status(ctx, e.client)
				if err != nil {
					b.Fatal(err)
				}
				return s
			}
			start := status()
			cycles := 0
			b.ResetTimer()
			for b.Loop() {
				this = this.Add(84 * time.Hour)
				for i, key := range keys {
					if err := st.PutResponse(key, rec(i)); err != nil {
						b.Fatal(err)
					}
					if err := st.AddAttempt(key, cache.Attempt{Time: this, Reason: "ok", Status: ocspwire.Good, URL: k.responders[0], Latency: 40 * time.Millisecond}); err != nil {
						b.Fatal(err)
					}
				}
				cycles++
			}
			b.StopTimer()
			end := status()
			writes := float64(end.Header.Revision-start.Header.Revision) / float64(cycles*scaleCerts)
			growth := float64(end.DbSize-start.DbSize) / float64(cycles*scaleCerts)
			if _, err := cli.Compact(ctx, end.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
				b.Fatal(err)
			}
			if _, err := cli.Defragment(ctx, e.client); err != nil {
				b.Fatal(err)
			}
			compacted := status()
			b.ReportMetric(float64(cycles*scaleCerts)/b.Elapsed().Seconds(), "certs/s")
			b.ReportMetric(writes, "writes/cert-refresh")
			b.ReportMetric(float64(len(k.raw)), "der-bytes")
			b.ReportMetric(float64(len(enc)), "record-bytes")
			b.ReportMetric(growth, "db-growth-bytes/cert-refresh")
			b.ReportMetric(float64(compacted.DbSize)/scaleCerts, "db-bytes/cert-compacted")
		})
	}
}

// BenchmarkWatchDelivery measures from one node's response write to another node's Offer of it.
func BenchmarkWatchDelivery(b *testing.B) {
	e := startEtcd(b)
	cfg := e.config(b)
	ca := testpki.NewRoot(b, "delivery CA", testpki.ECDSAP256)
	chain := testChain(b, ca)
	key := certs.NewKey(chain.Issuer, chain.Leaf)
	writer := NewStore(connect(b, cfg), cfg)
	putCert(b, writer, chain)
	got := make(chan time.Time, 1)
	tgt := &chanTarget{got: got}
	w := NewWatcher(connect(b, cfg), cfg, tgt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	this := time.Now().Truncate(time.Second)
	base := record(b, ca, chain, this)
	// The first write also tells when the watch is in place.
	if err := writer.PutResponse(key, base); err != nil {
		b.Fatal(err)
	}
	<-got
	b.ResetTimer()
	for b.Loop() {
		this = this.Add(time.Second)
		r := base
		r.ThisUpdate = this
		if err := writer.PutResponse(key, r); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			b.Fatal("no delivery within 5 s")
		}
	}
}

type chanTarget struct{ got chan time.Time }

func (c *chanTarget) Offer(certs.Key, cache.Response) error { c.got <- time.Now(); return nil }
func (c *chanTarget) Adopt(certs.Key, cache.Cert) error     { return nil }
func (c *chanTarget) Flush()                                {}
func (c *chanTarget) Withdraw(certs.Key) (bool, error)      { return false, nil }
func (c *chanTarget) Entries() []stapler.Info               { return nil }

// BenchmarkSessions measures storing a TLS session (one etcd put, a lease grant per window) and resuming it
// on another node (one get), with session data of the size Go's TLS 1.3 server stores (about 100 bytes).
func BenchmarkSessions(b *testing.B) {
	e := startEtcd(b)
	cfg := e.config(b)
	a, other := NewSessions(connect(b, cfg), cfg, 0), NewSessions(connect(b, cfg), cfg, 0)
	ctx := context.Background()
	data := make([]byte, 103)
	id := make([]byte, 32)
	n := 0
	for b.Loop() {
		n++
		id[0], id[1], id[2] = byte(n), byte(n>>8), byte(n>>16)
		if err := a.NewSession(ctx, id, data); err != nil {
			b.Fatal(err)
		}
		if got, _ := other.ResumeSession(ctx, id); got == nil {
			b.Fatal("not resumed")
		}
	}
	if st := a.Stats(); st.Failed != 0 {
		b.Fatalf("stats %+v", st)
	}
}
