package ocspwire

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CertID identifies one certificate in a request or a SingleResponse (RFC 6960 §4.1.1): the hashes of its
// issuer's name and key, and its serial. The zero value names nothing and matches nothing.
type CertID struct {
	// HashAlgorithm is the OID of the hash. Parsers set it as read; an encoder writes Hash's OID when it is
	// nil, and this one when set (so a test can write an algorithm nobody knows).
	HashAlgorithm asn1.ObjectIdentifier
	// Hash is the hash HashAlgorithm names; zero for one staple does not know, which matches no issuer.
	Hash crypto.Hash
	// IssuerNameHash and IssuerKeyHash are the hashes of the issuer's DER subject and of its subjectPublicKey
	// bits.
	IssuerNameHash, IssuerKeyHash []byte
	// Serial is the certificate's serial number; nil names the issuer alone (see SameIssuer).
	Serial *big.Int
	// NoNullParams: the hash AlgorithmIdentifier has no parameters rather than NULL (both forms are seen).
	// Parsers set it as read; the encoder then leaves NULL out.
	NoNullParams bool
}

// NewCertID returns the CertID of the certificate with serial issued by issuer, hashed with h. A hash a
// CertID cannot name, or one not linked into the binary, is an error wrapping ErrUnsupportedHash.
func NewCertID(issuer *x509.Certificate, serial *big.Int, h crypto.Hash) (CertID, error) {
	if HashOID(h) == nil || !h.Available() {
		return CertID{}, fmt.Errorf("%w: %v", ErrUnsupportedHash, h)
	}
	bits, err := SubjectPublicKeyBits(issuer)
	if err != nil {
		return CertID{}, err
	}
	return CertID{Hash: h, IssuerNameHash: digest(h, issuer.RawSubject), IssuerKeyHash: digest(h, bits), Serial: serial}, nil
}

func digest(h crypto.Hash, data []byte) []byte {
	d := h.New()
	d.Write(data)
	return d.Sum(nil)
}

// SubjectPublicKeyBits returns the contents of c's subjectPublicKey BIT STRING: what an issuerKeyHash and a
// byKey ResponderID hash. A SubjectPublicKeyInfo that does not parse is an error wrapping ErrMalformed.
func SubjectPublicKeyBits(c *x509.Certificate) ([]byte, error) {
	in := cryptobyte.String(c.RawSubjectPublicKeyInfo)
	var spki cryptobyte.String
	var bits asn1.BitString
	if !in.ReadASN1(&spki, cbasn1.SEQUENCE) || !spki.SkipASN1(cbasn1.SEQUENCE) || !spki.ReadASN1BitString(&bits) {
		return nil, malformed("SubjectPublicKeyInfo of %q", c.Subject.CommonName)
	}
	return bits.Bytes, nil
}

// hashOID returns the OID the CertID is written with.
func (id CertID) hashOID() asn1.ObjectIdentifier {
	if id.HashAlgorithm != nil {
		return id.HashAlgorithm
	}
	return HashOID(id.Hash)
}

// SameIssuer reports whether id and o name the same issuer under the same hash algorithm, whatever their
// serials.
func (id CertID) SameIssuer(o CertID) bool {
	return id.hashOID().Equal(o.hashOID()) && bytes.Equal(id.IssuerNameHash, o.IssuerNameHash) &&
		bytes.Equal(id.IssuerKeyHash, o.IssuerKeyHash)
}

// Equal reports whether id and o name the same certificate: same hash algorithm, issuer hashes and serial.
func (id CertID) Equal(o CertID) bool {
	return id.SameIssuer(o) && id.Serial != nil && o.Serial != nil && id.Serial.Cmp(o.Serial) == 0
}

// Matches reports whether id names the certificate with serial issued by issuer: the whole CertID, not the
// serial alone. A CertID of a hash staple does not know matches nothing.
func (id CertID) Matches(issuer *x509.Certificate, serial *big.Int) bool {
	if id.Serial == nil || serial == nil || id.Serial.Cmp(serial) != 0 {
		return false
	}
	want, err := NewCertID(issuer, serial, id.Hash)
	return err == nil && id.Equal(want)
}

// add writes id as a DER CertID. A hash with no OID, and no HashAlgorithm, fails the builder.
func (id CertID) add(b *cryptobyte.Builder) {
	oid := id.hashOID()
	if oid == nil {
		b.SetError(fmt.Errorf("%w: %v", ErrUnsupportedHash, id.Hash))
		return
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			if !id.NoNullParams {
				b.AddASN1NULL()
			}
		})
		b.AddASN1OctetString(id.IssuerNameHash)
		b.AddASN1OctetString(id.IssuerKeyHash)
		b.AddASN1BigInt(id.Serial)
	})
}

// readCertID reads a DER CertID. The hashes are slices of the input; their lengths are not checked.
func readCertID(in *cryptobyte.String) (CertID, bool) {
	var s, alg cryptobyte.String
	id := CertID{Serial: new(big.Int)}
	if !in.ReadASN1(&s, cbasn1.SEQUENCE) || !s.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&id.HashAlgorithm) ||
		!s.ReadASN1Bytes(&id.IssuerNameHash, cbasn1.OCTET_STRING) ||
		!s.ReadASN1Bytes(&id.IssuerKeyHash, cbasn1.OCTET_STRING) ||
		!s.ReadASN1Integer(id.Serial) || !s.Empty() {
		return CertID{}, false
	}
	// The parameters are NULL or absent for every hash OCSP uses; anything else is not a CertID.
	id.NoNullParams = alg.Empty()
	if !id.NoNullParams && !readNull(&alg) {
		return CertID{}, false
	}
	id.Hash = hashFromOID(id.HashAlgorithm)
	return id, true
}

// readNull reads a NULL that must be all that is left of in.
func readNull(in *cryptobyte.String) bool {
	var null cryptobyte.String
	return in.ReadASN1(&null, cbasn1.NULL) && null.Empty() && in.Empty()
}
