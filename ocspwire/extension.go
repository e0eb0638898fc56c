package ocspwire

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// NonceExtension returns the id-pkix-ocsp-nonce extension carrying nonce, its value wrapped in an OCTET
// STRING as RFC 6960 §4.4.1, RFC 9654 and OpenSSL have it.
func NonceExtension(nonce []byte) pkix.Extension {
	return pkix.Extension{Id: OIDNonce, Value: build(func(b *cryptobyte.Builder) { b.AddASN1OctetString(nonce) })}
}

// UnwrapNonce returns the nonce inside the extnValue of a nonce extension, and false when the value is not
// exactly one OCTET STRING (a bare nonce, as some older responders send).
func UnwrapNonce(extnValue []byte) ([]byte, bool) {
	v := cryptobyte.String(extnValue)
	var inner []byte
	if !v.ReadASN1Bytes(&inner, cbasn1.OCTET_STRING) || !v.Empty() {
		return nil, false
	}
	return inner, true
}

// HoldInstructionExtension returns the holdInstructionCode single extension carrying h.
func HoldInstructionExtension(h HoldInstruction) pkix.Extension {
	return pkix.Extension{Id: OIDHoldInstructionCode, Value: build(func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier(h))
	})}
}

// InvalidityDateExtension returns the invalidityDate single extension carrying t.
func InvalidityDateExtension(t time.Time) pkix.Extension {
	return pkix.Extension{Id: OIDInvalidityDate, Value: build(func(b *cryptobyte.Builder) { b.AddASN1GeneralizedTime(t.UTC()) })}
}

// NoCheckExtension returns the id-pkix-ocsp-nocheck certificate extension (RFC 6960 §4.2.2.2.1) a delegated
// responder's certificate carries so that clients do not check its own revocation.
func NoCheckExtension() pkix.Extension {
	return pkix.Extension{Id: OIDNoCheck, Value: build(func(b *cryptobyte.Builder) { b.AddASN1NULL() })}
}

// MustStapleExtension returns the TLS Feature certificate extension (RFC 7633) asking for status_request: a
// certificate carrying it promises a stapled OCSP response.
func MustStapleExtension() pkix.Extension {
	return pkix.Extension{Id: oidTLSFeature, Value: build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(5) })
	})}
}

// build returns what f builds; the values built here cannot fail.
func build(f cryptobyte.BuilderContinuation) []byte {
	var b cryptobyte.Builder
	f(&b)
	return b.BytesOrPanic()
}

// addExtensions writes an Extensions SEQUENCE; a Critical extension gets an explicit TRUE.
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

// addOptionalExtensions writes exts in an explicit [tag] when there are any.
func addOptionalExtensions(b *cryptobyte.Builder, tag cbasn1.Tag, exts []pkix.Extension) {
	if len(exts) > 0 {
		b.AddASN1(tag, func(b *cryptobyte.Builder) { addExtensions(b, exts) })
	}
}

// readExtensions reads an optional [tag] EXPLICIT Extensions; the values are slices of the input.
func readExtensions(in *cryptobyte.String, tag cbasn1.Tag) ([]pkix.Extension, bool) {
	var field, seq cryptobyte.String
	var has bool
	if !in.ReadOptionalASN1(&field, &has, tag) {
		return nil, false
	}
	if !has {
		return nil, true
	}
	if !field.ReadASN1(&seq, cbasn1.SEQUENCE) || !field.Empty() {
		return nil, false
	}
	var out []pkix.Extension
	for !seq.Empty() {
		var e cryptobyte.String
		var x pkix.Extension
		if !seq.ReadASN1(&e, cbasn1.SEQUENCE) || !e.ReadASN1ObjectIdentifier(&x.Id) {
			return nil, false
		}
		if e.PeekASN1Tag(cbasn1.BOOLEAN) {
			// DER says 0xff for TRUE; BER encoders write any non-zero byte, and a critical flag is read
			// as critical whatever its spelling.
			var b cryptobyte.String
			if !e.ReadASN1(&b, cbasn1.BOOLEAN) || len(b) != 1 {
				return nil, false
			}
			x.Critical = b[0] != 0
		}
		if !e.ReadASN1Bytes(&x.Value, cbasn1.OCTET_STRING) || !e.Empty() {
			return nil, false
		}
		out = append(out, x)
	}
	return out, true
}

// readTime reads a GeneralizedTime. It accepts fractional seconds and offsets, as encoding/asn1 does: some
// responders write them although DER profiles say not to.
func readTime(in *cryptobyte.String, out *time.Time) bool {
	var b cryptobyte.String
	if !in.ReadASN1(&b, cbasn1.GeneralizedTime) {
		return false
	}
	t, err := time.Parse("20060102150405.999999999Z0700", string(b))
	if err != nil {
		return false
	}
	*out = t.UTC()
	return true
}

// Context-specific tags of the OCSP structures.
var (
	tag0C = cbasn1.Tag(0).Constructed().ContextSpecific()
	tag1C = cbasn1.Tag(1).Constructed().ContextSpecific()
	tag2C = cbasn1.Tag(2).Constructed().ContextSpecific()
	tag3C = cbasn1.Tag(3).Constructed().ContextSpecific()
	tag0P = cbasn1.Tag(0).ContextSpecific()
	tag2P = cbasn1.Tag(2).ContextSpecific()
)
