package certs

import (
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/pkcs12"
)

// ParsePKCS12 reads the certificates, in file order, and the one private key of a PKCS#12 (PFX) file under
// passphrase, as Node's pfx and passphrase options take them. It reads what golang.org/x/crypto/pkcs12 reads:
// a SHA-1 MAC and 3DES or RC2 encryption, what 'openssl pkcs12 -export' wrote before OpenSSL 3 and writes with
// '-certpbe PBE-SHA1-3DES -keypbe PBE-SHA1-3DES -macalg sha1'. OpenSSL 3's default (AES-256 under PBKDF2, a
// SHA-256 MAC) is ErrUnsupportedEncryption; a wrong passphrase is ErrBadPassphrase. name is used in errors.
func ParsePKCS12(data []byte, name, passphrase string) (*Bundle, error) {
	blocks, err := pkcs12.ToPEM(data, passphrase)
	var ni pkcs12.NotImplementedError
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword):
		return nil, fmt.Errorf("%w: %s", ErrBadPassphrase, name)
	case errors.As(err, &ni):
		return nil, fmt.Errorf("%w: %s: %v (re-export it with 'openssl pkcs12 -export -certpbe PBE-SHA1-3DES -keypbe PBE-SHA1-3DES -macalg sha1', or give the key and certificate as PEM)", ErrUnsupportedEncryption, name, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %s is not a PKCS#12 file: %v", ErrUnsupportedPEM, name, err)
	}
	b := &Bundle{Name: name}
	for i, block := range blocks {
		if block.Type == "PRIVATE KEY" {
			// x/crypto/pkcs12 labels every key PRIVATE KEY but writes RSA keys as PKCS#1 and EC keys as SEC1.
			for _, typ := range []string{"RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY"} {
				if _, err := parseKey(&pem.Block{Type: typ, Bytes: block.Bytes}); err == nil {
					block = &pem.Block{Type: typ, Bytes: block.Bytes}
					break
				}
			}
		}
		if err := b.add(block, i+1); err != nil {
			return nil, err
		}
	}
	if len(b.Keys) != 1 {
		return nil, fmt.Errorf("%w: %s holds %d private keys, want 1", ErrBadPrivateKey, name, len(b.Keys))
	}
	return b, nil
}
