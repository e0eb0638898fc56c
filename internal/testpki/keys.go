package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"embed"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Epoch is the fixed reference time of every fixture, 2026-01-01T00:00:00Z. Default validity periods are
// built around it, so tests pass Epoch (or a time derived from it) as "now".
func Epoch() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

// KeyType is the kind of key a fixture gets. The zero value is ECDSA P-256.
type KeyType int

const (
	ECDSAP256 KeyType = iota
	RSA2048
	Ed25519
)

func (k KeyType) String() string {
	switch k {
	case ECDSAP256:
		return "P-256"
	case RSA2048:
		return "RSA-2048"
	case Ed25519:
		return "Ed25519"
	}
	return fmt.Sprintf("KeyType(%d)", int(k))
}

//go:embed testdata/rsa2048-*.pem
var rsaFiles embed.FS

const rsaPoolSize = 16

// rsaPool parses the committed RSA keys once; the pool is read-only afterwards.
var rsaPool = sync.OnceValues(func() ([]*rsa.PrivateKey, error) {
	keys := make([]*rsa.PrivateKey, rsaPoolSize)
	for i := range keys {
		data, err := rsaFiles.ReadFile(fmt.Sprintf("testdata/rsa2048-%02d.pem", i))
		if err != nil {
			return nil, err
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("testpki: rsa2048-%02d.pem holds no PEM block", i)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("testpki: rsa2048-%02d.pem is a %T", i, k)
		}
		keys[i] = rk
	}
	return keys, nil
})

// hierarchy is what a root and everything under it (and the roots made by NewUnrelatedRoot) share: the RSA
// pool slots already taken, so that no two CAs or signers of one hierarchy share a key.
type hierarchy struct {
	mu      sync.Mutex
	usedRSA map[int]bool
	labels  map[string]int // exclusive labels handed out, with how often
}

func newHierarchy() *hierarchy {
	return &hierarchy{usedRSA: make(map[int]bool), labels: make(map[string]int)}
}

// newKey returns the key of type kt for the fixture named label. ECDSA and Ed25519 keys are derived from the
// label (made unique within the hierarchy for exclusive keys); RSA keys come from the pool, starting at a slot chosen by the label and skipping slots this hierarchy
// already uses (exclusive: a CA or a signer; leaves may share a slot once the pool is exhausted).
func (h *hierarchy) newKey(t testing.TB, kt KeyType, label string, exclusive bool) crypto.Signer {
	t.Helper()
	if exclusive {
		// Two CAs or signers with the same name in one hierarchy still get distinct keys.
		h.mu.Lock()
		n := h.labels[label]
		h.labels[label] = n + 1
		h.mu.Unlock()
		if n > 0 {
			label += "#" + strconv.Itoa(n)
		}
	}
	seed := sha256.Sum256([]byte("staple testpki key: " + label))
	switch kt {
	case ECDSAP256:
		for {
			k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed[:])
			if err == nil {
				return k
			}
			seed = sha256.Sum256(seed[:]) // the scalar was out of range (probability 2^-32)
		}
	case Ed25519:
		return ed25519.NewKeyFromSeed(seed[:])
	case RSA2048:
		pool, err := rsaPool()
		if err != nil {
			t.Fatalf("testpki: loading the RSA key pool: %v", err)
		}
		start := int(binary.BigEndian.Uint32(seed[:4]) % rsaPoolSize)
		h.mu.Lock()
		defer h.mu.Unlock()
		for i := range rsaPoolSize {
			slot := (start + i) % rsaPoolSize
			if !h.usedRSA[slot] {
				if exclusive {
					h.usedRSA[slot] = true
				}
				return pool[slot]
			}
		}
		if exclusive {
			t.Fatalf("testpki: more than %d RSA CAs and signers in one hierarchy", rsaPoolSize)
		}
		return pool[start]
	}
	t.Fatalf("testpki: unknown key type %v", kt)
	return nil
}
