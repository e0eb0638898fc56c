package ocspwire

import (
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ParseResponse parses a DER OCSPResponse (RFC 6960 §4.2.1). It checks the structure and nothing it says:
// verifying is the caller's business. A responseStatus other than successful comes back as a *StatusError;
// a responseType other than id-pkix-ocsp-basic as an error wrapping ErrUnsupportedType; anything it cannot
// read as an error wrapping ErrMalformed.
func ParseResponse(der []byte) (*BasicResponse, error) {
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
		return nil, &StatusError{Status: ResponseStatus(status)}
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
	if !typ.Equal(OIDBasicResponse) {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedType, typ)
	}
	return parseBasic(basicDER)
}

func parseBasic(der []byte) (*BasicResponse, error) {
	in := cryptobyte.String(der)
	var basic cryptobyte.String
	if !in.ReadASN1(&basic, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, malformed("BasicOCSPResponse is not one SEQUENCE")
	}
	var r BasicResponse
	var tbs, sigAlg cryptobyte.String
	var sig asn1.BitString
	if !basic.ReadASN1Element(&tbs, cbasn1.SEQUENCE) {
		return nil, malformed("no tbsResponseData")
	}
	if !basic.ReadASN1Element(&sigAlg, cbasn1.SEQUENCE) || !basic.ReadASN1BitString(&sig) || sig.BitLength%8 != 0 {
		return nil, malformed("bad signatureAlgorithm or signature")
	}
	r.TBS, r.SignatureAlgorithm, r.Signature = tbs, sigAlg, sig.Bytes
	var certsField, seq cryptobyte.String
	var hasCerts bool
	if !basic.ReadOptionalASN1(&certsField, &hasCerts, tag0C) || !basic.Empty() {
		return nil, malformed("bad certs")
	}
	if hasCerts {
		if !certsField.ReadASN1(&seq, cbasn1.SEQUENCE) || !certsField.Empty() {
			return nil, malformed("bad certs")
		}
		r.Certs = [][]byte{}
		for !seq.Empty() {
			var c cryptobyte.String
			if !seq.ReadASN1Element(&c, cbasn1.SEQUENCE) {
				return nil, malformed("bad certificate in certs")
			}
			r.Certs = append(r.Certs, c)
		}
	}
	var err error
	r.ResponseData, err = parseResponseData(tbs)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func parseResponseData(in cryptobyte.String) (ResponseData, error) {
	var d ResponseData
	var tbs, rid cryptobyte.String
	var ridTag cbasn1.Tag
	if !in.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return d, malformed("bad tbsResponseData")
	}
	if !readVersion(&tbs) {
		return d, malformed("bad or unsupported version")
	}
	if !tbs.ReadAnyASN1(&rid, &ridTag) {
		return d, malformed("no responderID")
	}
	switch ridTag {
	case tag1C:
		var name cryptobyte.String
		if !rid.ReadASN1Element(&name, cbasn1.SEQUENCE) || !rid.Empty() {
			return d, malformed("bad byName responderID")
		}
		d.ResponderID.Name = name
	case tag2C:
		if !rid.ReadASN1Bytes(&d.ResponderID.KeyHash, cbasn1.OCTET_STRING) || !rid.Empty() {
			return d, malformed("bad byKey responderID")
		}
	default:
		return d, malformed("bad responderID")
	}
	if !readTime(&tbs, &d.ProducedAt) {
		return d, malformed("bad producedAt")
	}
	var list cryptobyte.String
	if !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return d, malformed("no responses")
	}
	for !list.Empty() {
		var one cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) {
			return d, malformed("bad SingleResponse")
		}
		s, err := parseSingle(one)
		if err != nil {
			return d, err
		}
		d.Responses = append(d.Responses, s)
	}
	var ok bool
	if d.Extensions, ok = readExtensions(&tbs, tag1C); !ok {
		return d, malformed("bad responseExtensions")
	}
	if !tbs.Empty() {
		return d, malformed("trailing data in tbsResponseData")
	}
	return d, nil
}

func parseSingle(in cryptobyte.String) (SingleResponse, error) {
	s := SingleResponse{Reason: ReasonNone}
	var ok bool
	if s.CertID, ok = readCertID(&in); !ok {
		return s, malformed("bad CertID")
	}
	var st cryptobyte.String
	var tag cbasn1.Tag
	if !in.ReadAnyASN1(&st, &tag) {
		return s, malformed("no certStatus")
	}
	switch tag {
	case tag0P:
		s.Status = Good
	case tag1C:
		s.Status = Revoked
		if !readTime(&st, &s.RevokedAt) {
			return s, malformed("bad revocationTime")
		}
		var reason cryptobyte.String
		var hasReason bool
		if !st.ReadOptionalASN1(&reason, &hasReason, tag0C) {
			return s, malformed("bad revocationReason")
		}
		if hasReason {
			var v int
			if !reason.ReadASN1Enum(&v) || !reason.Empty() || v < 0 || v > int(ReasonAACompromise) {
				return s, malformed("bad revocationReason")
			}
			s.Reason = Reason(v)
		}
	case tag2P:
		s.Status = Unknown
	default:
		return s, malformed("bad certStatus")
	}
	if !st.Empty() {
		return s, malformed("bad certStatus")
	}
	if !readTime(&in, &s.ThisUpdate) {
		return s, malformed("bad thisUpdate")
	}
	var next cryptobyte.String
	var hasNext bool
	if !in.ReadOptionalASN1(&next, &hasNext, tag0C) || hasNext && (!readTime(&next, &s.NextUpdate) || !next.Empty()) {
		return s, malformed("bad nextUpdate")
	}
	if s.Extensions, ok = readExtensions(&in, tag1C); !ok {
		return s, malformed("bad singleExtensions")
	}
	if !in.Empty() {
		return s, malformed("trailing data in SingleResponse")
	}
	return s, nil
}
