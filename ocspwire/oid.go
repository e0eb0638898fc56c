package ocspwire

import (
	"crypto"
	"encoding/asn1"
)

// Object identifiers of RFC 6960 (id-pkix-ocsp and its extensions). They are shared values: never modify
// one.
var (
	OIDBasicResponse  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	OIDNonce          = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	OIDCRLReferences  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 3} // id-pkix-ocsp-crl
	OIDNoCheck        = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5} // id-pkix-ocsp-nocheck, in a signer's certificate
	OIDArchiveCutoff  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 6}
	OIDExtendedRevoke = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 9}
)

// Object identifiers of the CRL entry extensions a SingleResponse may carry (RFC 5280 §5.3), and of other
// single extensions seen in the wild.
var (
	OIDReasonCode          = asn1.ObjectIdentifier{2, 5, 29, 21}
	OIDHoldInstructionCode = asn1.ObjectIdentifier{2, 5, 29, 23}
	OIDInvalidityDate      = asn1.ObjectIdentifier{2, 5, 29, 24}
	OIDMicrosoftNextCRL    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 21, 4}     // Microsoft next CRL publish
	OIDSCTList             = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 5} // CT SCT list in OCSP (RFC 6962 §3.3)
)

// oidTLSFeature is id-pe-tlsfeature (RFC 7633), the certificate extension that promises a stapled response.
var oidTLSFeature = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}

// hashes are the hash algorithms a CertID, or RSA-PSS parameters, may name (RFC 6960 uses SHA-1; RFC 9919
// adds SHA-256).
var hashes = []struct {
	hash crypto.Hash
	oid  asn1.ObjectIdentifier
}{
	{crypto.SHA1, asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}},
	{crypto.SHA256, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}},
	{crypto.SHA384, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}},
	{crypto.SHA512, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}},
}

// RSASSA-PSS (RFC 4055): the signature algorithm, whose parameters name the hash, and its mask generation.
var (
	oidRSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
)

// HashOID returns the AlgorithmIdentifier OID of h, or nil when h is not one a CertID uses.
func HashOID(h crypto.Hash) asn1.ObjectIdentifier {
	for _, x := range hashes {
		if x.hash == h {
			return x.oid
		}
	}
	return nil
}

// hashFromOID returns the hash oid names, or zero for an algorithm staple does not know.
func hashFromOID(oid asn1.ObjectIdentifier) crypto.Hash {
	for _, x := range hashes {
		if x.oid.Equal(oid) {
			return x.hash
		}
	}
	return 0
}
