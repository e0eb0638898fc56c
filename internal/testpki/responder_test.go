package testpki

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/ocspwire"
)

func post(t *testing.T, c *http.Client, u string, der []byte) (*http.Response, []byte, error) {
	t.Helper()
	resp, err := c.Post(u, "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestResponderAnswers(t *testing.T) {
	ca := NewRoot(t, "Responder Root", ECDSAP256).NewIntermediate(t, "Responder CA", RSA2048)
	r := NewResponder(t, ca, ResponderOptions{MaxAge: time.Hour})
	leaf := ca.Issue(t, LeafOptions{OCSPURLs: []string{r.URL}})
	stranger := ca.Issue(t, LeafOptions{})
	c := &http.Client{Timeout: 5 * time.Second}

	reqDER, _ := ocsp.CreateRequest(leaf.Cert, ca.Cert, nil)
	_, body, err := post(t, c, r.URL, reqDER)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ocsp.ParseResponseForCert(body, leaf.Cert, ca.Cert)
	if err != nil || resp.Status != ocsp.Good || !resp.ThisUpdate.Equal(Epoch()) {
		t.Fatalf("POST: %v %+v", err, resp)
	}

	r.Revoke(leaf.Cert.SerialNumber, Epoch().Add(-time.Hour), ocsp.KeyCompromise)
	get, err := c.Get(r.URL + "/" + url.PathEscape(base64.StdEncoding.EncodeToString(reqDER)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(get.Body)
	get.Body.Close()
	if get.Header.Get("ETag") == "" || get.Header.Get("Cache-Control") == "" || get.Header.Get("Expires") == "" {
		t.Errorf("cache headers missing: %v", get.Header)
	}
	resp, err = ocsp.ParseResponseForCert(body, leaf.Cert, ca.Cert)
	if err != nil || resp.Status != ocsp.Revoked || resp.RevocationReason != ocsp.KeyCompromise {
		t.Fatalf("GET after Revoke: %v %+v", err, resp)
	}
	if g, p := r.Counts(); g != 1 || p != 1 {
		t.Errorf("counts GET %d POST %d", g, p)
	}

	// A serial the CA never issued is unknown; an issuer that is not the CA is unauthorized.
	reqDER, _ = ocspwire.EncodeRequest([]ocspwire.CertID{mustCertID(t, ca, bigInt(0x7777))}, nil)
	_, body, _ = post(t, c, r.URL, reqDER)
	if resp, err := ocsp.ParseResponseForCert(body, nil, ca.Cert); err != nil || resp.Status != ocsp.Unknown {
		t.Errorf("unissued serial: %v %+v", err, resp)
	}
	other := NewRoot(t, "Someone Else", ECDSAP256)
	reqDER, _ = ocsp.CreateRequest(stranger.Cert, other.Cert, nil)
	_, body, _ = post(t, c, r.URL, reqDER)
	var re ocsp.ResponseError
	if _, err := ocsp.ParseResponse(body, nil); !errors.As(err, &re) || re.Status != ocsp.Unauthorized {
		t.Errorf("foreign issuer: %v", err)
	}

	// The nonce comes back.
	id := mustCertID(t, ca, leaf.Cert.SerialNumber)
	reqDER, _ = ocspwire.EncodeRequest([]ocspwire.CertID{id}, []byte("0123456789abcdef"))
	_, body, _ = post(t, c, r.URL, reqDER)
	if !bytes.Contains(body, []byte("0123456789abcdef")) {
		t.Error("nonce not echoed")
	}
	if s := r.Seen(); len(s) != 5 || s[4].Request == nil || string(s[4].Request.Nonce) != "0123456789abcdef" || s[1].Method != "GET" {
		t.Errorf("seen: %+v", s)
	}
}

func bigInt(n int64) *big.Int { return big.NewInt(n) }

func mustCertID(t *testing.T, ca *CA, serial *big.Int) ocspwire.CertID {
	t.Helper()
	id, err := ocspwire.NewCertID(ca.Cert, serial, crypto.SHA1)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestResponderFaultQueueAndRefusal(t *testing.T) {
	ca := NewRoot(t, "Fault Root", ECDSAP256)
	r := NewResponder(t, ca, ResponderOptions{})
	leaf := ca.Issue(t, LeafOptions{})
	reqDER, _ := ocsp.CreateRequest(leaf.Cert, ca.Cert, nil)
	c := &http.Client{Timeout: 5 * time.Second}

	r.FailNext(Fault404, Fault503)
	r.Fail(FaultTryLater)
	want := []struct {
		code int
		body []byte
	}{{404, nil}, {503, nil}, {200, ocspwire.ErrorResponse(ocspwire.TryLater)}, {200, ocspwire.ErrorResponse(ocspwire.TryLater)}}
	for i, w := range want {
		resp, body, err := post(t, c, r.URL, reqDER)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != w.code || (w.body != nil && !bytes.Equal(body, w.body)) {
			t.Errorf("request %d: %d %x", i, resp.StatusCode, body)
		}
		if w.code == 503 && resp.Header.Get("Retry-After") != "120" {
			t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
	}
	r.Fail(FaultRefused)
	c.CloseIdleConnections() // the closed keep-alive connection would fail with EOF, not a refusal
	if _, _, err := post(t, c, r.URL, reqDER); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("refused: %v", err)
	}
	r.Fail(FaultNone)
	if resp, _, err := post(t, c, r.URL, reqDER); err != nil || resp.StatusCode != 200 {
		t.Errorf("after refusal: %v", err)
	}
	r.FailNext(FaultRedirectLoop)
	if _, _, err := post(t, c, r.URL, reqDER); err == nil {
		t.Error("redirect loop followed to the end")
	}
}

func TestFaultNames(t *testing.T) {
	if len(faultNames) != int(faultCount) {
		t.Fatalf("%d names for %d faults", len(faultNames), faultCount)
	}
	seen := map[string]bool{}
	for _, f := range Faults() {
		if seen[f.String()] {
			t.Errorf("duplicate name %s", f)
		}
		seen[f.String()] = true
	}
}
