package testpki

import (
	"bytes"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Request is a parsed OCSPRequest: what the fake responder answers.
type Request struct {
	CertIDs []CertID
	// Nonce is the value of the id-pkix-ocsp-nonce requestExtension (inside its OCTET STRING), nil when
	// absent.
	Nonce []byte
}

var errBadRequest = errors.New("testpki: malformed OCSP request")

// Equal reports whether id and o name the same certificate: same hash, issuer hashes and serial.
func (id CertID) Equal(o CertID) bool {
	return id.Hash == o.Hash && bytes.Equal(id.IssuerNameHash, o.IssuerNameHash) &&
		bytes.Equal(id.IssuerKeyHash, o.IssuerKeyHash) && id.Serial != nil && o.Serial != nil &&
		id.Serial.Cmp(o.Serial) == 0
}

// ParseRequest parses a DER OCSPRequest (RFC 6960 §4.1.1); a signature, if any, is ignored.
func ParseRequest(der []byte) (*Request, error) {
	in := cryptobyte.String(der)
	var req, tbs cryptobyte.String
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !in.Empty() || !req.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, errBadRequest
	}
	var list cryptobyte.String
	if !tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) ||
		!tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil, errBadRequest
	}
	out := &Request{}
	for !list.Empty() {
		var one, certID cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) || !one.ReadASN1(&certID, cbasn1.SEQUENCE) {
			return nil, errBadRequest
		}
		id, err := parseCertID(certID)
		if err != nil {
			return nil, err
		}
		out.CertIDs = append(out.CertIDs, id)
	}
	var exts cryptobyte.String
	var has bool
	if !tbs.ReadOptionalASN1(&exts, &has, cbasn1.Tag(2).Constructed().ContextSpecific()) {
		return nil, errBadRequest
	}
	if has {
		var seq cryptobyte.String
		if !exts.ReadASN1(&seq, cbasn1.SEQUENCE) {
			return nil, errBadRequest
		}
		for !seq.Empty() {
			var ext cryptobyte.String
			var oid asn1.ObjectIdentifier
			var value []byte
			if !seq.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&oid) ||
				!ext.SkipOptionalASN1(cbasn1.BOOLEAN) || !ext.ReadASN1Bytes(&value, cbasn1.OCTET_STRING) {
				return nil, errBadRequest
			}
			if oid.Equal(OIDNonce) {
				inner := cryptobyte.String(value)
				var nonce []byte
				if !inner.ReadASN1Bytes(&nonce, cbasn1.OCTET_STRING) || !inner.Empty() {
					return nil, errBadRequest
				}
				out.Nonce = nonce
			}
		}
	}
	if len(out.CertIDs) == 0 {
		return nil, errBadRequest
	}
	return out, nil
}

func parseCertID(s cryptobyte.String) (CertID, error) {
	var alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	var id CertID
	id.Serial = new(big.Int)
	if !s.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) ||
		!s.ReadASN1Bytes(&id.IssuerNameHash, cbasn1.OCTET_STRING) ||
		!s.ReadASN1Bytes(&id.IssuerKeyHash, cbasn1.OCTET_STRING) ||
		!s.ReadASN1Integer(id.Serial) {
		return CertID{}, errBadRequest
	}
	id.NoNullParams = alg.Empty()
	for h, o := range map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA1: oidSHA1, crypto.SHA256: oidSHA256,
		crypto.SHA384: oidSHA384, crypto.SHA512: oidSHA512} {
		if oid.Equal(o) {
			id.Hash = h
		}
	}
	if id.Hash == 0 {
		return CertID{}, errBadRequest
	}
	return id, nil
}

// EncodeRequest returns a DER OCSPRequest for ids with an optional nonce (nil: none).
func EncodeRequest(ids []CertID, nonce []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, id := range ids {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { id.add(b) })
				}
			})
			if nonce != nil {
				b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					addExtensions(b, []pkix.Extension{NonceExtension(nonce)})
				})
			}
		})
	})
	return b.Bytes()
}
