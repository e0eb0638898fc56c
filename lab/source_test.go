package lab

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"staple/atomicfile"
	"staple/ocspwire"
	"staple/responder"
)

// clock is a settable test clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// certIDFor is the CertID a client would send for serial under issuer, as x/crypto/ocsp computes it.
func certIDFor(t testing.TB, issuer *x509.Certificate, serial *big.Int, h crypto.Hash) ocspwire.CertID {
	t.Helper()
	der, err := ocsp.CreateRequest(&x509.Certificate{SerialNumber: serial}, issuer, &ocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	x, err := ocsp.ParseRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return ocspwire.CertID{HashAlgorithm: ocspwire.HashOID(h), Hash: h, IssuerNameHash: x.IssuerNameHash,
		IssuerKeyHash: x.IssuerKeyHash, Serial: serial}
}

type sourceFixture struct {
	lab    *Lab
	clock  *clock
	src    *Source
	leaves []*Issued // good.test, revoked.test, hold.test
}

func newSourceFixture(t *testing.T) *sourceFixture {
	t.Helper()
	f := &sourceFixture{lab: newTestLab(t, KeyECDSA), clock: &clock{t: labNow}}
	f.lab.Now = f.clock.Now
	for _, n := range []string{"good.test", "revoked.test", "hold.test"} {
		is, err := f.lab.Issue(IssueOptions{Names: []string{n}})
		if err != nil {
			t.Fatal(err)
		}
		f.leaves = append(f.leaves, is)
	}
	if _, err := f.lab.Revoke(f.leaves[1].Cert.SerialNumber, RevokeOptions{Reason: ocspwire.ReasonKeyCompromise,
		Time: labNow.Add(-time.Hour), InvalidityDate: labNow.Add(-48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.lab.Revoke(f.leaves[2].Cert.SerialNumber, RevokeOptions{Reason: ocspwire.ReasonCertificateHold,
		HoldInstruction: ocspwire.HoldInstructionReject}); err != nil {
		t.Fatal(err)
	}
	cfg := f.lab.SourceConfig()
	cfg.Validity = time.Hour
	var err error
	if f.src, err = NewSource(cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *sourceFixture) ask(t *testing.T, req *responder.Request) *responder.Response {
	t.Helper()
	resp, err := f.src.Response(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func (f *sourceFixture) one(t *testing.T, serial *big.Int) *responder.Request {
	return &responder.Request{Request: ocspwire.Request{CertIDs: []ocspwire.CertID{certIDFor(t, f.lab.CA, serial, crypto.SHA1)}}}
}

func TestSourceStatuses(t *testing.T) {
	f := newSourceFixture(t)
	tests := []struct {
		name    string
		serial  *big.Int
		hash    crypto.Hash
		status  int
		reason  int
		extOIDs []asn1.ObjectIdentifier
	}{
		{"good", f.leaves[0].Cert.SerialNumber, crypto.SHA1, ocsp.Good, 0, nil},
		{"good by SHA-256", f.leaves[0].Cert.SerialNumber, crypto.SHA256, ocsp.Good, 0, nil},
		{"the signer itself", f.lab.Signer.SerialNumber, crypto.SHA1, ocsp.Good, 0, nil},
		{"revoked with invalidity date", f.leaves[1].Cert.SerialNumber, crypto.SHA1, ocsp.Revoked, ocsp.KeyCompromise, []asn1.ObjectIdentifier{ocspwire.OIDInvalidityDate}},
		{"on hold", f.leaves[2].Cert.SerialNumber, crypto.SHA384, ocsp.Revoked, ocsp.CertificateHold, []asn1.ObjectIdentifier{ocspwire.OIDHoldInstructionCode}},
		{"not in the index", big.NewInt(0x9999), crypto.SHA1, ocsp.Unknown, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &responder.Request{Request: ocspwire.Request{CertIDs: []ocspwire.CertID{certIDFor(t, f.lab.CA, tt.serial, tt.hash)}}}
			resp := f.ask(t, req)
			r, err := ocsp.ParseResponse(resp.Raw, f.lab.CA)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tt.status || r.SerialNumber.Cmp(tt.serial) != 0 || r.IssuerHash != tt.hash {
				t.Errorf("status %d serial %x hash %v", r.Status, r.SerialNumber, r.IssuerHash)
			}
			if tt.status == ocsp.Revoked && r.RevocationReason != tt.reason {
				t.Errorf("reason %d, want %d", r.RevocationReason, tt.reason)
			}
			if len(r.Extensions) != len(tt.extOIDs) || (len(tt.extOIDs) == 1 && !r.Extensions[0].Id.Equal(tt.extOIDs[0])) {
				t.Errorf("singleExtensions %v", r.Extensions)
			}
			if !r.ThisUpdate.Equal(labNow) || !r.NextUpdate.Equal(labNow.Add(time.Hour)) || !r.ProducedAt.Equal(labNow) {
				t.Errorf("times %v %v %v", r.ProducedAt, r.ThisUpdate, r.NextUpdate)
			}
			if !resp.ThisUpdate.Equal(r.ThisUpdate) || !resp.NextUpdate.Equal(r.NextUpdate) || resp.ETag == "" {
				t.Errorf("Response fields %v %v %q", resp.ThisUpdate, resp.NextUpdate, resp.ETag)
			}
			if !r.Certificate.Equal(f.lab.Signer) || !bytes.Equal(r.RawResponderName, f.lab.Signer.RawSubject) {
				t.Error("not signed by the lab's delegated signer, named by name")
			}
		})
	}
	t.Run("revocation details", func(t *testing.T) {
		r, _ := ocsp.ParseResponse(f.ask(t, f.one(t, f.leaves[1].Cert.SerialNumber)).Raw, f.lab.CA)
		var inv time.Time
		if _, err := asn1.UnmarshalWithParams(r.Extensions[0].Value, &inv, "generalized"); err != nil || !inv.Equal(labNow.Add(-48*time.Hour)) {
			t.Errorf("invalidity date %v, %v", inv, err)
		}
		if !r.RevokedAt.Equal(labNow.Add(-time.Hour)) {
			t.Errorf("revoked at %v", r.RevokedAt)
		}
	})
}

func TestSourceUnauthorized(t *testing.T) {
	f := newSourceFixture(t)
	other := newTestLab(t, KeyECDSA)
	tests := []struct {
		name string
		ids  []ocspwire.CertID
	}{
		{"another issuer", []ocspwire.CertID{certIDFor(t, other.CA, big.NewInt(0x1001), crypto.SHA1)}},
		{"our root", []ocspwire.CertID{certIDFor(t, f.lab.Root, big.NewInt(0x1001), crypto.SHA1)}},
		{"ours and another", []ocspwire.CertID{certIDFor(t, f.lab.CA, big.NewInt(0x1001), crypto.SHA1),
			certIDFor(t, other.CA, big.NewInt(0x1001), crypto.SHA1)}},
		{"unknown hash", []ocspwire.CertID{{HashAlgorithm: asn1.ObjectIdentifier{1, 2, 3}, IssuerNameHash: []byte{1},
			IssuerKeyHash: []byte{2}, Serial: big.NewInt(0x1001)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.src.Response(context.Background(), &responder.Request{Request: ocspwire.Request{CertIDs: tt.ids}})
			if !errors.Is(err, responder.ErrUnauthorized) {
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			}
		})
	}
}

func TestSourcePresignsAndRefreshes(t *testing.T) {
	f := newSourceFixture(t)
	n, err := f.src.Presign(context.Background())
	if err != nil || n != 4 {
		t.Fatalf("Presign = %d, %v; want the 4 rows", n, err)
	}
	good := f.leaves[0].Cert.SerialNumber
	first := f.ask(t, f.one(t, good))
	f.clock.Add(29 * time.Minute)
	if again := f.ask(t, f.one(t, good)); again != first {
		t.Error("a pre-signed response was signed again before half its validity")
	}
	f.clock.Add(time.Minute)
	later := f.ask(t, f.one(t, good))
	if later == first || !later.ThisUpdate.Equal(labNow.Add(30*time.Minute)) {
		t.Errorf("at half the validity: same %v, thisUpdate %v", later == first, later.ThisUpdate)
	}
	// A SHA-256 request has its own pre-signed response.
	id256 := certIDFor(t, f.lab.CA, good, crypto.SHA256)
	r1 := f.ask(t, &responder.Request{Request: ocspwire.Request{CertIDs: []ocspwire.CertID{id256}}})
	if r2 := f.ask(t, &responder.Request{Request: ocspwire.Request{CertIDs: []ocspwire.CertID{id256}}}); r1 != r2 || bytes.Equal(r1.Raw, later.Raw) {
		t.Error("SHA-256 responses are not cached apart from SHA-1 ones")
	}
}

// TestSourceRevocationIsImmediate revokes in index.txt and asks at once, with the clock standing still: the
// very first answer says revoked.
func TestSourceRevocationIsImmediate(t *testing.T) {
	f := newSourceFixture(t)
	if _, err := f.src.Presign(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := f.leaves[0].Cert.SerialNumber
	if r, _ := ocsp.ParseResponse(f.ask(t, f.one(t, good)).Raw, f.lab.CA); r.Status != ocsp.Good {
		t.Fatalf("before: %d", r.Status)
	}
	if _, err := f.lab.Revoke(good, RevokeOptions{Reason: ocspwire.ReasonSuperseded}); err != nil {
		t.Fatal(err)
	}
	r, err := ocsp.ParseResponse(f.ask(t, f.one(t, good)).Raw, f.lab.CA)
	if err != nil || r.Status != ocsp.Revoked || r.RevocationReason != ocsp.Superseded {
		t.Fatalf("first answer after the revocation: %+v, %v", r, err)
	}
	// A row issued meanwhile is known at once too.
	is, err := f.lab.Issue(IssueOptions{Names: []string{"new.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := ocsp.ParseResponse(f.ask(t, f.one(t, is.Cert.SerialNumber)).Raw, f.lab.CA); r.Status != ocsp.Good {
		t.Errorf("new row: status %d", r.Status)
	}
}

func TestSourceKeepsTheLastGoodIndex(t *testing.T) {
	f := newSourceFixture(t)
	good := f.leaves[0].Cert.SerialNumber
	data, err := os.ReadFile(f.lab.Path(IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(f.lab.Path(IndexFile), []byte("this is not an index\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, _ := ocsp.ParseResponse(f.ask(t, f.one(t, good)).Raw, f.lab.CA); r == nil || r.Status != ocsp.Good {
		t.Fatal("a broken index.txt stopped the answers")
	}
	// E row, written the way openssl ca -updatedb does (in place): noticed by size and mtime.
	expired := bytes.Replace(data, []byte("V\t"), []byte("E\t"), 2)
	if err := os.WriteFile(f.lab.Path(IndexFile), expired, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := ocsp.ParseResponse(f.ask(t, f.one(t, good)).Raw, f.lab.CA)
	if err != nil || r.Status != ocsp.Unknown {
		t.Errorf("E row: %+v, %v; want unknown", r, err)
	}
	if f.src.Len() != 4 {
		t.Errorf("Len = %d", f.src.Len())
	}
}

func TestSourceFreshAnswers(t *testing.T) {
	f := newSourceFixture(t)
	good, revoked := f.leaves[0].Cert.SerialNumber, f.leaves[1].Cert.SerialNumber
	nonce := []byte{0x04, 0x03, 1, 2, 3}
	req := &responder.Request{Request: ocspwire.Request{Nonce: nonce, CertIDs: []ocspwire.CertID{
		certIDFor(t, f.lab.CA, good, crypto.SHA1), certIDFor(t, f.lab.CA, revoked, crypto.SHA256),
		certIDFor(t, f.lab.CA, big.NewInt(0x7777), crypto.SHA1)}}}
	resp := f.ask(t, req)
	gotNonce, singles := inspectResponse(t, resp.Raw)
	if !bytes.Equal(gotNonce, nonce) || singles != 3 {
		t.Errorf("nonce %x, %d SingleResponses", gotNonce, singles)
	}
	for _, c := range []struct {
		serial *big.Int
		status int
	}{{good, ocsp.Good}, {revoked, ocsp.Revoked}, {big.NewInt(0x7777), ocsp.Unknown}} {
		r, err := ocsp.ParseResponseForCert(resp.Raw, &x509.Certificate{SerialNumber: c.serial}, f.lab.CA)
		if err != nil || r.Status != c.status {
			t.Errorf("serial %x: %+v, %v", c.serial, r, err)
		}
	}
	// Signed afresh for every request with a nonce, so each answer is new.
	if again := f.ask(t, req); bytes.Equal(again.Raw, resp.Raw) || again.ETag == resp.ETag {
		t.Error("a nonce request was answered from a cache")
	}
}

func TestSourceByKey(t *testing.T) {
	f := newSourceFixture(t)
	cfg := f.lab.SourceConfig()
	cfg.ByKey = true
	src, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := src.Response(context.Background(), f.one(t, f.leaves[0].Cert.SerialNumber))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ocsp.ParseResponse(resp.Raw, f.lab.CA)
	if err != nil || len(r.ResponderKeyHash) != 20 || r.RawResponderName != nil {
		t.Fatalf("byKey: %+v, %v", r, err)
	}
}

func TestSourceIssuerSigns(t *testing.T) {
	f := newSourceFixture(t)
	src, err := NewSource(SourceConfig{IndexFile: f.lab.Path(IndexFile), Issuer: f.lab.CA, Key: f.lab.CAKey})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := src.Response(context.Background(), f.one(t, f.leaves[0].Cert.SerialNumber))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ocsp.ParseResponse(resp.Raw, f.lab.CA)
	if err != nil || r.Certificate != nil || r.Status != ocsp.Good {
		t.Fatalf("issuer-signed: %+v, %v", r, err)
	}
}

func TestNewSourceErrors(t *testing.T) {
	f := newSourceFixture(t)
	other := newTestLab(t, KeyECDSA)
	leaf := f.leaves[0]
	leafBundle, _, err := loadCert(leaf.CertFile, "")
	if err != nil {
		t.Fatal(err)
	}
	_, leafKey, err := loadCert(leaf.CertFile, leaf.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	base := f.lab.SourceConfig()
	tests := []struct {
		name  string
		edit  func(*SourceConfig)
		isErr error
	}{
		{"key of another", func(c *SourceConfig) { c.Key = other.SignerKey }, nil},
		{"signer of another CA", func(c *SourceConfig) { c.Signer, c.Key = other.Signer, other.SignerKey }, ErrSignerNotAuthorized},
		{"leaf without OCSPSigning", func(c *SourceConfig) { c.Signer, c.Key = leafBundle, leafKey }, ErrSignerNotAuthorized},
		{"no index", func(c *SourceConfig) { c.IndexFile = f.lab.Path("missing.txt") }, os.ErrNotExist},
		{"short validity", func(c *SourceConfig) { c.Validity = time.Second }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			_, err := NewSource(cfg)
			if err == nil || (tt.isErr != nil && !errors.Is(err, tt.isErr)) {
				t.Fatalf("err = %v, want %v", err, tt.isErr)
			}
		})
	}
}

func TestSourceFaults(t *testing.T) {
	f := newSourceFixture(t)
	good := f.leaves[0].Cert.SerialNumber
	tests := []struct {
		kind  responder.FaultKind
		check func(t *testing.T, r *ocsp.Response, err error, raw []byte)
	}{
		{responder.FaultExpired, func(t *testing.T, r *ocsp.Response, err error, _ []byte) {
			if err != nil || !r.NextUpdate.Before(labNow) {
				t.Errorf("nextUpdate %v, %v", r.NextUpdate, err)
			}
		}},
		{responder.FaultNotYetValid, func(t *testing.T, r *ocsp.Response, err error, _ []byte) {
			if err != nil || !r.ThisUpdate.After(labNow.Add(5*time.Minute)) {
				t.Errorf("thisUpdate %v, %v", r.ThisUpdate, err)
			}
		}},
		{responder.FaultNoNextUpdate, func(t *testing.T, r *ocsp.Response, err error, _ []byte) {
			if err != nil || !r.NextUpdate.IsZero() {
				t.Errorf("nextUpdate %v, %v", r.NextUpdate, err)
			}
		}},
		{responder.FaultWrongSigner, func(t *testing.T, r *ocsp.Response, err error, _ []byte) {
			if err == nil {
				t.Error("a response signed by the rogue signer verified")
			}
		}},
		{responder.FaultBadSignature, func(t *testing.T, r *ocsp.Response, err error, _ []byte) {
			if err == nil {
				t.Error("a corrupted signature verified")
			}
		}},
		{responder.FaultWrongSerial, func(t *testing.T, r *ocsp.Response, err error, _ []byte) {
			if err != nil || r.SerialNumber.Cmp(new(big.Int).Add(good, big.NewInt(1))) != 0 {
				t.Errorf("serial %x, %v", r.SerialNumber, err)
			}
		}},
		{responder.FaultWrongNonce, func(t *testing.T, r *ocsp.Response, err error, raw []byte) {
			nonce, _ := inspectResponse(t, raw)
			if err != nil || len(nonce) != 18 || bytes.Equal(nonce, []byte{0x04, 0x01, 0x07}) {
				t.Errorf("nonce %x, %v", nonce, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			req := f.one(t, good)
			req.Nonce = []byte{0x04, 0x01, 0x07}
			req.Fault = responder.Fault{Kind: tt.kind}
			resp := f.ask(t, req)
			r, err := ocsp.ParseResponse(resp.Raw, f.lab.CA)
			tt.check(t, r, err, resp.Raw)
		})
	}
	t.Run("not a signing fault", func(t *testing.T) {
		req := f.one(t, good)
		req.Fault = responder.Fault{Kind: responder.FaultDelay}
		if _, err := f.src.Response(context.Background(), req); !errors.Is(err, responder.ErrUnsupportedFault) {
			t.Errorf("err = %v", err)
		}
	})
	// A fault never lands in the cache of pre-signed responses.
	r, err := ocsp.ParseResponse(f.ask(t, f.one(t, good)).Raw, f.lab.CA)
	if err != nil || r.SerialNumber.Cmp(good) != 0 || !r.NextUpdate.After(labNow) {
		t.Errorf("after the faults: %+v, %v", r, err)
	}
}

// inspectResponse returns the nonce extnValue of a successful response (nil when none) and the number of
// SingleResponses: what x/crypto/ocsp does not expose.
func inspectResponse(t *testing.T, der []byte) ([]byte, int) {
	t.Helper()
	in := cryptobyte.String(der)
	var resp, rb, basicDER, basic, tbs, responses cryptobyte.String
	var status int
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&resp, cbasn1.SEQUENCE) || !resp.ReadASN1Enum(&status) ||
		!resp.ReadASN1(&rb, cbasn1.Tag(0).Constructed().ContextSpecific()) || !rb.ReadASN1(&rb, cbasn1.SEQUENCE) ||
		!rb.ReadASN1ObjectIdentifier(&oid) || !rb.ReadASN1(&basicDER, cbasn1.OCTET_STRING) ||
		!basicDER.ReadASN1(&basic, cbasn1.SEQUENCE) || !basic.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		t.Fatal("not a basic OCSP response")
	}
	var responderID cryptobyte.String
	var tag cbasn1.Tag
	if !tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || !tbs.ReadAnyASN1(&responderID, &tag) {
		t.Fatal("bad responderID")
	}
	var produced time.Time
	if !tbs.ReadASN1GeneralizedTime(&produced) || !tbs.ReadASN1(&responses, cbasn1.SEQUENCE) {
		t.Fatal("bad producedAt or responses")
	}
	n := 0
	for !responses.Empty() {
		if !responses.SkipASN1(cbasn1.SEQUENCE) {
			t.Fatal("bad SingleResponse")
		}
		n++
	}
	var exts, seq cryptobyte.String
	var present bool
	if !tbs.ReadOptionalASN1(&exts, &present, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		t.Fatal("bad responseExtensions")
	}
	if !present {
		return nil, n
	}
	exts.ReadASN1(&seq, cbasn1.SEQUENCE)
	for !seq.Empty() {
		var ext, value cryptobyte.String
		var id asn1.ObjectIdentifier
		if !seq.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&id) || !ext.ReadASN1(&value, cbasn1.OCTET_STRING) {
			t.Fatal("bad extension")
		}
		if id.Equal(ocspwire.OIDNonce) {
			return value, n
		}
	}
	return nil, n
}
