package cli

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"staple/admin"
	"staple/certs"
	"staple/config"
	"staple/ocspfetch"
	"staple/ocspwire"
)

const fetchManual = `NAME
    staple fetch - ask a certificate's OCSP responder for its status and verify the answer

SYNOPSIS
    staple fetch CERT.pem... [--issuer FILE] [--url URL] [--sha256] [--nonce] [--json] [--timeout D]
                 [--data-dir DIR | --config FILE] [--no-store]

DESCRIPTION
    For each certificate file (a PEM chain, leaf first or in any order), builds an OCSP request for the leaf,
    sends it to the responder URLs of the certificate's Authority Information Access in order (or to --url),
    and verifies the answer in full (RFC 6960: the CertID, the signer and its authorization, the times, the
    critical extensions, the nonce). It prints the status, thisUpdate and nextUpdate, the responder that
    answered, the signer, and when staple would refresh the response.

    The issuer is the first certificate of the file that signed the leaf, else one from --issuer. Requests
    are GET when they fit in 255 bytes, else POST, with a SHA-1 CertID unless --sha256, and without a nonce
    unless --nonce (pre-signing responders and Microsoft's reject or ignore nonces). Each exchange is bounded
    by --timeout and responses by 64 KiB. Proxies come from HTTP_PROXY, HTTPS_PROXY and NO_PROXY.

    Each verified response is stored in the cache of --data-dir (default ./staple-data, made if missing),
    through the running service's admin socket when one answers (it staples the response at once), else in
    the cache file; staple serve then starts with it. --no-store only prints.

OUTPUT
    Text, one block per certificate; with --json, a JSON array with one object per certificate.

EXIT STATUS
    0 every response is good, 3 one says revoked, 4 one says unknown (and none is revoked), 1 a fetch or a
    verification failed (one line on stderr naming the certificate and the reason), 2 bad usage.
`

func fetchCommand() command {
	return command{name: "fetch", summary: "fetch and verify the OCSP status of certificates", run: runFetch}
}

// fetchResult is what fetch found for one certificate, printed as text or JSON.
type fetchResult struct {
	File       string    `json:"file"`
	Subject    string    `json:"subject,omitempty"`
	Serial     string    `json:"serial,omitempty"`
	Status     string    `json:"status,omitempty"` // good, revoked, unknown; empty on error
	Error      string    `json:"error,omitempty"`
	Reason     string    `json:"error_reason,omitempty"` // ocspfetch.Reason of Error
	ThisUpdate time.Time `json:"this_update,omitzero"`
	NextUpdate time.Time `json:"next_update,omitzero"`
	ProducedAt time.Time `json:"produced_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	Revocation string    `json:"revocation_reason,omitempty"`
	Responder  string    `json:"responder,omitempty"`
	Method     string    `json:"method,omitempty"`
	Signer     string    `json:"signer,omitempty"`
	SignerKind string    `json:"signer_kind,omitempty"` // issuer or delegated
	CertIDHash string    `json:"certid_hash,omitempty"`
	RefreshAt  time.Time `json:"refresh_at,omitzero"`
	Expires    time.Time `json:"stapled_until,omitzero"`
	MaxAge     string    `json:"max_age,omitempty"`
	Warning    string    `json:"warning,omitempty"`
	Stored     string    `json:"stored,omitempty"` // where the response was stored

	resp  *ocspfetch.Response // the verified response, for storing
	chain *certs.Chain
}

func runFetch(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "fetch", fetchManual)
	issuerFile := fs.String("issuer", "", "issuer certificate (or CA bundle) when CERT.pem lacks it")
	url := fs.String("url", "", "ask this responder instead of the certificate's AIA OCSP URLs")
	sha256 := fs.Bool("sha256", false, "use SHA-256 in the CertID instead of SHA-1")
	nonce := fs.Bool("nonce", false, "send a nonce, which must come back")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", ocspfetch.DefaultTimeout, "bound on each exchange with a responder")
	target := storeFlags(fs)
	noStore := fs.Bool("no-store", false, "print only; store nothing")
	files, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError("fetch: give at least one certificate file")
	}
	if *timeout <= 0 {
		return usageError("fetch: --timeout must be positive")
	}
	client := &ocspfetch.Client{
		UserAgent: "staple/" + Version(env),
		Timeout:   *timeout,
		Nonce:     *nonce,
		Now:       env.now,
	}
	if *sha256 {
		client.Hash = crypto.SHA256
	}
	var policy ocspfetch.Policy
	results := make([]*fetchResult, 0, len(files))
	var failures []error
	worst := ExitOK
	var st *fetchStore
	if !*noStore {
		st = &fetchStore{env: env, target: target}
		defer st.close()
	}
	for _, f := range files {
		res, err := fetchOne(ctx, client, policy, f, *issuerFile, *url, env.now())
		if err == nil && st != nil {
			err = st.store(ctx, res)
		}
		results = append(results, res)
		switch {
		case err != nil:
			failures = append(failures, err)
		case res.Status == "revoked":
			worst = ExitRevoked
		case res.Status == "unknown" && worst != ExitRevoked:
			worst = ExitUnknown
		}
	}
	if *asJSON {
		if err := writeJSON(env.Stdout, results); err != nil {
			return err
		}
	} else {
		for i, r := range results {
			if i > 0 {
				fmt.Fprintln(env.Stdout)
			}
			writeFetch(env.Stdout, r)
		}
	}
	if len(failures) > 0 {
		// Every failure gets its line; the last is returned for main to print.
		for _, err := range failures[:len(failures)-1] {
			fmt.Fprintln(env.Stderr, "staple: "+err.Error())
		}
		return &ExitError{Code: ExitFailure, Err: failures[len(failures)-1]}
	}
	if worst != ExitOK {
		return &ExitError{Code: worst}
	}
	return nil
}

// fetchOne fetches and verifies the status of the leaf of file. The error, when not nil, is one line naming
// the file and the reason; the result then carries it too.
func fetchOne(ctx context.Context, client *ocspfetch.Client, policy ocspfetch.Policy, file, issuerFile, url string, now time.Time) (*fetchResult, error) {
	res := &fetchResult{File: file}
	fail := func(err error) (*fetchResult, error) {
		res.Error, res.Reason = err.Error(), ocspfetch.Reason(err)
		return res, fmt.Errorf("fetch %s: %s: %w", file, res.Reason, err)
	}
	chain, err := certs.LoadChain(file, "", issuerFile)
	if err != nil {
		return fail(err)
	}
	leaf := chain.Leaf
	res.Subject, res.Serial = leaf.Subject.String(), fmt.Sprintf("%X", leaf.SerialNumber)
	if chain.Issuer == nil {
		return fail(fmt.Errorf("%w: the file holds no certificate that signed the leaf; give it with --issuer", ocspfetch.ErrNoIssuer))
	}
	var r *ocspfetch.Response
	if url != "" {
		r, err = client.FetchURL(ctx, url, leaf, chain.Issuer)
	} else {
		if len(client.URLs(leaf)) == 0 {
			return fail(fmt.Errorf("%w (give one with --url)", ocspfetch.ErrNoResponderURL))
		}
		r, err = client.Fetch(ctx, leaf, chain.Issuer)
	}
	if err != nil {
		return fail(err)
	}
	res.resp, res.chain = r, chain
	res.Status = r.Status.String()
	res.ThisUpdate, res.NextUpdate, res.ProducedAt = r.ThisUpdate, r.NextUpdate, r.ProducedAt
	if r.Status == ocspwire.Revoked {
		res.RevokedAt = r.RevokedAt
		if r.HasReason {
			res.Revocation = ocspwire.ReasonName(r.RevocationReason)
		}
	}
	res.Responder, res.Method = ocspfetch.RedactURL(r.HTTP.URL), r.HTTP.Method
	res.Signer, res.SignerKind = r.Signer.Subject.String(), "delegated"
	if r.SignerIsIssuer {
		res.SignerKind = "issuer"
	}
	res.CertIDHash = r.CertIDHash.String()
	res.RefreshAt = policy.RefreshAt(r, now, nil)
	res.Expires = r.Expiry(policy.TTL())
	if r.HTTP.HasMaxAge {
		res.MaxAge = r.HTTP.MaxAge.String()
	}
	switch {
	case r.HTTP.WrongContentType:
		res.Warning = fmt.Sprintf("the responder labelled the response %q", r.HTTP.ContentType)
	case r.NextUpdate.IsZero():
		res.Warning = fmt.Sprintf("no nextUpdate: stapled for %v after thisUpdate only", policy.TTL())
	}
	return res, nil
}

func writeFetch(w io.Writer, r *fetchResult) {
	if r.Error != "" {
		fmt.Fprintf(w, "%s: error (%s)\n", r.File, r.Reason)
	} else {
		fmt.Fprintf(w, "%s: %s\n", r.File, r.Status)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	row := func(k, v string) {
		if v != "" && v != "-" {
			fmt.Fprintf(tw, "  %s:\t%s\n", k, v)
		}
	}
	row("Subject", r.Subject)
	row("Serial", r.Serial)
	row("Error", r.Error)
	if r.Status == "revoked" {
		row("Revoked at", stamp(r.RevokedAt))
		row("Reason", r.Revocation)
	}
	row("This update", stamp(r.ThisUpdate))
	row("Next update", stamp(r.NextUpdate))
	row("Produced at", stamp(r.ProducedAt))
	if r.Responder != "" {
		row("Responder", r.Responder+" ("+r.Method+")")
	}
	if r.Signer != "" {
		row("Signer", r.Signer+" ("+r.SignerKind+")")
	}
	row("CertID hash", r.CertIDHash)
	row("Max-age", r.MaxAge)
	row("Refresh at", stamp(r.RefreshAt))
	row("Stapled until", stamp(r.Expires))
	row("Warning", r.Warning)
	row("Stored", r.Stored)
	tw.Flush()
}

// fetchStore stores fetch's responses in the cache, opened on the first one.
type fetchStore struct {
	env    Env
	target storeTarget
	b      admin.Backend
	where  string
	done   func()
}

func (s *fetchStore) store(ctx context.Context, res *fetchResult) error {
	notStored := func(err error) error {
		res.Stored = "no: " + err.Error()
		return fmt.Errorf("fetch %s: %s, but not stored: %w", res.File, res.Status, err)
	}
	if s.b == nil {
		dataDir, _, err := s.target.resolve()
		if err != nil {
			return notStored(err)
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return notStored(fmt.Errorf("the data directory: %w", err))
		}
		if s.b, s.done, err = openBackend(ctx, s.env, s.target, writeCache); err != nil {
			return notStored(err)
		}
		s.where = filepath.Join(dataDir, config.DatabaseName)
		if _, live := s.b.(*admin.Client); live {
			s.where = "the running service (" + filepath.Join(dataDir, admin.SocketName) + ")"
		}
	}
	var chain []byte
	for _, c := range []*x509.Certificate{res.chain.Leaf, res.chain.Issuer} {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if _, err := s.b.Import(ctx, admin.ImportRequest{DER: res.resp.Raw, Chain: chain}); err != nil {
		return notStored(fmt.Errorf("%s: %w", s.where, err))
	}
	res.Stored = s.where
	return nil
}

func (s *fetchStore) close() {
	if s.done != nil {
		s.done()
	}
}
