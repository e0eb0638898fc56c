package ocspwire_test

import (
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"staple/internal/testpki"
	"staple/ocspwire"
)

// TestText compares Text with what it printed when it lived in ocspfetch, for the real-world responses and
// unsuccessful statuses.
func TestText(t *testing.T) {
	tests := []struct {
		name string
		der  []byte
		want string
	}{
		{"gts-1c3-good.der", mustRead(t, filepath.Join("../testdata/ocsp", "gts-1c3-good.der")), `OCSP Response Data:
    OCSP Response Status: successful (0x0)
    Response Type: Basic OCSP Response
    Version: 1 (0x0)
    Responder Id: 8A747FAF85CDEE95CD3D9CD0E24614F371351D27
    Produced At: Nov  7 14:25:53 2021 GMT
    Responses:
    Certificate ID:
      Hash Algorithm: sha1
      Issuer Name Hash: C72E798ADDFF6134B3BAED4742B8BBC6C0240763
      Issuer Key Hash: 8A747FAF85CDEE95CD3D9CD0E24614F371351D27
      Serial Number: F374542E3C7A68360A00000001103462
    Cert Status: good
    This Update: Nov  7 14:25:51 2021 GMT
    Next Update: Nov 14 13:25:50 2021 GMT

    Signature Algorithm: sha256WithRSAEncryption
`},
		{"strongswan-good-delegated-nonce.der", mustRead(t, filepath.Join("../testdata/ocsp", "strongswan-good-delegated-nonce.der")), `OCSP Response Data:
    OCSP Response Status: successful (0x0)
    Response Type: Basic OCSP Response
    Version: 1 (0x0)
    Responder Id: CN=ocsp.strongswan.org,OU=OCSP Signing Authority,O=Linux strongSwan,C=CH
    Produced At: Sep 27 09:54:28 2011 GMT
    Responses:
    Certificate ID:
      Hash Algorithm: sha1
      Issuer Name Hash: 139DA09EF432AB8FE2895667FAD0D4E3358671B9
      Issuer Key Hash: 5DA7DD700651327EE7B66DB3B5E5E060EA2E4DEF
      Serial Number: 1D
    Cert Status: good
    This Update: Sep 27 09:54:28 2011 GMT
    Next Update: Sep 27 09:59:28 2011 GMT

    Response Extensions:
        OCSP Nonce:
            041016897D913AB525A445FEC9FDC2E508A4
    Signature Algorithm: sha1WithRSAEncryption
    Certificate:
        Subject: CN=ocsp.strongswan.org,OU=OCSP Signing Authority,O=Linux strongSwan,C=CH
        Issuer: CN=strongSwan Root CA,O=Linux strongSwan,C=CH
        Not Before: Nov 24 12:51:53 2009 GMT
        Not After : Nov 23 12:51:53 2014 GMT
`},
		{"cacert-good-delegated.der", mustRead(t, filepath.Join("../testdata/ocsp", "cacert-good-delegated.der")), `OCSP Response Data:
    OCSP Response Status: successful (0x0)
    Response Type: Basic OCSP Response
    Version: 1 (0x0)
    Responder Id: CN=ocsp.cacert.org,OU=Server Administration,O=CAcert Inc.,L=Sydney,ST=NSW,C=AU
    Produced At: Jan 13 08:50:42 2012 GMT
    Responses:
    Certificate ID:
      Hash Algorithm: sha1
      Issuer Name Hash: F22A621693A6DA5AD0B98D3A135E35D1EB183661
      Issuer Key Hash: 75A871604C8813F078D98977B56DC589DFBCB17A
      Serial Number: BCE0
    Cert Status: good
    This Update: Jan 13 07:20:49 2012 GMT
    Next Update: Jan 15 08:50:42 2012 GMT

    Response Extensions:
        OCSP Nonce:
            04177369D2C56FC77E2EB02FCCC3E280D62ACED3DE8F271BB2
    Signature Algorithm: sha1WithRSAEncryption
    Certificate:
        Subject: CN=ocsp.cacert.org,OU=Server Administration,O=CAcert Inc.,L=Sydney,ST=NSW,C=AU
        Issuer: CN=CAcert Class 3 Root,OU=http://www.CAcert.org,O=CAcert Inc.
        Not Before: Aug 23 00:08:37 2011 GMT
        Not After : Aug 22 00:08:37 2013 GMT
`},
		{"tryLater", ocspwire.ErrorResponse(ocspwire.TryLater), `OCSP Response Data:
    OCSP Response Status: trylater (0x3)
`},
		{"status 4 (unused)", ocspwire.ErrorResponse(4), `OCSP Response Data:
    OCSP Response Status: unknown (0x4)
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ocspwire.Text(tt.der)
			if err != nil || got != tt.want {
				t.Errorf("Text = %v\n%s\nwant\n%s", err, got, tt.want)
			}
		})
	}
	if _, err := ocspwire.Text([]byte("garbage")); !errors.Is(err, ocspwire.ErrMalformed) {
		t.Errorf("Text of garbage: %v", err)
	}
}

// TestTextRevoked checks the lines of a revoked SingleResponse and of a byKey ResponderID.
func TestTextRevoked(t *testing.T) {
	ca := testpki.NewRoot(t, "Text CA", testpki.ECDSAP256)
	der := signCase{edit: func(t testing.TB, ca *testpki.CA, d *ocspwire.ResponseData, o *ocspwire.SignOptions) {
		s := &d.Responses[0]
		s.Status, s.RevokedAt, s.Reason = ocspwire.Revoked, now.Add(-time.Hour), ocspwire.ReasonCACompromise
		s.Extensions = []pkix.Extension{ocspwire.InvalidityDateExtension(now)}
		d.ResponderID, _ = ocspwire.NewResponderID(ca.Cert, true)
		d.Extensions = []pkix.Extension{ocspwire.NonceExtension([]byte("abc"))}
	}}.sign(t, ca)
	got, err := ocspwire.Text(der)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := ocspwire.NewResponderID(ca.Cert, true)
	for _, want := range []string{
		"    Responder Id: " + strings.ToUpper(hex.EncodeToString(id.KeyHash)) + "\n",
		"    Cert Status: revoked\n    Revocation Time: Dec 31 23:00:00 2025 GMT\n    Revocation Reason: cACompromise (0x2)\n",
		"        Extension: 2.5.29.24\n",
		"        OCSP Nonce:\n            0403616263\n",
		"    Signature Algorithm: ecdsa-with-SHA256\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Text lacks %q:\n%s", want, got)
		}
	}
}
