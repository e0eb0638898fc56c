package testpki

import (
	"crypto"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/ocspwire"
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
