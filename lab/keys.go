package lab

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// KeyType is the kind of key the lab makes.
type KeyType string

const (
	KeyECDSA   KeyType = "ecdsa"   // P-256, the default
	KeyRSA     KeyType = "rsa"     // 2048 bits
	KeyEd25519 KeyType = "ed25519" // for labs that test it; browsers do not accept it
)

// ErrBadKeyType is returned by ParseKeyType.
var ErrBadKeyType = errors.New("lab: unknown key type")

// ParseKeyType parses "ecdsa", "rsa" or "ed25519" (any case); "" is KeyECDSA.
func ParseKeyType(s string) (KeyType, error) {
	switch t := KeyType(strings.ToLower(s)); t {
	case "":
		return KeyECDSA, nil
	case KeyECDSA, KeyRSA, KeyEd25519:
		return t, nil
	}
	return "", fmt.Errorf("%w: %q (want ecdsa, rsa or ed25519)", ErrBadKeyType, s)
}

func generateKey(t KeyType) (crypto.Signer, error) {
	var (
		k   crypto.Signer
		err error
	)
	switch t {
	case KeyECDSA, "":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyRSA:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case KeyEd25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("%w: %q", ErrBadKeyType, t)
	}
	if err != nil {
		return nil, fmt.Errorf("lab: generating a %s key: %w", t, err)
	}
	return k, nil
}

// keyPEM encodes k as an unencrypted PKCS#8 "PRIVATE KEY", which openssl and certs.ParsePEM both read.
func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("lab: encoding the key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// certsPEM encodes certificates as consecutive "CERTIFICATE" blocks.
func certsPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// randomSerial returns a positive 127-bit serial for the CA certificates, which are not in index.txt.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
