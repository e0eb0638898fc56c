package responder

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrMalformedRequest is returned by ParseRequest for bytes that are not an OCSPRequest staple can answer.
// The responder answers it with the malformedRequest status.
var ErrMalformedRequest = errors.New("responder: malformed OCSP request")

// Limits on what one request may carry. RFC 9654 caps the nonce at 128 octets; a request for more than
// MaxCertsPerRequest certificates is refused as malformed rather than signed.
const (
	MaxCertsPerRequest = 64
	MaxNonceLen        = 128
)

// OIDNonce is id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
var OIDNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

// Hash algorithm OIDs a CertID may name (RFC 6960 uses SHA-1; RFC 9919 adds SHA-256).
var (
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

// HashOID returns the AlgorithmIdentifier OID of h for a CertID, or nil when h is not one a CertID uses.
func HashOID(h crypto.Hash) asn1.ObjectIdentifier {
	switch h {
	case crypto.SHA1:
		return oidSHA1
	case crypto.SHA256:
		return oidSHA256
	case crypto.SHA384:
		return oidSHA384
	case crypto.SHA512:
		return oidSHA512
	}
	return nil
}

func hashFromOID(oid asn1.ObjectIdentifier) crypto.Hash {
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		if oid.Equal(HashOID(h)) {
			return h
		}
	}
	return 0
}

// CertID identifies one certificate in a request (RFC 6960 §4.1.1). A response must echo it.
type CertID struct {
	// HashAlgorithm is the OID the request named; Hash is the matching crypto.Hash, zero when staple does not
	// know the algorithm (such a CertID matches no issuer).
	HashAlgorithm asn1.ObjectIdentifier
	Hash          crypto.Hash
	// NameHash and KeyHash are the hashes of the issuer's DER subject and of its subjectPublicKey bits.
	NameHash, KeyHash []byte
	Serial            *big.Int
}

// SerialKey returns the serial in the form of OpenSSL's index.txt: upper-case hex with an even number of
// digits ("1000", "0ABC", "00"), a leading "-" for a negative serial.
func (id CertID) SerialKey() string { return SerialKey(id.Serial) }

// SerialKey returns serial in the form of OpenSSL's index.txt: upper-case hex with an even number of digits.
func SerialKey(serial *big.Int) string {
	if serial == nil {
		return ""
	}
	var buf [64]byte
	b := serial.Bytes() // the magnitude
	if len(b) > len(buf) {
		b = b[len(b)-len(buf):] // beyond any real serial; keep the low bytes rather than allocate
	}
	if len(b) == 0 {
		b = []byte{0}
	}
	out := make([]byte, 0, 2*len(b)+1)
	if serial.Sign() < 0 {
		out = append(out, '-')
	}
	const digits = "0123456789ABCDEF"
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&0x0f])
	}
	return string(out)
}

// Request is a parsed OCSPRequest (RFC 6960 §4.1.1), with every certificate it asks about and its nonce.
type Request struct {
	// CertIDs lists the certificates asked about, in request order; at least one.
	CertIDs []CertID
	// Nonce is the extnValue of the nonce extension exactly as sent (for RFC-conforming clients the DER of an
	// OCTET STRING), to be echoed verbatim; nil when the request has no nonce.
	Nonce []byte
	// Signed reports that the request carried an optionalSignature. RFC 5019 lets responders ignore it, and
	// staple does.
	Signed bool

	// Fault, when not zero, asks the Source to answer wrongly on purpose (lab fault injection): only the kinds
	// for which Fault.Kind.Signed() is true reach a Source. A Source that cannot misbehave that way returns
	// ErrUnsupportedFault.
	Fault Fault
}

// HasNonce reports whether the request carried a nonce extension.
func (r *Request) HasNonce() bool { return r.Nonce != nil }

// ParseRequest parses a DER OCSPRequest. Unlike golang.org/x/crypto/ocsp.ParseRequest it keeps every
// certificate of the request and the nonce. An unknown critical extension in requestExtensions or
// singleRequestExtensions is refused; unknown non-critical ones are ignored. Any error wraps
// ErrMalformedRequest.
func ParseRequest(der []byte) (*Request, error) {
	input := cryptobyte.String(der)
	var ocspReq, tbs cryptobyte.String
	if !input.ReadASN1(&ocspReq, cbasn1.SEQUENCE) || !input.Empty() {
		return nil, fmt.Errorf("%w: not a DER SEQUENCE", ErrMalformedRequest)
	}
	if !ocspReq.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("%w: no tbsRequest", ErrMalformedRequest)
	}
	req := &Request{}
	if ocspReq.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var sig cryptobyte.String
		if !ocspReq.ReadASN1(&sig, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return nil, fmt.Errorf("%w: bad optionalSignature", ErrMalformedRequest)
		}
		req.Signed = true
	}
	if !ocspReq.Empty() {
		return nil, fmt.Errorf("%w: trailing data in OCSPRequest", ErrMalformedRequest)
	}
	if err := parseTBSRequest(tbs, req); err != nil {
		return nil, err
	}
	return req, nil
}

func parseTBSRequest(tbs cryptobyte.String, req *Request) error {
	var version cryptobyte.String
	var hasVersion bool
	if !tbs.ReadOptionalASN1(&version, &hasVersion, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return fmt.Errorf("%w: bad version", ErrMalformedRequest)
	}
	if hasVersion {
		var v int64
		if !version.ReadASN1Int64WithTag(&v, cbasn1.INTEGER) || !version.Empty() || v != 0 {
			return fmt.Errorf("%w: unsupported version", ErrMalformedRequest)
		}
	}
	var requestorName cryptobyte.String
	if !tbs.ReadOptionalASN1(&requestorName, nil, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return fmt.Errorf("%w: bad requestorName", ErrMalformedRequest)
	}
	var list cryptobyte.String
	if !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return fmt.Errorf("%w: no requestList", ErrMalformedRequest)
	}
	for !list.Empty() {
		if len(req.CertIDs) == MaxCertsPerRequest {
			return fmt.Errorf("%w: more than %d certificates", ErrMalformedRequest, MaxCertsPerRequest)
		}
		var one cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) {
			return fmt.Errorf("%w: bad Request", ErrMalformedRequest)
		}
		id, err := parseSingleRequest(one)
		if err != nil {
			return err
		}
		req.CertIDs = append(req.CertIDs, id)
	}
	if len(req.CertIDs) == 0 {
		return fmt.Errorf("%w: empty requestList", ErrMalformedRequest)
	}
	var exts cryptobyte.String
	var hasExts bool
	if !tbs.ReadOptionalASN1(&exts, &hasExts, cbasn1.Tag(2).Constructed().ContextSpecific()) {
		return fmt.Errorf("%w: bad requestExtensions", ErrMalformedRequest)
	}
	if hasExts {
		if err := parseRequestExtensions(exts, req); err != nil {
			return err
		}
	}
	if !tbs.Empty() {
		return fmt.Errorf("%w: trailing data in tbsRequest", ErrMalformedRequest)
	}
	return nil
}

func parseSingleRequest(one cryptobyte.String) (CertID, error) {
	var certID cryptobyte.String
	if !one.ReadASN1(&certID, cbasn1.SEQUENCE) {
		return CertID{}, fmt.Errorf("%w: bad CertID", ErrMalformedRequest)
	}
	id, err := parseCertID(certID)
	if err != nil {
		return CertID{}, err
	}
	var exts cryptobyte.String
	var hasExts bool
	if !one.ReadOptionalASN1(&exts, &hasExts, cbasn1.Tag(0).Constructed().ContextSpecific()) || !one.Empty() {
		return CertID{}, fmt.Errorf("%w: bad singleRequestExtensions", ErrMalformedRequest)
	}
	if hasExts {
		err := readExtensions(exts, func(oid asn1.ObjectIdentifier, critical bool, _ []byte) error {
			if critical {
				return fmt.Errorf("%w: unsupported critical singleRequestExtension %v", ErrMalformedRequest, oid)
			}
			return nil
		})
		if err != nil {
			return CertID{}, err
		}
	}
	return id, nil
}

func parseCertID(s cryptobyte.String) (CertID, error) {
	var alg cryptobyte.String
	var id CertID
	var nameHash, keyHash cryptobyte.String
	id.Serial = new(big.Int)
	if !s.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&id.HashAlgorithm) ||
		!s.ReadASN1(&nameHash, cbasn1.OCTET_STRING) ||
		!s.ReadASN1(&keyHash, cbasn1.OCTET_STRING) ||
		!s.ReadASN1Integer(id.Serial) ||
		!s.Empty() {
		return CertID{}, fmt.Errorf("%w: bad CertID", ErrMalformedRequest)
	}
	// The parameters are NULL or absent for every hash OCSP uses; anything else is not a CertID we made.
	if !alg.Empty() {
		var null cryptobyte.String
		if !alg.ReadASN1(&null, cbasn1.NULL) || !null.Empty() || !alg.Empty() {
			return CertID{}, fmt.Errorf("%w: bad CertID hash parameters", ErrMalformedRequest)
		}
	}
	if len(nameHash) == 0 || len(nameHash) > 64 || len(keyHash) == 0 || len(keyHash) > 64 {
		return CertID{}, fmt.Errorf("%w: CertID hash of %d/%d bytes", ErrMalformedRequest, len(nameHash), len(keyHash))
	}
	id.Hash = hashFromOID(id.HashAlgorithm)
	if id.Hash != 0 && (len(nameHash) != id.Hash.Size() || len(keyHash) != id.Hash.Size()) {
		return CertID{}, fmt.Errorf("%w: CertID hashes do not fit %v", ErrMalformedRequest, id.Hash)
	}
	id.NameHash = bytes.Clone(nameHash)
	id.KeyHash = bytes.Clone(keyHash)
	return id, nil
}

func parseRequestExtensions(exts cryptobyte.String, req *Request) error {
	return readExtensions(exts, func(oid asn1.ObjectIdentifier, critical bool, value []byte) error {
		switch {
		case oid.Equal(OIDNonce):
			if req.Nonce != nil {
				return fmt.Errorf("%w: two nonce extensions", ErrMalformedRequest)
			}
			// RFC 9654: 1 to 128 octets inside the OCTET STRING; allow its two-byte header around them.
			if len(value) == 0 || len(value) > MaxNonceLen+3 {
				return fmt.Errorf("%w: nonce of %d bytes", ErrMalformedRequest, len(value))
			}
			req.Nonce = bytes.Clone(value)
		case critical:
			return fmt.Errorf("%w: unsupported critical requestExtension %v", ErrMalformedRequest, oid)
		}
		return nil
	})
}

// readExtensions walks an Extensions SEQUENCE, calling f for each extension.
func readExtensions(exts cryptobyte.String, f func(oid asn1.ObjectIdentifier, critical bool, value []byte) error) error {
	var seq cryptobyte.String
	if !exts.ReadASN1(&seq, cbasn1.SEQUENCE) || !exts.Empty() {
		return fmt.Errorf("%w: bad Extensions", ErrMalformedRequest)
	}
	for !seq.Empty() {
		var ext, value cryptobyte.String
		var oid asn1.ObjectIdentifier
		critical := false
		if !seq.ReadASN1(&ext, cbasn1.SEQUENCE) ||
			!ext.ReadASN1ObjectIdentifier(&oid) ||
			!ext.ReadOptionalASN1Boolean(&critical, cbasn1.BOOLEAN, false) ||
			!ext.ReadASN1(&value, cbasn1.OCTET_STRING) ||
			!ext.Empty() {
			return fmt.Errorf("%w: bad Extension", ErrMalformedRequest)
		}
		if err := f(oid, critical, value); err != nil {
			return err
		}
	}
	return nil
}
