package testpki

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"staple/ocspwire"
)

// CA is a test certificate authority: a root (Parent nil) or an intermediate. It is safe for concurrent use.
type CA struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	Parent *CA

	h *hierarchy

	mu     sync.Mutex
	serial int64                        // the next serial Issue and NewSigner hand out
	issued map[string]*x509.Certificate // by serial (hex), everything this CA signed
}

// Default validity periods, all around Epoch.
const (
	day          = 24 * time.Hour
	firstSerial  = 0x1000 // like `openssl ca` with `echo 1000 > serial`
	rootYears    = 10
	interYears   = 5
	leafDays     = 90
	signerDays   = 30
	backdateDays = 1
)

// NewRoot returns a self-signed root CA named name (the subject CN) with a key of type kt, valid from one
// year before Epoch to ten years after.
func NewRoot(t testing.TB, name string, kt KeyType) *CA {
	t.Helper()
	return newRoot(t, newHierarchy(), name, kt)
}

// NewUnrelatedRoot returns a root that shares no certificate with ca's hierarchy but is guaranteed not to
// share a key with it either: the "other CA" of tests where a foreign CA must not verify.
func (ca *CA) NewUnrelatedRoot(t testing.TB, name string, kt KeyType) *CA {
	t.Helper()
	return newRoot(t, ca.h, name, kt)
}

func newRoot(t testing.TB, h *hierarchy, name string, kt KeyType) *CA {
	t.Helper()
	key := h.newKey(t, kt, "root/"+name, true)
	tmpl := &x509.Certificate{
		SerialNumber:          serialFor("root/" + name),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"staple test PKI"}},
		NotBefore:             Epoch().AddDate(-1, 0, 0),
		NotAfter:              Epoch().AddDate(rootYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	cert := create(t, tmpl, tmpl, key.Public(), key)
	return &CA{Cert: cert, Key: key, h: h, serial: firstSerial, issued: make(map[string]*x509.Certificate)}
}

// NewIntermediate returns an intermediate CA named name signed by ca, valid from one year before Epoch to
// five years after.
func (ca *CA) NewIntermediate(t testing.TB, name string, kt KeyType) *CA {
	t.Helper()
	key := ca.h.newKey(t, kt, "intermediate/"+ca.Cert.Subject.CommonName+"/"+name, true)
	tmpl := &x509.Certificate{
		SerialNumber:          ca.nextSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"staple test PKI"}},
		NotBefore:             Epoch().AddDate(-1, 0, 0),
		NotAfter:              Epoch().AddDate(interYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	cert := ca.sign(t, tmpl, key.Public())
	return &CA{Cert: cert, Key: key, Parent: ca, h: ca.h, serial: firstSerial, issued: make(map[string]*x509.Certificate)}
}

// Root returns the root of ca's hierarchy.
func (ca *CA) Root() *CA {
	for ca.Parent != nil {
		ca = ca.Parent
	}
	return ca
}

// Pool returns a pool holding ca's root, for x509.VerifyOptions.Roots and tls.Config.RootCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root().Cert)
	return p
}

// CertPEM returns ca's certificate in PEM.
func (ca *CA) CertPEM() []byte { return certPEM(ca.Cert) }

// Issued returns the certificate ca issued with serial, or nil.
func (ca *CA) Issued(serial *big.Int) *x509.Certificate {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.issued[serial.Text(16)]
}

// chain returns ca and its parents up to but excluding the root, nearest first.
func (ca *CA) chain() []*x509.Certificate {
	var out []*x509.Certificate
	for c := ca; c.Parent != nil; c = c.Parent {
		out = append(out, c.Cert)
	}
	return out
}

func (ca *CA) nextSerial() *big.Int {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	s := big.NewInt(ca.serial)
	ca.serial++
	return s
}

func (ca *CA) sign(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	cert := create(t, tmpl, ca.Cert, pub, ca.Key)
	ca.mu.Lock()
	ca.issued[cert.SerialNumber.Text(16)] = cert
	ca.mu.Unlock()
	return cert
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatalf("testpki: creating %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testpki: parsing %q: %v", tmpl.Subject.CommonName, err)
	}
	return cert
}

// serialFor derives a positive 64-bit serial from a label, for certificates outside a CA's counter (roots).
func serialFor(label string) *big.Int {
	sum := sha256.Sum256([]byte(label))
	s := new(big.Int).SetBytes(sum[:8])
	return s.Add(s, big.NewInt(1))
}

// LeafOptions describes a leaf certificate. Every zero field has a sensible default.
type LeafOptions struct {
	// DNSNames and IPs are the subject alternative names; both empty means DNSNames {"leaf.test"}. The
	// subject CN is the first DNS name (or "leaf").
	DNSNames []string
	IPs      []net.IP
	// OCSPURLs, CAIssuers and CRLs go into the AIA and CRL distribution points extensions, in order; nil
	// means none.
	OCSPURLs, CAIssuers, CRLs []string
	// MustStaple adds the TLS Feature extension with status_request (RFC 7633).
	MustStaple bool
	// NotBefore and NotAfter default to one day before Epoch and 90 days after it.
	NotBefore, NotAfter time.Time
	KeyType             KeyType
	// Serial defaults to the CA's next serial (0x1000, 0x1001, …).
	Serial *big.Int
	// ClientAuth adds the clientAuth extended key usage to serverAuth.
	ClientAuth bool
}

// Leaf is an end-entity certificate with its key: a TLS leaf, or a delegated OCSP signer from NewSigner.
type Leaf struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain is the leaf first, then its CAs up to but excluding the root.
	Chain []*x509.Certificate
	// Issuer is the CA that signed Cert.
	Issuer *CA
}

// Issue returns a new leaf signed by ca.
func (ca *CA) Issue(t testing.TB, o LeafOptions) *Leaf {
	t.Helper()
	serial := o.Serial
	if serial == nil {
		serial = ca.nextSerial()
	}
	dns := o.DNSNames
	if len(dns) == 0 && len(o.IPs) == 0 {
		dns = []string{"leaf.test"}
	}
	cn := "leaf"
	if len(dns) > 0 {
		cn = dns[0]
	}
	eku := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if o.ClientAuth {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	ku := x509.KeyUsageDigitalSignature
	if o.KeyType == RSA2048 {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              dns,
		IPAddresses:           o.IPs,
		NotBefore:             orTime(o.NotBefore, Epoch().AddDate(0, 0, -backdateDays)),
		NotAfter:              orTime(o.NotAfter, Epoch().AddDate(0, 0, leafDays)),
		KeyUsage:              ku,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		OCSPServer:            o.OCSPURLs,
		IssuingCertificateURL: o.CAIssuers,
		CRLDistributionPoints: o.CRLs,
	}
	if o.MustStaple {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ocspwire.MustStapleExtension())
	}
	key := ca.h.newKey(t, o.KeyType, "leaf/"+ca.Cert.Subject.CommonName+"/"+serial.Text(16), false)
	cert := ca.sign(t, tmpl, key.Public())
	return &Leaf{Cert: cert, Key: key, Chain: append([]*x509.Certificate{cert}, ca.chain()...), Issuer: ca}
}

// SignerOptions describes a delegated OCSP responder certificate. Every zero field has a sensible default.
type SignerOptions struct {
	// NoEKU leaves out the id-kp-OCSPSigning extended key usage (a certificate a client must not accept as a
	// responder): the certificate gets serverAuth instead.
	NoEKU bool
	// NotBefore and NotAfter default to one day before Epoch and 30 days after it.
	NotBefore, NotAfter time.Time
	// NoCheck adds id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1), as the Baseline Requirements want.
	NoCheck bool
	KeyType KeyType
	// KeyUsage defaults to digitalSignature; set it to, say, x509.KeyUsageKeyEncipherment for a signer whose
	// key usage does not allow signing.
	KeyUsage x509.KeyUsage
	// Name is the subject CN; it defaults to "<CA name> OCSP signer N".
	Name string
}

// NewSigner returns a delegated OCSP responder certificate issued by ca.
func (ca *CA) NewSigner(t testing.TB, o SignerOptions) *Leaf {
	t.Helper()
	serial := ca.nextSerial()
	name := o.Name
	if name == "" {
		name = ca.Cert.Subject.CommonName + " OCSP signer " + serial.Text(16)
	}
	eku := []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	if o.NoEKU {
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	ku := o.KeyUsage
	if ku == 0 {
		ku = x509.KeyUsageDigitalSignature
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             orTime(o.NotBefore, Epoch().AddDate(0, 0, -backdateDays)),
		NotAfter:              orTime(o.NotAfter, Epoch().AddDate(0, 0, signerDays)),
		KeyUsage:              ku,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
	}
	if o.NoCheck {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ocspwire.NoCheckExtension())
	}
	key := ca.h.newKey(t, o.KeyType, "signer/"+ca.Cert.Subject.CommonName+"/"+serial.Text(16), true)
	cert := ca.sign(t, tmpl, key.Public())
	return &Leaf{Cert: cert, Key: key, Chain: append([]*x509.Certificate{cert}, ca.chain()...), Issuer: ca}
}

func orTime(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// ChainPEM returns the chain (leaf first) in PEM.
func (l *Leaf) ChainPEM() []byte {
	var out []byte
	for _, c := range l.Chain {
		out = append(out, certPEM(c)...)
	}
	return out
}

// CertPEM returns the leaf certificate alone in PEM.
func (l *Leaf) CertPEM() []byte { return certPEM(l.Cert) }

// KeyPEM returns the private key in PKCS#8 PEM.
func (l *Leaf) KeyPEM() []byte { return KeyPEM(l.Key) }

// KeyPEM returns key in PKCS#8 PEM.
func KeyPEM(key crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		// Every key testpki makes marshals; anything else is a bug in the caller.
		panic("testpki: marshalling key: " + err.Error())
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// WriteFiles writes the chain and the key into dir as <CN>.pem and <CN>.key (the key with mode 0600) and
// returns their paths.
func (l *Leaf) WriteFiles(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	base := filepath.Join(dir, fileName(l.Cert.Subject.CommonName))
	certFile, keyFile = base+".pem", base+".key"
	if err := os.WriteFile(certFile, l.ChainPEM(), 0o644); err != nil {
		t.Fatalf("testpki: %v", err)
	}
	if err := os.WriteFile(keyFile, l.KeyPEM(), 0o600); err != nil {
		t.Fatalf("testpki: %v", err)
	}
	return certFile, keyFile
}

func fileName(cn string) string {
	b := []byte(cn)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "leaf"
	}
	return string(b)
}

// TLSCertificate returns the chain and key as a tls.Certificate, with Leaf set.
func (l *Leaf) TLSCertificate() tls.Certificate {
	tc := tls.Certificate{PrivateKey: l.Key, Leaf: l.Cert}
	for _, c := range l.Chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}
