package ocspfetch_test

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"staple/ocspfetch"
	"staple/ocspwire"
)

const realWorldDir = "../testdata/ocsp"

func readCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(realWorldDir, name))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

func readDER(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(realWorldDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func serialOnly(hexSerial string) *x509.Certificate {
	n, _ := new(big.Int).SetString(hexSerial, 16)
	return &x509.Certificate{SerialNumber: n}
}

// realWorld describes each response of testdata/ocsp (see its README).
type realWorld struct {
	name       string
	resp       string
	issuer     string
	leaf       func(t testing.TB) *x509.Certificate
	at         time.Time
	nextUpdate time.Time
	delegated  string // CN of the delegated signer, "" for issuer-signed
	nonce      string // hex, "" when none
}

var realWorldResponses = []realWorld{
	{
		name: "GTS CA 1C3, issuer-signed, byKey", resp: "gts-1c3-good.der", issuer: "gts-1c3.pem",
		leaf: func(testing.TB) *x509.Certificate { return serialOnly("F374542E3C7A68360A00000001103462") },
		at:   time.Date(2021, 11, 8, 0, 0, 0, 0, time.UTC), nextUpdate: time.Date(2021, 11, 14, 13, 25, 50, 0, time.UTC),
	},
	{
		name: "strongSwan, delegated, nonce", resp: "strongswan-good-delegated-nonce.der", issuer: "strongswan-root-ca.pem",
		leaf: func(t testing.TB) *x509.Certificate { return readCert(t, "strongswan-carol.pem") },
		at:   time.Date(2011, 9, 27, 9, 55, 0, 0, time.UTC), nextUpdate: time.Date(2011, 9, 27, 9, 59, 28, 0, time.UTC),
		delegated: "ocsp.strongswan.org", nonce: "16897d913ab525a445fec9fdc2e508a4",
	},
	{
		name: "CAcert, delegated with SHA-1 certificate, multi-purpose EKU", resp: "cacert-good-delegated.der", issuer: "cacert-class3-root.pem",
		leaf: func(t testing.TB) *x509.Certificate { return readCert(t, "cacert-blog-leaf.pem") },
		at:   time.Date(2012, 1, 14, 0, 0, 0, 0, time.UTC), nextUpdate: time.Date(2012, 1, 15, 8, 50, 42, 0, time.UTC),
		delegated: "ocsp.cacert.org",
	},
}

func TestRealWorldResponses(t *testing.T) {
	for _, rw := range realWorldResponses {
		t.Run(rw.name, func(t *testing.T) {
			der, issuer, leaf := readDER(t, rw.resp), readCert(t, rw.issuer), rw.leaf(t)
			var opts ocspfetch.VerifyOptions
			if rw.nonce != "" {
				opts.Nonce, _ = hex.DecodeString(rw.nonce)
			}
			r, err := ocspfetch.Verify(der, leaf, issuer, rw.at, opts)
			if err != nil {
				t.Fatalf("rejected at its own time: %v", err)
			}
			if r.Status != ocspwire.Good || r.CertIDHash != crypto.SHA1 || !r.NextUpdate.Equal(rw.nextUpdate) {
				t.Errorf("status %v hash %v nextUpdate %v", r.Status, r.CertIDHash, r.NextUpdate)
			}
			if rw.delegated == "" && !r.SignerIsIssuer || rw.delegated != "" && (r.SignerIsIssuer || r.Signer.Subject.CommonName != rw.delegated) {
				t.Errorf("signer %q (issuer %v), want %q", r.Signer.Subject.CommonName, r.SignerIsIssuer, rw.delegated)
			}

			// The same bytes are refused after nextUpdate, for another serial, under another issuer, and
			// (for the live-signed ones) with another nonce.
			if _, err := ocspfetch.Verify(der, leaf, issuer, rw.nextUpdate, opts); !errors.Is(err, ocspfetch.ErrExpired) {
				t.Errorf("at nextUpdate: %v", err)
			}
			other := serialOnly("0123")
			if _, err := ocspfetch.Verify(der, other, issuer, rw.at, opts); !errors.Is(err, ocspfetch.ErrNoMatchingResponse) {
				t.Errorf("other serial: %v", err)
			}
			for _, o := range realWorldResponses {
				if o.issuer == rw.issuer {
					continue
				}
				if r, err := ocspfetch.Verify(der, leaf, readCert(t, o.issuer), rw.at, opts); err == nil || r != nil {
					t.Errorf("accepted under %s", o.issuer)
				}
			}
			if rw.nonce != "" {
				if _, err := ocspfetch.Verify(der, leaf, issuer, rw.at, ocspfetch.VerifyOptions{Nonce: []byte("another")}); !errors.Is(err, ocspfetch.ErrNonceMismatch) {
					t.Errorf("other nonce: %v", err)
				}
			}
			if _, err := ocspfetch.Verify(der, leaf, issuer, rw.at, ocspfetch.VerifyOptions{RejectSHA1: true}); rw.delegated != "" && err == nil {
				t.Error("a SHA-1 signature was accepted with RejectSHA1")
			}
		})
	}
}
