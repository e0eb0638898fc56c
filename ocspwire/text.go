package ocspwire

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Text decodes a DER OCSPResponse into the text `openssl ocsp -resp_text` prints, for people reading the
// cache. It parses and never verifies. An unsuccessful responseStatus is described, not an error; a
// response that does not parse is, as ParseResponse returns it.
func Text(der []byte) (string, error) {
	var b strings.Builder
	br, err := ParseResponse(der)
	var se *StatusError
	if errors.As(err, &se) {
		fmt.Fprintf(&b, "OCSP Response Data:\n    OCSP Response Status: %s (0x%x)\n", se.Status, int(se.Status))
		return b.String(), nil
	}
	if err != nil {
		return "", err
	}
	b.WriteString("OCSP Response Data:\n    OCSP Response Status: successful (0x0)\n    Response Type: Basic OCSP Response\n    Version: 1 (0x0)\n")
	if br.ResponderID.KeyHash == nil {
		var name pkix.RDNSequence
		if _, err := asn1.Unmarshal(br.ResponderID.Name, &name); err == nil {
			var n pkix.Name
			n.FillFromRDNSequence(&name)
			fmt.Fprintf(&b, "    Responder Id: %s\n", n.String())
		}
	} else {
		fmt.Fprintf(&b, "    Responder Id: %s\n", upperHex(br.ResponderID.KeyHash))
	}
	fmt.Fprintf(&b, "    Produced At: %s\n    Responses:\n", opensslTime(br.ProducedAt))
	for _, s := range br.Responses {
		writeSingle(&b, s)
	}
	if len(br.Extensions) > 0 {
		b.WriteString("    Response Extensions:\n")
		for _, e := range br.Extensions {
			name := e.Id.String()
			if e.Id.Equal(OIDNonce) {
				name = "OCSP Nonce"
			}
			fmt.Fprintf(&b, "        %s%s:\n            %s\n", name, critical(e.Critical), upperHex(e.Value))
		}
	}
	fmt.Fprintf(&b, "    Signature Algorithm: %s\n", sigAlgName(br.SignatureAlgorithm))
	for _, der := range br.Certs {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			b.WriteString("    Certificate: (does not parse)\n")
			continue
		}
		fmt.Fprintf(&b, "    Certificate:\n        Subject: %s\n        Issuer: %s\n        Not Before: %s\n        Not After : %s\n",
			c.Subject, c.Issuer, opensslTime(c.NotBefore), opensslTime(c.NotAfter))
	}
	return b.String(), nil
}

func writeSingle(b *strings.Builder, s SingleResponse) {
	id := s.CertID
	hashName := id.HashAlgorithm.String()
	if id.Hash != 0 {
		hashName = strings.ToLower(strings.ReplaceAll(id.Hash.String(), "-", ""))
	}
	fmt.Fprintf(b, "    Certificate ID:\n      Hash Algorithm: %s\n      Issuer Name Hash: %s\n      Issuer Key Hash: %s\n      Serial Number: %X\n",
		hashName, upperHex(id.IssuerNameHash), upperHex(id.IssuerKeyHash), id.Serial)
	fmt.Fprintf(b, "    Cert Status: %s\n", s.Status)
	if s.Status == Revoked {
		fmt.Fprintf(b, "    Revocation Time: %s\n", opensslTime(s.RevokedAt))
		if s.Reason != ReasonNone {
			fmt.Fprintf(b, "    Revocation Reason: %s (0x%x)\n", ReasonName(int(s.Reason)), int(s.Reason))
		}
	}
	fmt.Fprintf(b, "    This Update: %s\n", opensslTime(s.ThisUpdate))
	if !s.NextUpdate.IsZero() {
		fmt.Fprintf(b, "    Next Update: %s\n", opensslTime(s.NextUpdate))
	}
	for _, e := range s.Extensions {
		fmt.Fprintf(b, "        Extension: %s%s\n", e.Id, critical(e.Critical))
	}
	b.WriteString("\n")
}

func upperHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func critical(c bool) string {
	if c {
		return " (critical)"
	}
	return ""
}

// opensslTime formats t as OpenSSL prints ASN.1 times: "Nov 23 18:37:12 2026 GMT".
func opensslTime(t time.Time) string { return t.UTC().Format("Jan _2 15:04:05 2006 GMT") }

// sigAlgName returns OpenSSL's name of the signature algorithm of a DER AlgorithmIdentifier, or its dotted
// OID when OpenSSL's name is not known here.
func sigAlgName(algID []byte) string {
	in := cryptobyte.String(algID)
	var ai cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !in.ReadASN1(&ai, cbasn1.SEQUENCE) || !ai.ReadASN1ObjectIdentifier(&oid) {
		return "(unreadable)"
	}
	for _, a := range signatureAlgorithms {
		if oid.Equal(a.oid) {
			return a.name
		}
	}
	return oid.String()
}
