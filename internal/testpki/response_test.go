package testpki

import (
	"bytes"
	"crypto"
	"staple/ocspwire"
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
		{"issuer revoked", ResponseOptions{Status: ocspwire.Revoked, Reason: ocsp.KeyCompromise}, ocsp.Revoked, crypto.SHA1},
		{"issuer unknown sha256", ResponseOptions{Status: ocspwire.Unknown, Hash: crypto.SHA256}, ocsp.Unknown, crypto.SHA256},
		{"delegated good", ResponseOptions{Signer: signer, NextUpdate: next}, ocsp.Good, crypto.SHA1},
		{"delegated by key", ResponseOptions{Signer: signer, ResponderIDByKey: true}, ocsp.Good, crypto.SHA1},
		{"several singles", ResponseOptions{Before: []ocspwire.SingleResponse{ca.Single(t, leaf.Cert.SerialNumber, ResponseOptions{Serial: leaf.Cert.SerialNumber, Hash: crypto.SHA256})}}, ocsp.Good, crypto.SHA256},
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
