package ocspwire

import (
	"fmt"
	"strings"
)

// Reason is a CRLReason code (RFC 5280 §5.3.1), as a revoked SingleResponse and OpenSSL's index.txt carry
// it. The zero value is ReasonUnspecified; ReasonNone stands for no reason at all.
type Reason int

// The reason codes. ReasonNone is a revocation without a reason: a SingleResponse then carries no
// revocationReason (as openssl ocsp answers for an index.txt row with a date only). 7 is not used.
const (
	ReasonNone                 Reason = -1
	ReasonUnspecified          Reason = 0
	ReasonKeyCompromise        Reason = 1
	ReasonCACompromise         Reason = 2
	ReasonAffiliationChanged   Reason = 3
	ReasonSuperseded           Reason = 4
	ReasonCessationOfOperation Reason = 5
	ReasonCertificateHold      Reason = 6
	ReasonRemoveFromCRL        Reason = 8
	ReasonPrivilegeWithdrawn   Reason = 9
	ReasonAACompromise         Reason = 10
)

// reasonNames are each code's two spellings in OpenSSL: ca is what `openssl ca` writes in index.txt and takes
// in -crl_reason (apps/ca.c crl_reasons), empty for the codes it cannot record; text is what `openssl ocsp
// -resp_text` prints (RFC 5280's ASN.1 names). They differ only for cACompromise.
var reasonNames = [...]struct{ ca, text string }{
	ReasonUnspecified:          {"unspecified", "unspecified"},
	ReasonKeyCompromise:        {"keyCompromise", "keyCompromise"},
	ReasonCACompromise:         {"CACompromise", "cACompromise"},
	ReasonAffiliationChanged:   {"affiliationChanged", "affiliationChanged"},
	ReasonSuperseded:           {"superseded", "superseded"},
	ReasonCessationOfOperation: {"cessationOfOperation", "cessationOfOperation"},
	ReasonCertificateHold:      {"certificateHold", "certificateHold"},
	ReasonRemoveFromCRL:        {"removeFromCRL", "removeFromCRL"},
	ReasonPrivilegeWithdrawn:   {"", "privilegeWithdrawn"},
	ReasonAACompromise:         {"", "aACompromise"},
}

// String returns the name `openssl ca` gives r in index.txt ("keyCompromise", "CACompromise"), "none" for
// ReasonNone, and "reason(N)" for a code it cannot record.
func (r Reason) String() string {
	if r == ReasonNone {
		return "none"
	}
	if r >= 0 && int(r) < len(reasonNames) && reasonNames[r].ca != "" {
		return reasonNames[r].ca
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// ParseReason parses a reason name as `openssl ca -crl_reason` takes it, in any case; "none" or "" is
// ReasonNone. Any other name is an error wrapping ErrBadReason.
func ParseReason(s string) (Reason, error) {
	if s == "" || strings.EqualFold(s, "none") {
		return ReasonNone, nil
	}
	for r, n := range reasonNames {
		if n.ca != "" && strings.EqualFold(s, n.ca) {
			return Reason(r), nil
		}
	}
	return ReasonNone, fmt.Errorf("%w: %q (want unspecified, keyCompromise, CACompromise, affiliationChanged, "+
		"superseded, cessationOfOperation, certificateHold or removeFromCRL)", ErrBadReason, s)
}

// ReasonName returns RFC 5280's name for a CRL reason code ("keyCompromise", "cACompromise"), as `openssl
// ocsp -resp_text` prints it, and "unknown reason" for a code RFC 5280 does not define.
func ReasonName(code int) string {
	if code >= 0 && code < len(reasonNames) && reasonNames[code].text != "" {
		return reasonNames[code].text
	}
	return "unknown reason"
}
