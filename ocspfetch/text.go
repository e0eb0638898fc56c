package ocspfetch

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Text decodes a DER OCSPResponse into the text `openssl ocsp -resp_text` prints, for people reading the
// cache. It parses and never verifies: use Verify for trust. An unsuccessful responseStatus is described,
// not an error; a response that does not parse is.
func Text(der []byte) (string, error) {
	var b strings.Builder
	br, err := parseResponse(der)
	if rse, ok := err.(*ResponderStatusError); ok {
		fmt.Fprintf(&b, "OCSP Response Data:\n    OCSP Response Status: %s (0x%x)\n", statusName(rse.Status), rse.Status)
		return b.String(), nil
	}
	if err != nil {
		return "", err
	}
	b.WriteString("OCSP Response Data:\n    OCSP Response Status: successful (0x0)\n    Response Type: Basic OCSP Response\n    Version: 1 (0x0)\n")
	if br.responderDN != nil {
		var name pkix.RDNSequence
		if _, err := asn1.Unmarshal(br.responderDN, &name); err == nil {
			var n pkix.Name
			n.FillFromRDNSequence(&name)
			fmt.Fprintf(&b, "    Responder Id: %s\n", n.String())
		}
	} else {
		fmt.Fprintf(&b, "    Responder Id: %s\n", strings.ToUpper(hex.EncodeToString(br.responderKey)))
	}
	fmt.Fprintf(&b, "    Produced At: %s\n    Responses:\n", opensslTime(br.producedAt))
	for _, s := range br.responses {
		hash := hashFromOID(s.hashOID)
		hashName := strings.ToLower(strings.ReplaceAll(hash.String(), "-", ""))
		if hash == 0 {
			hashName = s.hashOID.String()
		}
		fmt.Fprintf(&b, "    Certificate ID:\n      Hash Algorithm: %s\n      Issuer Name Hash: %s\n      Issuer Key Hash: %s\n      Serial Number: %X\n",
			hashName, strings.ToUpper(hex.EncodeToString(s.nameHash)), strings.ToUpper(hex.EncodeToString(s.keyHash)), s.serial)
		fmt.Fprintf(&b, "    Cert Status: %s\n", s.status)
		if s.status == Revoked {
			fmt.Fprintf(&b, "    Revocation Time: %s\n", opensslTime(s.revokedAt))
			if s.hasReason {
				fmt.Fprintf(&b, "    Revocation Reason: %s (0x%x)\n", reasonName(s.reason), s.reason)
			}
		}
		fmt.Fprintf(&b, "    This Update: %s\n", opensslTime(s.thisUpdate))
		if !s.nextUpdate.IsZero() {
			fmt.Fprintf(&b, "    Next Update: %s\n", opensslTime(s.nextUpdate))
		}
		for _, e := range s.extensions {
			fmt.Fprintf(&b, "        Extension: %s%s\n", e.id, critical(e.critical))
		}
		b.WriteString("\n")
	}
	if len(br.extensions) > 0 {
		b.WriteString("    Response Extensions:\n")
		for _, e := range br.extensions {
			name := e.id.String()
			if e.id.Equal(oidNonce) {
				name = "OCSP Nonce"
			}
			fmt.Fprintf(&b, "        %s%s:\n            %s\n", name, critical(e.critical), strings.ToUpper(hex.EncodeToString(e.value)))
		}
	}
	fmt.Fprintf(&b, "    Signature Algorithm: %s\n", sigAlgName(br.sigAlg))
	for _, der := range br.certs {
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

func critical(c bool) string {
	if c {
		return " (critical)"
	}
	return ""
}

// opensslTime formats t as OpenSSL prints ASN.1 times: "Nov 23 18:37:12 2026 GMT".
func opensslTime(t time.Time) string { return t.UTC().Format("Jan _2 15:04:05 2006 GMT") }

func statusName(s int) string {
	switch s {
	case 1:
		return "malformedrequest"
	case 2:
		return "internalerror"
	case 3:
		return "trylater"
	case 5:
		return "sigrequired"
	case 6:
		return "unauthorized"
	}
	return "unknown"
}

// reasonName returns RFC 5280's name for a CRL reason code, as OpenSSL prints it.
func reasonName(code int) string {
	names := []string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
		"cessationOfOperation", "certificateHold", "", "removeFromCRL", "privilegeWithdrawn", "aACompromise"}
	if code >= 0 && code < len(names) && names[code] != "" {
		return names[code]
	}
	return "unknown reason"
}

// ReasonName returns RFC 5280's name for a CRL reason code ("keyCompromise"), as OpenSSL prints it.
func ReasonName(code int) string { return reasonName(code) }

func sigAlgName(algID []byte) string {
	var ai pkix.AlgorithmIdentifier
	if _, err := asn1.Unmarshal(algID, &ai); err != nil {
		return "(unreadable)"
	}
	names := map[string]string{
		"1.2.840.113549.1.1.5":  "sha1WithRSAEncryption",
		"1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
		"1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
		"1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
		"1.2.840.113549.1.1.10": "rsassaPss",
		"1.2.840.10045.4.1":     "ecdsa-with-SHA1",
		"1.2.840.10045.4.3.2":   "ecdsa-with-SHA256",
		"1.2.840.10045.4.3.3":   "ecdsa-with-SHA384",
		"1.2.840.10045.4.3.4":   "ecdsa-with-SHA512",
		"1.3.101.112":           "ED25519",
	}
	if n, ok := names[ai.Algorithm.String()]; ok {
		return n
	}
	return ai.Algorithm.String()
}
