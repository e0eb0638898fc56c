package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"

	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"staple/certs"
	"staple/ocspfetch"
	"staple/ocspwire"
)

const checkManual = `NAME
    staple check - connect to a TLS server, ask for its OCSP staple and verify it

SYNOPSIS
    staple check HOST:PORT [--servername NAME] [--ca FILE] [--issuer FILE] [--tls 1.2|1.3] [--json]

DESCRIPTION
    Connects as a TLS client that asks for certificate status (status_request), then checks what came back:
    the chain against --ca (or the system roots), and the stapled OCSP response against the leaf and its
    issuer, with staple's full RFC 6960 verification. It prints what 'openssl s_client -status' would
    show: the chain, the verify result and the response decoded, then one verdict line.

    The issuer is the first certificate of the served chain that signed the leaf, else one from --issuer or
    --ca. --servername sets SNI (default: HOST when it is a name, none for an IP address).

EXIT STATUS
    0 a valid staple says good, 3 it says revoked, 4 it says unknown, 1 no staple, an invalid staple, or no
    connection, 2 bad usage.
`

func checkCommand() command {
	return command{name: "check", summary: "connect to a TLS server and verify its OCSP staple", run: runCheck}
}

// checkResult is what check found, printed as text or JSON.
type checkResult struct {
	Address     string    `json:"address"`
	ServerName  string    `json:"server_name,omitempty"`
	TLSVersion  string    `json:"tls_version"`
	CipherSuite string    `json:"cipher_suite"`
	Chain       []string  `json:"chain"`
	ChainError  string    `json:"chain_error,omitempty"`
	Stapled     bool      `json:"stapled"`
	Status      string    `json:"status,omitempty"` // good, revoked, unknown; empty when no valid staple
	Error       string    `json:"error,omitempty"`  // why the staple is missing or invalid
	ThisUpdate  time.Time `json:"this_update,omitzero"`
	NextUpdate  time.Time `json:"next_update,omitzero"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	Reason      string    `json:"revocation_reason,omitempty"`
	Signer      string    `json:"signer,omitempty"`
	MustStaple  bool      `json:"must_staple"`
	text        string
}

func runCheck(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "check", checkManual)
	serverName := fs.String("servername", "", "SNI name to send (default: HOST when it is a name)")
	caFile := fs.String("ca", "", "CA bundle to verify the chain with (default: the system roots)")
	issuerFile := fs.String("issuer", "", "issuer certificate when the server does not send it")
	version := fs.String("tls", "", "pin the TLS version: 1.2 or 1.3")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on connecting and handshaking")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(ops) != 1 {
		return usageError("check: give one HOST:PORT")
	}
	host, _, err := net.SplitHostPort(ops[0])
	if err != nil {
		return usageError("check: %q is not HOST:PORT", ops[0])
	}
	cfg := &tls.Config{InsecureSkipVerify: true} // the chain is verified below, to report rather than abort
	switch *version {
	case "":
	case "1.2":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	case "1.3":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	default:
		return usageError("check: --tls %q: want 1.2 or 1.3", *version)
	}
	cfg.ServerName = *serverName
	if cfg.ServerName == "" && net.ParseIP(host) == nil {
		cfg.ServerName = host
	}
	var roots *x509.CertPool
	var extra []*x509.Certificate
	for _, f := range []string{*caFile, *issuerFile} {
		if f == "" {
			continue
		}
		b, err := certs.LoadFile(f)
		if err != nil {
			return err
		}
		extra = append(extra, b.Certs...)
		if f == *caFile {
			roots = x509.NewCertPool()
			for _, c := range b.Certs {
				roots.AddCert(c)
			}
		}
	}
	res, err := check(ctx, ops[0], cfg, roots, extra, *timeout, env.now())
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSON(env.Stdout, res); err != nil {
			return err
		}
	} else {
		writeCheck(env.Stdout, res)
	}
	switch {
	case res.Status == "good":
		return nil
	case res.Status == "revoked":
		return &ExitError{Code: ExitRevoked}
	case res.Status == "unknown":
		return &ExitError{Code: ExitUnknown}
	}
	return &ExitError{Code: ExitFailure, Err: fmt.Errorf("check %s: %s", ops[0], res.Error)}
}

func check(ctx context.Context, addr string, cfg *tls.Config, roots *x509.CertPool, extra []*x509.Certificate, timeout time.Duration, now time.Time) (*checkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", addr, err)
	}
	defer conn.Close()
	cs := conn.(*tls.Conn).ConnectionState()
	res := &checkResult{Address: addr, ServerName: cfg.ServerName, TLSVersion: tls.VersionName(cs.Version),
		CipherSuite: tls.CipherSuiteName(cs.CipherSuite), Stapled: len(cs.OCSPResponse) > 0}
	if len(cs.PeerCertificates) == 0 {
		return nil, fmt.Errorf("check %s: the server sent no certificate", addr)
	}
	leaf := cs.PeerCertificates[0]
	res.MustStaple = certs.MustStaple(leaf)
	for i, c := range cs.PeerCertificates {
		res.Chain = append(res.Chain, fmt.Sprintf("%d s:%s i:%s", i, c.Subject, c.Issuer))
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: cfg.ServerName, CurrentTime: now}); err != nil {
		res.ChainError = err.Error()
	}
	if !res.Stapled {
		res.Error = "no OCSP response was stapled"
		if res.MustStaple {
			res.Error += " (the certificate is Must-Staple: clients that honour it refuse this server)"
		}
		return res, nil
	}
	text, err := ocspwire.Text(cs.OCSPResponse)
	if err != nil {
		text = fmt.Sprintf("(the staple does not decode: %v)\n", err)
	}
	res.text = text
	issuer := certs.ChooseIssuer(leaf, cs.PeerCertificates[1:], extra)
	if issuer == nil {
		res.Error = "the issuer of the leaf is unknown, so the staple cannot be verified: give it with --issuer or --ca"
		return res, nil
	}
	r, err := ocspfetch.Verify(cs.OCSPResponse, leaf, issuer, now, ocspfetch.VerifyOptions{})
	if err != nil {
		res.Error = "invalid staple: " + err.Error()
		return res, nil
	}
	res.Status, res.ThisUpdate, res.NextUpdate = r.Status.String(), r.ThisUpdate, r.NextUpdate
	res.Signer = r.Signer.Subject.String()
	if r.Status == ocspwire.Revoked {
		res.RevokedAt = r.RevokedAt
		if r.HasReason {
			res.Reason = ocspwire.ReasonName(r.RevocationReason)
		}
	}
	return res, nil
}

func writeCheck(w io.Writer, r *checkResult) {
	fmt.Fprintf(w, "CONNECTED(%s) %s %s", r.Address, r.TLSVersion, r.CipherSuite)
	if r.ServerName != "" {
		fmt.Fprintf(w, " servername=%s", r.ServerName)
	}
	fmt.Fprintln(w, "\n---\nCertificate chain")
	for _, c := range r.Chain {
		fmt.Fprintln(w, " "+c)
	}
	fmt.Fprintln(w, "---")
	if r.ChainError == "" {
		fmt.Fprintln(w, "Verify return code: 0 (ok)")
	} else {
		fmt.Fprintf(w, "Verify return code: failed (%s)\n", r.ChainError)
	}
	if !r.Stapled {
		fmt.Fprintln(w, "OCSP response: no response sent")
	} else {
		fmt.Fprintln(w, "OCSP response: \n======================================")
		fmt.Fprint(w, r.text)
		fmt.Fprintln(w, "======================================")
	}
	if r.Status != "" {
		line := fmt.Sprintf("staple: %s, verified, signed by %s, thisUpdate %s, nextUpdate %s", r.Status, r.Signer, stamp(r.ThisUpdate), stamp(r.NextUpdate))
		if r.Status == "revoked" {
			line += fmt.Sprintf(", revoked at %s", stamp(r.RevokedAt))
			if r.Reason != "" {
				line += " (" + r.Reason + ")"
			}
		}
		fmt.Fprintln(w, line)
	} else {
		fmt.Fprintln(w, "staple: "+strings.TrimSpace(r.Error))
	}
}
