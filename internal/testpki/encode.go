package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers of OCSP and of the algorithms the encoder writes.
var (
	OIDBasicResponse = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	OIDNonce         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidSHA1WithRSA      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSAPSS           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECDSAWithSHA256  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519Signature = asn1.ObjectIdentifier{1, 3, 101, 112}
)

func hashOID(h crypto.Hash) (asn1.ObjectIdentifier, error) {
	switch h {
	case crypto.SHA1:
		return oidSHA1, nil
	case crypto.SHA256:
		return oidSHA256, nil
	case crypto.SHA384:
		return oidSHA384, nil
	case crypto.SHA512:
		return oidSHA512, nil
	}
	return nil, fmt.Errorf("testpki: no OID for hash %v", h)
}

// addAlgorithm writes an AlgorithmIdentifier; params nil means absent, asn1.NullBytes means NULL.
func addAlgorithm(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, params []byte) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddBytes(params)
	})
}

// signatureScheme is how a response is signed: the AlgorithmIdentifier written and the options for Sign.
type signatureScheme struct {
	oid    asn1.ObjectIdentifier
	params []byte
	hash   crypto.Hash // 0 for Ed25519 (the message is signed whole)
	opts   crypto.SignerOpts
}

// schemeFor returns the signature scheme for key and the requested algorithm (0 means the key's default:
// SHA-256 with RSA PKCS #1 v1.5, ECDSA with SHA-256, Ed25519). saltLen is the RSA-PSS salt length; 0 means the
// hash length.
func schemeFor(key crypto.PublicKey, alg x509.SignatureAlgorithm, saltLen int) (signatureScheme, error) {
	switch key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case x509.UnknownSignatureAlgorithm, x509.SHA256WithRSA:
			return signatureScheme{oid: oidSHA256WithRSA, params: asn1.NullBytes, hash: crypto.SHA256, opts: crypto.SHA256}, nil
		case x509.SHA1WithRSA:
			return signatureScheme{oid: oidSHA1WithRSA, params: asn1.NullBytes, hash: crypto.SHA1, opts: crypto.SHA1}, nil
		case x509.SHA384WithRSA:
			return signatureScheme{oid: oidSHA384WithRSA, params: asn1.NullBytes, hash: crypto.SHA384, opts: crypto.SHA384}, nil
		case x509.SHA512WithRSA:
			return signatureScheme{oid: oidSHA512WithRSA, params: asn1.NullBytes, hash: crypto.SHA512, opts: crypto.SHA512}, nil
		case x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
			h := map[x509.SignatureAlgorithm]crypto.Hash{x509.SHA256WithRSAPSS: crypto.SHA256,
				x509.SHA384WithRSAPSS: crypto.SHA384, x509.SHA512WithRSAPSS: crypto.SHA512}[alg]
			if saltLen == 0 {
				saltLen = h.Size()
			}
			params, err := pssParams(h, saltLen)
			if err != nil {
				return signatureScheme{}, err
			}
			return signatureScheme{oid: oidRSAPSS, params: params, hash: h, opts: &rsa.PSSOptions{SaltLength: saltLen, Hash: h}}, nil
		}
	case *ecdsa.PublicKey:
		switch alg {
		case x509.UnknownSignatureAlgorithm, x509.ECDSAWithSHA256:
			return signatureScheme{oid: oidECDSAWithSHA256, hash: crypto.SHA256, opts: crypto.SHA256}, nil
		case x509.ECDSAWithSHA384:
			return signatureScheme{oid: oidECDSAWithSHA384, hash: crypto.SHA384, opts: crypto.SHA384}, nil
		case x509.ECDSAWithSHA512:
			return signatureScheme{oid: oidECDSAWithSHA512, hash: crypto.SHA512, opts: crypto.SHA512}, nil
		}
	case ed25519.PublicKey:
		if alg == x509.UnknownSignatureAlgorithm || alg == x509.PureEd25519 {
			return signatureScheme{oid: oidEd25519Signature, opts: crypto.Hash(0)}, nil
		}
	}
	return signatureScheme{}, fmt.Errorf("testpki: cannot sign with %v using a %T", alg, key)
}

// pssParams encodes RSASSA-PSS-params (RFC 4055) for hash h with MGF1 over h and the given salt length.
func pssParams(h crypto.Hash, saltLen int) ([]byte, error) {
	oid, err := hashOID(h)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			addAlgorithm(b, oid, asn1.NullBytes)
		})
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidMGF1)
				addAlgorithm(b, oid, asn1.NullBytes)
			})
		})
		b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1Int64(int64(saltLen))
		})
	})
	return b.Bytes()
}

// sign signs msg with key under scheme s.
func sign(key crypto.Signer, s signatureScheme, msg []byte) ([]byte, error) {
	digest := msg
	if s.hash != 0 {
		h := s.hash.New()
		h.Write(msg)
		digest = h.Sum(nil)
	}
	return key.Sign(rand.Reader, digest, s.opts)
}

func addExtensions(b *cryptobyte.Builder, exts []pkix.Extension) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, e := range exts {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(e.Id)
				if e.Critical {
					b.AddASN1Boolean(true)
				}
				b.AddASN1OctetString(e.Value)
			})
		}
	})
}

// NonceExtension returns the id-pkix-ocsp-nonce extension carrying nonce, its value wrapped in an OCTET
// STRING as RFC 6960 §4.4.1 and OpenSSL do.
func NonceExtension(nonce []byte) pkix.Extension {
	var b cryptobyte.Builder
	b.AddASN1OctetString(nonce)
	return pkix.Extension{Id: OIDNonce, Value: b.BytesOrPanic()}
}

// CertID identifies a certificate in an OCSP request or response (RFC 6960 §4.1.1).
type CertID struct {
	Hash           crypto.Hash
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	Serial         *big.Int
	// NoNullParams leaves out the NULL parameters of the hash AlgorithmIdentifier (both forms are seen).
	NoNullParams bool
	// HashOID, when set, is written in place of Hash's OID (for hash algorithms a client does not know).
	HashOID asn1.ObjectIdentifier
}

// NewCertID returns the CertID of the certificate with serial issued by issuer, hashed with h.
func NewCertID(issuer *x509.Certificate, serial *big.Int, h crypto.Hash) (CertID, error) {
	if !h.Available() {
		return CertID{}, fmt.Errorf("testpki: hash %v unavailable", h)
	}
	keyBits, err := SubjectPublicKeyBits(issuer)
	if err != nil {
		return CertID{}, err
	}
	nh := h.New()
	nh.Write(issuer.RawSubject)
	kh := h.New()
	kh.Write(keyBits)
	return CertID{Hash: h, IssuerNameHash: nh.Sum(nil), IssuerKeyHash: kh.Sum(nil), Serial: serial}, nil
}

// SubjectPublicKeyBits returns the value of the subjectPublicKey BIT STRING of c (what issuerKeyHash and a
// byKey ResponderID hash).
func SubjectPublicKeyBits(c *x509.Certificate) ([]byte, error) {
	in := cryptobyte.String(c.RawSubjectPublicKeyInfo)
	var spki, alg cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&spki, cbasn1.SEQUENCE) || !spki.ReadASN1(&alg, cbasn1.SEQUENCE) || !spki.ReadASN1BitString(&bits) {
		return nil, fmt.Errorf("testpki: malformed SubjectPublicKeyInfo in %q", c.Subject.CommonName)
	}
	return bits.Bytes, nil
}

func (id CertID) add(b *cryptobyte.Builder) {
	oid, err := hashOID(id.Hash)
	if id.HashOID != nil {
		oid, err = id.HashOID, nil
	}
	if err != nil {
		b.SetError(err)
		return
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		params := asn1.NullBytes
		if id.NoNullParams {
			params = nil
		}
		addAlgorithm(b, oid, params)
		b.AddASN1OctetString(id.IssuerNameHash)
		b.AddASN1OctetString(id.IssuerKeyHash)
		b.AddASN1BigInt(id.Serial)
	})
}

// CertStatus is the status a SingleResponse asserts.
type CertStatus int

const (
	Good CertStatus = iota
	Revoked
	Unknown
)

// SingleResponse is one SingleResponse as encoded (no defaults are applied to it).
type SingleResponse struct {
	CertID     CertID
	Status     CertStatus
	RevokedAt  time.Time
	Reason     int  // CRLReason, written unless NoReason
	NoReason   bool // leave revocationReason out
	ThisUpdate time.Time
	NextUpdate time.Time // zero: no nextUpdate
	Extensions []pkix.Extension
}

func (s SingleResponse) add(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		s.CertID.add(b)
		switch s.Status {
		case Good:
			b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(*cryptobyte.Builder) {})
		case Revoked:
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(s.RevokedAt.UTC())
				if !s.NoReason {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1Enum(int64(s.Reason))
					})
				}
			})
		default:
			b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(*cryptobyte.Builder) {})
		}
		b.AddASN1GeneralizedTime(s.ThisUpdate.UTC())
		if !s.NextUpdate.IsZero() {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(s.NextUpdate.UTC())
			})
		}
		if len(s.Extensions) > 0 {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				addExtensions(b, s.Extensions)
			})
		}
	})
}

// BasicResponse is a whole successful OCSPResponse as encoded: what EncodeResponse signs. No defaults apply.
type BasicResponse struct {
	// ResponderName (byName, raw DER of a Name) or ResponderKeyHash (byKey) identifies the signer; exactly
	// one should be set.
	ResponderName    []byte
	ResponderKeyHash []byte
	ProducedAt       time.Time
	Responses        []SingleResponse
	Extensions       []pkix.Extension // responseExtensions
	// Version, when non-zero, is written explicitly (v1 is 0 and normally left out as the DEFAULT).
	Version int

	// Key signs the response with Algorithm (0: the key's default); PSSSaltLength is the RSA-PSS salt length
	// (0: the hash length).
	Key           crypto.Signer
	Algorithm     x509.SignatureAlgorithm
	PSSSaltLength int
	// CorruptSignature flips a bit of the signature after signing.
	CorruptSignature bool
	// Certs go into the certs field, in order; nil leaves the field out.
	Certs []*x509.Certificate
}

// EncodeResponse signs and encodes r as a DER OCSPResponse with responseStatus successful.
func EncodeResponse(r BasicResponse) ([]byte, error) {
	var tbs cryptobyte.Builder
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if r.Version != 0 {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1Int64(int64(r.Version))
			})
		}
		if r.ResponderKeyHash != nil {
			b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1OctetString(r.ResponderKeyHash)
			})
		} else {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddBytes(r.ResponderName)
			})
		}
		b.AddASN1GeneralizedTime(r.ProducedAt.UTC())
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, s := range r.Responses {
				s.add(b)
			}
		})
		if len(r.Extensions) > 0 {
			b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				addExtensions(b, r.Extensions)
			})
		}
	})
	tbsDER, err := tbs.Bytes()
	if err != nil {
		return nil, err
	}
	scheme, err := schemeFor(r.Key.Public(), r.Algorithm, r.PSSSaltLength)
	if err != nil {
		return nil, err
	}
	sig, err := sign(r.Key, scheme, tbsDER)
	if err != nil {
		return nil, err
	}
	if r.CorruptSignature {
		sig[len(sig)/2] ^= 0x01
	}
	var basic cryptobyte.Builder
	basic.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		addAlgorithm(b, scheme.oid, scheme.params)
		b.AddASN1BitString(sig)
		if r.Certs != nil {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, c := range r.Certs {
						b.AddBytes(c.Raw)
					}
				})
			})
		}
	})
	basicDER, err := basic.Bytes()
	if err != nil {
		return nil, err
	}
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(0)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(OIDBasicResponse)
				b.AddASN1OctetString(basicDER)
			})
		})
	})
	return out.Bytes()
}

// Unsuccessful responseStatus values (RFC 6960 §4.2.1).
const (
	MalformedRequest = 1
	InternalError    = 2
	TryLater         = 3
	SigRequired      = 5
	Unauthorized     = 6
)

// ErrorResponse returns the unsigned OCSPResponse carrying only responseStatus status (30 03 0a 01 0X).
func ErrorResponse(status int) []byte {
	return []byte{0x30, 0x03, 0x0a, 0x01, byte(status)}
}
