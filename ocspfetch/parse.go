package ocspfetch

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers of RFC 6960 and of the CertID hash algorithms.
var (
	oidBasicResponse  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidNonce          = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidExtendedRevoke = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 9}

	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

func hashFromOID(oid asn1.ObjectIdentifier) crypto.Hash {
	switch {
	case oid.Equal(oidSHA1):
		return crypto.SHA1
	case oid.Equal(oidSHA256):
		return crypto.SHA256
	case oid.Equal(oidSHA384):
		return crypto.SHA384
	case oid.Equal(oidSHA512):
		return crypto.SHA512
	}
	return 0
}

func oidFromHash(h crypto.Hash) (asn1.ObjectIdentifier, bool) {
	switch h {
	case crypto.SHA1:
		return oidSHA1, true
	case crypto.SHA256:
		return oidSHA256, true
	case crypto.SHA384:
		return oidSHA384, true
	case crypto.SHA512:
		return oidSHA512, true
	}
	return nil, false
}

// Context-specific tags of the OCSP structures.
var (
	tag0C = cbasn1.Tag(0).Constructed().ContextSpecific()
	tag1C = cbasn1.Tag(1).Constructed().ContextSpecific()
	tag2C = cbasn1.Tag(2).Constructed().ContextSpecific()
	tag0P = cbasn1.Tag(0).ContextSpecific()
	tag2P = cbasn1.Tag(2).ContextSpecific()
)

// basicResponse is a parsed BasicOCSPResponse: the fields verification needs, as slices of the input.
type basicResponse struct {
	tbs          []byte // the whole DER of tbsResponseData: what is signed
	responderKey []byte // byKey ResponderID (SHA-1 of the responder's key), nil for byName
	responderDN  []byte // byName ResponderID (DER Name), nil for byKey
	producedAt   time.Time
	responses    []singleResponse
	extensions   []extension
	sigAlg       []byte // the whole AlgorithmIdentifier
	signature    []byte
	certs        [][]byte // DER certificates
}

type singleResponse struct {
	hashOID    asn1.ObjectIdentifier
	nameHash   []byte
	keyHash    []byte
	serial     *big.Int
	status     Status
	revokedAt  time.Time
	reason     int
	hasReason  bool
	thisUpdate time.Time
	nextUpdate time.Time
	extensions []extension
}

type extension struct {
	id       asn1.ObjectIdentifier
	critical bool
	value    []byte
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// parseResponse parses a DER OCSPResponse (RFC 6960 §4.2.1). A responseStatus other than successful comes
// back as a *ResponderStatusError; a structure it cannot read as ErrMalformed; a responseType other than
// id-pkix-ocsp-basic as ErrUnsupportedType.
func parseResponse(der []byte) (*basicResponse, error) {
	in := cryptobyte.String(der)
	var resp cryptobyte.String
	if !in.ReadASN1(&resp, cbasn1.SEQUENCE) {
		return nil, malformed("not a DER SEQUENCE")
	}
	if !in.Empty() {
		return nil, malformed("trailing data after the response")
	}
	var status int
	if !resp.ReadASN1Enum(&status) {
		return nil, malformed("no responseStatus")
	}
	if status != 0 {
		if status < 0 || status > 255 {
			return nil, malformed("responseStatus %d", status)
		}
		return nil, &ResponderStatusError{Status: status}
	}
	var bytesField, rb cryptobyte.String
	if !resp.ReadASN1(&bytesField, tag0C) || !resp.Empty() {
		return nil, malformed("successful response without responseBytes")
	}
	var typ asn1.ObjectIdentifier
	var basicDER []byte
	if !bytesField.ReadASN1(&rb, cbasn1.SEQUENCE) || !bytesField.Empty() || !rb.ReadASN1ObjectIdentifier(&typ) ||
		!rb.ReadASN1Bytes(&basicDER, cbasn1.OCTET_STRING) || !rb.Empty() {
		return nil, malformed("bad responseBytes")
	}
	if !typ.Equal(oidBasicResponse) {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedType, typ)
	}
	return parseBasic(basicDER)
}

func parseBasic(der []byte) (*basicResponse, error) {
	in := cryptobyte.String(der)
	var basic cryptobyte.String
	if !in.ReadASN1(&basic, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, malformed("BasicOCSPResponse is not one SEQUENCE")
	}
	var r basicResponse
	var tbsFull, tbs cryptobyte.String
	if !basic.ReadASN1Element(&tbsFull, cbasn1.SEQUENCE) {
		return nil, malformed("no tbsResponseData")
	}
	r.tbs = tbsFull
	var sigAlg cryptobyte.String
	var sig asn1.BitString
	if !basic.ReadASN1Element(&sigAlg, cbasn1.SEQUENCE) || !basic.ReadASN1BitString(&sig) || sig.BitLength%8 != 0 {
		return nil, malformed("bad signatureAlgorithm or signature")
	}
	r.sigAlg, r.signature = sigAlg, sig.Bytes
	var certsField cryptobyte.String
	var hasCerts bool
	if !basic.ReadOptionalASN1(&certsField, &hasCerts, tag0C) || !basic.Empty() {
		return nil, malformed("bad certs")
	}
	if hasCerts {
		var seq cryptobyte.String
		if !certsField.ReadASN1(&seq, cbasn1.SEQUENCE) || !certsField.Empty() {
			return nil, malformed("bad certs")
		}
		for !seq.Empty() {
			var c cryptobyte.String
			if !seq.ReadASN1Element(&c, cbasn1.SEQUENCE) {
				return nil, malformed("bad certificate in certs")
			}
			r.certs = append(r.certs, c)
		}
	}

	tbsIn := tbsFull
	if !tbsIn.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, malformed("bad tbsResponseData")
	}
	var version cryptobyte.String
	var hasVersion bool
	if !tbs.ReadOptionalASN1(&version, &hasVersion, tag0C) {
		return nil, malformed("bad version")
	}
	if hasVersion {
		var v int64
		if !version.ReadASN1Integer(&v) || !version.Empty() || v != 0 {
			return nil, malformed("unsupported version")
		}
	}
	var rid cryptobyte.String
	var ridTag cbasn1.Tag
	if !tbs.ReadAnyASN1(&rid, &ridTag) {
		return nil, malformed("no responderID")
	}
	switch ridTag {
	case tag1C:
		var name cryptobyte.String
		if !rid.ReadASN1Element(&name, cbasn1.SEQUENCE) || !rid.Empty() {
			return nil, malformed("bad byName responderID")
		}
		r.responderDN = name
	case tag2C:
		var kh []byte
		if !rid.ReadASN1Bytes(&kh, cbasn1.OCTET_STRING) || !rid.Empty() {
			return nil, malformed("bad byKey responderID")
		}
		r.responderKey = kh
	default:
		return nil, malformed("bad responderID")
	}
	if !readTime(&tbs, &r.producedAt) {
		return nil, malformed("bad producedAt")
	}
	var list cryptobyte.String
	if !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil, malformed("no responses")
	}
	for !list.Empty() {
		var one cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) {
			return nil, malformed("bad SingleResponse")
		}
		s, err := parseSingle(one)
		if err != nil {
			return nil, err
		}
		r.responses = append(r.responses, s)
	}
	var err error
	if r.extensions, err = readExtensions(&tbs, tag1C); err != nil {
		return nil, err
	}
	if !tbs.Empty() {
		return nil, malformed("trailing data in tbsResponseData")
	}
	return &r, nil
}

func parseSingle(in cryptobyte.String) (singleResponse, error) {
	var s singleResponse
	var certID, alg cryptobyte.String
	s.serial = new(big.Int)
	if !in.ReadASN1(&certID, cbasn1.SEQUENCE) || !certID.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&s.hashOID) ||
		!certID.ReadASN1Bytes(&s.nameHash, cbasn1.OCTET_STRING) ||
		!certID.ReadASN1Bytes(&s.keyHash, cbasn1.OCTET_STRING) ||
		!certID.ReadASN1Integer(s.serial) || !certID.Empty() {
		return s, malformed("bad CertID")
	}
	// The hash AlgorithmIdentifier's parameters are absent or NULL; both are seen.
	if !alg.Empty() {
		var null cryptobyte.String
		if !alg.ReadASN1(&null, cbasn1.NULL) || !null.Empty() || !alg.Empty() {
			return s, malformed("bad CertID hash parameters")
		}
	}
	var st cryptobyte.String
	var tag cbasn1.Tag
	if !in.ReadAnyASN1(&st, &tag) {
		return s, malformed("no certStatus")
	}
	switch tag {
	case tag0P:
		s.status = Good
	case tag1C:
		s.status = Revoked
		if !readTime(&st, &s.revokedAt) {
			return s, malformed("bad revocationTime")
		}
		var reason cryptobyte.String
		if !st.ReadOptionalASN1(&reason, &s.hasReason, tag0C) {
			return s, malformed("bad revocationReason")
		}
		if s.hasReason {
			var v int
			if !reason.ReadASN1Enum(&v) || !reason.Empty() || v < 0 || v > 10 {
				return s, malformed("bad revocationReason")
			}
			s.reason = v
		}
	case tag2P:
		s.status = Unknown
	default:
		return s, malformed("bad certStatus")
	}
	if tag != tag1C && !st.Empty() {
		return s, malformed("bad certStatus")
	}
	if !st.Empty() {
		return s, malformed("trailing data in RevokedInfo")
	}
	if !readTime(&in, &s.thisUpdate) {
		return s, malformed("bad thisUpdate")
	}
	var next cryptobyte.String
	var hasNext bool
	if !in.ReadOptionalASN1(&next, &hasNext, tag0C) {
		return s, malformed("bad nextUpdate")
	}
	if hasNext && (!readTime(&next, &s.nextUpdate) || !next.Empty()) {
		return s, malformed("bad nextUpdate")
	}
	var err error
	if s.extensions, err = readExtensions(&in, tag1C); err != nil {
		return s, err
	}
	if !in.Empty() {
		return s, malformed("trailing data in SingleResponse")
	}
	return s, nil
}

// readExtensions reads an optional [tag] EXPLICIT Extensions.
func readExtensions(in *cryptobyte.String, tag cbasn1.Tag) ([]extension, error) {
	var field cryptobyte.String
	var has bool
	if !in.ReadOptionalASN1(&field, &has, tag) {
		return nil, malformed("bad extensions")
	}
	if !has {
		return nil, nil
	}
	var seq cryptobyte.String
	if !field.ReadASN1(&seq, cbasn1.SEQUENCE) || !field.Empty() {
		return nil, malformed("bad extensions")
	}
	var out []extension
	for !seq.Empty() {
		var e cryptobyte.String
		var x extension
		if !seq.ReadASN1(&e, cbasn1.SEQUENCE) || !e.ReadASN1ObjectIdentifier(&x.id) {
			return nil, malformed("bad extension")
		}
		if e.PeekASN1Tag(cbasn1.BOOLEAN) {
			// DER says 0xff for TRUE; BER encoders write any non-zero byte, and a critical flag is read
			// as critical whatever its spelling.
			var b cryptobyte.String
			if !e.ReadASN1(&b, cbasn1.BOOLEAN) || len(b) != 1 {
				return nil, malformed("bad extension critical flag")
			}
			x.critical = b[0] != 0
		}
		if !e.ReadASN1Bytes(&x.value, cbasn1.OCTET_STRING) || !e.Empty() {
			return nil, malformed("bad extension")
		}
		out = append(out, x)
	}
	return out, nil
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

// parseCertificates parses DER certificates, skipping none: one that does not parse makes the response
// malformed.
func parseCertificates(ders [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(ders))
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate in certs: %v", ErrMalformed, err)
		}
		out = append(out, c)
	}
	return out, nil
}
