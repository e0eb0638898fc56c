package ocspwire_test

import (
	"errors"
	"path/filepath"
	"testing"

	"staple/internal/testpki"
	"staple/ocspwire"
)

// FuzzParseRequest checks that no input panics the parser, that errors wrap ErrMalformedRequest, and that
// what parses is within the limits.
func FuzzParseRequest(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/requests/*.der")
	for _, s := range seeds {
		f.Add(mustRead(f, s))
	}
	f.Add(buildRequest(reqSpec{exts: [][3][]byte{{nonceOIDDER, nil, {0x04, 0x01, 0x00}}}, requestorName: true, signature: true}))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ocspwire.ParseRequest(data)
		if err != nil {
			if !errors.Is(err, ocspwire.ErrMalformedRequest) {
				t.Fatalf("error %v does not wrap ErrMalformedRequest", err)
			}
			return
		}
		if len(req.CertIDs) == 0 || len(req.CertIDs) > ocspwire.MaxCertsPerRequest || len(req.Nonce) > ocspwire.MaxNonceLen+3 {
			t.Fatalf("limits: %d certs, %d nonce bytes", len(req.CertIDs), len(req.Nonce))
		}
		for _, id := range req.CertIDs {
			if id.Serial == nil {
				t.Fatal("CertID without a serial")
			}
		}
		// What parses encodes again, and reads back the same.
		again, err := ocspwire.EncodeRequest(req.CertIDs, nil)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		back, err := ocspwire.ParseRequest(again)
		if err != nil || len(back.CertIDs) != len(req.CertIDs) || !back.CertIDs[0].Equal(req.CertIDs[0]) {
			t.Fatalf("re-encoded request reads back as %+v, %v", back, err)
		}
	})
}

// FuzzParseResponse feeds the response parser, and the text rendering built on it, arbitrary bytes seeded
// from the real-world responses of testdata/ocsp and from the encoder. Nothing may panic, every error wraps
// a sentinel, and Text fails exactly when the parser does.
func FuzzParseResponse(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/ocsp/*.der")
	for _, s := range seeds {
		f.Add(mustRead(f, s))
	}
	ca := testpki.NewRoot(f, "Fuzz CA", testpki.RSA2048)
	for _, tc := range signCases {
		f.Add(tc.sign(f, ca))
	}
	for _, s := range []ocspwire.ResponseStatus{ocspwire.MalformedRequest, ocspwire.TryLater, 4} {
		f.Add(ocspwire.ErrorResponse(s))
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		r, err := ocspwire.ParseResponse(der)
		_, textErr := ocspwire.Text(der)
		var se *ocspwire.StatusError
		switch {
		case err == nil:
			if r == nil || len(r.TBS) == 0 || r.ResponseData.Version != 0 {
				t.Fatalf("inconsistent response %+v", r)
			}
			for _, s := range r.Responses {
				if s.CertID.Serial == nil || s.Status < ocspwire.Good || s.Status > ocspwire.Unknown {
					t.Fatalf("inconsistent SingleResponse %+v", s)
				}
			}
		case errors.As(err, &se):
			if se.Status == ocspwire.Successful {
				t.Fatalf("a StatusError for successful")
			}
		case !errors.Is(err, ocspwire.ErrMalformed) && !errors.Is(err, ocspwire.ErrUnsupportedType):
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if (textErr == nil) != (err == nil || se != nil) {
			t.Fatalf("Text says %v where ParseResponse says %v", textErr, err)
		}
	})
}
