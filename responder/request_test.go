package responder

import (
	"errors"
	"math/big"
	"testing"

	"staple/ocspwire"
)

func TestSerialKey(t *testing.T) {
	tests := []struct {
		n    *big.Int
		want string
	}{
		{big.NewInt(0), "00"}, {big.NewInt(0xabc), "0ABC"}, {big.NewInt(0x1000), "1000"}, {big.NewInt(-0x10), "-10"}, {nil, ""},
	}
	for _, tt := range tests {
		if got := SerialKey(tt.n); got != tt.want {
			t.Errorf("SerialKey(%v) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// TestParseRequest: the parser is ocspwire's (tested there); the responder's refusals wrap both sentinels,
// and a parsed request carries no fault.
func TestParseRequest(t *testing.T) {
	if _, err := ParseRequest([]byte("garbage")); !errors.Is(err, ErrMalformedRequest) || !errors.Is(err, ocspwire.ErrMalformedRequest) {
		t.Errorf("err = %v, want ErrMalformedRequest of both packages", err)
	}
	req, err := ParseRequest(buildRequestSerial(big.NewInt(0x1000)))
	if err != nil || len(req.CertIDs) != 1 || !req.Fault.IsZero() {
		t.Errorf("%+v, %v", req, err)
	}
}
