package testpki

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"staple/ocspwire"
)

// Fault is a way the fake responder misbehaves. Responder.Fail applies one to every request from now on,
// Responder.FailNext to the next requests, one each.
type Fault int

const (
	FaultNone Fault = iota
	// FaultRefused refuses connections (the listener is closed) when set with Fail; with FailNext the
	// connection is accepted and reset at once, since a refusal cannot be told apart before accepting.
	FaultRefused
	FaultHang    // read the request, then send nothing until the client gives up
	FaultTrickle // send the headers, then the body one byte every 50 ms
	Fault404
	Fault500
	Fault503              // with Retry-After: ResponderOptions.RetryAfter (default 120 s)
	FaultGETNotAllowed    // 405 to GET; POST works
	FaultContentType      // a good response labelled text/html
	FaultGarbage          // 200 with a body that is not DER
	FaultTruncated        // a good response cut in half
	FaultOversize         // 200 with a 1 MiB body, chunked, no Content-Length
	FaultOversizeDeclared // 200 with a 1 MiB body and its Content-Length
	FaultMalformedRequest
	FaultInternalError
	FaultTryLater
	FaultSigRequired
	FaultUnauthorized
	FaultWrongSerial       // a signed response about another serial
	FaultWrongIssuerHash   // a signed response whose CertID names another CA
	FaultWrongKey          // signed by a key that is not the signer's
	FaultBadSignature      // the signature is corrupted
	FaultSignerNoEKU       // signed by a delegated signer without id-kp-OCSPSigning
	FaultSignerExpired     // signed by a delegated signer whose certificate has expired
	FaultSignerOtherCA     // signed by a delegated signer of another CA
	FaultExpired           // nextUpdate has passed
	FaultFutureThisUpdate  // thisUpdate an hour ahead
	FaultNoNextUpdate      // no nextUpdate (openssl ocsp without -ndays/-nmin)
	FaultCriticalExtension // an unknown critical responseExtension
	FaultWrongNonce        // a nonce other than the request's
	FaultRedirect          // one 307 to another path that answers normally
	FaultRedirectLoop      // 307 redirects forever
	FaultRedirectScheme    // 302 to ftp://
	faultCount
)

var faultNames = [...]string{"none", "refused", "hang", "trickle", "http_404", "http_500", "http_503",
	"get_not_allowed", "content_type", "garbage", "truncated", "oversize", "oversize_declared",
	"malformed_request", "internal_error", "try_later", "sig_required", "unauthorized", "wrong_serial",
	"wrong_issuer_hash", "wrong_key", "bad_signature", "signer_no_eku", "signer_expired", "signer_other_ca",
	"expired", "future_this_update", "no_next_update", "critical_extension", "wrong_nonce", "redirect",
	"redirect_loop", "redirect_scheme"}

func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return faultNames[f]
	}
	return "Fault(" + strconv.Itoa(int(f)) + ")"
}

// Faults returns every fault but FaultNone, for table tests that must cover them all.
func Faults() []Fault {
	out := make([]Fault, 0, faultCount-1)
	for f := FaultNone + 1; f < faultCount; f++ {
		out = append(out, f)
	}
	return out
}

// ResponderOptions configures a fake responder. Every zero field has a default.
type ResponderOptions struct {
	// Signer signs the responses; nil means the CA itself.
	Signer *Leaf
	// Template is applied to every good answer (ResponderIDByKey, NoCerts, Algorithm, Hash is ignored: the
	// request's hash is used). Its times, status and serial are replaced by the responder's.
	Template ResponseOptions
	// Now is the responder's clock; nil means Epoch, always.
	Now func() time.Time
	// Validity is nextUpdate − thisUpdate; zero means 24 h.
	Validity time.Duration
	// MaxAge, when non-zero, adds the RFC 5019 cache headers: Cache-Control max-age, ETag, Last-Modified,
	// Expires.
	MaxAge time.Duration
	// RetryAfter is the Retry-After of FaultTryLater's 503; zero means 120 s.
	RetryAfter time.Duration
	// NoNonceEcho answers without echoing the request's nonce (a pre-signing responder).
	NoNonceEcho bool
	// TLS serves HTTPS (httptest's certificate: use Server.Client() or Server.Certificate()).
	TLS bool
	// Path is the path of URL; empty means "/ocsp".
	Path string
}

// Seen is what the responder recorded of one request.
type Seen struct {
	Method, Path, UserAgent, ContentType string
	// Request is the parsed OCSP request, nil when it did not parse.
	Request *Request
}

// Responder is a fake OCSP responder for one CA on httptest. It answers GET and POST with good (or, after
// Revoke, revoked) responses for the certificates its CA issued, unknown for other serials, unauthorized for
// other issuers, and misbehaves as told. It is safe for concurrent use and closed by the test's cleanup.
type Responder struct {
	// URL is the responder URL to put in AIA or pass to a client: http://127.0.0.1:port/ocsp.
	URL    string
	CA     *CA
	Server *httptest.Server

	t        testing.TB
	o        ResponderOptions
	listener *gateListener
	done     chan struct{}
	bad      map[Fault]*Leaf // the signers of the signer faults
	wrongKey crypto.Signer

	mu        sync.Mutex
	fault     Fault
	next      []Fault
	revoked   map[string]revocation
	forgotten map[string]bool
	gets      int
	posts     int
	seen      []Seen
}

type revocation struct {
	at     time.Time
	reason int
}

// NewResponder starts a fake responder for ca on 127.0.0.1.
func NewResponder(t testing.TB, ca *CA, o ResponderOptions) *Responder {
	t.Helper()
	if o.Now == nil {
		o.Now = Epoch
	}
	if o.Validity == 0 {
		o.Validity = defaultValidity
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = 120 * time.Second
	}
	if o.Path == "" {
		o.Path = "/ocsp"
	}
	now := o.Now()
	r := &Responder{CA: ca, t: t, o: o, done: make(chan struct{}), revoked: make(map[string]revocation), forgotten: make(map[string]bool)}
	other := ca.NewUnrelatedRoot(t, ca.Cert.Subject.CommonName+" (other CA)", ECDSAP256)
	r.bad = map[Fault]*Leaf{
		FaultSignerNoEKU:   ca.NewSigner(t, SignerOptions{NoEKU: true}),
		FaultSignerExpired: ca.NewSigner(t, SignerOptions{NotBefore: now.AddDate(0, 0, -60), NotAfter: now.AddDate(0, 0, -30)}),
		FaultSignerOtherCA: other.NewSigner(t, SignerOptions{}),
	}
	r.wrongKey = ca.h.newKey(t, ECDSAP256, "wrong key/"+ca.Cert.Subject.CommonName, true)

	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testpki: responder listen: %v", err)
	}
	r.listener = &gateListener{inner: inner, addr: inner.Addr()}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(r.serveHTTP))
	srv.Listener = r.listener
	if o.TLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	r.Server = srv
	r.URL = srv.URL + o.Path
	t.Cleanup(r.Close)
	return r
}

// Close stops the responder, releasing hanging and trickling handlers first. It is idempotent.
func (r *Responder) Close() {
	r.mu.Lock()
	select {
	case <-r.done:
		r.mu.Unlock()
		return
	default:
		close(r.done)
	}
	r.mu.Unlock()
	r.Server.CloseClientConnections()
	r.Server.Close()
}

// Fail makes every request from now on fail with f (FaultNone: answer normally again). Faults queued by
// FailNext come first.
func (r *Responder) Fail(f Fault) {
	r.mu.Lock()
	r.fault = f
	r.mu.Unlock()
	if f == FaultRefused {
		r.listener.pause()
		r.Server.CloseClientConnections() // kept-alive connections would bypass the refusal
	} else if err := r.listener.resume(); err != nil {
		r.t.Errorf("testpki: responder listen again: %v", err)
	}
}

// FailNext makes the next len(faults) requests fail, the first with faults[0] and so on.
func (r *Responder) FailNext(faults ...Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next = append(r.next, faults...)
}

// Revoke makes the responder answer revoked for serial from now on.
func (r *Responder) Revoke(serial *big.Int, at time.Time, reason int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked[serial.Text(16)] = revocation{at: at, reason: reason}
}

// Forget makes the responder answer unknown for serial from now on, as for a certificate its CA never
// issued.
func (r *Responder) Forget(serial *big.Int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgotten[serial.Text(16)] = true
}

// Counts returns how many GET and POST requests reached the responder (redirect hops included).
func (r *Responder) Counts() (get, post int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets, r.posts
}

// Connections returns how many connections the responder has accepted.
func (r *Responder) Connections() int {
	r.listener.mu.Lock()
	defer r.listener.mu.Unlock()
	return r.listener.accepted
}

// Seen returns what the responder recorded of every request so far, in order.
func (r *Responder) Seen() []Seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Seen(nil), r.seen...)
}

// Signer returns the signer the responder uses for a signer fault (FaultSignerNoEKU, FaultSignerExpired,
// FaultSignerOtherCA), nil for other faults.
func (r *Responder) Signer(f Fault) *Leaf { return r.bad[f] }

func (r *Responder) takeFault() Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.next) > 0 {
		f := r.next[0]
		r.next = r.next[1:]
		return f
	}
	return r.fault
}

func (r *Responder) serveHTTP(w http.ResponseWriter, req *http.Request) {
	der, err := readRequest(req)
	seen := Seen{Method: req.Method, Path: req.URL.Path, UserAgent: req.UserAgent(), ContentType: req.Header.Get("Content-Type")}
	var parsed *Request
	if err == nil {
		parsed, err = ParseRequest(der)
		seen.Request = parsed
	}
	r.mu.Lock()
	switch req.Method {
	case http.MethodGet:
		r.gets++
	case http.MethodPost:
		r.posts++
	}
	r.seen = append(r.seen, seen)
	r.mu.Unlock()

	if strings.HasPrefix(req.URL.Path, "/loop/") {
		http.Redirect(w, req, "/loop"+req.URL.EscapedPath(), http.StatusTemporaryRedirect)
		return
	}
	fault := FaultNone
	if !strings.HasPrefix(req.URL.Path, "/moved/") {
		fault = r.takeFault()
	}
	if r.httpFault(w, req, fault) {
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if err != nil {
		writeDER(w, ocspwire.ErrorResponse(ocspwire.MalformedRequest))
		return
	}
	body, this, next := r.answer(parsed, fault)
	if r.o.MaxAge > 0 && len(body) > 5 {
		sum := sha256.Sum256(body)
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d, public, no-transform, must-revalidate", int(r.o.MaxAge.Seconds())))
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.Header().Set("Last-Modified", this.UTC().Format(http.TimeFormat))
		if !next.IsZero() {
			w.Header().Set("Expires", next.UTC().Format(http.TimeFormat))
		}
	}
	switch fault {
	case FaultContentType:
		w.Header().Set("Content-Type", "text/html")
		w.Write(body)
	case FaultTruncated:
		writeDER(w, body[:len(body)/2])
	case FaultTrickle:
		r.trickle(w, req, body)
	default:
		writeDER(w, body)
	}
}

// httpFault answers the faults that never reach OCSP; it reports whether it answered.
func (r *Responder) httpFault(w http.ResponseWriter, req *http.Request, f Fault) bool {
	switch f {
	case FaultRefused:
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0) // reset, not a clean close
				}
				c.Close()
				return true
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	case FaultHang:
		select {
		case <-req.Context().Done():
		case <-r.done:
		}
	case Fault404:
		http.NotFound(w, req)
	case Fault500:
		w.WriteHeader(http.StatusInternalServerError)
	case Fault503:
		w.Header().Set("Retry-After", strconv.Itoa(int(r.o.RetryAfter.Seconds())))
		w.WriteHeader(http.StatusServiceUnavailable)
	case FaultGETNotAllowed:
		if req.Method != http.MethodGet {
			return false
		}
		w.Header().Set("Allow", "POST")
		w.WriteHeader(http.StatusMethodNotAllowed)
	case FaultGarbage:
		writeDER(w, []byte("<html><body>It works!</body></html>\n"))
	case FaultOversize, FaultOversizeDeclared:
		const size = 1 << 20
		if f == FaultOversizeDeclared {
			w.Header().Set("Content-Length", strconv.Itoa(size+5))
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write([]byte{0x30, 0x83, 0x10, 0x00, 0x00})
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		chunk := make([]byte, 32<<10)
		for written := 0; written < size; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				break
			}
		}
	case FaultMalformedRequest:
		writeDER(w, ocspwire.ErrorResponse(ocspwire.MalformedRequest))
	case FaultInternalError:
		writeDER(w, ocspwire.ErrorResponse(ocspwire.InternalError))
	case FaultTryLater:
		writeDER(w, ocspwire.ErrorResponse(ocspwire.TryLater))
	case FaultSigRequired:
		writeDER(w, ocspwire.ErrorResponse(ocspwire.SigRequired))
	case FaultUnauthorized:
		writeDER(w, ocspwire.ErrorResponse(ocspwire.Unauthorized))
	case FaultRedirect:
		http.Redirect(w, req, "/moved"+req.URL.EscapedPath(), http.StatusTemporaryRedirect)
	case FaultRedirectLoop:
		http.Redirect(w, req, "/loop"+req.URL.EscapedPath(), http.StatusTemporaryRedirect)
	case FaultRedirectScheme:
		w.Header().Set("Location", "ftp://"+req.Host+req.URL.Path)
		w.WriteHeader(http.StatusFound)
	default:
		return false
	}
	return true
}

func (r *Responder) trickle(w http.ResponseWriter, req *http.Request, body []byte) {
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := range body {
		if _, err := w.Write(body[i : i+1]); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		select {
		case <-tick.C:
		case <-req.Context().Done():
			return
		case <-r.done:
			return
		}
	}
}

// answer builds the OCSP response for req under fault, and returns its thisUpdate and nextUpdate.
func (r *Responder) answer(req *Request, fault Fault) (der []byte, this, next time.Time) {
	t := r.t
	id := req.CertIDs[0]
	if !id.Matches(r.CA.Cert, id.Serial) {
		return ocspwire.ErrorResponse(ocspwire.Unauthorized), time.Time{}, time.Time{}
	}
	now := r.o.Now().UTC().Truncate(time.Second)
	o := r.o.Template
	o.Hash = id.Hash
	o.CertIDNoNullParams = id.NoNullParams
	o.Signer = r.o.Signer
	o.ThisUpdate, o.ProducedAt, o.NextUpdate = now, now, now.Add(r.o.Validity)
	o.Status, o.Serial, o.IssuerNameHash, o.IssuerKeyHash = ocspwire.Good, nil, nil, nil
	r.mu.Lock()
	if r.CA.Issued(id.Serial) == nil || r.forgotten[id.Serial.Text(16)] {
		o.Status = ocspwire.Unknown
	}
	if rev, ok := r.revoked[id.Serial.Text(16)]; ok {
		o.Status, o.RevokedAt, o.Reason = ocspwire.Revoked, rev.at, rev.reason
	}
	r.mu.Unlock()
	if req.Nonce != nil && !r.o.NoNonceEcho {
		o.Nonce = req.Nonce
	}
	switch fault {
	case FaultWrongSerial:
		o.Serial = new(big.Int).Add(id.Serial, big.NewInt(1))
	case FaultWrongIssuerHash:
		otherID, _ := ocspwire.NewCertID(r.bad[FaultSignerOtherCA].Issuer.Cert, id.Serial, id.Hash)
		o.IssuerNameHash, o.IssuerKeyHash = otherID.IssuerNameHash, otherID.IssuerKeyHash
	case FaultWrongKey:
		o.SignWith = r.wrongKey
	case FaultBadSignature:
		o.CorruptSignature = true
	case FaultSignerNoEKU, FaultSignerExpired, FaultSignerOtherCA:
		o.Signer = r.bad[fault]
	case FaultExpired:
		o.ThisUpdate, o.ProducedAt, o.NextUpdate = now.Add(-48*time.Hour), now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	case FaultFutureThisUpdate:
		o.ThisUpdate, o.NextUpdate = now.Add(time.Hour), now.Add(time.Hour+r.o.Validity)
	case FaultNoNextUpdate:
		o.NoNextUpdate = true
	case FaultCriticalExtension:
		o.ResponseExtensions = append(o.ResponseExtensions, criticalExtension())
	case FaultWrongNonce:
		o.Nonce = append([]byte("not the nonce you sent"), req.Nonce...)
	}
	next = o.NextUpdate
	if o.NoNextUpdate {
		next = time.Time{}
	}
	return r.CA.RespondSerial(t, id.Serial, o), o.ThisUpdate, next
}

func criticalExtension() pkix.Extension {
	return pkix.Extension{Id: []int{1, 3, 6, 1, 4, 1, 55555, 1}, Critical: true, Value: []byte{0x05, 0x00}}
}

func writeDER(w http.ResponseWriter, der []byte) {
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Header().Set("Content-Length", strconv.Itoa(len(der)))
	w.Write(der)
}

// readRequest returns the DER request of a GET (the last path segment, URL-encoded base64) or a POST.
func readRequest(req *http.Request) ([]byte, error) {
	switch req.Method {
	case http.MethodPost:
		return io.ReadAll(io.LimitReader(req.Body, 64<<10))
	case http.MethodGet:
		p := req.URL.EscapedPath()
		enc := p[strings.LastIndex(p, "/")+1:]
		s, err := url.PathUnescape(enc)
		if err != nil {
			return nil, err
		}
		return base64.StdEncoding.DecodeString(s)
	}
	return nil, fmt.Errorf("testpki: method %s", req.Method)
}

// gateListener is a listener that can refuse connections for a while: pause closes the socket, resume
// listens again on the same address.
type gateListener struct {
	addr net.Addr

	mu       sync.Mutex
	inner    net.Listener // nil while paused
	resumed  chan struct{}
	closed   bool
	accepted int
}

func (l *gateListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		inner, resumed := l.inner, l.resumed
		l.mu.Unlock()
		if inner == nil {
			<-resumed
			continue
		}
		c, err := inner.Accept()
		if err == nil {
			l.mu.Lock()
			l.accepted++
			l.mu.Unlock()
			return c, nil
		}
		l.mu.Lock()
		paused := l.inner != inner && !l.closed
		l.mu.Unlock()
		if !paused {
			return nil, err
		}
	}
}

func (l *gateListener) pause() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inner != nil && !l.closed {
		l.inner.Close()
		l.inner = nil
		l.resumed = make(chan struct{})
	}
}

func (l *gateListener) resume() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inner != nil || l.closed {
		return nil
	}
	inner, err := net.Listen("tcp", l.addr.String())
	if err != nil {
		return err
	}
	l.inner = inner
	close(l.resumed)
	return nil
}

func (l *gateListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.inner == nil {
		close(l.resumed)
		return nil
	}
	return l.inner.Close()
}

func (l *gateListener) Addr() net.Addr { return l.addr }
