//go:build openssl && cgo && linux

// Package opensslkey hands RSA private-key operations to OpenSSL's libcrypto through cgo, for builds made
// with -tags openssl: a TLS handshake with an RSA certificate spends most of its server CPU in one RSA
// signature, which OpenSSL 3 computes about three times faster than Go's crypto/rsa on CPUs with AVX-512 IFMA
// (and about twice as fast without). The key stays in Go memory too: Public and anything OpenSSL does not
// cover (a hash other than SHA-1/SHA-256/384/512, a PSS salt length other than the hash's) go to crypto/rsa.
package opensslkey

/*
#cgo LDFLAGS: -lcrypto
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

static EVP_PKEY *staple_load_rsa(const unsigned char *der, long len) {
	const unsigned char *p = der;
	return d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, len);
}

static int staple_rsa_sign(EVP_PKEY *pkey, int pss, int md_nid, const unsigned char *dgst, size_t dlen,
                           unsigned char *sig, size_t *siglen) {
	const EVP_MD *md = EVP_get_digestbynid(md_nid);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
	int ok;
	if (md == NULL || ctx == NULL) {
		EVP_PKEY_CTX_free(ctx);
		return 0;
	}
	ok = EVP_PKEY_sign_init(ctx) > 0
		&& EVP_PKEY_CTX_set_rsa_padding(ctx, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) > 0
		&& EVP_PKEY_CTX_set_signature_md(ctx, md) > 0
		&& (!pss || EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) > 0)
		&& EVP_PKEY_sign(ctx, sig, siglen, dgst, dlen) > 0;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static int staple_pkey_size(EVP_PKEY *pkey) { return EVP_PKEY_get_size(pkey); }
*/
import "C"

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io"
	"runtime"
	"unsafe"
)

// Enabled reports whether this build hands RSA signatures to OpenSSL.
const Enabled = true

// Signer is an RSA private key whose signatures OpenSSL computes. It is safe for concurrent use.
type Signer struct {
	key  *rsa.PrivateKey
	pkey *C.EVP_PKEY
	size int
}

// NewSigner loads k into OpenSSL.
func NewSigner(k *rsa.PrivateKey) (*Signer, error) {
	der := x509.MarshalPKCS1PrivateKey(k)
	pkey := C.staple_load_rsa((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
	clear(der)
	if pkey == nil {
		return nil, errors.New("opensslkey: OpenSSL did not load the RSA key")
	}
	s := &Signer{key: k, pkey: pkey, size: int(C.staple_pkey_size(pkey))}
	runtime.AddCleanup(s, func(p *C.EVP_PKEY) { C.EVP_PKEY_free(p) }, pkey)
	return s, nil
}

func (s *Signer) Public() crypto.PublicKey { return &s.key.PublicKey }

var nids = map[crypto.Hash]C.int{crypto.SHA1: C.NID_sha1, crypto.SHA256: C.NID_sha256, crypto.SHA384: C.NID_sha384, crypto.SHA512: C.NID_sha512}

// Sign signs digest with PKCS #1 v1.5, or PSS when opts is *rsa.PSSOptions with the salt as long as the
// hash (what crypto/tls asks for); any other request is crypto/rsa's.
func (s *Signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	nid, ok := nids[opts.HashFunc()]
	pss := 0
	if p, isPSS := opts.(*rsa.PSSOptions); isPSS {
		pss = 1
		ok = ok && p.SaltLength == rsa.PSSSaltLengthEqualsHash
	}
	if !ok || len(digest) != opts.HashFunc().Size() {
		return s.key.Sign(rand, digest, opts)
	}
	sig := make([]byte, s.size)
	n := C.size_t(len(sig))
	r := C.staple_rsa_sign(s.pkey, C.int(pss), nid, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &n)
	runtime.KeepAlive(s)
	if r != 1 {
		return nil, errors.New("opensslkey: OpenSSL failed to sign")
	}
	return sig[:n], nil
}
