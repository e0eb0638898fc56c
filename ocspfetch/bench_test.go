package ocspfetch_test

import (
	"testing"

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
