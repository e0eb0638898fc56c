package ocspfetch_test

import (
	"crypto"
	"crypto/x509"

	"testing"
	"time"

	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// fuzzPair is a (leaf, issuer, time) a fuzzed response is verified against.
type fuzzPair struct {
	leaf, issuer *x509.Certificate
	at           time.Time
}

// FuzzVerify feeds Verify arbitrary bytes against the real-world pairs of testdata/ocsp and a testpki
// hierarchy. It must never panic, and whatever it accepts must be a consistent response.
func FuzzVerify(f *testing.F) {
	var pairs []fuzzPair
	for _, rw := range realWorldResponses {
		pairs = append(pairs, fuzzPair{rw.leaf(f), readCert(f, rw.issuer), rw.at})
		f.Add(readDER(f, rw.resp), uint8(len(pairs)-1))
	}
	ca := testpki.NewRoot(f, "Fuzz Root", testpki.ECDSAP256).NewIntermediate(f, "Fuzz CA", testpki.RSA2048)
	leaf := ca.Issue(f, testpki.LeafOptions{})
	signer := ca.NewSigner(f, testpki.SignerOptions{})
	pairs = append(pairs, fuzzPair{leaf.Cert, ca.Cert, testpki.Epoch()})
	mine := uint8(len(pairs) - 1)
	for _, o := range []testpki.ResponseOptions{
		{},
		{Signer: signer},
		{Signer: signer, ResponderIDByKey: true, Nonce: []byte("nonce")},
		{Status: ocspwire.Revoked, Reason: 4, After: []ocspwire.SingleResponse{ca.Single(f, leaf.Cert.SerialNumber, testpki.ResponseOptions{Hash: crypto.SHA256})}},
		{Status: ocspwire.Unknown, NoNextUpdate: true, Algorithm: x509.SHA256WithRSAPSS},
	} {
		f.Add(ca.Respond(f, leaf.Cert, o), mine)
	}
	for _, s := range []ocspwire.ResponseStatus{1, 2, 3, 5, 6} {
		f.Add(ocspwire.ErrorResponse(s), mine)
	}
	f.Fuzz(func(t *testing.T, der []byte, which uint8) {
		p := pairs[int(which)%len(pairs)]
		r, err := ocspfetch.Verify(der, p.leaf, p.issuer, p.at, ocspfetch.VerifyOptions{})
		if err != nil {
			if r != nil {
				t.Fatalf("response returned with error %v", err)
			}
			_ = ocspfetch.Reason(err)
			return
		}
		if r == nil || string(r.Raw) != string(der) || r.Serial.Cmp(p.leaf.SerialNumber) != 0 || r.Signer == nil {
			t.Fatalf("inconsistent response %+v", r)
		}
		if r.Status != ocspwire.Good && r.Status != ocspwire.Revoked && r.Status != ocspwire.Unknown {
			t.Fatalf("status %v", r.Status)
		}
		if r.ThisUpdate.After(p.at.Add(ocspfetch.DefaultSkew)) || !r.ValidAt(p.at, time.Hour) {
			t.Fatalf("accepted outside its window: %v–%v at %v", r.ThisUpdate, r.NextUpdate, p.at)
		}
	})
}
