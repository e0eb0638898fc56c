package testpki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// x/crypto/ocsp is the independent parser the encoder is checked against, for what it supports.
func TestResponsesParseWithXCrypto(t *testing.T) {
	root := NewRoot(t, "Encode Root", ECDSAP256)
	ca := root.NewIntermediate(t, "Encode CA", RSA2048)
	leaf := ca.Issue(t, LeafOptions{})
	signer := ca.NewSigner(t, SignerOptions{NoCheck: true})
	next := Epoch().Add(12 * time.Hour)
	tests := []struct {
		name   string
		o      ResponseOptions
		status int
		hash   crypto.Hash
	}{
		{"issuer good", ResponseOptions{}, ocsp.Good, crypto.SHA1},
		{"issuer revoked", ResponseOptions{Status: Revoked, Reason: ocsp.KeyCompromise}, ocsp.Revoked, crypto.SHA1},
		{"issuer unknown sha256", ResponseOptions{Status: Unknown, Hash: crypto.SHA256}, ocsp.Unknown, crypto.SHA256},
		{"delegated good", ResponseOptions{Signer: signer, NextUpdate: next}, ocsp.Good, crypto.SHA1},
		{"delegated by key", ResponseOptions{Signer: signer, ResponderIDByKey: true}, ocsp.Good, crypto.SHA1},
		{"several singles", ResponseOptions{Before: []SingleResponse{ca.Single(t, leaf.Cert.SerialNumber, ResponseOptions{Serial: leaf.Cert.SerialNumber, Hash: crypto.SHA256})}}, ocsp.Good, crypto.SHA256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der := ca.Respond(t, leaf.Cert, tt.o)
			r, err := ocsp.ParseResponseForCert(der, leaf.Cert, ca.Cert)
			if err != nil {
				t.Fatalf("x/crypto rejects it: %v", err)
			}
			if r.Status != tt.status || r.IssuerHash != tt.hash || r.SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 {
				t.Errorf("status %d hash %v serial %v", r.Status, r.IssuerHash, r.SerialNumber)
			}
			if tt.o.NextUpdate.Equal(next) && !r.NextUpdate.Equal(next) {
				t.Errorf("nextUpdate %v", r.NextUpdate)
			}
			if tt.status == ocsp.Revoked && r.RevocationReason != ocsp.KeyCompromise {
				t.Errorf("reason %d", r.RevocationReason)
			}
		})
	}
}

func TestRequestRoundTrip(t *testing.T) {
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
	want, _ := NewCertID(ca.Cert, leaf.Cert.SerialNumber, crypto.SHA256)
	if len(req.CertIDs) != 1 || !req.CertIDs[0].Equal(want) || req.Nonce != nil {
		t.Fatalf("parsed %+v", req)
	}
	nonce := bytes.Repeat([]byte{7}, 16)
	der2, err := EncodeRequest([]CertID{want}, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ocsp.ParseRequest(der2); err != nil {
		t.Fatalf("x/crypto rejects our request: %v", err)
	}
	req2, err := ParseRequest(der2)
	if err != nil || !bytes.Equal(req2.Nonce, nonce) || !req2.CertIDs[0].Equal(want) {
		t.Fatalf("round trip: %+v %v", req2, err)
	}
	_ = x509.Certificate{}
}
