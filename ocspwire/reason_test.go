package ocspwire_test

import (
	"errors"
	"testing"

	"staple/ocspwire"
)

func TestParseReason(t *testing.T) {
	tests := []struct {
		in   string
		want ocspwire.Reason
		err  error
	}{
		{"", ocspwire.ReasonNone, nil},
		{"None", ocspwire.ReasonNone, nil},
		{"keyCompromise", ocspwire.ReasonKeyCompromise, nil},
		{"KEYCOMPROMISE", ocspwire.ReasonKeyCompromise, nil},
		{"CACompromise", ocspwire.ReasonCACompromise, nil},
		{"cACompromise", ocspwire.ReasonCACompromise, nil},
		{"unspecified", ocspwire.ReasonUnspecified, nil},
		{"removeFromCRL", ocspwire.ReasonRemoveFromCRL, nil},
		{"privilegeWithdrawn", ocspwire.ReasonNone, ocspwire.ErrBadReason}, // openssl ca cannot record it
		{"stolen", ocspwire.ReasonNone, ocspwire.ErrBadReason},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ocspwire.ParseReason(tt.in)
			if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("ParseReason(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

// TestReasonSpellings: `openssl ca` and `openssl ocsp -resp_text` spell cACompromise differently; both are
// kept, each where OpenSSL uses it.
func TestReasonSpellings(t *testing.T) {
	tests := []struct {
		r          ocspwire.Reason
		ca, respTx string
	}{
		{ocspwire.ReasonNone, "none", "unknown reason"},
		{ocspwire.ReasonUnspecified, "unspecified", "unspecified"},
		{ocspwire.ReasonKeyCompromise, "keyCompromise", "keyCompromise"},
		{ocspwire.ReasonCACompromise, "CACompromise", "cACompromise"},
		{ocspwire.ReasonCertificateHold, "certificateHold", "certificateHold"},
		{7, "reason(7)", "unknown reason"},
		{ocspwire.ReasonRemoveFromCRL, "removeFromCRL", "removeFromCRL"},
		{ocspwire.ReasonPrivilegeWithdrawn, "reason(9)", "privilegeWithdrawn"},
		{ocspwire.ReasonAACompromise, "reason(10)", "aACompromise"},
		{11, "reason(11)", "unknown reason"},
	}
	for _, tt := range tests {
		t.Run(tt.ca, func(t *testing.T) {
			if got := tt.r.String(); got != tt.ca {
				t.Errorf("String = %q, want %q", got, tt.ca)
			}
			if got := ocspwire.ReasonName(int(tt.r)); got != tt.respTx {
				t.Errorf("ReasonName = %q, want %q", got, tt.respTx)
			}
			if back, err := ocspwire.ParseReason(tt.r.String()); tt.ca[0] != 'r' && (err != nil || back != tt.r) {
				t.Errorf("ParseReason(String) = %v, %v", back, err)
			}
		})
	}
}

func TestParseHoldInstruction(t *testing.T) {
	tests := []struct {
		in   string
		want ocspwire.HoldInstruction
		name string
		err  error
	}{
		{"holdInstructionReject", ocspwire.HoldInstructionReject, "holdInstructionReject", nil},
		{"Hold Instruction Call Issuer", ocspwire.HoldInstructionCallIssuer, "holdInstructionCallIssuer", nil},
		{"none", ocspwire.HoldInstructionNone, "holdInstructionNone", nil},
		{"REJECT", ocspwire.HoldInstructionReject, "holdInstructionReject", nil},
		{"1.2.840.10040.2.3", ocspwire.HoldInstructionReject, "holdInstructionReject", nil},
		{"1.2.3.4", ocspwire.HoldInstruction{1, 2, 3, 4}, "1.2.3.4", nil},
		{"1.40", nil, "", ocspwire.ErrBadReason},
		{"3.1", nil, "", ocspwire.ErrBadReason},
		{"1..2", nil, "", ocspwire.ErrBadReason},
		{"whenever", nil, "", ocspwire.ErrBadReason},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ocspwire.ParseHoldInstruction(tt.in)
			if !got.Equal(tt.want) || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("ParseHoldInstruction(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.err)
			}
			if tt.err == nil && (got.Name() != tt.name || got.String() != tt.want.String()) {
				t.Errorf("Name %q String %q", got.Name(), got.String())
			}
		})
	}
}
