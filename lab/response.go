package lab

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"staple/ocspwire"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CertStatus is the certStatus of a SingleResponse.
type CertStatus int

const (
	CertGood    CertStatus = 0
	CertRevoked CertStatus = 1
	CertUnknown CertStatus = 2
)

func (s CertStatus) String() string {
	switch s {
	case CertGood:
		return "good"
	case CertRevoked:
		return "revoked"
	case CertUnknown:
		return "unknown"
	}
	return "invalid"
}

// SingleResponse is one certificate's status in a response (RFC 6960 §4.2.1).
type SingleResponse struct {
	// CertID is echoed as the request named it (hash algorithm, issuer hashes, serial).
	CertID ocspwire.CertID
	Status CertStatus
	// RevokedAt and Reason are for CertRevoked; ReasonNone leaves revocationReason out.
	RevokedAt time.Time
	Reason    Reason
	// HoldInstruction and InvalidityDate, when set, become the singleExtensions holdInstructionCode and
	// invalidityDate, as openssl ocsp writes them for certificateHold and keyTime/CAkeyTime rows.
	HoldInstruction asn1.ObjectIdentifier
	InvalidityDate  time.Time
	// ThisUpdate is required; a zero NextUpdate leaves nextUpdate out.
	ThisUpdate, NextUpdate time.Time
}

// ResponseData is what a response says, before it is signed.
type ResponseData struct {
	ProducedAt time.Time
	Responses  []SingleResponse
	// Nonce is the extnValue of the nonce extension to put in responseExtensions, verbatim (echo
	// responder.Request.Nonce); nil leaves it out.
	Nonce []byte
	// ByKey identifies the responder by the SHA-1 of its public key rather than by its subject name.
	ByKey bool
}

var (
	oidBasicResponse   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidInvalidityDate  = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidHoldInstruction = asn1.ObjectIdentifier{2, 5, 29, 23}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// ErrUnsupportedKey is returned for a signing key that is not ECDSA (P-256, P-384, P-521), RSA or Ed25519.
var ErrUnsupportedKey = errors.New("lab: unsupported signing key")

// SignResponse encodes data as a successful BasicOCSPResponse signed with key, whose certificate is signer,
// and returns the DER OCSPResponse. certs are embedded in the response: a delegated signer's own certificate
// (RFC 5019 §2.2.2 requires it), nothing when the issuer signs. The signature is ECDSA with SHA-256/384/512
// after the curve, sha256WithRSAEncryption, or Ed25519.
func SignResponse(data ResponseData, signer *x509.Certificate, key crypto.Signer, certs []*x509.Certificate) ([]byte, error) {
	return signResponse(data, signer, key, certs, false)
}

// signResponse is SignResponse; corrupt spoils the signature on purpose (the bad-signature fault).
func signResponse(data ResponseData, signer *x509.Certificate, key crypto.Signer, certs []*x509.Certificate, corrupt bool) ([]byte, error) {
	if len(data.Responses) == 0 {
		return nil, errors.New("lab: a response needs at least one SingleResponse")
	}
	algo, hash, err := signatureAlgorithm(key.Public())
	if err != nil {
		return nil, err
	}
	tbs, err := marshalResponseData(data, signer)
	if err != nil {
		return nil, err
	}
	digest := tbs
	if hash != 0 {
		h := hash.New()
		h.Write(tbs)
		digest = h.Sum(nil)
	}
	sig, err := key.Sign(rand.Reader, digest, hash)
	if err != nil {
		return nil, fmt.Errorf("lab: signing the response: %w", err)
	}
	if corrupt {
		sig[len(sig)-1] ^= 0x5a
	}
	var basic cryptobyte.Builder
	basic.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(algo)
			if algo.Equal(oidSHA256WithRSA) {
				b.AddASN1NULL()
			}
		})
		b.AddASN1BitString(sig)
		if len(certs) > 0 {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, c := range certs {
						b.AddBytes(c.Raw)
					}
				})
			})
		}
	})
	basicDER, err := basic.Bytes()
	if err != nil {
		return nil, fmt.Errorf("lab: encoding the response: %w", err)
	}
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(int64(ocspwire.Successful))
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidBasicResponse)
				b.AddASN1OctetString(basicDER)
			})
		})
	})
	return out.Bytes()
}

// signatureAlgorithm returns the AlgorithmIdentifier OID and the digest for a public key.
func signatureAlgorithm(pub crypto.PublicKey) (asn1.ObjectIdentifier, crypto.Hash, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return oidECDSAWithSHA256, crypto.SHA256, nil
		case elliptic.P384():
			return oidECDSAWithSHA384, crypto.SHA384, nil
		case elliptic.P521():
			return oidECDSAWithSHA512, crypto.SHA512, nil
		}
	case *rsa.PublicKey:
		return oidSHA256WithRSA, crypto.SHA256, nil
	case ed25519.PublicKey:
		return oidEd25519, 0, nil
	}
	return nil, 0, fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}

func marshalResponseData(data ResponseData, signer *x509.Certificate) ([]byte, error) {
	var keyHash []byte
	if data.ByKey {
		spk, err := subjectPublicKey(signer.RawSubjectPublicKeyInfo)
		if err != nil {
			return nil, err
		}
		sum := sha1.Sum(spk)
		keyHash = sum[:]
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		// version is v1, the DEFAULT, so it is left out (DER).
		if data.ByKey {
			b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1OctetString(keyHash)
			})
		} else {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddBytes(signer.RawSubject)
			})
		}
		b.AddASN1GeneralizedTime(data.ProducedAt.UTC())
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, r := range data.Responses {
				addSingleResponse(b, r)
			}
		})
		if data.Nonce != nil {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					addExtension(b, ocspwire.OIDNonce, data.Nonce)
				})
			})
		}
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("lab: encoding the response data: %w", err)
	}
	return der, nil
}

func addSingleResponse(b *cryptobyte.Builder, r SingleResponse) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addCertID(b, r.CertID)
		switch r.Status {
		case CertGood:
			b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(*cryptobyte.Builder) {})
		case CertRevoked:
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(r.RevokedAt.UTC())
				if r.Reason != ReasonNone {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1Enum(int64(r.Reason))
					})
				}
			})
		default:
			b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(*cryptobyte.Builder) {})
		}
		b.AddASN1GeneralizedTime(r.ThisUpdate.UTC())
		if !r.NextUpdate.IsZero() {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(r.NextUpdate.UTC())
			})
		}
		if r.HoldInstruction == nil && r.InvalidityDate.IsZero() {
			return
		}
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				if !r.InvalidityDate.IsZero() {
					addExtensionWith(b, oidInvalidityDate, func(b *cryptobyte.Builder) {
						b.AddASN1GeneralizedTime(r.InvalidityDate.UTC())
					})
				}
				if r.HoldInstruction != nil {
					addExtensionWith(b, oidHoldInstruction, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(r.HoldInstruction)
					})
				}
			})
		})
	})
}

func addCertID(b *cryptobyte.Builder, id ocspwire.CertID) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(id.HashAlgorithm)
			b.AddASN1NULL()
		})
		b.AddASN1OctetString(id.IssuerNameHash)
		b.AddASN1OctetString(id.IssuerKeyHash)
		b.AddASN1BigInt(id.Serial)
	})
}

func addExtension(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, value []byte) {
	addExtensionWith(b, oid, func(b *cryptobyte.Builder) { b.AddBytes(value) })
}

// addExtensionWith adds an extension whose extnValue holds what value builds.
func addExtensionWith(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, value cryptobyte.BuilderContinuation) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

// subjectPublicKey returns the subjectPublicKey BIT STRING contents of a DER SubjectPublicKeyInfo: the
// bytes RFC 6960 hashes for issuerKeyHash and for a byKey ResponderID.
func subjectPublicKey(spki []byte) ([]byte, error) {
	s := cryptobyte.String(spki)
	var seq cryptobyte.String
	var bits asn1.BitString
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.SkipASN1(cbasn1.SEQUENCE) || !seq.ReadASN1BitString(&bits) {
		return nil, errors.New("lab: bad SubjectPublicKeyInfo")
	}
	return bits.RightAlign(), nil
}
