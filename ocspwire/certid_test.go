package ocspwire_test

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"errors"
	"math/big"
	"testing"

	"golang.org/x/crypto/ocsp"

	"staple/internal/testpki"
	"staple/ocspwire"
)

func TestCertID(t *testing.T) {
	root := testpki.NewRoot(t, "CertID Root", testpki.ECDSAP256)
	ca := root.NewIntermediate(t, "CertID CA", testpki.RSA2048)
	other := root.NewUnrelatedRoot(t, "Other Root", testpki.ECDSAP256).NewIntermediate(t, "CertID CA", testpki.RSA2048)
	leaf := ca.Issue(t, testpki.LeafOptions{})
	serial := leaf.Cert.SerialNumber
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		t.Run(h.String(), func(t *testing.T) {
			id, err := ocspwire.NewCertID(ca.Cert, serial, h)
			if err != nil {
				t.Fatal(err)
			}
			// x/crypto computes the same hashes.
			der, err := ocsp.CreateRequest(leaf.Cert, ca.Cert, &ocsp.RequestOptions{Hash: h})
			if err != nil {
				t.Fatal(err)
			}
			x, _ := ocsp.ParseRequest(der)
			if !bytes.Equal(x.IssuerNameHash, id.IssuerNameHash) || !bytes.Equal(x.IssuerKeyHash, id.IssuerKeyHash) || id.Hash != h {
				t.Errorf("hashes differ from x/crypto's")
			}
			if !id.Matches(ca.Cert, serial) || id.Matches(other.Cert, serial) || id.Matches(ca.Cert, big.NewInt(0x4242)) {
				t.Error("Matches: wrong issuer or serial accepted, or the right one refused")
			}
			otherID, _ := ocspwire.NewCertID(other.Cert, serial, h)
			sameCA, _ := ocspwire.NewCertID(ca.Cert, big.NewInt(0x4242), h)
			if id.Equal(otherID) || id.SameIssuer(otherID) || !id.SameIssuer(sameCA) || id.Equal(sameCA) {
				t.Error("Equal or SameIssuer is wrong")
			}
			labelled := id
			labelled.Hash = crypto.SHA512
			if h != crypto.SHA512 && (labelled.Equal(id) || labelled.Matches(ca.Cert, serial)) {
				t.Error("a CertID labelled with another hash matches")
			}
		})
	}
	if _, err := ocspwire.NewCertID(ca.Cert, serial, crypto.MD5); !errors.Is(err, ocspwire.ErrUnsupportedHash) {
		t.Errorf("MD5: %v", err)
	}
}

func TestResponderID(t *testing.T) {
	ca := testpki.NewRoot(t, "ResponderID CA", testpki.ECDSAP256)
	other := testpki.NewRoot(t, "Other CA", testpki.ECDSAP256)
	bits, err := ocspwire.SubjectPublicKeyBits(ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(bits)
	byKey, _ := ocspwire.NewResponderID(ca.Cert, true)
	byName, _ := ocspwire.NewResponderID(ca.Cert, false)
	if !bytes.Equal(byKey.KeyHash, sum[:]) || byKey.Name != nil || !bytes.Equal(byName.Name, ca.Cert.RawSubject) || byName.KeyHash != nil {
		t.Fatalf("byKey %v, byName %v", byKey, byName)
	}
	for _, id := range []ocspwire.ResponderID{byKey, byName} {
		if !id.Matches(ca.Cert) || id.Matches(other.Cert) {
			t.Errorf("%v matches wrongly", id)
		}
	}
	// The key hash of a CertID under SHA-1 is the byKey ResponderID of the issuer: one computation.
	id, _ := ocspwire.NewCertID(ca.Cert, big.NewInt(1), crypto.SHA1)
	if !bytes.Equal(id.IssuerKeyHash, byKey.KeyHash) {
		t.Error("issuerKeyHash and byKey ResponderID differ")
	}
}
