package testpki

import (
	"bytes"
	"crypto"
	"testing"

	"golang.org/x/crypto/ocsp"

	"staple/ocspwire"
)

// TestParseRequest: the fake responder reads what x/crypto and ocspwire write, and refuses what it cannot
// answer.
func TestParseRequest(t *testing.T) {
	ca := NewRoot(t, "Request Root", ECDSAP256)
	leaf := ca.Issue(t, LeafOptions{})
	der, err := ocsp.CreateRequest(leaf.Cert, ca.Cert, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	req, err := ParseRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ocspwire.NewCertID(ca.Cert, leaf.Cert.SerialNumber, crypto.SHA256)
	if len(req.CertIDs) != 1 || !req.CertIDs[0].Equal(want) || req.Nonce != nil {
		t.Fatalf("parsed %+v", req)
	}
	nonce := bytes.Repeat([]byte{7}, 16)
	der2, err := ocspwire.EncodeRequest([]ocspwire.CertID{want}, nonce)
	if err != nil {
		t.Fatal(err)
	}
	req2, err := ParseRequest(der2)
	if err != nil || !bytes.Equal(req2.Nonce, nonce) || !req2.CertIDs[0].Equal(want) {
		t.Fatalf("round trip: %+v %v", req2, err)
	}
	unknown := want
	unknown.HashAlgorithm = []int{1, 2, 3}
	if der3, _ := ocspwire.EncodeRequest([]ocspwire.CertID{unknown}, nil); der3 == nil {
		t.Fatal("no request with an unknown hash")
	} else if _, err := ParseRequest(der3); err == nil {
		t.Error("a CertID of an unknown hash was accepted")
	}
}
