package ocspwire

import (
	"crypto"
	"crypto/x509"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// SignOptions says how Sign signs a response. Only Key is required: the zero value of every other field
// signs with the key's default algorithm, as it should, and embeds no certificate.
type SignOptions struct {
	// Key signs. Required.
	Key crypto.Signer
	// Algorithm is the signature algorithm; zero means the key's default (see SchemeFor). PSSSaltLength is
	// the RSA-PSS salt length; zero means the hash length.
	Algorithm     x509.SignatureAlgorithm
	PSSSaltLength int
	// CorruptSignature spoils the signature after signing (for tests and the bad-signature fault).
	CorruptSignature bool
	// Certs go into the certs field in order: a delegated signer's certificate (RFC 5019 §2.2.2 wants it).
	// Nil leaves the field out; an empty non-nil slice writes it empty.
	Certs []*x509.Certificate
}

// Sign encodes data as a BasicOCSPResponse signed as o says and returns the DER OCSPResponse with
// responseStatus successful. It writes what it is given, checking nothing of what data says, so that tests
// can make responses a client must reject. A key and algorithm that do not go together are an error wrapping
// ErrUnsupportedSignature; a CertID hash with no OID one wrapping ErrUnsupportedHash.
func Sign(data ResponseData, o SignOptions) ([]byte, error) {
	scheme, err := SchemeFor(o.Key.Public(), o.Algorithm, o.PSSSaltLength)
	if err != nil {
		return nil, err
	}
	var tbs cryptobyte.Builder
	data.add(&tbs)
	tbsDER, err := tbs.Bytes()
	if err != nil {
		return nil, err
	}
	sig, err := scheme.sign(o.Key, tbsDER)
	if err != nil {
		return nil, err
	}
	if o.CorruptSignature {
		sig[len(sig)/2] ^= 0x01
	}
	var basic cryptobyte.Builder
	basic.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		scheme.add(b)
		b.AddASN1BitString(sig)
		if o.Certs != nil {
			b.AddASN1(tag0C, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, c := range o.Certs {
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
		b.AddASN1Enum(int64(Successful))
		b.AddASN1(tag0C, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(OIDBasicResponse)
				b.AddASN1OctetString(basicDER)
			})
		})
	})
	return out.Bytes()
}

// add writes d as a DER tbsResponseData.
func (d ResponseData) add(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if d.Version != 0 {
			b.AddASN1(tag0C, func(b *cryptobyte.Builder) { b.AddASN1Int64(int64(d.Version)) })
		}
		if d.ResponderID.KeyHash != nil {
			b.AddASN1(tag2C, func(b *cryptobyte.Builder) { b.AddASN1OctetString(d.ResponderID.KeyHash) })
		} else {
			b.AddASN1(tag1C, func(b *cryptobyte.Builder) { b.AddBytes(d.ResponderID.Name) })
		}
		b.AddASN1GeneralizedTime(d.ProducedAt.UTC())
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, s := range d.Responses {
				s.add(b)
			}
		})
		addOptionalExtensions(b, tag1C, d.Extensions)
	})
}

// add writes s as a DER SingleResponse.
func (s SingleResponse) add(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		s.CertID.add(b)
		switch s.Status {
		case Good:
			b.AddASN1(tag0P, func(*cryptobyte.Builder) {})
		case Revoked:
			b.AddASN1(tag1C, func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(s.RevokedAt.UTC())
				if s.Reason != ReasonNone {
					b.AddASN1(tag0C, func(b *cryptobyte.Builder) { b.AddASN1Enum(int64(s.Reason)) })
				}
			})
		default:
			b.AddASN1(tag2P, func(*cryptobyte.Builder) {})
		}
		b.AddASN1GeneralizedTime(s.ThisUpdate.UTC())
		if !s.NextUpdate.IsZero() {
			b.AddASN1(tag0C, func(b *cryptobyte.Builder) { b.AddASN1GeneralizedTime(s.NextUpdate.UTC()) })
		}
		addOptionalExtensions(b, tag1C, s.Extensions)
	})
}
