package responder

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"staple/ocspwire"
)

// Defaults of the Responder's zero-valued fields.
const (
	DefaultMaxRequestBytes   = 10_000 // as Boulder; a one-certificate request is under 100 bytes
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultShutdownTimeout   = 5 * time.Second
)

// Content types of RFC 6960 Appendix A.
const (
	ContentTypeRequest  = "application/ocsp-request"
	ContentTypeResponse = "application/ocsp-response"
)

// FaultsPath is the admin endpoint that switches faults at run time (see ServeHTTP). No base64 request
// contains '-', so it never shadows an OCSP GET.
const FaultsPath = "/-/faults"

// Responder is an OCSP responder over HTTP (RFC 6960 Appendix A, RFC 5019 §5–6): an http.Handler, and with
// Serve a server with deadlines. Only Source is required. A Responder is safe for concurrent use; do not
// change its fields once it serves.
type Responder struct {
	// Source answers the requests. Required.
	Source Source

	// Faults are the misbehaviours to inject (labs only); nil injects none.
	Faults *Faults
	// FaultAPI enables the admin endpoint FaultsPath for changing Faults at run time; false answers it 404.
	FaultAPI bool

	// MaxRequestBytes caps a POST body; zero means DefaultMaxRequestBytes. A longer body gets HTTP 413 with
	// malformedRequest.
	MaxRequestBytes int64

	// Timeouts of Serve's http.Server; zero means the Default… constant of the same name. ReadTimeout bounds
	// a whole request including its body, so a client that sends half a request is cut off; WriteTimeout is
	// extended by a delay fault's delay.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown when Serve's context ends; zero means
	// DefaultShutdownTimeout. Connections still open after it are closed.
	ShutdownTimeout time.Duration

	// Now is the clock for max-age; nil means time.Now.
	Now func() time.Time
	// Log receives one debug event per request and warnings; the zero Logger logs nothing.
	Log zerolog.Logger
}

func (rs *Responder) now() time.Time {
	if rs.Now != nil {
		return rs.Now()
	}
	return time.Now()
}

func (rs *Responder) maxRequestBytes() int64 {
	if rs.MaxRequestBytes > 0 {
		return rs.MaxRequestBytes
	}
	return DefaultMaxRequestBytes
}

// ServeHTTP answers one HTTP request:
//
//   - GET (and HEAD) /{url-encoded base64 OCSPRequest}: also raw '/' and '+' in the base64, a leading "//",
//     padding left off, and any path prefix before the request (an AIA URL like http://host/ocsp).
//   - POST with the DER OCSPRequest as the body (application/ocsp-request; the type is not enforced).
//   - FaultsPath, when FaultAPI is set: GET lists the active faults one per line in --fault syntax;
//     PUT /-/faults/{SERIAL|all} with a body like "delay=2s" or "http503,times=3" sets one, PUT /-/faults with
//     a body "[SERIAL:]FAULT" likewise; DELETE /-/faults/{SERIAL|all} clears one; DELETE /-/faults clears all.
//
// A request that cannot be parsed gets malformedRequest with HTTP 200 (HTTP 413 when the body is too large);
// the Source's errors become unauthorized, tryLater or internalError with HTTP 200, and without cache headers
// (RFC 5019 §5: Cache-Control: max-age=0, no-cache). A signed response carries Last-Modified (thisUpdate),
// Expires (nextUpdate), ETag and Cache-Control: max-age=…, public, no-transform, must-revalidate; a GET whose
// If-None-Match names the ETag gets 304.
func (rs *Responder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == FaultsPath || strings.HasPrefix(r.URL.Path, FaultsPath+"/") {
		rs.serveFaults(w, r)
		return
	}
	start := time.Now()
	var der []byte
	var err error
	var req *Request
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		req, err = requestFromPath(r.URL.EscapedPath())
	case http.MethodPost:
		der, err = rs.readBody(w, r)
		if err == nil {
			req, err = ParseRequest(der)
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "staple responder: use GET or POST (RFC 6960 Appendix A)", http.StatusMethodNotAllowed)
		return
	}
	ev := rs.Log.Debug().Str("method", r.Method).Str("remote", r.RemoteAddr)
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			writeStatus(w, http.StatusRequestEntityTooLarge, ocspwire.MalformedRequest)
		case errors.Is(err, ErrMalformedRequest):
			writeStatus(w, http.StatusOK, ocspwire.MalformedRequest)
		default: // the client went away or was too slow: nobody to answer
		}
		ev.Err(err).Dur("took", time.Since(start)).Msg("bad request")
		return
	}
	if ev.Enabled() {
		serials := make([]string, len(req.CertIDs))
		for i, id := range req.CertIDs {
			serials[i] = SerialKey(id.Serial)
		}
		ev = ev.Strs("serials", serials).Bool("nonce", req.HasNonce())
	}
	fault := rs.Faults.take(req.CertIDs)
	if !fault.IsZero() {
		ev = ev.Stringer("fault", fault)
	}
	status := rs.answer(w, r, req, fault)
	ev.Str("status", status).Dur("took", time.Since(start)).Msg("ocsp")
}

// answer writes the answer to a parsed request and returns a word for the log.
func (rs *Responder) answer(w http.ResponseWriter, r *http.Request, req *Request, fault Fault) string {
	if fault.Kind == FaultDelay {
		if !rs.wait(w, r, fault.delay()) {
			return "client gone during delay"
		}
	}
	if done := rs.injectHTTPFault(w, r, fault); done {
		return string(fault.Kind)
	}
	if fault.Kind.Signed() {
		req.Fault = fault
	}
	resp, err := rs.Source.Response(r.Context(), req)
	if err != nil {
		status := ocspwire.InternalError
		switch {
		case errors.Is(err, ErrUnauthorized):
			status = ocspwire.Unauthorized
		case errors.Is(err, ErrTryLater):
			status = ocspwire.TryLater
		default:
			rs.Log.Warn().Err(err).Msg("source failed")
		}
		writeStatus(w, http.StatusOK, status)
		return status.String()
	}
	contentType := ContentTypeResponse
	if fault.Kind == FaultWrongContentType {
		contentType = "text/html; charset=utf-8"
	}
	return rs.writeResponse(w, r, resp, contentType)
}

// wait sleeps d for a delay fault, giving the connection d more to write. It reports false when the client
// left or the server is shutting down.
func (rs *Responder) wait(w http.ResponseWriter, r *http.Request, d time.Duration) bool {
	write := rs.WriteTimeout
	if write <= 0 {
		write = DefaultWriteTimeout
	}
	// Not supported by every ResponseWriter (httptest's recorder); a real connection supports it.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + write))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// garbageBody is the body of the garbage fault: printable, and not DER (0x73 is no SEQUENCE tag).
var garbageBody = []byte("staple responder: garbage fault: this is not an OCSP response\n")

// injectHTTPFault produces the faults the responder makes itself. It reports whether it answered.
func (rs *Responder) injectHTTPFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	h := w.Header()
	switch f.Kind {
	case FaultHTTP500:
		http.Error(w, "staple responder: http500 fault", http.StatusInternalServerError)
	case FaultHTTP503:
		h.Set("Retry-After", strconv.FormatInt(int64((f.retryAfter()+time.Second-1)/time.Second), 10))
		http.Error(w, "staple responder: http503 fault", http.StatusServiceUnavailable)
	case FaultGarbage:
		writeBody(w, http.StatusOK, garbageBody)
	case FaultEmpty:
		writeBody(w, http.StatusOK, nil)
	case FaultMalformed:
		writeStatus(w, http.StatusOK, ocspwire.MalformedRequest)
	case FaultInternalError:
		writeStatus(w, http.StatusOK, ocspwire.InternalError)
	case FaultTryLater:
		writeStatus(w, http.StatusOK, ocspwire.TryLater)
	case FaultSigRequired:
		writeStatus(w, http.StatusOK, ocspwire.SigRequired)
	case FaultUnauthorized:
		writeStatus(w, http.StatusOK, ocspwire.Unauthorized)
	case FaultRedirectLoop:
		code := http.StatusFound
		if r.Method == http.MethodPost {
			code = http.StatusTemporaryRedirect // keeps the method and body
		}
		h.Set("Location", r.URL.RequestURI())
		w.WriteHeader(code)
	case FaultOversize:
		writeOversize(w, f.size())
	case FaultDrop:
		drop(w)
	default:
		return false
	}
	return true
}

// drop closes the connection without a word. Over HTTP/1 the connection is hijacked and closed; where it
// cannot be (HTTP/2), net/http's documented way to abort a response is the ErrAbortHandler panic, which the
// server recovers without logging.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// writeOversize streams size bytes without a Content-Length, so only a client that caps what it reads
// survives it.
func writeOversize(w http.ResponseWriter, size int64) {
	w.Header().Set("Content-Type", ContentTypeResponse)
	w.WriteHeader(http.StatusOK)
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = 'x'
	}
	for size > 0 {
		n := min(size, int64(len(chunk)))
		if _, err := w.Write(chunk[:n]); err != nil {
			return
		}
		size -= n
	}
}

func writeBody(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", ContentTypeResponse)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
}

// Header values shared by every response; net/http only reads them.
var (
	noCache          = []string{"max-age=0, no-cache"}
	ocspResponseType = []string{ContentTypeResponse}
)

// writeStatus writes an unsigned status response; RFC 5019 §5 wants non-authoritative answers uncached.
func writeStatus(w http.ResponseWriter, code int, s ocspwire.ResponseStatus) {
	w.Header().Set("Cache-Control", "max-age=0, no-cache")
	writeBody(w, code, ocspwire.ErrorResponse(s))
}

// writeResponse writes a signed response with the RFC 5019 headers, or 304 when the client has it.
func (rs *Responder) writeResponse(w http.ResponseWriter, r *http.Request, resp *Response, contentType string) string {
	// Canonical keys assigned directly: this is the hot path of a pre-signed answer.
	h := w.Header()
	etag := resp.etag()
	h["Etag"] = []string{etag}
	if !resp.ThisUpdate.IsZero() {
		h["Last-Modified"] = []string{resp.lastModified()}
	}
	if resp.NextUpdate.IsZero() {
		h["Cache-Control"] = noCache
	} else {
		h["Expires"] = []string{resp.expires()}
		maxAge := max(int64(resp.NextUpdate.Sub(rs.now())/time.Second), 0)
		h["Cache-Control"] = []string{"max-age=" + strconv.FormatInt(maxAge, 10) + ", public, no-transform, must-revalidate"}
	}
	if r.Method != http.MethodPost && etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return "not modified"
	}
	if contentType == ContentTypeResponse {
		h["Content-Type"] = ocspResponseType
	} else {
		h["Content-Type"] = []string{contentType}
	}
	h["Content-Length"] = []string{strconv.Itoa(len(resp.Raw))}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(resp.Raw)
	}
	return "ok"
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110 §13.1.2) to our strong ETag.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}

func (rs *Responder) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, rs.maxRequestBytes())
	return io.ReadAll(body)
}

// maxPathPrefixSegments bounds the path segments before the request that requestFromPath looks past. Each
// try decodes the rest of the path, so without a bound a path of thousands of '/' costs quadratic time (150 ms
// of CPU for 14 KB); AIA URLs have a handful of segments at most.
const maxPathPrefixSegments = 8

// requestFromPath finds the OCSP request in a GET path. The base64 may contain raw '/', so a request under a
// path prefix cannot be told apart by splitting: each suffix after a '/' is tried, longest first, and the
// first that decodes and parses wins, up to maxPathPrefixSegments segments in.
func requestFromPath(escaped string) (*Request, error) {
	p := strings.TrimLeft(escaped, "/")
	if p == "" {
		return nil, errors.Join(ErrMalformedRequest, errors.New("GET without a request in the path"))
	}
	var firstErr error
	for range maxPathPrefixSegments + 1 {
		req, err := decodeGETRequest(p)
		if err == nil {
			return req, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		i := strings.IndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[i+1:]
	}
	return nil, firstErr
}

func decodeGETRequest(p string) (*Request, error) {
	s, err := url.PathUnescape(p)
	if err != nil {
		return nil, errors.Join(ErrMalformedRequest, err)
	}
	// A '+' that went through form decoding somewhere comes back as a space (cfssl fixes this too).
	s = strings.ReplaceAll(s, " ", "+")
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var err2 error
		if der, err2 = base64.RawStdEncoding.DecodeString(s); err2 != nil {
			return nil, errors.Join(ErrMalformedRequest, err)
		}
	}
	return ParseRequest(der)
}

// Serve serves the responder on ln until ctx ends, then shuts down gracefully: requests in flight finish,
// and connections still open after ShutdownTimeout are closed. It returns nil after a shutdown caused by ctx,
// and the server's error otherwise. Request contexts derive from
// ctx, so a delay fault ends when the server stops.
func (rs *Responder) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           rs,
		ReadHeaderTimeout: orDefault(rs.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       orDefault(rs.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      orDefault(rs.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       orDefault(rs.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          log.New(rs.Log.With().Str("source", "net/http").Logger(), "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), orDefault(rs.ShutdownTimeout, DefaultShutdownTimeout))
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		rs.Log.Warn().Err(err).Msg("graceful shutdown timed out: closing the remaining connections")
		srv.Close()
	}
	<-errc
	return nil
}
