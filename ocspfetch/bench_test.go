package ocspfetch_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/internal/testpki"
	"staple/ocspfetch"
)

// BenchmarkVerify compares Verify with the bare signature check it cannot avoid
// (x509.Certificate.CheckSignature over the same tbsResponseData), for RSA-2048 and P-256 signers, issuer-signed
// and delegated. The delegated case checks two signatures (the response's and, once per signer certificate with a
// VerifyCache, the issuer's over the signer); "delegated-nocache" shows the cost without the cache.
func BenchmarkVerify(b *testing.B) {
	for _, kt := range []testpki.KeyType{testpki.RSA2048, testpki.ECDSAP256} {
		ca := testpki.NewRoot(b, "Bench Root", testpki.ECDSAP256).NewIntermediate(b, "Bench CA", kt)
		leaf := ca.Issue(b, testpki.LeafOptions{})
		signer := ca.NewSigner(b, testpki.SignerOptions{KeyType: kt})
		for _, v := range []struct {
			name  string
			o     testpki.ResponseOptions
			cache bool
		}{
			{"issuer", testpki.ResponseOptions{}, false},
			{"delegated", testpki.ResponseOptions{Signer: signer}, true},
			{"delegated-nocache", testpki.ResponseOptions{Signer: signer}, false},
		} {
			der := ca.Respond(b, leaf.Cert, v.o)
			parsed, err := ocsp.ParseResponse(der, nil)
			if err != nil {
				b.Fatal(err)
			}
			signerCert := ca.Cert
			if v.o.Signer != nil {
				signerCert = v.o.Signer.Cert
			}
			opts := ocspfetch.VerifyOptions{}
			if v.cache {
				opts.Cache = &ocspfetch.VerifyCache{}
			}
			now := testpki.Epoch()
			b.Run(kt.String()+"/"+v.name+"/Verify", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := ocspfetch.Verify(der, leaf.Cert, ca.Cert, now, opts); err != nil {
						b.Fatal(err)
					}
				}
			})
			if v.name == "delegated-nocache" {
				continue
			}
			b.Run(kt.String()+"/"+v.name+"/CheckSignature", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := signerCert.CheckSignature(parsed.SignatureAlgorithm, parsed.TBSResponseData, parsed.Signature); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// cannedTransport answers every request with one OCSP response, in memory: what is left of a fetch is the
// client's own work (request, URL, headers, body, verification), with no network in it.
type cannedTransport struct{ der []byte }

func (c cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/ocsp-response")
	h.Set("Cache-Control", "max-age=3600, public, no-transform, must-revalidate")
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(c.der)), ContentLength: int64(len(c.der)), Request: req}, nil
}

// BenchmarkFetch is a whole FetchURL of a P-256 issuer-signed response through an in-memory transport,
// against Verify of the same response alone: the ratio is what fetching adds to verifying, before the network.
func BenchmarkFetch(b *testing.B) {
	ca := testpki.NewRoot(b, "Bench Root", testpki.ECDSAP256).NewIntermediate(b, "Bench CA", testpki.ECDSAP256)
	leaf := ca.Issue(b, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.bench.test/"}})
	now := time.Now()
	der := ca.Respond(b, leaf.Cert, testpki.ResponseOptions{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(24 * time.Hour)})
	c := &ocspfetch.Client{Transport: cannedTransport{der}}
	ctx := context.Background()
	b.Run("FetchURL", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.FetchURL(ctx, "http://ocsp.bench.test/", leaf.Cert, ca.Cert); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ocspfetch.Verify(der, leaf.Cert, ca.Cert, now, ocspfetch.VerifyOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
