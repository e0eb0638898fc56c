package lab

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"staple/atomicfile"

	"staple/ocspwire"
)

// IssueOptions says what leaf to issue.
type IssueOptions struct {
	// Names are DNS names (a leading "*." makes a wildcard) or IP addresses, one SAN each. The first is the
	// subject CN and names the files certs/NAME.pem and certs/NAME.key. At least one name is required.
	Names []string
	// IPs are more IP address SANs.
	IPs []net.IP
	// MustStaple adds the TLS Feature extension with status_request (RFC 7633).
	MustStaple bool
	// Days is the validity; zero means DefaultLeafDays.
	Days int
	// KeyType is the leaf's key; "" means the lab's.
	KeyType KeyType
}

// Issued is a leaf just issued and where it was written.
type Issued struct {
	Cert              *x509.Certificate
	Entry             Entry
	CertFile, KeyFile string
}

var (
	dnsNamePattern  = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$`)
	fileBasePattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
)

// Issue issues a leaf signed by the issuing CA with the given SANs and the lab's responder URL as AIA OCSP,
// writes certs/NAME.pem (leaf then issuing CA, 0644) and certs/NAME.key (0600), and records it in index.txt
// under the next serial of the serial file. An existing certs/NAME.pem is ErrExists.
func (l *Lab) Issue(opts IssueOptions) (*Issued, error) {
	unlock, err := l.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return l.issue(opts)
}

// issue is Issue with the lab's lock held.
func (l *Lab) issue(opts IssueOptions) (*Issued, error) {
	if len(opts.Names) == 0 {
		return nil, fmt.Errorf("%w: at least one name is required", ErrBadName)
	}
	var dnsNames []string
	var ips []net.IP
	for _, n := range opts.Names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if len(n) > 253 || !dnsNamePattern.MatchString(n) {
			return nil, fmt.Errorf("%w: %q is neither a DNS name nor an IP address", ErrBadName, n)
		}
		dnsNames = append(dnsNames, strings.TrimSuffix(n, "."))
	}
	ips = append(ips, opts.IPs...)
	base := strings.NewReplacer("*", "_wildcard", ":", "_").Replace(opts.Names[0])
	if !fileBasePattern.MatchString(base) || len(base) > 200 {
		return nil, fmt.Errorf("%w: %q cannot name a file", ErrBadName, opts.Names[0])
	}
	days := opts.Days
	if days == 0 {
		days = DefaultLeafDays
	}
	if days < 0 || days > 3650 {
		return nil, fmt.Errorf("lab: %d days of validity (want 1 to 3650)", days)
	}
	kt := opts.KeyType
	if kt == "" {
		kt = l.KeyType
	}
	key, err := generateKey(kt)
	if err != nil {
		return nil, err
	}
	certFile, keyFile := l.Path(CertsDir, base+".pem"), l.Path(CertsDir, base+".key")
	if _, err := os.Lstat(certFile); err == nil {
		return nil, fmt.Errorf("%w: %s (revoke it if you like, and issue under another name)", ErrExists, certFile)
	}
	entries, err := l.readIndex()
	if err != nil {
		return nil, err
	}
	serial, err := readSerial(l.Path(SerialFile))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Serial.Cmp(serial) == 0 {
			return nil, fmt.Errorf("lab: serial %s from %s is already in index.txt", serialHex(serial), l.Path(SerialFile))
		}
	}
	// The serial file moves first: a crash after it wastes a serial, never reuses one.
	if err := writeSerial(l.Path(SerialFile), new(big.Int).Add(serial, big.NewInt(1))); err != nil {
		return nil, err
	}
	now := l.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.Names[0]},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(time.Duration(days) * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
		OCSPServer:            []string{l.ResponderURL},
	}
	if kt == KeyRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if opts.MustStaple {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ocspwire.MustStapleExtension())
	}
	cert, err := createCert(tmpl, l.CA, key.Public(), l.CAKey)
	if err != nil {
		return nil, err
	}
	if err := writeKey(keyFile, key); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(certFile, certsPEM(cert, l.CA), 0o644); err != nil {
		return nil, err
	}
	entry := Entry{Status: Valid, Expires: cert.NotAfter, Reason: ocspwire.ReasonNone, Serial: serial, File: "unknown",
		Subject: onelineName(cert.Subject)}
	if err := l.writeIndex(append(entries, entry)); err != nil {
		return nil, err
	}
	return &Issued{Cert: cert, Entry: entry, CertFile: certFile, KeyFile: keyFile}, nil
}

// RevokeOptions says how to revoke. The zero value revokes now with reason unspecified.
type RevokeOptions struct {
	// Reason is recorded with the revocation; ocspwire.ReasonNone records none, as `openssl ca -revoke` without
	// -crl_reason does.
	Reason ocspwire.Reason
	// Time is the revocation time; zero means now. It must lie in 1950–2049 (OpenSSL reads it as UTCTime).
	Time time.Time
	// HoldInstruction goes with ocspwire.ReasonCertificateHold ("holdInstruction,<instruction>" in index.txt).
	HoldInstruction ocspwire.HoldInstruction
	// InvalidityDate, when the key was compromised, goes with ocspwire.ReasonKeyCompromise or ocspwire.ReasonCACompromise
	// ("keyTime,<date>" or "CAkeyTime,<date>").
	InvalidityDate time.Time
}

// Revoke marks serial revoked in index.txt and returns its new row. A serial not in index.txt is ErrNotFound,
// one already revoked ErrAlreadyRevoked. Like openssl ca, an expired (E) row may be revoked.
func (l *Lab) Revoke(serial *big.Int, opts RevokeOptions) (Entry, error) {
	at := opts.Time
	if at.IsZero() {
		at = l.now()
	}
	unlock, err := l.lock()
	if err != nil {
		return Entry{}, err
	}
	defer unlock()
	entries, err := l.readIndex()
	if err != nil {
		return Entry{}, err
	}
	i := slices.IndexFunc(entries, func(e Entry) bool { return e.Serial.Cmp(serial) == 0 })
	if i < 0 {
		return Entry{}, fmt.Errorf("%w: %s", ErrNotFound, serialHex(serial))
	}
	e := entries[i]
	if e.Status == Revoked {
		return Entry{}, fmt.Errorf("%w: %s on %s", ErrAlreadyRevoked, serialHex(serial), e.RevokedAt.UTC().Format(time.RFC3339))
	}
	e.Status = Revoked
	e.RevokedAt = at.UTC().Truncate(time.Second)
	e.Reason = opts.Reason
	e.HoldInstruction = opts.HoldInstruction
	e.InvalidityDate = opts.InvalidityDate.UTC().Truncate(time.Second)
	if opts.InvalidityDate.IsZero() {
		e.InvalidityDate = time.Time{}
	}
	if err := e.validate(); err != nil {
		return Entry{}, err
	}
	entries[i] = e
	if err := l.writeIndex(entries); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// SerialOf returns the serial of the first certificate in certFile, which this lab's CA must have issued.
func (l *Lab) SerialOf(certFile string) (*big.Int, error) {
	cert, _, err := loadCert(certFile, "")
	if err != nil {
		return nil, err
	}
	if err := cert.CheckSignatureFrom(l.CA); err != nil {
		return nil, fmt.Errorf("%w: %s (issuer %s)", ErrNotIssuer, certFile, cert.Issuer)
	}
	return cert.SerialNumber, nil
}

// Entries returns the rows of index.txt in file order.
func (l *Lab) Entries() ([]Entry, error) { return l.readIndex() }

func (l *Lab) readIndex() ([]Entry, error) {
	data, err := atomicfile.Read(l.Path(IndexFile), maxIndexFile)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	entries, err := ParseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, l.Path(IndexFile))
	}
	return entries, nil
}

// writeIndex replaces index.txt. Rows read from it are written back as they were (in OpenSSL's canonical
// spelling); a changed row has been validated by its changer.
func (l *Lab) writeIndex(entries []Entry) error {
	return atomicfile.Write(l.Path(IndexFile), FormatIndex(entries), 0o644)
}
