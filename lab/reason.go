package lab

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
)

// Reason is a CRLReason code (RFC 5280 §5.3.1) as index.txt and OCSP carry it.
type Reason int

// The reasons OpenSSL's index.txt can record. ReasonNone is a revocation without a reason: the response then
// carries no revocationReason (as openssl ocsp does for a row with a date only).
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
)

// reasonNames are OpenSSL's spellings (apps/ca.c crl_reasons), in code order.
var reasonNames = map[Reason]string{
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonCACompromise:         "CACompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonCertificateHold:      "certificateHold",
	ReasonRemoveFromCRL:        "removeFromCRL",
}

// ErrBadReason is returned by ParseReason for a name OpenSSL's index.txt does not know.
var ErrBadReason = errors.New("lab: unknown revocation reason")

func (r Reason) String() string {
	if r == ReasonNone {
		return "none"
	}
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// ParseReason parses a reason name as `openssl ca -crl_reason` takes it, in any case; "none" or "" is
// ReasonNone.
func ParseReason(s string) (Reason, error) {
	if s == "" || strings.EqualFold(s, "none") {
		return ReasonNone, nil
	}
	for r, name := range reasonNames {
		if strings.EqualFold(s, name) {
			return r, nil
		}
	}
	return ReasonNone, fmt.Errorf("%w: %q (want unspecified, keyCompromise, CACompromise, affiliationChanged, "+
		"superseded, cessationOfOperation, certificateHold or removeFromCRL)", ErrBadReason, s)
}

// Hold instruction codes (RFC 5280 §5.3.2 in its 2002 form; OpenSSL still writes them).
var (
	HoldInstructionNone       = asn1.ObjectIdentifier{1, 2, 840, 10040, 2, 1}
	HoldInstructionCallIssuer = asn1.ObjectIdentifier{1, 2, 840, 10040, 2, 2}
	HoldInstructionReject     = asn1.ObjectIdentifier{1, 2, 840, 10040, 2, 3}
)

var holdNames = []struct {
	oid        asn1.ObjectIdentifier
	name, long string
}{
	{HoldInstructionNone, "holdInstructionNone", "Hold Instruction None"},
	{HoldInstructionCallIssuer, "holdInstructionCallIssuer", "Hold Instruction Call Issuer"},
	{HoldInstructionReject, "holdInstructionReject", "Hold Instruction Reject"},
}

// ParseHoldInstruction parses a hold instruction as OpenSSL writes it: a short name
// ("holdInstructionReject"), a long name, or a dotted OID. "none", "callIssuer" and "reject" work too.
func ParseHoldInstruction(s string) (asn1.ObjectIdentifier, error) {
	for _, h := range holdNames {
		short := strings.TrimPrefix(h.name, "holdInstruction")
		if strings.EqualFold(s, h.name) || strings.EqualFold(s, h.long) || strings.EqualFold(s, short) {
			return h.oid, nil
		}
	}
	if oid, ok := parseOID(s); ok {
		return oid, nil
	}
	return nil, fmt.Errorf("%w: hold instruction %q (want none, callIssuer, reject or an OID)", ErrBadReason, s)
}

func holdName(oid asn1.ObjectIdentifier) string {
	for _, h := range holdNames {
		if oid.Equal(h.oid) {
			return h.name
		}
	}
	return oid.String()
}

func parseOID(s string) (asn1.ObjectIdentifier, bool) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 32 {
		return nil, false
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		if p == "" || len(p) > 9 || strings.Trim(p, "0123456789") != "" {
			return nil, false
		}
		n := 0
		for _, c := range p {
			n = n*10 + int(c-'0')
		}
		oid[i] = n
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, false
	}
	return oid, true
}
