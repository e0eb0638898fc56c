package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"staple/lab"
	"staple/ocspwire"
	"staple/responder"
)

const labManual = `NAME
    staple lab - an offline CA test lab: make it, issue, revoke, list

SYNOPSIS
    staple lab init DIR [--key-type ecdsa|rsa|ed25519] [--responder-url URL]
    staple lab issue DIR NAME... [--ip ADDR]... [--must-staple] [--days N] [--key-type T]
    staple lab revoke DIR SERIAL|CERT.pem [--reason R] [--time T] [--hold-instruction I] [--compromised-at T]
    staple lab ls DIR [--json]
    staple lab SUBCOMMAND -h

DESCRIPTION
    A lab is a directory holding a root CA, an issuing CA, a delegated OCSP signer and an OpenSSL CA
    database. 'staple responder --lab DIR' answers OCSP requests for it; the certificates the lab issues
    point at that responder. The layout is fixed, so scripts and other tools can rely on it:

        DIR/root.pem, DIR/root.key        the root CA
        DIR/ca.pem, DIR/ca.key            the issuing CA (signs leaves and the OCSP signer)
        DIR/ocsp.pem, DIR/ocsp.key        the OCSP signer (OCSPSigning, ocsp-nocheck)
        DIR/index.txt, DIR/serial         the OpenSSL CA database and the next serial
        DIR/certs/NAME.pem, NAME.key      a leaf then the issuing CA, and the leaf's key
        DIR/openssl.cnf, DIR/newcerts/    for openssl ca
        DIR/lab.json                      the responder URL and key type

    Keys are written 0600. index.txt stays compatible with OpenSSL both ways: openssl ca and openssl ocsp
    -index read what staple writes, and staple reads what openssl ca writes. Issue with OpenSSL too:

        openssl ca -batch -config DIR/openssl.cnf -in NAME.csr -out NAME.pem -notext

SUBCOMMANDS
    init      make a lab in DIR (created if missing)
    issue     issue a leaf for the names (DNS names or IP addresses), recorded in index.txt
    revoke    revoke a certificate, by serial (hex, as lab ls prints it) or by its PEM file
    ls        list index.txt

EXIT STATUS
    0 success, 1 failure, 2 usage error.
`

func labCommand() command {
	return command{name: "lab", summary: "an offline CA test lab: init, issue, revoke, ls", run: runLab}
}

func runLab(_ context.Context, env Env, args []string) error {
	if len(args) == 0 {
		return usageError("lab: missing subcommand (init, issue, revoke or ls; run 'staple lab -h')")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(env.Stdout, labManual)
		return nil
	case "init":
		return runLabInit(env, args[1:])
	case "issue":
		return runLabIssue(env, args[1:])
	case "revoke":
		return runLabRevoke(env, args[1:])
	case "ls":
		return runLabLs(env, args[1:])
	}
	return usageError("lab: unknown subcommand %q (want init, issue, revoke or ls)", args[0])
}

const labInitManual = `NAME
    staple lab init - make an offline CA test lab

SYNOPSIS
    staple lab init DIR [--key-type ecdsa|rsa|ed25519] [--responder-url URL]

DESCRIPTION
    Makes DIR (if missing) and in it a root CA (10 years), an issuing CA (5 years), a delegated OCSP signer
    (1 year, OCSPSigning, ocsp-nocheck, serial 1000), index.txt, serial, index.txt.attr, openssl.cnf, and the
    certs and newcerts directories. A DIR that already holds a lab is left alone (exit 1); of two inits of
    one DIR at once, one makes the lab and the other fails so. Every command that changes a lab (init,
    issue, revoke) holds its lock, DIR/index.txt.lock, waiting up to 10 s for another to finish.

    --responder-url is the AIA OCSP URL of every certificate the lab issues; the default is the default
    listen address of 'staple responder'. Keys are ECDSA P-256 unless --key-type says rsa (2048) or ed25519.
`

func runLabInit(env Env, args []string) error {
	fs := newFlagSet(env, "lab init", labInitManual)
	keyType := fs.String("key-type", "ecdsa", "key type of the CAs, the signer and later leaves: ecdsa, rsa or ed25519")
	url := fs.String("responder-url", lab.DefaultResponderURL, "the OCSP URL put in issued certificates")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(ops) != 1 {
		return usageError("lab init: want one DIR, got %d arguments", len(ops))
	}
	kt, err := lab.ParseKeyType(*keyType)
	if err != nil {
		return usageError("lab init: %v", err)
	}
	l, err := lab.Init(ops[0], lab.InitOptions{KeyType: kt, ResponderURL: *url})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "lab %s: %s root CA %q, issuing CA %q, OCSP signer serial %s\n",
		l.Dir, kt, l.Root.Subject.CommonName, l.CA.Subject.CommonName, responder.SerialKey(l.Signer.SerialNumber))
	fmt.Fprintf(env.Stdout, "issue:   staple lab issue %s NAME\n", l.Dir)
	fmt.Fprintf(env.Stdout, "respond: staple responder --lab %s   (certificates point at %s)\n", l.Dir, l.ResponderURL)
	return nil
}

const labIssueManual = `NAME
    staple lab issue - issue a leaf certificate in a lab

SYNOPSIS
    staple lab issue DIR NAME... [--ip ADDR]... [--must-staple] [--days N] [--key-type T]

DESCRIPTION
    Issues one certificate whose SANs are the NAMEs (DNS names, "*.example.test" wildcards, or IP addresses)
    and every --ip, signed by the lab's issuing CA, with the lab's responder URL as AIA OCSP. The first NAME
    is the subject CN and names the files: DIR/certs/NAME.pem (the leaf then the issuing CA) and
    DIR/certs/NAME.key (0600); "*" becomes "_wildcard". The certificate takes the next serial of DIR/serial
    and is recorded in DIR/index.txt. Prints the serial and the files.

    --must-staple adds the TLS Feature extension (status_request, RFC 7633).
`

func runLabIssue(env Env, args []string) error {
	fs := newFlagSet(env, "lab issue", labIssueManual)
	var ips []net.IP
	fs.Func("ip", "an IP address SAN (repeatable)", func(s string) error {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("%q is not an IP address", s)
		}
		ips = append(ips, ip)
		return nil
	})
	mustStaple := fs.Bool("must-staple", false, "add the TLS Feature extension status_request (Must-Staple)")
	days := fs.Int("days", lab.DefaultLeafDays, "validity in days")
	keyType := fs.String("key-type", "", "the leaf's key type: ecdsa, rsa or ed25519 (default: the lab's)")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(ops) < 2 {
		return usageError("lab issue: want DIR and at least one NAME")
	}
	if *days < 1 || *days > 3650 {
		return usageError("lab issue: --days %d out of range 1..3650", *days)
	}
	var kt lab.KeyType
	if *keyType != "" {
		if kt, err = lab.ParseKeyType(*keyType); err != nil {
			return usageError("lab issue: %v", err)
		}
	}
	l, err := lab.Open(ops[0])
	if err != nil {
		return err
	}
	is, err := l.Issue(lab.IssueOptions{Names: ops[1:], IPs: ips, MustStaple: *mustStaple, Days: *days, KeyType: kt})
	if err != nil {
		if errors.Is(err, lab.ErrBadName) {
			return usageError("lab issue: %v", err)
		}
		return err
	}
	fmt.Fprintf(env.Stdout, "issued %s %s, expires %s, OCSP %s\n  %s\n  %s\n", is.Entry.SerialHex(),
		is.Cert.Subject.CommonName, is.Cert.NotAfter.UTC().Format(time.RFC3339), l.ResponderURL, is.CertFile, is.KeyFile)
	return nil
}

const labRevokeManual = `NAME
    staple lab revoke - revoke a certificate of a lab

SYNOPSIS
    staple lab revoke DIR SERIAL|CERT.pem [--reason R] [--time T] [--hold-instruction I] [--compromised-at T]

DESCRIPTION
    Marks the certificate revoked in DIR/index.txt, as 'openssl ca -revoke' would. SERIAL is hex as
    'staple lab ls' prints it (0x and colons allowed); a file argument is read as a PEM certificate, which
    the lab's issuing CA must have signed. A running 'staple responder --lab DIR' answers revoked from the
    very next request.

    --reason is one of unspecified, keyCompromise, CACompromise, affiliationChanged, superseded,
    cessationOfOperation, certificateHold, removeFromCRL, or none (the default: no reason, as openssl ca
    without -crl_reason). --hold-instruction (none, callIssuer, reject or an OID) goes with certificateHold.
    --compromised-at records when the key was compromised (an invalidity date) and implies keyCompromise
    unless --reason is CACompromise. Times are RFC 3339 (2026-11-20T12:00:00Z), a date (2026-11-20), or
    YYYYMMDDHHMMSSZ; --time defaults to now.
`

func runLabRevoke(env Env, args []string) error {
	fs := newFlagSet(env, "lab revoke", labRevokeManual)
	reason := fs.String("reason", "none", "revocation reason")
	at := fs.String("time", "", "revocation time (default now)")
	hold := fs.String("hold-instruction", "", "hold instruction, with --reason certificateHold")
	compromised := fs.String("compromised-at", "", "invalidity date: when the key was compromised")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(ops) != 2 {
		return usageError("lab revoke: want DIR and one SERIAL or CERT.pem")
	}
	var opts lab.RevokeOptions
	if opts.Reason, err = ocspwire.ParseReason(*reason); err != nil {
		return usageError("lab revoke: %v", err)
	}
	if *at != "" {
		if opts.Time, err = parseTimeFlag(*at); err != nil {
			return usageError("lab revoke: --time: %v", err)
		}
	}
	if *hold != "" {
		if opts.Reason != ocspwire.ReasonCertificateHold {
			return usageError("lab revoke: --hold-instruction goes with --reason certificateHold")
		}
		if opts.HoldInstruction, err = ocspwire.ParseHoldInstruction(*hold); err != nil {
			return usageError("lab revoke: %v", err)
		}
	}
	if *compromised != "" {
		if opts.InvalidityDate, err = parseTimeFlag(*compromised); err != nil {
			return usageError("lab revoke: --compromised-at: %v", err)
		}
		switch opts.Reason {
		case ocspwire.ReasonNone:
			opts.Reason = ocspwire.ReasonKeyCompromise
		case ocspwire.ReasonKeyCompromise, ocspwire.ReasonCACompromise:
		default:
			return usageError("lab revoke: --compromised-at goes with keyCompromise or CACompromise, not %v", opts.Reason)
		}
	}
	l, err := lab.Open(ops[0])
	if err != nil {
		return err
	}
	serial, err := serialArg(l, ops[1])
	if err != nil {
		return err
	}
	e, err := l.Revoke(serial, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "revoked %s %s at %s, reason %v\n", e.SerialHex(), e.Subject,
		e.RevokedAt.UTC().Format(time.RFC3339), e.Reason)
	return nil
}

// serialArg reads a serial in hex, or the serial of a certificate file the lab issued.
func serialArg(l *lab.Lab, arg string) (*big.Int, error) {
	if st, err := os.Stat(arg); err == nil && !st.IsDir() {
		return l.SerialOf(arg)
	}
	digits := strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(arg, "0x"), "0X"), ":", "")
	n, ok := new(big.Int).SetString(digits, 16)
	if !ok || n.Sign() < 0 || len(digits) > 80 {
		return nil, usageError("lab revoke: %q is neither a serial in hex nor a certificate file", arg)
	}
	return n, nil
}

// parseTimeFlag reads RFC 3339, a date, or the YYYYMMDDHHMMSSZ form of openssl.
func parseTimeFlag(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02", "20060102150405Z"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (want 2026-11-20T12:00:00Z, 2026-11-20 or 20261120120000Z)", s)
}

const labLsManual = `NAME
    staple lab ls - list the certificates of a lab

SYNOPSIS
    staple lab ls DIR [--json]

DESCRIPTION
    Prints DIR/index.txt, one certificate a line: status (valid, revoked, expired), serial, expiry,
    revocation time and reason, subject. Rows written by openssl ca are listed like staple's own. --json
    prints an array of objects with the same fields.
`

// lsEntry is one row of 'lab ls --json'.
type lsEntry struct {
	Status          string     `json:"status"`
	Serial          string     `json:"serial"`
	Expires         time.Time  `json:"expires"`
	RevokedAt       *time.Time `json:"revoked_at,omitempty"`
	Reason          string     `json:"reason,omitempty"`
	HoldInstruction string     `json:"hold_instruction,omitempty"`
	InvalidityDate  *time.Time `json:"invalidity_date,omitempty"`
	Subject         string     `json:"subject"`
}

func runLabLs(env Env, args []string) error {
	fs := newFlagSet(env, "lab ls", labLsManual)
	asJSON := fs.Bool("json", false, "print JSON")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(ops) != 1 {
		return usageError("lab ls: want one DIR")
	}
	l, err := lab.Open(ops[0])
	if err != nil {
		return err
	}
	entries, err := l.Entries()
	if err != nil {
		return err
	}
	rows := make([]lsEntry, len(entries))
	for i, e := range entries {
		r := lsEntry{Status: e.Status.String(), Serial: e.SerialHex(), Expires: e.Expires.UTC(), Subject: e.Subject}
		if e.Status == lab.Revoked {
			t := e.RevokedAt.UTC()
			r.RevokedAt = &t
			if e.Reason != ocspwire.ReasonNone {
				r.Reason = e.Reason.String()
			}
			if e.HoldInstruction != nil {
				r.HoldInstruction = e.HoldInstruction.String()
			}
			if !e.InvalidityDate.IsZero() {
				d := e.InvalidityDate.UTC()
				r.InvalidityDate = &d
			}
		}
		rows[i] = r
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tSERIAL\tEXPIRES\tREVOKED\tREASON\tSUBJECT")
	for _, r := range rows {
		revoked, reason := "-", "-"
		if r.RevokedAt != nil {
			revoked = r.RevokedAt.Format(time.RFC3339)
		}
		if r.Reason != "" {
			reason = r.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Status, r.Serial, r.Expires.Format(time.RFC3339), revoked, reason, r.Subject)
	}
	return tw.Flush()
}
