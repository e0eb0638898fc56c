package responder

import (
	"context"
	"crypto"
	"errors"
	"math/big"
	"testing"
	"time"

	"staple/certs"
	"staple/internal/testpki"
	"staple/ocspwire"
)

// TestCache answers from what Lookup holds for the certificates it serves, and refuses everything else as a
// pre-signing responder does.
func TestCache(t *testing.T) {
	ca := testpki.NewRoot(t, "cache CA", testpki.ECDSAP256)
	a, b := ca.Issue(t, testpki.LeafOptions{}), ca.Issue(t, testpki.LeafOptions{})
	ka, kb := certs.NewKey(ca.Cert, a.Cert), certs.NewKey(ca.Cert, b.Cert)
	held := map[certs.Key][]byte{ka: ca.Respond(t, a.Cert, testpki.ResponseOptions{})}
	c := &Cache{Lookup: func(k certs.Key) ([]byte, time.Time, time.Time) {
		return held[k], testpki.Epoch(), testpki.Epoch().Add(time.Hour)
	}}
	c.Serve([]Certificate{{Key: ka, Leaf: a.Cert, Issuer: ca.Cert}, {Key: kb, Leaf: b.Cert, Issuer: ca.Cert}})
	id := func(serial *big.Int, h crypto.Hash) ocspwire.CertID {
		t.Helper()
		id, err := ocspwire.NewCertID(ca.Cert, serial, h)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ask := func(ids ...ocspwire.CertID) (*Response, error) {
		return c.Response(context.Background(), &Request{Request: ocspwire.Request{CertIDs: ids}})
	}
	first, err := ask(id(a.Cert.SerialNumber, crypto.SHA1))
	if err != nil || string(first.Raw) != string(held[ka]) || first.ETag == "" {
		t.Fatalf("the held response: %v, %v", first, err)
	}
	if again, _ := ask(id(a.Cert.SerialNumber, crypto.SHA1)); again != first {
		t.Error("the same bytes made a new answer: its headers are computed per request")
	}
	for _, tt := range []struct {
		name string
		ids  []ocspwire.CertID
	}{
		{"no response held", []ocspwire.CertID{id(b.Cert.SerialNumber, crypto.SHA1)}},
		{"another serial", []ocspwire.CertID{id(big.NewInt(7), crypto.SHA1)}},
		{"another hash", []ocspwire.CertID{id(a.Cert.SerialNumber, crypto.SHA256)}},
		{"two certificates", []ocspwire.CertID{id(a.Cert.SerialNumber, crypto.SHA1), id(b.Cert.SerialNumber, crypto.SHA1)}},
	} {
		if _, err := ask(tt.ids...); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: %v, want ErrUnauthorized", tt.name, err)
		}
	}
	if _, err := c.Response(context.Background(), &Request{Request: ocspwire.Request{CertIDs: []ocspwire.CertID{id(a.Cert.SerialNumber, crypto.SHA1)}},
		Fault: Fault{Kind: FaultTryLater}}); !errors.Is(err, ErrUnsupportedFault) {
		t.Errorf("a fault: %v, want ErrUnsupportedFault", err)
	}

	held[ka] = ca.Respond(t, a.Cert, testpki.ResponseOptions{ThisUpdate: testpki.Epoch()})
	if next, _ := ask(id(a.Cert.SerialNumber, crypto.SHA1)); next == first || string(next.Raw) != string(held[ka]) {
		t.Error("a new response held is not the one answered")
	}
	c.Serve([]Certificate{{Key: kb, Leaf: b.Cert, Issuer: ca.Cert}})
	if _, err := ask(id(a.Cert.SerialNumber, crypto.SHA1)); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a certificate no longer served: %v, want ErrUnauthorized", err)
	}
	if _, kept := c.answers.Load(ka); kept {
		t.Error("the answer for a certificate no longer served is kept")
	}
	// A copy of the bytes answered is the same answer.
	held[kb] = ca.Respond(t, b.Cert, testpki.ResponseOptions{})
	bFirst, _ := ask(id(b.Cert.SerialNumber, crypto.SHA1))
	held[kb] = append([]byte(nil), held[kb]...)
	if again, _ := ask(id(b.Cert.SerialNumber, crypto.SHA1)); again != bFirst {
		t.Error("a copy of the same bytes made a new answer")
	}
}
