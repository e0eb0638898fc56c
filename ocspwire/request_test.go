package ocspwire_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"staple/ocspwire"
)

func TestParseRequestFixtures(t *testing.T) {
	tests := []struct {
		file     string
		certs    int
		hash     crypto.Hash
		nonceLen int // of the extnValue; 0 = no nonce
		signed   bool
	}{
		{"openssl-sha1.der", 1, crypto.SHA1, 0, false},
		{"openssl-sha1-nonce.der", 1, crypto.SHA1, 18, false},
		{"openssl-sha256.der", 1, crypto.SHA256, 0, false},
		{"openssl-3certs-nonce.der", 3, crypto.SHA1, 18, false},
		{"openssl-signed.der", 1, crypto.SHA1, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			der := mustRead(t, filepath.Join("testdata/requests", tt.file))
			req, err := ocspwire.ParseRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			if len(req.CertIDs) != tt.certs || len(req.Nonce) != tt.nonceLen || req.HasNonce() != (tt.nonceLen > 0) || req.Signed != tt.signed {
				t.Fatalf("%d certs, nonce %x, signed %v", len(req.CertIDs), req.Nonce, req.Signed)
			}
			if tt.nonceLen > 0 && (req.Nonce[0] != 0x04 || int(req.Nonce[1]) != tt.nonceLen-2) {
				t.Errorf("nonce is not an OCTET STRING: %x", req.Nonce)
			}
			if inner, ok := ocspwire.UnwrapNonce(req.Nonce); tt.nonceLen > 0 && (!ok || len(inner) != tt.nonceLen-2) {
				t.Errorf("UnwrapNonce(%x) = %x, %v", req.Nonce, inner, ok)
			}
			for _, id := range req.CertIDs {
				if id.Hash != tt.hash || len(id.IssuerNameHash) != tt.hash.Size() || len(id.IssuerKeyHash) != tt.hash.Size() {
					t.Errorf("CertID %+v", id)
				}
			}
			// x/crypto agrees on the first certificate (it keeps nothing else, and cannot read a signed request's
			// requestorName at all).
			if tt.signed {
				return
			}
			x, err := ocsp.ParseRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			first := req.CertIDs[0]
			if x.SerialNumber.Cmp(first.Serial) != 0 || !bytes.Equal(x.IssuerNameHash, first.IssuerNameHash) ||
				!bytes.Equal(x.IssuerKeyHash, first.IssuerKeyHash) || x.HashAlgorithm != first.Hash {
				t.Errorf("x/crypto reads %+v, we read %+v", x, first)
			}
		})
	}
	req, _ := ocspwire.ParseRequest(mustRead(t, "testdata/requests/openssl-3certs-nonce.der"))
	if req.CertIDs[2].Serial.Cmp(big.NewInt(0x9999)) != 0 {
		t.Errorf("third serial %X", req.CertIDs[2].Serial)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseRequestXCrypto(t *testing.T) {
	issuer := selfSigned(t)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		t.Run(h.String(), func(t *testing.T) {
			leaf := &x509.Certificate{SerialNumber: big.NewInt(0x1001)}
			der, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: h})
			if err != nil {
				t.Fatal(err)
			}
			req, err := ocspwire.ParseRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			id := req.CertIDs[0]
			if id.Hash != h || !id.HashAlgorithm.Equal(ocspwire.HashOID(h)) || id.Serial.Int64() != 0x1001 || req.HasNonce() {
				t.Errorf("%+v", req)
			}
			if !id.Matches(issuer, leaf.SerialNumber) {
				t.Errorf("the CertID x/crypto made does not match its issuer")
			}
		})
	}
}

// TestEncodeRequest has x/crypto read what EncodeRequest writes, and ParseRequest read it back.
func TestEncodeRequest(t *testing.T) {
	issuer := selfSigned(t)
	serial := big.NewInt(0x1234)
	tests := []struct {
		name  string
		hash  crypto.Hash
		nonce []byte
	}{
		{"SHA-1, no nonce", crypto.SHA1, nil},
		{"SHA-256 with a nonce", crypto.SHA256, bytes.Repeat([]byte{7}, 16)},
		{"SHA-512 with a one-byte nonce", crypto.SHA512, []byte{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ocspwire.NewCertID(issuer, serial, tt.hash)
			if err != nil {
				t.Fatal(err)
			}
			der, err := ocspwire.EncodeRequest([]ocspwire.CertID{id}, tt.nonce)
			if err != nil {
				t.Fatal(err)
			}
			x, err := ocsp.ParseRequest(der)
			if err != nil || x.HashAlgorithm != tt.hash || x.SerialNumber.Cmp(serial) != 0 || !bytes.Equal(x.IssuerKeyHash, id.IssuerKeyHash) {
				t.Fatalf("x/crypto reads %+v, %v", x, err)
			}
			req, err := ocspwire.ParseRequest(der)
			if err != nil || len(req.CertIDs) != 1 || !req.CertIDs[0].Equal(id) {
				t.Fatalf("round trip: %+v %v", req, err)
			}
			inner, ok := ocspwire.UnwrapNonce(req.Nonce)
			if req.HasNonce() != (tt.nonce != nil) || tt.nonce != nil && (!ok || !bytes.Equal(inner, tt.nonce)) {
				t.Errorf("nonce %x, want %x wrapped", req.Nonce, tt.nonce)
			}
		})
	}
	if _, err := ocspwire.EncodeRequest([]ocspwire.CertID{{Hash: crypto.MD5, Serial: serial}}, nil); !errors.Is(err, ocspwire.ErrUnsupportedHash) {
		t.Errorf("a CertID hash without an OID: %v", err)
	}
}

func selfSigned(t testing.TB) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reqSpec describes a request for buildRequest; the zero value is a one-certificate SHA-1 request.
type reqSpec struct {
	version         int64 // written only when explicitVersion is set
	explicitVersion bool
	certs           int
	hashOID         asn1.ObjectIdentifier
	hashParams      []byte // DER after the OID; nil = NULL
	nameHashLen     int
	requestorName   bool
	exts            [][3][]byte // oid DER, critical (1 byte), value
	singleExts      [][3][]byte
	trailingTBS     []byte
	trailingOuter   []byte
	signature       bool
	noRequestList   bool
	negativeSerial  bool
	firstSerial     *big.Int // nil: 0x1000; later certificates count up from it
}

var nonceOIDDER = mustOIDDER(ocspwire.OIDNonce)

func mustOIDDER(oid asn1.ObjectIdentifier) []byte {
	der, err := asn1.Marshal(oid)
	if err != nil {
		panic(err)
	}
	return der
}

// buildRequest encodes a request by hand, so that it can be wrong in every way.
func buildRequest(s reqSpec) []byte {
	if s.certs == 0 {
		s.certs = 1
	}
	if s.hashOID == nil {
		s.hashOID = ocspwire.HashOID(crypto.SHA1)
	}
	if s.nameHashLen == 0 {
		s.nameHashLen = 20
	}
	addExts := func(b *cryptobyte.Builder, exts [][3][]byte) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, e := range exts {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddBytes(e[0])
					if len(e[1]) > 0 {
						b.AddASN1Boolean(true)
					}
					b.AddASN1OctetString(e[2])
				})
			}
		})
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			if s.explicitVersion {
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(s.version) })
			}
			if s.requestorName {
				b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte("client.test")) })
				})
			}
			if !s.noRequestList {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for i := range s.certs {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
									b.AddASN1ObjectIdentifier(s.hashOID)
									if s.hashParams == nil {
										b.AddASN1NULL()
									} else {
										b.AddBytes(s.hashParams)
									}
								})
								b.AddASN1OctetString(make([]byte, s.nameHashLen))
								b.AddASN1OctetString(make([]byte, 20))
								serial := big.NewInt(int64(0x1000 + i))
								if s.firstSerial != nil {
									serial.Add(s.firstSerial, big.NewInt(int64(i)))
								}
								if s.negativeSerial {
									serial.Neg(serial)
								}
								b.AddASN1BigInt(serial)
							})
							if s.singleExts != nil {
								b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { addExts(b, s.singleExts) })
							}
						})
					}
				})
			}
			if s.exts != nil {
				b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { addExts(b, s.exts) })
			}
			b.AddBytes(s.trailingTBS)
		})
		if s.signature {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1NULL() })
			})
		}
		b.AddBytes(s.trailingOuter)
	})
	return b.BytesOrPanic()
}

func TestParseRequestCases(t *testing.T) {
	nonce := [3][]byte{nonceOIDDER, nil, {0x04, 0x02, 0xab, 0xcd}}
	otherExt := [3][]byte{mustOIDDER(asn1.ObjectIdentifier{1, 2, 3, 4}), nil, {0x05, 0x00}}
	criticalExt := [3][]byte{mustOIDDER(asn1.ObjectIdentifier{1, 2, 3, 4}), {1}, {0x05, 0x00}}
	tests := []struct {
		name string
		der  []byte
		ok   bool
	}{
		{"minimal", buildRequest(reqSpec{}), true},
		{"explicit v1", buildRequest(reqSpec{explicitVersion: true}), true},
		{"requestorName", buildRequest(reqSpec{requestorName: true}), true},
		{"nonce", buildRequest(reqSpec{exts: [][3][]byte{nonce}}), true},
		{"nonce and another", buildRequest(reqSpec{exts: [][3][]byte{otherExt, nonce}}), true},
		{"signed", buildRequest(reqSpec{signature: true}), true},
		{"64 certificates", buildRequest(reqSpec{certs: ocspwire.MaxCertsPerRequest}), true},
		{"absent hash parameters", buildRequest(reqSpec{hashParams: []byte{}}), true},
		{"unknown hash", buildRequest(reqSpec{hashOID: asn1.ObjectIdentifier{1, 2, 3}, nameHashLen: 7}), true},
		{"non-critical single extension", buildRequest(reqSpec{singleExts: [][3][]byte{otherExt}}), true},
		{"negative serial", buildRequest(reqSpec{negativeSerial: true}), true},
		{"version 2", buildRequest(reqSpec{explicitVersion: true, version: 1}), false},
		{"65 certificates", buildRequest(reqSpec{certs: ocspwire.MaxCertsPerRequest + 1}), false},
		{"no request list", buildRequest(reqSpec{noRequestList: true}), false},
		{"two nonces", buildRequest(reqSpec{exts: [][3][]byte{nonce, nonce}}), false},
		{"empty nonce", buildRequest(reqSpec{exts: [][3][]byte{{nonceOIDDER, nil, {}}}}), false},
		{"oversize nonce", buildRequest(reqSpec{exts: [][3][]byte{{nonceOIDDER, nil, make([]byte, 200)}}}), false},
		{"critical unknown extension", buildRequest(reqSpec{exts: [][3][]byte{criticalExt}}), false},
		{"critical single extension", buildRequest(reqSpec{singleExts: [][3][]byte{criticalExt}}), false},
		{"hash parameters not NULL", buildRequest(reqSpec{hashParams: []byte{0x02, 0x01, 0x00}}), false},
		{"SHA-1 OID with a SHA-256 length", buildRequest(reqSpec{nameHashLen: 32}), false},
		{"trailing data in tbsRequest", buildRequest(reqSpec{trailingTBS: []byte{0x05, 0x00}}), false},
		{"trailing data in OCSPRequest", buildRequest(reqSpec{trailingOuter: []byte{0x05, 0x00}}), false},
		{"trailing bytes", append(buildRequest(reqSpec{}), 0), false},
		{"empty", nil, false},
		{"garbage", []byte("garbage"), false},
		{"truncated", buildRequest(reqSpec{})[:40], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ocspwire.ParseRequest(tt.der)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if len(req.CertIDs) == 0 {
					t.Fatal("no CertIDs")
				}
				return
			}
			if !errors.Is(err, ocspwire.ErrMalformedRequest) {
				t.Fatalf("err = %v, want ErrMalformedRequest", err)
			}
		})
	}
}
