package lab

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"staple/atomicfile"
	"staple/certs"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// The lab's fixed layout, relative to its directory.
const (
	RootCertFile      = "root.pem"       // the root CA
	RootKeyFile       = "root.key"       // the root CA's key, kept for labs that re-issue the issuing CA
	CACertFile        = "ca.pem"         // the issuing CA: it signs leaves and the OCSP signer
	CAKeyFile         = "ca.key"         //
	SignerCertFile    = "ocsp.pem"       // the delegated OCSP signer (OCSPSigning, ocsp-nocheck)
	SignerKeyFile     = "ocsp.key"       //
	IndexFile         = "index.txt"      // the OpenSSL CA database
	IndexAttrFile     = "index.txt.attr" // unique_subject = no, for openssl ca
	SerialFile        = "serial"         // the next serial in hex, shared with openssl ca
	LockFile          = "index.txt.lock" // flock'd while index.txt and serial change
	CertsDir          = "certs"          // NAME.pem (leaf then issuing CA) and NAME.key per leaf
	NewCertsDir       = "newcerts"       // where openssl ca puts its copies
	OpenSSLConfigFile = "openssl.cnf"    // lets `openssl ca -config DIR/openssl.cnf` issue and revoke here
	ConfigFile        = "lab.json"       // the responder URL and key type, for later issues
	DefaultLeafDays   = 90               //
	firstSerial       = 0x1000           // the signer's; leaves follow
	signerValidity    = 365 * 24 * time.Hour
	backdate          = time.Hour // NotBefore is this much before now, for clocks that lag
)

// DefaultResponderURL is the AIA OCSP URL of a lab's certificates unless init is told otherwise, and the
// default listen address of staple responder.
const DefaultResponderURL = "http://127.0.0.1:8888"

// Errors of lab operations.
var (
	ErrExists         = errors.New("lab: already exists")
	ErrNotLab         = errors.New("lab: not a staple lab directory")
	ErrNotFound       = errors.New("lab: serial not in index.txt")
	ErrAlreadyRevoked = errors.New("lab: certificate already revoked")
	ErrNotIssuer      = errors.New("lab: certificate was not issued by this lab's CA")
	ErrBadName        = errors.New("lab: bad certificate name")
	ErrBadURL         = errors.New("lab: bad responder URL")
)

// Lab is an open lab directory. Its methods that change the lab lock it first, so several staple processes
// may use one lab at once; a Lab value itself is safe for concurrent use.
type Lab struct {
	Dir          string
	Root, CA     *x509.Certificate
	Signer       *x509.Certificate // the delegated OCSP signer
	CAKey        crypto.Signer
	SignerKey    crypto.Signer
	ResponderURL string
	KeyType      KeyType
	// Now is the clock for issuing and revoking; nil means time.Now.
	Now func() time.Time
}

func (l *Lab) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Path returns the path of a file of the lab's layout.
func (l *Lab) Path(name ...string) string { return filepath.Join(append([]string{l.Dir}, name...)...) }

// labConfig is lab.json.
type labConfig struct {
	ResponderURL string  `json:"responder_url"`
	KeyType      KeyType `json:"key_type"`
}

// InitOptions says how to make a lab. The zero value makes an ECDSA lab whose certificates point at
// DefaultResponderURL.
type InitOptions struct {
	KeyType      KeyType
	ResponderURL string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Init makes a lab in dir (created if missing; an existing lab there is ErrExists, also for the second of
// two inits at once, which waits for the first under the lab's lock): a root CA (10 years), an
// issuing CA (5 years, path length 0), a delegated OCSP signer (1 year, OCSPSigning, ocsp-nocheck, serial
// 1000 in index.txt), the serial file, index.txt.attr, openssl.cnf for `openssl ca`, and the certs and
// newcerts directories.
func Init(dir string, opts InitOptions) (*Lab, error) {
	kt, err := ParseKeyType(string(opts.KeyType))
	if err != nil {
		return nil, err
	}
	respURL := opts.ResponderURL
	if respURL == "" {
		respURL = DefaultResponderURL
	}
	if err := checkResponderURL(respURL); err != nil {
		return nil, err
	}
	l := &Lab{Dir: dir, ResponderURL: respURL, KeyType: kt, Now: opts.Now}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	// Under the lab's lock: of two inits at once, the second finds the first's lab and leaves it alone.
	unlock, err := l.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	for _, f := range []string{IndexFile, CAKeyFile, CACertFile, ConfigFile} {
		if _, err := os.Lstat(l.Path(f)); err == nil {
			return nil, fmt.Errorf("%w: %s has %s (remove it or choose another directory)", ErrExists, dir, f)
		}
	}
	for _, d := range []string{l.Path(CertsDir), l.Path(NewCertsDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	if err := l.makeCAs(); err != nil {
		return nil, err
	}
	if err := l.makeSigner(); err != nil {
		return nil, err
	}
	cnf, err := json.MarshalIndent(labConfig{ResponderURL: respURL, KeyType: kt}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{IndexAttrFile, []byte("unique_subject = no\n")},
		{OpenSSLConfigFile, l.opensslConfig()},
		{ConfigFile, append(cnf, '\n')},
	}
	for _, f := range files {
		if err := atomicfile.Write(l.Path(f.name), f.data, 0o644); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func checkResponderURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%w: %q (want http://HOST[:PORT][/PATH], no credentials)", ErrBadURL, ocspfetch.RedactURL(s))
	}
	return nil
}

// makeCAs makes the root and the issuing CA and writes them with their keys.
func (l *Lab) makeCAs() error {
	rootKey, err := generateKey(l.KeyType)
	if err != nil {
		return err
	}
	caKey, err := generateKey(l.KeyType)
	if err != nil {
		return err
	}
	now := l.now()
	id := labID(rootKey.Public())
	rootTmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"staple lab"}, CommonName: "staple lab root CA " + id},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	root, err := createCert(rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"staple lab"}, CommonName: "staple lab issuing CA " + id},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	ca, err := createCert(caTmpl, root, caKey.Public(), rootKey)
	if err != nil {
		return err
	}
	l.Root, l.CA, l.CAKey = root, ca, caKey
	if err := writeKey(l.Path(RootKeyFile), rootKey); err != nil {
		return err
	}
	if err := writeKey(l.Path(CAKeyFile), caKey); err != nil {
		return err
	}
	if err := atomicfile.Write(l.Path(RootCertFile), certsPEM(root), 0o644); err != nil {
		return err
	}
	return atomicfile.Write(l.Path(CACertFile), certsPEM(ca), 0o644)
}

// labID is a short tag that tells two labs' CA names apart: the first 4 bytes of the root key's SHA-1.
func labID(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "0"
	}
	sum := sha1.Sum(der)
	return fmt.Sprintf("%X", sum[:4])
}

// makeSigner issues the delegated OCSP signer as the lab's first serial and records it in index.txt.
func (l *Lab) makeSigner() error {
	key, err := generateKey(l.KeyType)
	if err != nil {
		return err
	}
	now := l.now()
	serial := big.NewInt(firstSerial)
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         pkix.Name{Organization: []string{"staple lab"}, CommonName: "staple lab OCSP signer " + labID(l.Root.PublicKey)},
		NotBefore:       now.Add(-backdate),
		NotAfter:        now.Add(signerValidity),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		ExtraExtensions: []pkix.Extension{ocspwire.NoCheckExtension()},
	}
	signer, err := createCert(tmpl, l.CA, key.Public(), l.CAKey)
	if err != nil {
		return err
	}
	l.Signer, l.SignerKey = signer, key
	if err := writeKey(l.Path(SignerKeyFile), key); err != nil {
		return err
	}
	if err := atomicfile.Write(l.Path(SignerCertFile), certsPEM(signer), 0o644); err != nil {
		return err
	}
	entry := Entry{Status: Valid, Expires: signer.NotAfter, Reason: ocspwire.ReasonNone, Serial: serial, File: "unknown",
		Subject: onelineName(signer.Subject)}
	if err := atomicfile.Write(l.Path(IndexFile), FormatIndex([]Entry{entry}), 0o644); err != nil {
		return err
	}
	return writeSerial(l.Path(SerialFile), new(big.Int).Add(serial, big.NewInt(1)))
}

func createCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	if tmpl.SerialNumber == nil {
		serial, err := randomSerial()
		if err != nil {
			return nil, err
		}
		tmpl.SerialNumber = serial
	}
	der, err := x509.CreateCertificate(nil, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("lab: signing %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

func writeKey(path string, k crypto.Signer) error {
	data, err := keyPEM(k)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// Open opens the lab in dir: its certificates, keys and lab.json.
func Open(dir string) (*Lab, error) {
	l := &Lab{Dir: dir}
	data, err := atomicfile.Read(l.Path(ConfigFile), maxSmallFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v (make one with 'staple lab init %s')", ErrNotLab, dir, err, dir)
	}
	var cfg labConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotLab, l.Path(ConfigFile), err)
	}
	if err := checkResponderURL(cfg.ResponderURL); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotLab, l.Path(ConfigFile), err)
	}
	if l.KeyType, err = ParseKeyType(string(cfg.KeyType)); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotLab, l.Path(ConfigFile), err)
	}
	l.ResponderURL = cfg.ResponderURL
	if l.Root, _, err = loadCert(l.Path(RootCertFile), ""); err != nil {
		return nil, err
	}
	if l.CA, l.CAKey, err = loadCert(l.Path(CACertFile), l.Path(CAKeyFile)); err != nil {
		return nil, err
	}
	if l.Signer, l.SignerKey, err = loadCert(l.Path(SignerCertFile), l.Path(SignerKeyFile)); err != nil {
		return nil, err
	}
	return l, nil
}

// loadCert loads the first certificate of certFile and, when keyFile is not "", its key, which must match.
func loadCert(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	b, err := certs.LoadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("lab: %w", err)
	}
	if len(b.Certs) == 0 {
		return nil, nil, fmt.Errorf("lab: %s holds no certificate", certFile)
	}
	cert := b.Certs[0]
	if keyFile == "" {
		return cert, nil, nil
	}
	if keyFile != certFile {
		if b, err = certs.LoadFile(keyFile); err != nil {
			return nil, nil, fmt.Errorf("lab: %w", err)
		}
	}
	if len(b.Keys) != 1 {
		return nil, nil, fmt.Errorf("lab: %s holds %d private keys, want 1", keyFile, len(b.Keys))
	}
	key := b.Keys[0]
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, nil, fmt.Errorf("lab: %w: %s and %s", certs.ErrKeyMismatch, keyFile, certFile)
	}
	return cert, key, nil
}

// readSerial reads the serial file as openssl ca does: hex digits on the first line.
func readSerial(path string) (*big.Int, error) {
	data, err := atomicfile.Read(path, maxSmallFile)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	n, err := parseSerialHex(strings.TrimSpace(string(line)))
	if err != nil {
		return nil, fmt.Errorf("lab: %s: %v", path, err)
	}
	return n, nil
}

func writeSerial(path string, n *big.Int) error {
	return atomicfile.Write(path, []byte(serialHex(n)+"\n"), 0o644)
}

// opensslConfig is openssl.cnf: `openssl ca -config DIR/openssl.cnf -in X.csr -out X.pem` issues into this
// lab (leaf_ext by default, leaf_must_staple_ext with -extensions), `-revoke X.pem -crl_reason R` revokes.
func (l *Lab) opensslConfig() []byte {
	dir, err := filepath.Abs(l.Dir)
	if err != nil {
		dir = l.Dir
	}
	return fmt.Appendf(nil, `# Written by staple lab init. Lets openssl ca share this lab with staple:
#   openssl ca -batch -config %[1]s/openssl.cnf -in NAME.csr -out NAME.pem -notext
#   openssl ca -config %[1]s/openssl.cnf -revoke NAME.pem -crl_reason keyCompromise
# SANs are copied from the CSR (copy_extensions = copy).
[ ca ]
default_ca = staple_lab

[ staple_lab ]
dir             = %[1]s
database        = $dir/index.txt
serial          = $dir/serial
new_certs_dir   = $dir/newcerts
certificate     = $dir/ca.pem
private_key     = $dir/ca.key
default_md      = sha256
default_days    = %[2]d
policy          = policy_any
unique_subject  = no
copy_extensions = copy
x509_extensions = leaf_ext

[ policy_any ]
countryName            = optional
stateOrProvinceName    = optional
localityName           = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied
emailAddress           = optional

[ leaf_ext ]
basicConstraints       = critical,CA:FALSE
keyUsage               = critical,digitalSignature
extendedKeyUsage       = serverAuth,clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
authorityInfoAccess    = OCSP;URI:%[3]s

[ leaf_must_staple_ext ]
basicConstraints       = critical,CA:FALSE
keyUsage               = critical,digitalSignature
extendedKeyUsage       = serverAuth,clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
authorityInfoAccess    = OCSP;URI:%[3]s
tlsfeature             = status_request

[ ocsp_ext ]
basicConstraints       = critical,CA:FALSE
keyUsage               = critical,digitalSignature
extendedKeyUsage       = critical,OCSPSigning
noCheck                = ignored
authorityKeyIdentifier = keyid
`, dir, DefaultLeafDays, l.ResponderURL)
}

// Bounds of what the lab reads: lab.json and serial hold a line or two; index.txt a row per certificate
// issued (about 100 bytes), so some 300,000 certificates.
const (
	maxSmallFile = 64 << 10
	maxIndexFile = 32 << 20
)

// ErrLocked is returned when another process holds the lab's lock for longer than the lock timeout.
var ErrLocked = errors.New("lab: the lab is locked by another process")

// lockTimeout bounds how long a change to the lab waits for another staple process to finish its own.
const lockTimeout = 10 * time.Second

// lock takes the lab's lock (LockFile), which every change to the lab holds: init, issue, revoke, and the
// embedded lab's renewal of its certificate.
func (l *Lab) lock() (unlock func(), err error) { return lockFile(l.Path(LockFile), lockTimeout) }

// lockPoll is how often a waiting process tries the lock again.
const lockPoll = 20 * time.Millisecond
