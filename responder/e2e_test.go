package responder_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"staple/lab"
	"staple/ocspfetch"
	"staple/ocspwire"
	"staple/responder"
)

// labResponder is a lab with a few leaves and its responder serving on a loopback port until the test ends.
type labResponder struct {
	lab    *lab.Lab
	src    *lab.Source
	rs     *responder.Responder
	url    string
	leaves map[string]*lab.Issued
}

func startLab(t testing.TB, names ...string) *labResponder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	l, err := lab.Init(filepath.Join(t.TempDir(), "lab"), lab.InitOptions{ResponderURL: url})
	if err != nil {
		t.Fatal(err)
	}
	lr := &labResponder{lab: l, url: url, leaves: map[string]*lab.Issued{}}
	for _, n := range names {
		is, err := l.Issue(lab.IssueOptions{Names: []string{n}})
		if err != nil {
			t.Fatal(err)
		}
		lr.leaves[n] = is
	}
	if lr.src, err = lab.NewSource(l.SourceConfig()); err != nil {
		t.Fatal(err)
	}
	if _, err := lr.src.Presign(context.Background()); err != nil {
		t.Fatal(err)
	}
	lr.rs = &responder.Responder{Source: lr.src, Faults: &responder.Faults{}, FaultAPI: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lr.rs.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lr
}

func TestFetcherAgainstResponder(t *testing.T) {
	lr := startLab(t, "good.test", "revoked.test")
	good, revoked := lr.leaves["good.test"].Cert, lr.leaves["revoked.test"].Cert
	client := &ocspfetch.Client{Timeout: 5 * time.Second}
	ctx := context.Background()

	r, err := client.Fetch(ctx, good, lr.lab.CA)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != ocspwire.Good || r.SignerIsIssuer || !r.Signer.Equal(lr.lab.Signer) || r.HTTP.Method != "GET" {
		t.Errorf("good: status %v signer %v method %s", r.Status, r.Signer.Subject, r.HTTP.Method)
	}
	if !r.HTTP.HasMaxAge || r.HTTP.MaxAge <= 59*time.Minute || r.HTTP.ETag == "" || r.HTTP.WrongContentType ||
		!r.HTTP.Expires.Equal(r.NextUpdate) || r.NextUpdate.Sub(r.ThisUpdate) != lab.DefaultValidity {
		t.Errorf("cache hints %+v, window %v", r.HTTP, r.NextUpdate.Sub(r.ThisUpdate))
	}

	// Revoke, and the very next fetch says so.
	if r, err := client.Fetch(ctx, revoked, lr.lab.CA); err != nil || r.Status != ocspwire.Good {
		t.Fatalf("before revoking: %v, %v", r, err)
	}
	if _, err := lr.lab.Revoke(revoked.SerialNumber, lab.RevokeOptions{Reason: ocspwire.ReasonKeyCompromise}); err != nil {
		t.Fatal(err)
	}
	r, err = client.Fetch(ctx, revoked, lr.lab.CA)
	if err != nil || r.Status != ocspwire.Revoked || r.RevocationReason != 1 {
		t.Fatalf("first fetch after revoking: %+v, %v", r, err)
	}

	for _, c := range []struct {
		name   string
		client *ocspfetch.Client
	}{
		{"nonce", &ocspfetch.Client{Nonce: true}},
		{"SHA-256", &ocspfetch.Client{Hash: crypto.SHA256}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := c.client.Fetch(ctx, good, lr.lab.CA)
			if err != nil || r.Status != ocspwire.Good {
				t.Fatalf("%+v, %v", r, err)
			}
			if c.client.Hash == crypto.SHA256 && r.CertIDHash != crypto.SHA256 {
				t.Errorf("CertID hash %v", r.CertIDHash)
			}
		})
	}

	t.Run("another lab's certificate", func(t *testing.T) {
		other, err := lab.Init(filepath.Join(t.TempDir(), "other"), lab.InitOptions{ResponderURL: lr.url})
		if err != nil {
			t.Fatal(err)
		}
		is, err := other.Issue(lab.IssueOptions{Names: []string{"foreign.test"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Fetch(ctx, is.Cert, other.CA); !errors.Is(err, ocspfetch.ErrUnauthorized) {
			t.Errorf("err = %v, want unauthorized", err)
		}
	})
	t.Run("a serial the CA never issued", func(t *testing.T) {
		ghost := &x509.Certificate{SerialNumber: bigSerial(0x9999), OCSPServer: []string{lr.url}}
		r, err := client.Fetch(ctx, ghost, lr.lab.CA)
		if err != nil || r.Status != ocspwire.Unknown {
			t.Errorf("%+v, %v", r, err)
		}
	})
}

// TestFaultsFromTheFetcher switches each fault on for one serial and checks that staple's own fetcher sees
// exactly that failure.
func TestFaultsFromTheFetcher(t *testing.T) {
	lr := startLab(t, "victim.test", "bystander.test")
	victim, bystander := lr.leaves["victim.test"].Cert, lr.leaves["bystander.test"].Cert
	ctx := context.Background()
	tests := []struct {
		fault  string
		client func(*ocspfetch.Client) // adjusts the client; nil leaves the defaults
		want   error                   // errors.Is
		check  func(*testing.T, *ocspfetch.Response, error)
		reason string // ocspfetch.Reason, when want is nil
	}{
		{fault: "delay=2s", client: func(c *ocspfetch.Client) { c.Timeout = 200 * time.Millisecond }, reason: "timeout"},
		{fault: "http500", check: httpStatus(500, 0)},
		{fault: "http503=45s", check: httpStatus(503, 45*time.Second)},
		{fault: "garbage", want: ocspfetch.ErrMalformed},
		{fault: "empty", want: ocspfetch.ErrMalformed},
		{fault: "drop", want: io.EOF}, // the server closed the connection before answering
		{fault: "redirect-loop", want: ocspfetch.ErrTooManyRedirects},
		{fault: "oversize=1000000", want: ocspfetch.ErrResponseTooLarge},
		{fault: "malformed", want: ocspfetch.ErrMalformedRequest},
		{fault: "internal-error", want: ocspfetch.ErrInternalError},
		{fault: "try-later", want: ocspfetch.ErrTryLater},
		{fault: "sig-required", want: ocspfetch.ErrSigRequired},
		{fault: "unauthorized", want: ocspfetch.ErrUnauthorized},
		{fault: "expired", want: ocspfetch.ErrExpired},
		{fault: "not-yet-valid", want: ocspfetch.ErrNotYetValid},
		{fault: "no-next-update", client: func(c *ocspfetch.Client) { c.Verify.RequireNextUpdate = true }, want: ocspfetch.ErrNoNextUpdate},
		{fault: "wrong-signer", want: ocspfetch.ErrUnauthorizedSigner},
		{fault: "bad-signature", want: ocspfetch.ErrBadSignature},
		{fault: "wrong-serial", want: ocspfetch.ErrNoMatchingResponse},
		{fault: "wrong-nonce", client: func(c *ocspfetch.Client) { c.Nonce = true }, want: ocspfetch.ErrNonceMismatch},
		{fault: "wrong-content-type", check: func(t *testing.T, r *ocspfetch.Response, err error) {
			if err != nil || !r.HTTP.WrongContentType || r.Status != ocspwire.Good {
				t.Errorf("%+v, %v", r, err)
			}
		}},
		{fault: "no-next-update", check: func(t *testing.T, r *ocspfetch.Response, err error) {
			if err != nil || !r.NextUpdate.IsZero() || r.HTTP.HasMaxAge && r.HTTP.MaxAge > 0 {
				t.Errorf("%+v, %v", r, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			rule, err := responder.ParseFaultRule(responder.SerialKey(victim.SerialNumber) + ":" + tt.fault)
			if err != nil {
				t.Fatal(err)
			}
			lr.rs.Faults.Set(rule.Serial, rule.Fault)
			defer lr.rs.Faults.Reset()
			client := &ocspfetch.Client{MaxRedirects: 3}
			if tt.client != nil {
				tt.client(client)
			}
			r, err := client.Fetch(ctx, victim, lr.lab.CA)
			switch {
			case tt.check != nil:
				tt.check(t, r, err)
			case tt.want != nil:
				if !errors.Is(err, tt.want) {
					t.Errorf("err = %v, want %v", err, tt.want)
				}
			default:
				if got := ocspfetch.Reason(err); got != tt.reason {
					t.Errorf("reason %q (%v), want %q", got, err, tt.reason)
				}
			}
			// The fault is the victim's alone.
			if r, err := (&ocspfetch.Client{}).Fetch(ctx, bystander, lr.lab.CA); err != nil || r.Status != ocspwire.Good {
				t.Errorf("bystander: %v, %v", r, err)
			}
		})
	}
}

func httpStatus(code int, retryAfter time.Duration) func(*testing.T, *ocspfetch.Response, error) {
	return func(t *testing.T, _ *ocspfetch.Response, err error) {
		var he *ocspfetch.HTTPError
		if !errors.As(err, &he) || he.StatusCode != code || he.RetryAfter != retryAfter {
			t.Errorf("err = %v (%+v), want HTTP %d, Retry-After %v", err, he, code, retryAfter)
		}
	}
}

func bigSerial(n int64) *big.Int { return big.NewInt(n) }
