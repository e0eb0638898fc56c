package ocspwire

import (
	"bytes"
	"crypto/x509/pkix"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Limits on what one request may carry. RFC 9654 caps the nonce at 128 octets; a request for more than
// MaxCertsPerRequest certificates is refused as malformed rather than answered.
const (
	MaxCertsPerRequest = 64
	MaxNonceLen        = 128
)

// Request is an OCSPRequest (RFC 6960 §4.1.1): the certificates asked about and the nonce. The zero value
// asks about nothing.
type Request struct {
	// CertIDs lists the certificates asked about, in request order; a parsed request has at least one.
	CertIDs []CertID
	// Nonce is the extnValue of the nonce extension exactly as sent (for RFC-conforming clients the DER of an
	// OCTET STRING: see UnwrapNonce), to be echoed verbatim; nil when the request has no nonce.
	Nonce []byte
	// Signed reports that the request carried an optionalSignature. RFC 5019 lets responders ignore it, and
	// staple does; the encoder never writes one.
	Signed bool
}

// HasNonce reports whether the request carried a nonce extension.
func (r *Request) HasNonce() bool { return r.Nonce != nil }

// ParseRequest parses a DER OCSPRequest. Unlike golang.org/x/crypto/ocsp.ParseRequest it keeps every
// certificate of the request and the nonce, and it copies what it keeps out of der. It refuses more than
// MaxCertsPerRequest certificates, a nonce over MaxNonceLen octets, CertID hashes of the wrong length, and an
// unknown critical extension in requestExtensions or singleRequestExtensions; unknown non-critical ones are
// ignored. Any error wraps ErrMalformedRequest.
func ParseRequest(der []byte) (*Request, error) {
	input := cryptobyte.String(der)
	var ocspReq, tbs cryptobyte.String
	if !input.ReadASN1(&ocspReq, cbasn1.SEQUENCE) || !input.Empty() {
		return nil, malformedRequest("not a DER SEQUENCE")
	}
	if !ocspReq.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, malformedRequest("no tbsRequest")
	}
	req := &Request{}
	if ocspReq.PeekASN1Tag(tag0C) {
		if !ocspReq.SkipASN1(tag0C) {
			return nil, malformedRequest("bad optionalSignature")
		}
		req.Signed = true
	}
	if !ocspReq.Empty() {
		return nil, malformedRequest("trailing data in OCSPRequest")
	}
	if err := parseTBSRequest(tbs, req); err != nil {
		return nil, err
	}
	return req, nil
}

func parseTBSRequest(tbs cryptobyte.String, req *Request) error {
	if !readVersion(&tbs) {
		return malformedRequest("bad or unsupported version")
	}
	if !tbs.SkipOptionalASN1(tag1C) {
		return malformedRequest("bad requestorName")
	}
	var list cryptobyte.String
	if !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return malformedRequest("no requestList")
	}
	for !list.Empty() {
		if len(req.CertIDs) == MaxCertsPerRequest {
			return malformedRequest("more than %d certificates", MaxCertsPerRequest)
		}
		var one cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) {
			return malformedRequest("bad Request")
		}
		id, err := parseSingleRequest(one)
		if err != nil {
			return err
		}
		req.CertIDs = append(req.CertIDs, id)
	}
	if len(req.CertIDs) == 0 {
		return malformedRequest("empty requestList")
	}
	exts, ok := readExtensions(&tbs, tag2C)
	if !ok || !tbs.Empty() {
		return malformedRequest("bad requestExtensions or trailing data in tbsRequest")
	}
	for _, e := range exts {
		switch {
		case e.Id.Equal(OIDNonce):
			if req.Nonce != nil {
				return malformedRequest("two nonce extensions")
			}
			// RFC 9654: 1 to 128 octets inside the OCTET STRING; allow its header around them.
			if len(e.Value) == 0 || len(e.Value) > MaxNonceLen+3 {
				return malformedRequest("nonce of %d bytes", len(e.Value))
			}
			req.Nonce = bytes.Clone(e.Value)
		case e.Critical:
			return malformedRequest("unsupported critical requestExtension %v", e.Id)
		}
	}
	return nil
}

// readVersion reads an optional [0] EXPLICIT version, which must be v1 (0).
func readVersion(in *cryptobyte.String) bool {
	var version cryptobyte.String
	var has bool
	if !in.ReadOptionalASN1(&version, &has, tag0C) {
		return false
	}
	var v int64
	return !has || version.ReadASN1Integer(&v) && version.Empty() && v == 0
}

func parseSingleRequest(one cryptobyte.String) (CertID, error) {
	id, ok := readCertID(&one)
	if !ok {
		return CertID{}, malformedRequest("bad CertID")
	}
	if n, k := len(id.IssuerNameHash), len(id.IssuerKeyHash); n == 0 || n > 64 || k == 0 || k > 64 ||
		id.Hash != 0 && (n != id.Hash.Size() || k != id.Hash.Size()) {
		return CertID{}, malformedRequest("CertID hashes of %d/%d bytes under %v", n, k, id.HashAlgorithm)
	}
	exts, ok := readExtensions(&one, tag0C)
	if !ok || !one.Empty() {
		return CertID{}, malformedRequest("bad singleRequestExtensions")
	}
	for _, e := range exts {
		if e.Critical {
			return CertID{}, malformedRequest("unsupported critical singleRequestExtension %v", e.Id)
		}
	}
	id.IssuerNameHash = bytes.Clone(id.IssuerNameHash)
	id.IssuerKeyHash = bytes.Clone(id.IssuerKeyHash)
	return id, nil
}

// EncodeRequest returns the DER OCSPRequest for ids (RFC 6960 §4.1.1, RFC 5019 §2.1.1): no requestorName,
// no signature, and the nonce extension, its value wrapped in an OCTET STRING (RFC 9654), only when nonce is
// non-nil. An id whose hash has no OID is an error wrapping ErrUnsupportedHash.
func EncodeRequest(ids []CertID, nonce []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // OCSPRequest
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // TBSRequest
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // requestList
				for _, id := range ids {
					b.AddASN1(cbasn1.SEQUENCE, id.add) // Request
				}
			})
			if nonce != nil {
				addOptionalExtensions(b, tag2C, []pkix.Extension{NonceExtension(nonce)})
			}
		})
	})
	return b.Bytes()
}
