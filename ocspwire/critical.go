package ocspwire

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"slices"
)

// Extensions staple understands, and so accepts even when marked critical (RFC 6960 §4.4). Extended
// revoke is understood among the single extensions too, where some responders misplace it.
var (
	understoodResponseExtensions = []asn1.ObjectIdentifier{OIDNonce, OIDExtendedRevoke}
	understoodSingleExtensions   = []asn1.ObjectIdentifier{OIDReasonCode, OIDHoldInstructionCode, OIDInvalidityDate,
		OIDCRLReferences, OIDArchiveCutoff, OIDMicrosoftNextCRL, OIDExtendedRevoke, OIDSCTList}
)

// UnknownCritical returns the first responseExtension of d marked critical that staple does not understand,
// and false when there is none: a response carrying one must be rejected.
func (d *ResponseData) UnknownCritical() (pkix.Extension, bool) {
	return unknownCritical(d.Extensions, understoodResponseExtensions)
}

// UnknownCritical returns the first singleExtension of s marked critical that staple does not understand,
// and false when there is none.
func (s *SingleResponse) UnknownCritical() (pkix.Extension, bool) {
	return unknownCritical(s.Extensions, understoodSingleExtensions)
}

func unknownCritical(exts []pkix.Extension, understood []asn1.ObjectIdentifier) (pkix.Extension, bool) {
	for _, e := range exts {
		if e.Critical && !slices.ContainsFunc(understood, e.Id.Equal) {
			return e, true
		}
	}
	return pkix.Extension{}, false
}
