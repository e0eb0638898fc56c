package ocspwire

import (
	"encoding/asn1"
	"fmt"
	"strconv"
	"strings"
)

// HoldInstruction is a hold instruction code (RFC 5280 §5.3.2 in its 2002 form; OpenSSL still writes them):
// the OID of a holdInstructionCode extension. Nil means none.
type HoldInstruction asn1.ObjectIdentifier

// The hold instructions of RFC 3280.
var (
	HoldInstructionNone       = HoldInstruction{1, 2, 840, 10040, 2, 1}
	HoldInstructionCallIssuer = HoldInstruction{1, 2, 840, 10040, 2, 2}
	HoldInstructionReject     = HoldInstruction{1, 2, 840, 10040, 2, 3}
)

// holdNames are OpenSSL's short and long names of the hold instructions.
var holdNames = []struct {
	h          HoldInstruction
	name, long string
}{
	{HoldInstructionNone, "holdInstructionNone", "Hold Instruction None"},
	{HoldInstructionCallIssuer, "holdInstructionCallIssuer", "Hold Instruction Call Issuer"},
	{HoldInstructionReject, "holdInstructionReject", "Hold Instruction Reject"},
}

// Equal reports whether h and o are the same instruction.
func (h HoldInstruction) Equal(o HoldInstruction) bool {
	return asn1.ObjectIdentifier(h).Equal(asn1.ObjectIdentifier(o))
}

// String returns the dotted OID ("1.2.840.10040.2.3").
func (h HoldInstruction) String() string { return asn1.ObjectIdentifier(h).String() }

// Name returns OpenSSL's short name ("holdInstructionReject"), as index.txt records it, or the dotted OID of
// an instruction it has no name for.
func (h HoldInstruction) Name() string {
	for _, n := range holdNames {
		if h.Equal(n.h) {
			return n.name
		}
	}
	return h.String()
}

// ParseHoldInstruction parses a hold instruction as OpenSSL writes it: a short name
// ("holdInstructionReject"), a long name, or a dotted OID. "none", "callIssuer" and "reject" work too, in any
// case. Anything else is an error wrapping ErrBadReason.
func ParseHoldInstruction(s string) (HoldInstruction, error) {
	for _, n := range holdNames {
		short := strings.TrimPrefix(n.name, "holdInstruction")
		if strings.EqualFold(s, n.name) || strings.EqualFold(s, n.long) || strings.EqualFold(s, short) {
			return n.h, nil
		}
	}
	if h, ok := parseOID(s); ok {
		return h, nil
	}
	return nil, fmt.Errorf("%w: hold instruction %q (want none, callIssuer, reject or an OID)", ErrBadReason, s)
}

// parseOID parses a dotted OID of 2 to 32 arcs of up to 9 digits each.
func parseOID(s string) (HoldInstruction, bool) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 32 {
		return nil, false
	}
	oid := make(HoldInstruction, len(parts))
	for i, p := range parts {
		if p == "" || len(p) > 9 || strings.Trim(p, "0123456789") != "" {
			return nil, false
		}
		oid[i], _ = strconv.Atoi(p)
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, false
	}
	return oid, true
}
