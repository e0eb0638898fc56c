package bench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"staple/atomicfile"
	"staple/certs"
	"staple/lab"
	"staple/ocspwire"
)

// Leaf is one certificate the TLS servers present, as files and parsed.
type Leaf struct {
	KeyType           lab.KeyType
	CertFile, KeyFile string // the chain (leaf, then the issuing CA) and its key, as staple lab issue writes them
	Cert, Issuer      *x509.Certificate
	Name              string // its DNS name, sent as SNI
	StapleFile        string // the DER response the static servers staple, once fetched
	Staple            []byte
}

// Lab is the lab every measure uses: a CA, a delegated OCSP signer, one ECDSA P-256 and one RSA-2048 leaf for
// the TLS servers, and Sweep more leaves in index.txt for the refresh sweep.
type Lab struct {
	*lab.Lab
	Leaves map[lab.KeyType]*Leaf
	Sweep  []*x509.Certificate
}

// MakeLab makes the lab in dir, its certificates pointing at responderURL, with sweep more leaves written
// straight into index.txt (staple lab issue rewrites index.txt once per certificate, which is quadratic).
func MakeLab(dir, responderURL string, sweep int) (*Lab, error) {
	l, err := lab.Init(dir, lab.InitOptions{KeyType: lab.KeyECDSA, ResponderURL: responderURL})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	out := &Lab{Lab: l, Leaves: map[lab.KeyType]*Leaf{}}
	for _, kt := range []lab.KeyType{lab.KeyECDSA, lab.KeyRSA} {
		name := "bench-" + string(kt) + ".test"
		is, err := l.Issue(lab.IssueOptions{Names: []string{name}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyType: kt})
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		out.Leaves[kt] = &Leaf{KeyType: kt, CertFile: is.CertFile, KeyFile: is.KeyFile, Cert: is.Cert, Issuer: l.CA, Name: name}
	}
	if sweep > 0 {
		if out.Sweep, err = addSweepLeaves(l, sweep); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// addSweepLeaves issues n leaves sharing one key, in memory, and records them in index.txt and serial.
func addSweepLeaves(l *lab.Lab, n int) ([]*x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	entries, err := l.Entries()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	next := big.NewInt(0)
	for _, e := range entries {
		if e.Serial.Cmp(next) >= 0 {
			next.Add(e.Serial, big.NewInt(1))
		}
	}
	now := time.Now()
	leaves := make([]*x509.Certificate, 0, n)
	for i := range n {
		serial := new(big.Int).Add(next, big.NewInt(int64(i)))
		cn := fmt.Sprintf("sweep-%05d.test", i)
		tmpl := &x509.Certificate{
			SerialNumber: serial,
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(90 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:     []string{cn},
			OCSPServer:   []string{l.ResponderURL},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, l.CA, key.Public(), l.CAKey)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		leaves = append(leaves, c)
		entries = append(entries, lab.Entry{Status: lab.Valid, Expires: c.NotAfter, Reason: ocspwire.ReasonNone, Serial: serial,
			File: "unknown", Subject: "/CN=" + cn})
	}
	if err := atomicfile.Write(l.Path(lab.IndexFile), lab.FormatIndex(entries), 0o644); err != nil {
		return nil, err
	}
	last := new(big.Int).Add(next, big.NewInt(int64(n)))
	if err := atomicfile.Write(l.Path(lab.SerialFile), []byte(strings.ToUpper(last.Text(16))+"\n"), 0o644); err != nil {
		return nil, err
	}
	return leaves, nil
}

// chain returns leaf and its issuer as a certs.Chain, for the stapler.
func chain(leaf, issuer *x509.Certificate) *certs.Chain {
	return &certs.Chain{Leaf: leaf, Issuer: issuer, Intermediates: []*x509.Certificate{issuer}}
}
