package ocspwire_test

import (
	"bytes"
	"errors"
	"testing"

	"staple/ocspwire"
)

func TestStatusNames(t *testing.T) {
	for s, want := range map[ocspwire.Status]string{ocspwire.Good: "good", ocspwire.Revoked: "revoked",
		ocspwire.Unknown: "unknown", 3: "invalid"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", int(s), s, want)
		}
	}
	for s, want := range map[ocspwire.ResponseStatus]string{ocspwire.Successful: "successful",
		ocspwire.MalformedRequest: "malformedrequest", ocspwire.InternalError: "internalerror",
		ocspwire.TryLater: "trylater", ocspwire.SigRequired: "sigrequired", ocspwire.Unauthorized: "unauthorized", 4: "unknown"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", int(s), s, want)
		}
	}
}

// TestParseResponseUnsuccessfulAndMalformed: unsigned error responses come back as *StatusError, what is
// not an OCSP response as ErrMalformed, another responseType as ErrUnsupportedType.
func TestParseResponseUnsuccessfulAndMalformed(t *testing.T) {
	// SEQUENCE { successful, [0] { SEQUENCE { 1.3.6.1.5.5.7.48.1.99, OCTET STRING { SEQUENCE {} } } } }
	otherType := []byte{0x30, 0x16, 0x0a, 0x01, 0x00, 0xa0, 0x11, 0x30, 0x0f, 0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05,
		0x07, 0x30, 0x01, 0x63, 0x04, 0x02, 0x30, 0x00}
	tests := []struct {
		name   string
		der    []byte
		want   error
		status ocspwire.ResponseStatus
	}{
		{"malformedRequest", ocspwire.ErrorResponse(ocspwire.MalformedRequest), nil, ocspwire.MalformedRequest},
		{"tryLater", ocspwire.ErrorResponse(ocspwire.TryLater), nil, ocspwire.TryLater},
		{"unauthorized", ocspwire.ErrorResponse(ocspwire.Unauthorized), nil, ocspwire.Unauthorized},
		{"status 4 (unused)", ocspwire.ErrorResponse(4), nil, 4},
		{"status 300", []byte{0x30, 0x04, 0x0a, 0x02, 0x01, 0x2c}, ocspwire.ErrMalformed, 0},
		{"empty", nil, ocspwire.ErrMalformed, 0},
		{"garbage", []byte("<html>It works!</html>"), ocspwire.ErrMalformed, 0},
		{"trailing data", append(ocspwire.ErrorResponse(ocspwire.TryLater), 0), ocspwire.ErrMalformed, 0},
		{"successful without responseBytes", ocspwire.ErrorResponse(ocspwire.Successful), ocspwire.ErrMalformed, 0},
		{"other response type", otherType, ocspwire.ErrUnsupportedType, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ocspwire.ParseResponse(tt.der)
			if r != nil {
				t.Fatalf("a response came back with %v", err)
			}
			var se *ocspwire.StatusError
			if tt.want != nil {
				if !errors.Is(err, tt.want) || errors.As(err, &se) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				return
			}
			if !errors.As(err, &se) || se.Status != tt.status {
				t.Fatalf("err = %v, want a StatusError with %v", err, tt.status)
			}
		})
	}
	// The unsigned error responses are the five bytes every responder writes.
	if got := ocspwire.ErrorResponse(ocspwire.TryLater); !bytes.Equal(got, []byte{0x30, 0x03, 0x0a, 0x01, 0x03}) {
		t.Errorf("ErrorResponse(tryLater) = %x", got)
	}
}
