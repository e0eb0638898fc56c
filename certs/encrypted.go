package certs

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
)

// Errors of encrypted private keys and PKCS#12 files.
var (
	ErrBadPassphrase         = errors.New("certs: wrong passphrase for the encrypted private key")
	ErrUnsupportedEncryption = errors.New("certs: unsupported private key encryption")
)

// ParsePEMPassphrase is ParsePEM for data whose private keys may be encrypted under passphrase, as Node's key
// and passphrase options take them: legacy OpenSSL PEM encryption ("Proc-Type: 4,ENCRYPTED" with DEK-Info,
// from 'openssl rsa -aes256' or 'openssl ec -aes256'), and PKCS#8 "ENCRYPTED PRIVATE KEY" with PBES2
// ('openssl pkey -aes256', 'openssl genpkey -aes256', Node's generateKeyPair with a cipher): PBKDF2 with
// HMAC-SHA1, SHA-224, SHA-256, SHA-384 or SHA-512, and AES-128/192/256-CBC or DES-EDE3-CBC. A wrong
// passphrase is ErrBadPassphrase; another scheme (scrypt, the PKCS#12 PBEs) ErrUnsupportedEncryption.
// Unencrypted keys are read as ParsePEM reads them.
func ParsePEMPassphrase(data []byte, name string, passphrase []byte) (*Bundle, error) {
	return parsePEM(data, name, func(block *pem.Block, n int) (*pem.Block, error) {
		der, err := decryptKey(block, passphrase)
		if err != nil {
			return nil, fmt.Errorf("%w: %s (PEM block %d)", err, name, n)
		}
		typ := "PRIVATE KEY"
		if block.Type != "ENCRYPTED PRIVATE KEY" {
			typ = block.Type
		}
		return &pem.Block{Type: typ, Bytes: der}, nil
	})
}

// encrypted reports whether a PEM block holds an encrypted private key.
func encrypted(block *pem.Block) bool {
	return block.Headers["Proc-Type"] == "4,ENCRYPTED" || block.Type == "ENCRYPTED PRIVATE KEY"
}

func decryptKey(block *pem.Block, passphrase []byte) ([]byte, error) {
	if block.Type != "ENCRYPTED PRIVATE KEY" {
		//lint:ignore SA1019 RFC 1423 is what OpenSSL wrote; reading it is the point
		der, err := x509.DecryptPEMBlock(block, passphrase)
		switch {
		case errors.Is(err, x509.IncorrectPasswordError):
			return nil, ErrBadPassphrase
		case err != nil:
			return nil, fmt.Errorf("%w: %v", ErrUnsupportedEncryption, err)
		}
		return der, nil
	}
	return decryptPKCS8(block.Bytes, passphrase)
}

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
)

// maxPBKDF2Iterations bounds the work a key file can ask for: OpenSSL 3 writes 2,048, Node 10,000 at most.
const maxPBKDF2Iterations = 10_000_000

// decryptPKCS8 decrypts a PKCS#8 EncryptedPrivateKeyInfo under PBES2 (RFC 8018) and returns the PKCS#8 DER.
func decryptPKCS8(der, passphrase []byte) ([]byte, error) {
	var info struct {
		Algo pkix.AlgorithmIdentifier
		Data []byte
	}
	var params struct{ KDF, Scheme pkix.AlgorithmIdentifier }
	var kdf struct {
		Salt       []byte
		Iterations int
		KeyLength  int                      `asn1:"optional"`
		PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
	}
	var iv []byte
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPrivateKey, err)
	}
	if !info.Algo.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("%w: %v (only PBES2 is read: re-encrypt with 'openssl pkey -aes256')", ErrUnsupportedEncryption, info.Algo.Algorithm)
	}
	if _, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("%w: PBES2 parameters: %v", ErrBadPrivateKey, err)
	}
	if !params.KDF.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("%w: key derivation %v (only PBKDF2 is read)", ErrUnsupportedEncryption, params.KDF.Algorithm)
	}
	if _, err := asn1.Unmarshal(params.KDF.Parameters.FullBytes, &kdf); err != nil {
		return nil, fmt.Errorf("%w: PBKDF2 parameters: %v", ErrBadPrivateKey, err)
	}
	if _, err := asn1.Unmarshal(params.Scheme.Parameters.FullBytes, &iv); err != nil {
		return nil, fmt.Errorf("%w: cipher parameters: %v", ErrBadPrivateKey, err)
	}
	prf := map[string]func() hash.Hash{
		"": sha1.New, oidHMACSHA1.String(): sha1.New, oidHMACSHA224.String(): sha256.New224,
		oidHMACSHA256.String(): sha256.New, oidHMACSHA384.String(): sha512.New384, oidHMACSHA512.String(): sha512.New,
	}[algorithmKey(kdf.PRF.Algorithm)]
	newCipher, keyLen := schemeCipher(params.Scheme.Algorithm)
	switch {
	case prf == nil:
		return nil, fmt.Errorf("%w: PBKDF2 with %v", ErrUnsupportedEncryption, kdf.PRF.Algorithm)
	case newCipher == nil:
		return nil, fmt.Errorf("%w: cipher %v", ErrUnsupportedEncryption, params.Scheme.Algorithm)
	case kdf.Iterations < 1 || kdf.Iterations > maxPBKDF2Iterations:
		return nil, fmt.Errorf("%w: %d PBKDF2 iterations", ErrUnsupportedEncryption, kdf.Iterations)
	}
	key, err := pbkdf2.Key(prf, string(passphrase), kdf.Salt, kdf.Iterations, keyLen)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedEncryption, err)
	}
	block, err := newCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedEncryption, err)
	}
	bs := block.BlockSize()
	if len(iv) != bs || len(info.Data) == 0 || len(info.Data)%bs != 0 {
		return nil, fmt.Errorf("%w: ciphertext or IV of the wrong length", ErrBadPrivateKey)
	}
	plain := make([]byte, len(info.Data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, info.Data)
	pad := int(plain[len(plain)-1])
	if pad == 0 || pad > bs {
		return nil, ErrBadPassphrase
	}
	for _, b := range plain[len(plain)-pad:] {
		if int(b) != pad {
			return nil, ErrBadPassphrase
		}
	}
	plain = plain[:len(plain)-pad]
	if _, err := x509.ParsePKCS8PrivateKey(plain); err != nil {
		return nil, ErrBadPassphrase // padding that happened to look right
	}
	return plain, nil
}

// algorithmKey is the map key of an optional algorithm identifier: "" when absent (PBKDF2's default PRF).
func algorithmKey(oid asn1.ObjectIdentifier) string {
	if len(oid) == 0 {
		return ""
	}
	return oid.String()
}

// schemeCipher returns the block cipher of a PBES2 encryption scheme and its key length; nil if unknown.
func schemeCipher(oid asn1.ObjectIdentifier) (func([]byte) (cipher.Block, error), int) {
	switch {
	case oid.Equal(oidAES128CBC):
		return aes.NewCipher, 16
	case oid.Equal(oidAES192CBC):
		return aes.NewCipher, 24
	case oid.Equal(oidAES256CBC):
		return aes.NewCipher, 32
	case oid.Equal(oidDESEDE3CBC):
		return des.NewTripleDESCipher, 24
	}
	return nil, 0
}
