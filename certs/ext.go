package certs

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// oidTLSFeature is id-pe-tlsfeature (RFC 7633), which crypto/x509 does not parse.
var oidTLSFeature = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}

// statusRequest is the TLS extension number of status_request (RFC 6066): Must-Staple.
const statusRequest = 5

// ErrBadTLSFeature is returned by TLSFeatures for an extension that is not a SEQUENCE OF INTEGER.
var ErrBadTLSFeature = errors.New("certs: malformed TLS Feature extension")

// OCSPURLs returns every AIA OCSP responder URL of c, in the certificate's order.
func OCSPURLs(c *x509.Certificate) []string { return slices.Clone(c.OCSPServer) }

// CAIssuerURLs returns the AIA CA Issuers URLs of c, in order.
func CAIssuerURLs(c *x509.Certificate) []string { return slices.Clone(c.IssuingCertificateURL) }

// CRLURLs returns the CRL distribution point URLs of c, in order.
func CRLURLs(c *x509.Certificate) []string { return slices.Clone(c.CRLDistributionPoints) }

// TLSFeatures returns the TLS extension numbers listed in c's TLS Feature extension (RFC 7633), nil when c
// has none.
func TLSFeatures(c *x509.Certificate) ([]int, error) {
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidTLSFeature) {
			continue
		}
		s := cryptobyte.String(e.Value)
		var seq cryptobyte.String
		if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
			return nil, ErrBadTLSFeature
		}
		features := []int{}
		for !seq.Empty() {
			var v int
			if !seq.ReadASN1Integer(&v) {
				return nil, ErrBadTLSFeature
			}
			features = append(features, v)
		}
		return features, nil
	}
	return nil, nil
}

// MustStaple reports whether c carries the TLS Feature extension with status_request (5): clients that honour
// it must refuse a handshake without a valid staple. A malformed extension counts as Must-Staple, the safe
// reading for a server.
func MustStaple(c *x509.Certificate) bool {
	f, err := TLSFeatures(c)
	return err != nil || slices.Contains(f, statusRequest)
}

// Names returns the names a certificate is for: its DNS names, IP addresses and e-mail addresses, or its
// common name when it has none of those.
func Names(c *x509.Certificate) []string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	names = append(names, c.EmailAddresses...)
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	return names
}

// Describe returns a one-line description of c for messages: its first name and its serial.
func Describe(c *x509.Certificate) string {
	name := c.Subject.String()
	if n := Names(c); len(n) > 0 {
		name = n[0]
	}
	return fmt.Sprintf("%s (serial %X)", name, c.SerialNumber)
}
