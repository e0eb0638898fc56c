package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"staple/atomicfile"
)

// Errors of the PEM and key loader.
var (
	ErrNoPEM           = errors.New("certs: no PEM certificate or key found")
	ErrNoCertificate   = errors.New("certs: no certificate found")
	ErrEncryptedKey    = errors.New("certs: private key is encrypted (staple needs an unencrypted key: decrypt it with 'openssl pkey -in KEY -out KEY.plain')")
	ErrUnsupportedKey  = errors.New("certs: unsupported private key type")
	ErrUnsupportedPEM  = errors.New("certs: unsupported PEM block")
	ErrBadCertificate  = errors.New("certs: certificate does not parse")
	ErrBadPrivateKey   = errors.New("certs: private key does not parse")
	ErrKeyMismatch     = errors.New("certs: private key does not match the certificate")
	ErrSeveralKeys     = errors.New("certs: more than one private key")
	ErrAmbiguousLeaf   = errors.New("certs: cannot tell which certificate is the leaf")
	errTrailingGarbage = errors.New("certs: data after the last PEM block is not PEM")
)

// MaxFileSize bounds what LoadFile reads: the largest public CA bundles are under 300 KiB.
const MaxFileSize = 8 << 20

// Bundle is what one PEM (or DER) file holds: certificates in file order and private keys.
type Bundle struct {
	Name  string // the file name, used in every error
	Certs []*x509.Certificate
	Keys  []crypto.Signer
}

// LoadFile reads and parses a PEM bundle (or a single DER certificate) from path, a file or a stream
// (atomicfile.Read) of at most MaxFileSize bytes.
func LoadFile(path string) (*Bundle, error) {
	data, err := atomicfile.Read(path, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	return ParsePEM(data, path)
}

// ParsePEM parses certificates ("CERTIFICATE") and private keys ("PRIVATE KEY" PKCS#8, "RSA PRIVATE KEY"
// PKCS#1, "EC PRIVATE KEY" SEC1; RSA, ECDSA and Ed25519) from data, in any order. "EC PARAMETERS" blocks are
// skipped. Encrypted keys, CSRs and other blocks are errors naming the file and the block. Data holding no
// PEM at all is tried as one DER certificate. name is used in errors.
func ParsePEM(data []byte, name string) (*Bundle, error) { return parsePEM(data, name, nil) }

// parsePEM is ParsePEM; decrypt, if not nil, turns an encrypted key's block into a plain one.
func parsePEM(data []byte, name string, decrypt func(*pem.Block, int) (*pem.Block, error)) (*Bundle, error) {
	b := &Bundle{Name: name}
	rest := data
	blocks := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		blocks++
		if decrypt != nil && encrypted(block) {
			var err error
			if block, err = decrypt(block, blocks); err != nil {
				return nil, err
			}
		}
		if err := b.add(block, blocks); err != nil {
			return nil, err
		}
	}
	if blocks == 0 {
		if c, err := x509.ParseCertificate(data); err == nil {
			b.Certs = append(b.Certs, c)
			return b, nil
		}
		return nil, fmt.Errorf("%w in %s", ErrNoPEM, name)
	}
	if strings.Contains(string(rest), "-----BEGIN") {
		return nil, fmt.Errorf("%w: %s has a PEM block that does not decode (bad base64 or a missing END line)", errTrailingGarbage, name)
	}
	return b, nil
}

func (b *Bundle) add(block *pem.Block, n int) error {
	if encrypted(block) {
		return fmt.Errorf("%w: %s (PEM block %d)", ErrEncryptedKey, b.Name, n)
	}
	switch block.Type {
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%w: %s (PEM block %d): %v", ErrBadCertificate, b.Name, n, err)
		}
		b.Certs = append(b.Certs, c)
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
		k, err := parseKey(block)
		if err != nil {
			return fmt.Errorf("%w: %s (PEM block %d)", err, b.Name, n)
		}
		b.Keys = append(b.Keys, k)
	case "EC PARAMETERS":
		// written by 'openssl ecparam -genkey' before the key; carries nothing we need
	default:
		return fmt.Errorf("%w: %s has a %q block (PEM block %d); want CERTIFICATE or PRIVATE KEY", ErrUnsupportedPEM, b.Name, block.Type, n)
	}
	return nil
}

func parseKey(block *pem.Block) (crypto.Signer, error) {
	var (
		key any
		err error
	)
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (%s): %v", ErrBadPrivateKey, block.Type, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, key)
}

// publicKeyEqual reports whether the certificate's public key is the key's public half.
func publicKeyEqual(c *x509.Certificate, k crypto.Signer) bool {
	pub, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(k.Public())
}
