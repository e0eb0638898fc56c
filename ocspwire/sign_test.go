package ocspwire_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/internal/testpki"
	"staple/ocspwire"
)

var now = testpki.Epoch()

// signCase is one response Sign writes, and what ParseResponse must read back.
type signCase struct {
	name string
	// edit changes the default: a good SHA-1 response about serial 0x1000 signed by the CA, named byName.
	edit func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions)
	// parseErr is the error ParseResponse must return; nil when it parses and check applies.
	parseErr error
	check    func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse)
}

// sign returns the response tc describes, signed by ca or as tc says.
func (tc signCase) sign(t testing.TB, ca *testpki.CA) []byte {
	t.Helper()
	id, err := ocspwire.NewCertID(ca.Cert, big.NewInt(0x1000), crypto.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	d := ocspwire.ResponseData{
		ResponderID: ocspwire.ResponderID{Name: ca.Cert.RawSubject},
		ProducedAt:  now,
		Responses: []ocspwire.SingleResponse{{CertID: id, Status: ocspwire.Good, ThisUpdate: now,
			NextUpdate: now.Add(time.Hour)}},
	}
	o := ocspwire.SignOptions{Key: ca.Key}
	if tc.edit != nil {
		tc.edit(t, ca, &d, &o)
	}
	der, err := ocspwire.Sign(d, o)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// verifiesBy checks that the key of c signed r.
func verifiesBy(t *testing.T, r *ocspwire.BasicResponse, c *x509.Certificate) ocspwire.Scheme {
	t.Helper()
	s, err := ocspwire.ParseSignatureAlgorithm(r.SignatureAlgorithm)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(c.PublicKey, r.TBS, r.Signature); err != nil {
		t.Errorf("signature: %v", err)
	}
	return s
}

// delegate has a new delegated signer of ca with a key of kt sign, embedded and named byKey or byName.
func delegate(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions, kt testpki.KeyType, byKey bool) {
	signer := ca.NewSigner(t, testpki.SignerOptions{KeyType: kt})
	var err error
	if d.ResponderID, err = ocspwire.NewResponderID(signer.Cert, byKey); err != nil {
		t.Fatal(err)
	}
	o.Key, o.Certs = signer.Key, []*x509.Certificate{signer.Cert}
}

var signCases = []signCase{
	{name: "issuer, byName, good", check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		verifiesBy(t, r, ca.Cert)
		s := r.Responses[0]
		if !r.ResponderID.Matches(ca.Cert) || r.ResponderID.KeyHash != nil || r.Certs != nil || len(r.Extensions) != 0 {
			t.Errorf("ResponderID %v, certs %v, extensions %v", r.ResponderID, r.Certs, r.Extensions)
		}
		if len(r.Responses) != 1 || s.Status != ocspwire.Good || !s.CertID.Matches(ca.Cert, big.NewInt(0x1000)) ||
			s.CertID.NoNullParams || !s.ThisUpdate.Equal(now) || !s.NextUpdate.Equal(now.Add(time.Hour)) || !r.ProducedAt.Equal(now) {
			t.Errorf("SingleResponse %+v", s)
		}
	}},
	{name: "delegated signer, byKey, its certificate embedded", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		delegate(t, ca, d, o, testpki.ECDSAP256, true)
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		signer, err := x509.ParseCertificate(r.Certs[0])
		if err != nil || len(r.Certs) != 1 {
			t.Fatalf("certs: %d, %v", len(r.Certs), err)
		}
		if s := verifiesBy(t, r, signer); s.Key != x509.ECDSA || !r.ResponderID.Matches(signer) || r.ResponderID.Matches(ca.Cert) {
			t.Errorf("scheme %v, ResponderID %v", s, r.ResponderID)
		}
		if _, err := ocspwire.CheckCertSignature(signer, ca.Cert); err != nil {
			t.Errorf("the CA did not sign the signer: %v", err)
		}
	}},
	{name: "revoked with reason, invalidity date and hold instruction", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		s := &d.Responses[0]
		s.Status, s.RevokedAt, s.Reason = ocspwire.Revoked, now.Add(-time.Hour), ocspwire.ReasonCertificateHold
		s.Extensions = []pkix.Extension{ocspwire.InvalidityDateExtension(now.Add(-2 * time.Hour)),
			ocspwire.HoldInstructionExtension(ocspwire.HoldInstructionReject)}
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		s := r.Responses[0]
		if s.Status != ocspwire.Revoked || s.Reason != ocspwire.ReasonCertificateHold || !s.RevokedAt.Equal(now.Add(-time.Hour)) {
			t.Errorf("%v %v %v", s.Status, s.Reason, s.RevokedAt)
		}
		if len(s.Extensions) != 2 || !s.Extensions[0].Id.Equal(ocspwire.OIDInvalidityDate) ||
			!s.Extensions[1].Id.Equal(ocspwire.OIDHoldInstructionCode) || s.Extensions[1].Critical {
			t.Errorf("singleExtensions %v", s.Extensions)
		}
		var hold asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(s.Extensions[1].Value, &hold); err != nil || !hold.Equal(asn1.ObjectIdentifier(ocspwire.HoldInstructionReject)) {
			t.Errorf("hold instruction %v, %v", hold, err)
		}
		if _, ok := s.UnknownCritical(); ok {
			t.Error("known single extensions reported as unknown")
		}
	}},
	{name: "revoked without reason", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		d.Responses[0].Status, d.Responses[0].Reason = ocspwire.Revoked, ocspwire.ReasonNone
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		if s := r.Responses[0]; s.Status != ocspwire.Revoked || s.Reason != ocspwire.ReasonNone {
			t.Errorf("%v %v", s.Status, s.Reason)
		}
	}},
	{name: "revoked, reason zero is unspecified", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		d.Responses[0].Status = ocspwire.Revoked
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		if s := r.Responses[0]; s.Reason != ocspwire.ReasonUnspecified {
			t.Errorf("%v", s.Reason)
		}
	}},
	{name: "unknown, no nextUpdate, SHA-256 CertID without NULL", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		id, err := ocspwire.NewCertID(ca.Cert, big.NewInt(0x1000), crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		id.NoNullParams = true
		d.Responses[0].CertID, d.Responses[0].Status, d.Responses[0].NextUpdate = id, ocspwire.Unknown, time.Time{}
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		s := r.Responses[0]
		if s.Status != ocspwire.Unknown || !s.NextUpdate.IsZero() || s.CertID.Hash != crypto.SHA256 || !s.CertID.NoNullParams ||
			!s.CertID.Matches(ca.Cert, big.NewInt(0x1000)) {
			t.Errorf("%+v", s)
		}
	}},
	{name: "unknown CertID hash OID", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		d.Responses[0].CertID.HashAlgorithm = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5} // MD5
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		id := r.Responses[0].CertID
		if id.Hash != 0 || !id.HashAlgorithm.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}) || id.Matches(ca.Cert, big.NewInt(0x1000)) {
			t.Errorf("%+v", id)
		}
	}},
	{name: "nonce and a critical unknown extension", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		d.Extensions = []pkix.Extension{ocspwire.NonceExtension([]byte("sixteen byte nce")),
			{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 9}, Critical: true, Value: []byte{5, 0}}}
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		if len(r.Extensions) != 2 || !r.Extensions[0].Id.Equal(ocspwire.OIDNonce) {
			t.Fatalf("responseExtensions %v", r.Extensions)
		}
		if n, ok := ocspwire.UnwrapNonce(r.Extensions[0].Value); !ok || string(n) != "sixteen byte nce" {
			t.Errorf("nonce %x", r.Extensions[0].Value)
		}
		if e, ok := r.UnknownCritical(); !ok || !e.Id.Equal(r.Extensions[1].Id) {
			t.Errorf("UnknownCritical = %v, %v", e, ok)
		}
	}},
	{name: "Ed25519 signer", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		delegate(t, ca, d, o, testpki.Ed25519, false)
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		signer, _ := x509.ParseCertificate(r.Certs[0])
		if s := verifiesBy(t, r, signer); s.Key != x509.Ed25519 || s.Hash != 0 || !r.ResponderID.Matches(signer) {
			t.Errorf("scheme %v, ResponderID %v", s, r.ResponderID)
		}
	}},
	{name: "RSA-PSS with the maximal salt", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		delegate(t, ca, d, o, testpki.RSA2048, false)
		o.Algorithm, o.PSSSaltLength = x509.SHA256WithRSAPSS, 222
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		signer, _ := x509.ParseCertificate(r.Certs[0])
		if s := verifiesBy(t, r, signer); !s.PSS || s.Hash != crypto.SHA256 || s.SaltLength != 222 {
			t.Errorf("scheme %+v", s)
		}
	}},
	{name: "RSA with SHA-1", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		delegate(t, ca, d, o, testpki.RSA2048, false)
		o.Algorithm = x509.SHA1WithRSA
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		signer, _ := x509.ParseCertificate(r.Certs[0])
		if s := verifiesBy(t, r, signer); s.Key != x509.RSA || s.PSS || s.Hash != crypto.SHA1 {
			t.Errorf("scheme %+v", s)
		}
	}},
	{name: "empty certs field, several SingleResponses", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		o.Certs = []*x509.Certificate{}
		other := d.Responses[0]
		other.CertID.Serial = big.NewInt(0x1001)
		d.Responses = append(d.Responses, other)
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		if r.Certs == nil || len(r.Certs) != 0 || len(r.Responses) != 2 || r.Responses[1].CertID.Serial.Int64() != 0x1001 {
			t.Errorf("certs %v, %d responses", r.Certs, len(r.Responses))
		}
	}},
	{name: "no SingleResponse", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		d.Responses = nil
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		if len(r.Responses) != 0 {
			t.Errorf("%d responses", len(r.Responses))
		}
	}},
	{name: "corrupt signature", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		o.CorruptSignature = true
	}, check: func(t *testing.T, ca *testpki.CA, r *ocspwire.BasicResponse) {
		s, _ := ocspwire.ParseSignatureAlgorithm(r.SignatureAlgorithm)
		if err := s.Verify(ca.Cert.PublicKey, r.TBS, r.Signature); !errors.Is(err, ocspwire.ErrBadSignature) {
			t.Errorf("a corrupt signature verifies: %v", err)
		}
	}},
	{name: "explicit version v2", edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		d.Version = 1
	}, parseErr: ocspwire.ErrMalformed},
}

func TestSign(t *testing.T) {
	for _, kt := range []testpki.KeyType{testpki.ECDSAP256, testpki.RSA2048} {
		ca := testpki.NewRoot(t, "Sign CA "+kt.String(), kt)
		for _, tc := range signCases {
			t.Run(kt.String()+"/"+tc.name, func(t *testing.T) {
				der := tc.sign(t, ca)
				r, err := ocspwire.ParseResponse(der)
				if tc.parseErr != nil {
					if !errors.Is(err, tc.parseErr) || r != nil {
						t.Fatalf("err = %v, want %v", err, tc.parseErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, ca, r)
			})
		}
	}
}

// x/crypto/ocsp is the independent parser the encoder is checked against, for what it supports.
func TestSignReadByXCrypto(t *testing.T) {
	ca := testpki.NewRoot(t, "Sign CA", testpki.ECDSAP256)
	leaf := ca.Issue(t, testpki.LeafOptions{Serial: big.NewInt(0x1000)})
	for _, tc := range signCases[:4] {
		t.Run(tc.name, func(t *testing.T) {
			der := tc.sign(t, ca)
			r, err := ocsp.ParseResponseForCert(der, leaf.Cert, ca.Cert)
			if err != nil {
				t.Fatalf("x/crypto rejects it: %v", err)
			}
			p, _ := ocspwire.ParseResponse(der)
			if r.Status != int(p.Responses[0].Status) || !r.ThisUpdate.Equal(now) || !bytes.Equal(r.TBSResponseData, p.TBS) {
				t.Errorf("x/crypto reads status %d, thisUpdate %v", r.Status, r.ThisUpdate)
			}
		})
	}
}

func TestSignErrors(t *testing.T) {
	ca := testpki.NewRoot(t, "Sign CA", testpki.ECDSAP256)
	tests := []struct {
		name string
		edit func(d *ocspwire.ResponseData, o *ocspwire.SignOptions)
		want error
	}{
		{"RSA algorithm for an ECDSA key", func(d *ocspwire.ResponseData, o *ocspwire.SignOptions) { o.Algorithm = x509.SHA256WithRSA }, ocspwire.ErrUnsupportedSignature},
		{"CertID hash without an OID", func(d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
			d.Responses[0].CertID = ocspwire.CertID{Hash: crypto.MD5, Serial: big.NewInt(1)}
		}, ocspwire.ErrUnsupportedHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ocspwire.ResponseData{ProducedAt: now, Responses: []ocspwire.SingleResponse{{ThisUpdate: now,
				CertID: ocspwire.CertID{Hash: crypto.SHA1, Serial: big.NewInt(1)}}}}
			o := ocspwire.SignOptions{Key: ca.Key}
			tt.edit(&d, &o)
			if der, err := ocspwire.Sign(d, o); !errors.Is(err, tt.want) || der != nil {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
