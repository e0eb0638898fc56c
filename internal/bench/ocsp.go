package bench

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ocsp"

	"staple/ocspfetch"
)

// GetPath returns the RFC 5019 GET path asking for leaf's status (SHA-1 CertID, no nonce): the request a
// stapler sends and a caching responder can answer from what it holds.
func GetPath(leaf, issuer *x509.Certificate) (string, error) {
	der, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	return "/" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(b64), nil
}

// FetchStaple fetches and verifies leaf's response from its responder (the lab's) and writes it to
// dir/NAME.ocsp, for nginx's ssl_stapling_file and the static server.
func FetchStaple(ctx context.Context, leaf *Leaf, dir string) error {
	r, err := (&ocspfetch.Client{}).Fetch(ctx, leaf.Cert, leaf.Issuer)
	if err != nil {
		return fmt.Errorf("bench: fetching the staple of %s: %w", leaf.Name, err)
	}
	leaf.Staple = r.Raw
	leaf.StapleFile = filepath.Join(dir, leaf.Name+".ocsp")
	if err := os.WriteFile(leaf.StapleFile, r.Raw, 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
