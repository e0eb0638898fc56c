package testpki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"staple/ocspwire"
)

// ResponseOptions describes an OCSP response for one certificate. Every zero field has a default that makes
// a response a correct client accepts at Epoch; each field changes one thing, so each kind of bad response is
// one field away from a good one.
type ResponseOptions struct {
	Status ocspwire.Status
	// RevokedAt defaults to two hours before Epoch; Reason is written unless NoReason.
	RevokedAt time.Time
	Reason    int
	NoReason  bool

	// ThisUpdate defaults to one hour before Epoch, ProducedAt to ThisUpdate, NextUpdate to ThisUpdate plus
	// 24 hours; NoNextUpdate leaves nextUpdate out (openssl ocsp without -ndays/-nmin).
	ThisUpdate, NextUpdate, ProducedAt time.Time
	NoNextUpdate                       bool

	// Hash is the CertID hash (default SHA-1). Serial, IssuerNameHash and IssuerKeyHash replace the true
	// values (for responses about another certificate).
	Hash           crypto.Hash
	Serial         *big.Int
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	// CertIDNoNullParams leaves the NULL parameters out of the CertID hash algorithm.
	CertIDNoNullParams bool

	// Signer is the delegated responder that signs; nil means the CA itself. SignWith, when set, signs in
	// place of the signer's key (a "wrong key" response).
	Signer   *Leaf
	SignWith crypto.Signer
	// Algorithm is the signature algorithm (0: the key's default; x509.SHA256WithRSAPSS for RSA-PSS), and
	// PSSSaltLength its salt length (0: the hash length).
	Algorithm        x509.SignatureAlgorithm
	PSSSaltLength    int
	CorruptSignature bool

	// ResponderIDByKey writes a byKey ResponderID instead of byName. ResponderIDFrom names this certificate
	// in the ResponderID instead of the signer.
	ResponderIDByKey bool
	ResponderIDFrom  *x509.Certificate

	// Certs replaces the certs field; nil means the default: the signer's certificate for a delegated
	// signer, none for the CA. NoCerts leaves the field out whatever the signer.
	Certs   []*x509.Certificate
	NoCerts bool

	// Before and After are extra SingleResponses written before and after the certificate's own.
	Before, After []ocspwire.SingleResponse
	// Omit leaves the certificate's own SingleResponse out (a response with only Before and After, or none
	// at all like OpenSSL's answer for an "E" index row).
	Omit bool

	// Nonce, when non-nil, is echoed in responseExtensions. ResponseExtensions and SingleExtensions are
	// added as given (set Critical for unknown critical extensions).
	Nonce              []byte
	ResponseExtensions []pkix.Extension
	SingleExtensions   []pkix.Extension
}

// Default response times, relative to Epoch.
const (
	defaultAge      = time.Hour
	defaultValidity = 24 * time.Hour
	defaultRevoked  = 2 * time.Hour
)

// Single returns the SingleResponse that o describes for the certificate with serial issued by ca.
func (ca *CA) Single(t testing.TB, serial *big.Int, o ResponseOptions) ocspwire.SingleResponse {
	t.Helper()
	h := o.Hash
	if h == 0 {
		h = crypto.SHA1
	}
	if o.Serial != nil {
		serial = o.Serial
	}
	id, err := ocspwire.NewCertID(ca.Cert, serial, h)
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	if o.IssuerNameHash != nil {
		id.IssuerNameHash = o.IssuerNameHash
	}
	if o.IssuerKeyHash != nil {
		id.IssuerKeyHash = o.IssuerKeyHash
	}
	id.NoNullParams = o.CertIDNoNullParams
	this := orTime(o.ThisUpdate, Epoch().Add(-defaultAge))
	s := ocspwire.SingleResponse{
		CertID:     id,
		Status:     o.Status,
		ThisUpdate: this,
		NextUpdate: orTime(o.NextUpdate, this.Add(defaultValidity)),
		Extensions: o.SingleExtensions,
	}
	if o.NoNextUpdate {
		s.NextUpdate = time.Time{}
	}
	if o.Status == ocspwire.Revoked {
		s.RevokedAt = orTime(o.RevokedAt, Epoch().Add(-defaultRevoked))
		s.Reason = ocspwire.Reason(o.Reason)
		if o.NoReason {
			s.Reason = ocspwire.ReasonNone
		}
	}
	return s
}

// Respond returns a DER OCSPResponse about leaf (issued by ca), as o describes.
func (ca *CA) Respond(t testing.TB, leaf *x509.Certificate, o ResponseOptions) []byte {
	t.Helper()
	return ca.RespondSerial(t, leaf.SerialNumber, o)
}

// RespondSerial is Respond for a serial number rather than a certificate.
func (ca *CA) RespondSerial(t testing.TB, serial *big.Int, o ResponseOptions) []byte {
	t.Helper()
	var singles []ocspwire.SingleResponse
	singles = append(singles, o.Before...)
	if !o.Omit {
		singles = append(singles, ca.Single(t, serial, o))
	}
	singles = append(singles, o.After...)
	der, err := ocspwire.Sign(ca.Basic(t, singles, o))
	if err != nil {
		t.Fatalf("testpki: encoding a response: %v", err)
	}
	return der
}

// Basic returns what o describes around singles: the response data, and how to sign it.
func (ca *CA) Basic(t testing.TB, singles []ocspwire.SingleResponse, o ResponseOptions) (ocspwire.ResponseData, ocspwire.SignOptions) {
	t.Helper()
	signerCert, key := ca.Cert, ca.Key
	var certs []*x509.Certificate
	if o.Signer != nil {
		signerCert, key = o.Signer.Cert, o.Signer.Key
		certs = []*x509.Certificate{o.Signer.Cert}
	}
	if o.Certs != nil {
		certs = o.Certs
	}
	if o.NoCerts {
		certs = nil
	}
	if o.SignWith != nil {
		key = o.SignWith
	}
	idCert := signerCert
	if o.ResponderIDFrom != nil {
		idCert = o.ResponderIDFrom
	}
	rid, err := ocspwire.NewResponderID(idCert, o.ResponderIDByKey)
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	d := ocspwire.ResponseData{
		ResponderID: rid,
		ProducedAt:  orTime(o.ProducedAt, orTime(o.ThisUpdate, Epoch().Add(-defaultAge))),
		Responses:   singles,
	}
	if o.Nonce != nil {
		d.Extensions = append(d.Extensions, ocspwire.NonceExtension(o.Nonce))
	}
	d.Extensions = append(d.Extensions, o.ResponseExtensions...)
	return d, ocspwire.SignOptions{Key: key, Algorithm: o.Algorithm, PSSSaltLength: o.PSSSaltLength,
		CorruptSignature: o.CorruptSignature, Certs: certs}
}
