package cli

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"staple/lab"
	"staple/responder"
	"staple/service"
)

const responderManual = `NAME
    staple responder - an OCSP responder for a lab or an OpenSSL CA, that can misbehave on purpose

SYNOPSIS
    staple responder --lab DIR [--listen ADDR] [--validity D] [--fault [SERIAL:]FAULT]...
    staple responder --index index.txt --ca CA.pem [--signer SIGNER.pem] --key KEY.pem [FLAGS]

DESCRIPTION
    Answers OCSP requests (RFC 6960, RFC 5019/9919) over HTTP from an OpenSSL index.txt: the one of a lab
    made by 'staple lab init', or any 'openssl ca' database with its CA certificate, signer and key, as
    'openssl ocsp -index' takes them (no --signer: the CA signs its own responses).

    GET with the URL-encoded base64 request in the path and POST application/ocsp-request both work, with
    several certificates in one request. V rows answer good, R rows revoked (with reason, hold instruction
    and invalidity date), E rows and serials not in the index unknown; another issuer's certificates get
    unauthorized, and what does not parse malformedRequest.

    Responses are pre-signed per serial, valid for --validity, and re-signed when half of it has passed.
    index.txt is checked before every answer, so the first request after 'staple lab revoke' or 'openssl ca
    -revoke' already says revoked. A request with a nonce is signed fresh and the nonce echoed. Answers carry
    the RFC 5019 headers (Last-Modified, Expires, ETag, Cache-Control: max-age, public, no-transform,
    must-revalidate); If-None-Match gets 304. Requests are served concurrently, and every connection has
    read and write deadlines, so a slow or stuck client delays nobody else.

FAULTS
    --fault [SERIAL:]FAULT (repeatable) makes the responder misbehave for one serial (hex) or for every
    request; a serial's fault wins. FAULT is KIND[=ARG][,times=N]: N requests only, else until cleared.

        delay[=5s]          wait, then answer          garbage             200 with bytes that are not DER
        http500             HTTP 500                   empty               200 with an empty body
        http503[=30s]       HTTP 503 with Retry-After  drop                close the connection unanswered
        redirect-loop       redirect to itself         oversize[=BYTES]    a 4 MiB body without length
        wrong-content-type  the answer as text/html    malformed, internal-error, try-later, sig-required,
                                                       unauthorized        that OCSP error status
        expired             nextUpdate in the past     not-yet-valid       thisUpdate an hour ahead
        no-next-update      no nextUpdate              wrong-signer        signed by an unauthorized key
        bad-signature       a signature that fails     wrong-serial        the answer for serial+1
        wrong-nonce         another nonce than asked

    Unless --fault-api=false, faults change at run time through the same listener:

        curl -X PUT --data 'http503=10s,times=3' http://ADDR/-/faults/1001    one serial
        curl -X PUT --data 'delay=2s' http://ADDR/-/faults/all                every request
        curl http://ADDR/-/faults                                             list
        curl -X DELETE http://ADDR/-/faults/1001                              clear one (all: every one)
        curl -X DELETE http://ADDR/-/faults                                   clear them all

    Keep the listener on loopback when the fault API is on: anyone who reaches it can switch faults.

    The responder runs until interrupted, then finishes the requests in flight and exits 0.
`

func responderCommand() command {
	return command{name: "responder", summary: "an OCSP responder for a lab or an OpenSSL CA, with fault injection", run: runResponder}
}

func runResponder(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "responder", responderManual)
	labDir := fs.String("lab", "", "the lab directory (made by staple lab init)")
	index := fs.String("index", "", "an OpenSSL index.txt (without --lab)")
	caFile := fs.String("ca", "", "the CA certificate whose certificates are answered for (without --lab)")
	signerFile := fs.String("signer", "", "the responder certificate (default: the CA signs)")
	keyFile := fs.String("key", "", "the signer's private key (without --lab)")
	listen := fs.String("listen", "127.0.0.1:8888", "address to listen on")
	validity := fs.Duration("validity", lab.DefaultValidity, "validity of the responses (nextUpdate - thisUpdate)")
	byKey := fs.Bool("by-key", false, "identify the responder by key hash instead of by name")
	var rules []responder.FaultRule
	fs.Func("fault", "[SERIAL:]FAULT to inject (repeatable; see FAULTS)", func(s string) error {
		r, err := responder.ParseFaultRule(s)
		if err == nil {
			rules = append(rules, r)
		}
		return err
	})
	faultAPI := fs.Bool("fault-api", true, "serve the fault admin endpoint /-/faults")
	logLevel := fs.String("log-level", "info", "debug (one line per request), info, warn or error")
	logFormat := fs.String("log-format", "auto", "text, json, or auto (text on a terminal)")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(ops) > 0 {
		return usageError("responder: unexpected argument %q", ops[0])
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, *logLevel) {
		return usageError("responder: --log-level %q (want debug, info, warn or error)", *logLevel)
	}
	if !slices.Contains([]string{"auto", "text", "json"}, *logFormat) {
		return usageError("responder: --log-format %q (want auto, text or json)", *logFormat)
	}
	if *validity < 2*time.Second {
		return usageError("responder: --validity %v is too short (at least 2s)", *validity)
	}
	cfg, err := sourceConfig(*labDir, *index, *caFile, *signerFile, *keyFile)
	if err != nil {
		return err
	}
	log := service.NewLogger(env.Stderr, *logLevel, *logFormat).With().Str("component", "responder").Logger()
	cfg.Validity, cfg.ByKey, cfg.Log = *validity, *byKey, log
	src, err := lab.NewSource(cfg)
	if err != nil {
		return err
	}
	if left := time.Until(cfg.Signer.NotAfter); left < 30*24*time.Hour {
		log.Warn().Time("not_after", cfg.Signer.NotAfter).Msg("the signer certificate expires soon: clients will reject its responses")
	}
	n, err := src.Presign(ctx)
	if err != nil {
		return err
	}
	faults := &responder.Faults{}
	for _, r := range rules {
		faults.Set(r.Serial, r.Fault)
	}
	rs := &responder.Responder{Source: src, Faults: faults, FaultAPI: *faultAPI, Log: log}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("responder: %w", err)
	}
	ev := log.Info().Str("url", "http://"+ln.Addr().String()).Str("index", cfg.IndexFile).Int("presigned", n).
		Dur("validity", *validity).Bool("fault_api", *faultAPI)
	if len(rules) > 0 {
		ev = ev.Str("faults", faultList(rules))
	}
	ev.Msg("listening")
	drains(ctx, responder.DefaultShutdownTimeout)
	return rs.Serve(ctx, ln)
}

// sourceConfig loads the signer's files from --lab, or from --index, --ca, --signer and --key.
func sourceConfig(labDir, index, caFile, signerFile, keyFile string) (lab.SourceConfig, error) {
	if labDir != "" {
		if index != "" || caFile != "" || signerFile != "" || keyFile != "" {
			return lab.SourceConfig{}, usageError("responder: --lab excludes --index, --ca, --signer and --key")
		}
		l, err := lab.Open(labDir)
		if err != nil {
			return lab.SourceConfig{}, err
		}
		return l.SourceConfig(), nil
	}
	if index == "" || caFile == "" || keyFile == "" {
		return lab.SourceConfig{}, usageError("responder: want --lab DIR, or --index, --ca and --key (run 'staple responder -h')")
	}
	cfg, err := lab.LoadSourceConfig(index, caFile, signerFile, keyFile)
	if err != nil {
		return lab.SourceConfig{}, err
	}
	return cfg, nil
}

func faultList(rules []responder.FaultRule) string {
	s := make([]string, len(rules))
	for i, r := range rules {
		s[i] = r.String()
	}
	return strings.Join(s, " ")
}
