package ocspfetch_test

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// fixture is one CA hierarchy with a leaf, delegated signers of every kind and a foreign CA.
type fixture struct {
	root, ca, other *testpki.CA
	leaf            *testpki.Leaf
	signer          *testpki.Leaf // good delegated signer
	otherLeaf       *testpki.Leaf // same serial space, other CA
}

func newFixture(t testing.TB, kt testpki.KeyType) *fixture {
	t.Helper()
	root := testpki.NewRoot(t, "Verify Root", testpki.ECDSAP256)
	ca := root.NewIntermediate(t, "Verify CA", kt)
	other := root.NewUnrelatedRoot(t, "Other Root", testpki.ECDSAP256).NewIntermediate(t, "Verify CA", kt)
	return &fixture{
		root: root, ca: ca, other: other,
		leaf:      ca.Issue(t, testpki.LeafOptions{}),
		signer:    ca.NewSigner(t, testpki.SignerOptions{NoCheck: true}),
		otherLeaf: other.Issue(t, testpki.LeafOptions{}),
	}
}

var now = testpki.Epoch()

// verifyCase is one response and what Verify must say of it.
type verifyCase struct {
	name  string
	build func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions)
	at    time.Duration // added to Epoch for "now"
	want  error         // nil: accepted
	check func(t *testing.T, f *fixture, r *ocspfetch.Response)
}

func respond(o testpki.ResponseOptions) func(*testing.T, *fixture) ([]byte, ocspfetch.VerifyOptions) {
	return func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		return f.ca.Respond(t, f.leaf.Cert, o), ocspfetch.VerifyOptions{}
	}
}

func respondWith(fn func(t *testing.T, f *fixture) testpki.ResponseOptions) func(*testing.T, *fixture) ([]byte, ocspfetch.VerifyOptions) {
	return func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		return f.ca.Respond(t, f.leaf.Cert, fn(t, f)), ocspfetch.VerifyOptions{}
	}
}

func critical(id asn1.ObjectIdentifier) pkix.Extension {
	return pkix.Extension{Id: id, Critical: true, Value: []byte{5, 0}}
}

var unknownOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 9}

func isIssuerSigned(t *testing.T, f *fixture, r *ocspfetch.Response) {
	if !r.SignerIsIssuer || r.Signer != f.ca.Cert {
		t.Errorf("signer %q, issuer %v", r.Signer.Subject.CommonName, r.SignerIsIssuer)
	}
}

func isDelegated(t *testing.T, f *fixture, r *ocspfetch.Response) {
	if r.SignerIsIssuer || r.Signer == nil || r.Signer.Subject.CommonName != f.signer.Cert.Subject.CommonName {
		t.Errorf("signer %v, issuer %v", r.Signer, r.SignerIsIssuer)
	}
}

// verifyCases are the checks of RFC 6960 §3.2 and §4.2.2.2 one by one, and what golang.org/x/crypto/ocsp misses.
var verifyCases = []verifyCase{
	// The signer (§2.5 item 3).
	{name: "issuer signed, byName, no certs", build: respond(testpki.ResponseOptions{}), check: isIssuerSigned},
	{name: "issuer signed, embeds its own certificate (x/crypto rejects)", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Certs: []*x509.Certificate{f.ca.Cert}}
	}), check: isIssuerSigned},
	{name: "issuer signed, embeds the chain", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Certs: []*x509.Certificate{f.root.Cert, f.ca.Cert}}
	}), check: isIssuerSigned},
	{name: "issuer signed, byKey, no certs", build: respond(testpki.ResponseOptions{ResponderIDByKey: true}), check: isIssuerSigned},
	{name: "delegated, byName", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.signer}
	}), check: isDelegated},
	{name: "delegated, byKey", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.signer, ResponderIDByKey: true}
	}), check: isDelegated},
	{name: "delegated after other certificates", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.signer, Certs: []*x509.Certificate{f.ca.Cert, f.otherLeaf.Cert, f.signer.Cert}}
	}), check: isDelegated},
	{name: "delegated without EKU", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.ca.NewSigner(t, testpki.SignerOptions{NoEKU: true})}
	}), want: ocspfetch.ErrUnauthorizedSigner},
	{name: "delegated whose key usage forbids signing", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.ca.NewSigner(t, testpki.SignerOptions{KeyUsage: x509.KeyUsageKeyEncipherment})}
	}), want: ocspfetch.ErrUnauthorizedSigner},
	{name: "delegated by another CA", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.other.NewSigner(t, testpki.SignerOptions{})}
	}), want: ocspfetch.ErrUnauthorizedSigner},
	{name: "delegated by the root above the issuer", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.root.NewSigner(t, testpki.SignerOptions{})}
	}), want: ocspfetch.ErrUnauthorizedSigner},
	{name: "delegated, expired", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.ca.NewSigner(t, testpki.SignerOptions{NotBefore: now.AddDate(0, 0, -60), NotAfter: now.AddDate(0, 0, -1)})}
	}), want: ocspfetch.ErrSignerExpired},
	{name: "delegated, not yet valid", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.ca.NewSigner(t, testpki.SignerOptions{NotBefore: now.Add(time.Hour), NotAfter: now.AddDate(0, 0, 10)})}
	}), want: ocspfetch.ErrSignerExpired},
	{name: "delegated, valid within the skew", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.ca.NewSigner(t, testpki.SignerOptions{NotBefore: now.Add(4 * time.Minute), NotAfter: now.AddDate(0, 0, 10)})}
	})},
	{name: "delegated, byKey, no certs (x/crypto cannot verify)", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.signer, ResponderIDByKey: true, NoCerts: true}
	}), want: ocspfetch.ErrUnauthorizedSigner},
	{name: "pinned responder, byKey, no certs", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		der := f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{Signer: f.signer, ResponderIDByKey: true, NoCerts: true})
		return der, ocspfetch.VerifyOptions{Responders: []*x509.Certificate{f.signer.Cert}}
	}, check: isDelegated},
	{name: "pinned responder of another CA, no EKU", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		s := f.other.NewSigner(t, testpki.SignerOptions{NoEKU: true})
		der := f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{Signer: s})
		return der, ocspfetch.VerifyOptions{Responders: []*x509.Certificate{s.Cert}}
	}},
	{name: "issuer named, wrong key", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{SignWith: f.other.Key}
	}), want: ocspfetch.ErrBadSignature},
	{name: "delegated, wrong key", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.signer, SignWith: f.ca.Key}
	}), want: ocspfetch.ErrBadSignature},
	{name: "corrupted signature", build: respond(testpki.ResponseOptions{CorruptSignature: true}), want: ocspfetch.ErrBadSignature},
	{name: "ResponderID names nobody present", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{ResponderIDFrom: f.root.Cert}
	}), want: ocspfetch.ErrUnauthorizedSigner},
	{name: "signed by an impostor CA with the issuer's name", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		return f.other.Respond(t, f.leaf.Cert, testpki.ResponseOptions{}), ocspfetch.VerifyOptions{}
	}, want: ocspfetch.ErrBadSignature},
	{name: "impostor CA embedding its certificate", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		return f.other.Respond(t, f.leaf.Cert, testpki.ResponseOptions{Certs: []*x509.Certificate{f.other.Cert}}), ocspfetch.VerifyOptions{}
	}, want: ocspfetch.ErrBadSignature},
	{name: "self-signed stranger embedding itself (x/crypto #11984)", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		stranger := testpki.NewRoot(t, "Stranger", testpki.ECDSAP256)
		s := stranger.NewSigner(t, testpki.SignerOptions{})
		return f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{Signer: s}), ocspfetch.VerifyOptions{}
	}, want: ocspfetch.ErrUnauthorizedSigner},

	// The CertID (§2.5 item 2).
	{name: "wrong serial", build: respond(testpki.ResponseOptions{Serial: big.NewInt(0x4242)}), want: ocspfetch.ErrNoMatchingResponse},
	{name: "wrong issuer name hash", build: respond(testpki.ResponseOptions{IssuerNameHash: make([]byte, 20)}), want: ocspfetch.ErrNoMatchingResponse},
	{name: "wrong issuer key hash", build: respond(testpki.ResponseOptions{IssuerKeyHash: make([]byte, 20)}), want: ocspfetch.ErrNoMatchingResponse},
	{name: "CertID labelled SHA-256 holding SHA-1 hashes", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		sha1ID, err := ocspwire.NewCertID(f.ca.Cert, f.leaf.Cert.SerialNumber, crypto.SHA1)
		if err != nil {
			t.Fatal(err)
		}
		return testpki.ResponseOptions{Hash: crypto.SHA256, IssuerNameHash: sha1ID.IssuerNameHash, IssuerKeyHash: sha1ID.IssuerKeyHash}
	}), want: ocspfetch.ErrNoMatchingResponse},
	{name: "same serial under another CA only (x/crypto #81396)", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		id := f.other.Single(t, f.leaf.Cert.SerialNumber, testpki.ResponseOptions{})
		return testpki.ResponseOptions{IssuerNameHash: id.CertID.IssuerNameHash, IssuerKeyHash: id.CertID.IssuerKeyHash}
	}), want: ocspfetch.ErrNoMatchingResponse},
	{name: "several singles, ours after a same-serial one of another CA", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Status: ocspwire.Revoked, Before: []ocspwire.SingleResponse{
			f.other.Single(t, f.leaf.Cert.SerialNumber, testpki.ResponseOptions{}),
			f.ca.Single(t, big.NewInt(0x9999), testpki.ResponseOptions{}),
		}}
	}), check: func(t *testing.T, f *fixture, r *ocspfetch.Response) {
		if r.Status != ocspwire.Revoked {
			t.Errorf("status %v, want the matching single's revoked", r.Status)
		}
	}},
	{name: "duplicates that agree (SHA-1 and SHA-256)", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{After: []ocspwire.SingleResponse{f.ca.Single(t, f.leaf.Cert.SerialNumber, testpki.ResponseOptions{Hash: crypto.SHA256})}}
	})},
	{name: "duplicates that disagree", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{After: []ocspwire.SingleResponse{f.ca.Single(t, f.leaf.Cert.SerialNumber, testpki.ResponseOptions{Status: ocspwire.Revoked})}}
	}), want: ocspfetch.ErrDuplicateResponse},
	{name: "no SingleResponse (openssl E row)", build: respond(testpki.ResponseOptions{Omit: true}), want: ocspfetch.ErrNoMatchingResponse},
	{name: "SHA-256 CertID", build: respond(testpki.ResponseOptions{Hash: crypto.SHA256}), check: func(t *testing.T, f *fixture, r *ocspfetch.Response) {
		if r.CertIDHash != crypto.SHA256 {
			t.Errorf("CertIDHash %v", r.CertIDHash)
		}
	}},
	{name: "SHA-384 CertID", build: respond(testpki.ResponseOptions{Hash: crypto.SHA384})},
	{name: "SHA-512 CertID", build: respond(testpki.ResponseOptions{Hash: crypto.SHA512})},
	{name: "CertID hash without NULL parameters", build: respond(testpki.ResponseOptions{CertIDNoNullParams: true})},
	{name: "unknown CertID hash", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		s := f.ca.Single(t, f.leaf.Cert.SerialNumber, testpki.ResponseOptions{})
		s.CertID.HashAlgorithm = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5} // MD5
		return testpki.ResponseOptions{Omit: true, Before: []ocspwire.SingleResponse{s}}
	}), want: ocspfetch.ErrUnsupportedHashAlgo},

	// Times (§2.5 item 4).
	{name: "thisUpdate beyond the skew", build: respond(testpki.ResponseOptions{ThisUpdate: now.Add(6 * time.Minute), ProducedAt: now}), want: ocspfetch.ErrNotYetValid},
	{name: "thisUpdate within the skew", build: respond(testpki.ResponseOptions{ThisUpdate: now.Add(4 * time.Minute), ProducedAt: now})},
	{name: "producedAt in the future", build: respond(testpki.ResponseOptions{ProducedAt: now.Add(time.Hour)}), want: ocspfetch.ErrProducedInFuture},
	{name: "nextUpdate passed", build: respond(testpki.ResponseOptions{ThisUpdate: now.Add(-48 * time.Hour), NextUpdate: now.Add(-time.Second)}), want: ocspfetch.ErrExpired},
	{name: "nextUpdate is now", build: respond(testpki.ResponseOptions{NextUpdate: now}), want: ocspfetch.ErrExpired},
	{name: "nextUpdate before thisUpdate", build: respond(testpki.ResponseOptions{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(-2 * time.Hour)}), want: ocspfetch.ErrBadTimes},
	{name: "nextUpdate equal to thisUpdate", build: respond(testpki.ResponseOptions{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(-time.Hour)}), want: ocspfetch.ErrBadTimes},
	{name: "no nextUpdate, within the TTL", build: respond(testpki.ResponseOptions{NoNextUpdate: true, ThisUpdate: now.Add(-59 * time.Minute)}), check: func(t *testing.T, f *fixture, r *ocspfetch.Response) {
		if !r.NextUpdate.IsZero() {
			t.Errorf("NextUpdate %v", r.NextUpdate)
		}
	}},
	{name: "no nextUpdate, older than the TTL", build: respond(testpki.ResponseOptions{NoNextUpdate: true, ThisUpdate: now.Add(-time.Hour)}), want: ocspfetch.ErrExpired},
	{name: "no nextUpdate, RFC 5019 strict", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		return f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{NoNextUpdate: true}), ocspfetch.VerifyOptions{RequireNextUpdate: true}
	}, want: ocspfetch.ErrNoNextUpdate},
	{name: "nextUpdate after the certificate expires (short-lived)", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		short := f.ca.Issue(t, testpki.LeafOptions{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(2 * time.Hour)})
		f.leaf = short
		return f.ca.Respond(t, short.Cert, testpki.ResponseOptions{NextUpdate: now.AddDate(0, 0, 7)}), ocspfetch.VerifyOptions{}
	}},

	// Extensions (§2.5 item 6) and the nonce (item 5).
	{name: "unknown critical responseExtension", build: respond(testpki.ResponseOptions{ResponseExtensions: []pkix.Extension{critical(unknownOID)}}), want: ocspfetch.ErrCriticalExtension},
	{name: "unknown critical singleExtension", build: respond(testpki.ResponseOptions{SingleExtensions: []pkix.Extension{critical(unknownOID)}}), want: ocspfetch.ErrCriticalExtension},
	{name: "unknown non-critical extensions", build: respond(testpki.ResponseOptions{
		ResponseExtensions: []pkix.Extension{{Id: unknownOID, Value: []byte{5, 0}}},
		SingleExtensions:   []pkix.Extension{{Id: unknownOID, Value: []byte{5, 0}}},
	})},
	{name: "critical extended revoke (understood)", build: respond(testpki.ResponseOptions{ResponseExtensions: []pkix.Extension{critical(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 9})}})},
	{name: "nonce echoed", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		return f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{Nonce: []byte("sixteen byte nce")}), ocspfetch.VerifyOptions{Nonce: []byte("sixteen byte nce")}
	}},
	{name: "nonce differs", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		return f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{Nonce: []byte("another nonce")}), ocspfetch.VerifyOptions{Nonce: []byte("sixteen byte nce")}
	}, want: ocspfetch.ErrNonceMismatch},
	{name: "nonce sent, none back", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		return f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{}), ocspfetch.VerifyOptions{Nonce: []byte("sixteen byte nce")}
	}, want: ocspfetch.ErrNonceMismatch},
	{name: "nonce back, none sent", build: respond(testpki.ResponseOptions{Nonce: []byte("unasked")})},
	{name: "bare nonce (older responders)", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		ext := pkix.Extension{Id: ocspwire.OIDNonce, Value: []byte("sixteen byte nce")}
		return f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{ResponseExtensions: []pkix.Extension{ext}}), ocspfetch.VerifyOptions{Nonce: []byte("sixteen byte nce")}
	}},

	// Statuses (§2.5 item 7).
	{name: "revoked with reason", build: respond(testpki.ResponseOptions{Status: ocspwire.Revoked, Reason: 1, RevokedAt: now.Add(-3 * time.Hour)}), check: func(t *testing.T, f *fixture, r *ocspfetch.Response) {
		if r.Status != ocspwire.Revoked || !r.HasReason || r.RevocationReason != 1 || !r.RevokedAt.Equal(now.Add(-3*time.Hour)) {
			t.Errorf("%v %v %d %v", r.Status, r.HasReason, r.RevocationReason, r.RevokedAt)
		}
	}},
	{name: "revoked, reason unspecified(0)", build: respond(testpki.ResponseOptions{Status: ocspwire.Revoked, Reason: 0}), check: func(t *testing.T, f *fixture, r *ocspfetch.Response) {
		if !r.HasReason || r.RevocationReason != 0 {
			t.Errorf("%v %d", r.HasReason, r.RevocationReason)
		}
	}},
	{name: "revoked without reason", build: respond(testpki.ResponseOptions{Status: ocspwire.Revoked, NoReason: true}), check: func(t *testing.T, f *fixture, r *ocspfetch.Response) {
		if r.Status != ocspwire.Revoked || r.HasReason {
			t.Errorf("%v %v", r.Status, r.HasReason)
		}
	}},
	{name: "unknown", build: respond(testpki.ResponseOptions{Status: ocspwire.Unknown}), check: func(t *testing.T, f *fixture, r *ocspfetch.Response) {
		if r.Status != ocspwire.Unknown {
			t.Errorf("%v", r.Status)
		}
	}},

	// Signature algorithms that x/crypto refuses.
	{name: "Ed25519 delegated signer", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.ca.NewSigner(t, testpki.SignerOptions{KeyType: testpki.Ed25519})}
	})},
	{name: "RSA-PSS delegated signer", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.ca.NewSigner(t, testpki.SignerOptions{KeyType: testpki.RSA2048}), Algorithm: x509.SHA256WithRSAPSS}
	})},
	{name: "RSA-PSS, maximal salt (openssl default)", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.ca.NewSigner(t, testpki.SignerOptions{KeyType: testpki.RSA2048}), Algorithm: x509.SHA256WithRSAPSS, PSSSaltLength: 222}
	})},
	{name: "RSA SHA-1 signature (AD CS)", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.ca.NewSigner(t, testpki.SignerOptions{KeyType: testpki.RSA2048}), Algorithm: x509.SHA1WithRSA}
	})},
	{name: "RSA SHA-1 signature refused", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		s := f.ca.NewSigner(t, testpki.SignerOptions{KeyType: testpki.RSA2048})
		return f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{Signer: s, Algorithm: x509.SHA1WithRSA}), ocspfetch.VerifyOptions{RejectSHA1: true}
	}, want: ocspfetch.ErrBadSignature},
	{name: "ECDSA with SHA-384", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		return testpki.ResponseOptions{Signer: f.signer, Algorithm: x509.ECDSAWithSHA384}
	})},
	{name: "signature algorithm of another key type", build: respondWith(func(t *testing.T, f *fixture) testpki.ResponseOptions {
		// An ECDSA signature labelled for an Ed25519 signer's key.
		s := f.ca.NewSigner(t, testpki.SignerOptions{KeyType: testpki.Ed25519})
		return testpki.ResponseOptions{Signer: s, SignWith: f.signer.Key}
	}), want: ocspfetch.ErrBadSignature},

	// Wrong inputs.
	{name: "nil issuer", build: func(t *testing.T, f *fixture) ([]byte, ocspfetch.VerifyOptions) {
		f.ca = &testpki.CA{Cert: nil}
		return nil, ocspfetch.VerifyOptions{}
	}, want: ocspfetch.ErrNoIssuer},
}

func TestVerify(t *testing.T) {
	for _, kt := range []testpki.KeyType{testpki.ECDSAP256, testpki.RSA2048} {
		for _, tc := range verifyCases {
			t.Run(kt.String()+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, kt)
				der, opts := tc.build(t, f)
				r, err := ocspfetch.Verify(der, f.leaf.Cert, f.ca.Cert, now.Add(tc.at), opts)
				if tc.want != nil {
					if !errors.Is(err, tc.want) {
						t.Fatalf("err = %v, want %v", err, tc.want)
					}
					if r != nil {
						t.Fatalf("a response came back with the error")
					}
					return
				}
				if err != nil || r == nil {
					t.Fatalf("rejected: %v", err)
				}
				if r.Serial.Cmp(f.leaf.Cert.SerialNumber) != 0 || !r.Verified.Equal(now.Add(tc.at)) || string(r.Raw) != string(der) {
					t.Errorf("serial %v verified %v", r.Serial, r.Verified)
				}
				if tc.check != nil {
					tc.check(t, f, r)
				}
			})
		}
	}
}

// Unsigned error responses and structures that are not OCSP.
func TestVerifyUnsuccessfulAndMalformed(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	good := f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{})
	otherType := func() []byte {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Enum(0)
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 99})
					b.AddASN1OctetString([]byte{0x30, 0x00})
				})
			})
		})
		return b.BytesOrPanic()
	}
	tests := []struct {
		name   string
		der    []byte
		want   error
		status ocspwire.ResponseStatus
	}{
		{"malformedRequest", ocspwire.ErrorResponse(ocspwire.MalformedRequest), ocspfetch.ErrMalformedRequest, 1},
		{"internalError", ocspwire.ErrorResponse(ocspwire.InternalError), ocspfetch.ErrInternalError, 2},
		{"tryLater", ocspwire.ErrorResponse(ocspwire.TryLater), ocspfetch.ErrTryLater, 3},
		{"sigRequired", ocspwire.ErrorResponse(ocspwire.SigRequired), ocspfetch.ErrSigRequired, 5},
		{"unauthorized", ocspwire.ErrorResponse(ocspwire.Unauthorized), ocspfetch.ErrUnauthorized, 6},
		{"status 4 (unused)", ocspwire.ErrorResponse(4), ocspfetch.ErrMalformed, 4},
		{"empty", nil, ocspfetch.ErrMalformed, 0},
		{"garbage", []byte("<html>It works!</html>"), ocspfetch.ErrMalformed, 0},
		{"truncated", good[:len(good)/2], ocspfetch.ErrMalformed, 0},
		{"trailing data", append(append([]byte{}, good...), 0), ocspfetch.ErrMalformed, 0},
		{"successful without responseBytes", []byte{0x30, 0x03, 0x0a, 0x01, 0x00}, ocspfetch.ErrMalformed, 0},
		{"other response type", otherType(), ocspfetch.ErrUnsupportedType, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ocspfetch.Verify(tc.der, f.leaf.Cert, f.ca.Cert, now, ocspfetch.VerifyOptions{})
			if !errors.Is(err, tc.want) || r != nil {
				t.Fatalf("err = %v, want %v (response %v)", err, tc.want, r)
			}
			var se *ocspfetch.ResponderStatusError
			if tc.status != 0 && (!errors.As(err, &se) || se.Status != tc.status) {
				t.Errorf("not a ResponderStatusError with status %d: %v", tc.status, err)
			}
		})
	}
}

func TestVerifyCache(t *testing.T) {
	f := newFixture(t, testpki.RSA2048)
	cache := &ocspfetch.VerifyCache{}
	good := f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{Signer: f.signer})
	noEKU := f.ca.NewSigner(t, testpki.SignerOptions{NoEKU: true})
	bad := f.ca.Respond(t, f.leaf.Cert, testpki.ResponseOptions{Signer: noEKU})
	for i := range 3 {
		if _, err := ocspfetch.Verify(good, f.leaf.Cert, f.ca.Cert, now, ocspfetch.VerifyOptions{Cache: cache}); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		// A delegation remembered as signed still needs its EKU and validity, every time.
		if _, err := ocspfetch.Verify(bad, f.leaf.Cert, f.ca.Cert, now, ocspfetch.VerifyOptions{Cache: cache}); !errors.Is(err, ocspfetch.ErrUnauthorizedSigner) {
			t.Fatalf("round %d: %v", i, err)
		}
		if _, err := ocspfetch.Verify(good, f.leaf.Cert, f.ca.Cert, f.signer.Cert.NotAfter.Add(time.Hour), ocspfetch.VerifyOptions{Cache: cache}); !errors.Is(err, ocspfetch.ErrSignerExpired) && !errors.Is(err, ocspfetch.ErrExpired) {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	// The same signer certificate does not verify for an issuer that did not sign it.
	if _, err := ocspfetch.Verify(good, f.otherLeaf.Cert, f.other.Cert, now, ocspfetch.VerifyOptions{Cache: cache}); !errors.Is(err, ocspfetch.ErrUnauthorizedSigner) {
		t.Fatalf("other issuer: %v", err)
	}
}
