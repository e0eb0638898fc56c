#!/usr/bin/env bash
# Regenerates the request fixtures with the openssl CLI and a throwaway staple lab (run from this directory
# with a built staple on PATH). The fixtures only need to parse: nothing checks their issuer hashes.
set -euo pipefail
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
staple lab init "$work/lab" >/dev/null
staple lab issue "$work/lab" a.test >/dev/null
staple lab issue "$work/lab" b.test >/dev/null
L=$work/lab
q() { openssl ocsp -issuer "$L/ca.pem" "$@" 2>/dev/null; }
q -cert "$L/certs/a.test.pem" -no_nonce -reqout openssl-sha1.der
q -cert "$L/certs/a.test.pem" -reqout openssl-sha1-nonce.der
q -sha256 -cert "$L/certs/a.test.pem" -no_nonce -reqout openssl-sha256.der
q -cert "$L/certs/a.test.pem" -cert "$L/certs/b.test.pem" -serial 0x9999 -reqout openssl-3certs-nonce.der
q -cert "$L/certs/a.test.pem" -signer "$L/certs/b.test.pem" -signkey "$L/certs/b.test.key" -no_nonce -reqout openssl-signed.der
