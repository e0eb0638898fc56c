package ocspfetch_test

import (
	"context"
	"crypto"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// responderFixture is a CA with a fake responder and a leaf whose AIA points at it.
type responderFixture struct {
	ca   *testpki.CA
	r    *testpki.Responder
	leaf *testpki.Leaf
}

func newResponderFixture(t *testing.T, o testpki.ResponderOptions) *responderFixture {
	t.Helper()
	ca := testpki.NewRoot(t, "Fetch Root", testpki.ECDSAP256).NewIntermediate(t, "Fetch CA", testpki.ECDSAP256)
	r := testpki.NewResponder(t, ca, o)
	leaf := ca.Issue(t, testpki.LeafOptions{OCSPURLs: []string{r.URL}})
	return &responderFixture{ca: ca, r: r, leaf: leaf}
}

func testClient() *ocspfetch.Client {
	return &ocspfetch.Client{Now: testpki.Epoch, Timeout: 2 * time.Second, UserAgent: "staple/test"}
}

// faultCase is what the client must make of one fault of the fake responder.
type faultCase struct {
	fault  testpki.Fault
	always bool // Fail (every request) rather than FailNext (the next one)
	client func(c *ocspfetch.Client)
	want   error // nil: a verified response
	check  func(t *testing.T, r *ocspfetch.Response, err error, get, post int)
}

func counts(wantGet, wantPost int) func(t *testing.T, r *ocspfetch.Response, err error, get, post int) {
	return func(t *testing.T, r *ocspfetch.Response, err error, get, post int) {
		if get != wantGet || post != wantPost {
			t.Errorf("GET %d POST %d, want %d and %d", get, post, wantGet, wantPost)
		}
	}
}

func httpStatus(code int, retry time.Duration) func(t *testing.T, r *ocspfetch.Response, err error, get, post int) {
	return func(t *testing.T, r *ocspfetch.Response, err error, get, post int) {
		var he *ocspfetch.HTTPError
		if !errors.As(err, &he) || he.StatusCode != code || he.RetryAfter != retry {
			t.Fatalf("err = %v, want HTTP %d with Retry-After %v", err, code, retry)
		}
		if got := ocspfetch.Reason(err); !strings.HasPrefix(got, "http_") {
			t.Errorf("Reason = %q", got)
		}
	}
}

var (
	errTimeout  = errors.New("timeout")  // marker: context.DeadlineExceeded or a net timeout
	errConnFail = errors.New("conn err") // marker: a network failure, not an HTTP status
)

func shortTimeout(c *ocspfetch.Client) { c.Timeout = 300 * time.Millisecond }

var faultCases = []faultCase{
	{fault: testpki.FaultRefused, always: true, want: syscall.ECONNREFUSED, check: func(t *testing.T, r *ocspfetch.Response, err error, get, post int) {
		if ocspfetch.Reason(err) != "connection" || !ocspfetch.Transient(err) {
			t.Errorf("Reason %q Transient %v", ocspfetch.Reason(err), ocspfetch.Transient(err))
		}
	}},
	{fault: testpki.FaultRefused, want: errConnFail},
	{fault: testpki.FaultHang, client: shortTimeout, want: errTimeout},
	{fault: testpki.FaultTrickle, client: shortTimeout, want: errTimeout},
	{fault: testpki.Fault404, always: true, check: httpStatus(404, 0), want: errHTTP},
	{fault: testpki.Fault404, check: counts(1, 1)}, // a GET refused, then a POST that works
	{fault: testpki.Fault500, check: httpStatus(500, 0), want: errHTTP},
	{fault: testpki.Fault503, check: httpStatus(503, 120*time.Second), want: errHTTP},
	{fault: testpki.FaultGETNotAllowed, always: true, check: counts(1, 1)},
	{fault: testpki.FaultContentType, check: func(t *testing.T, r *ocspfetch.Response, err error, get, post int) {
		if !r.HTTP.WrongContentType || r.HTTP.ContentType != "text/html" {
			t.Errorf("content type %q recorded as wrong: %v", r.HTTP.ContentType, r.HTTP.WrongContentType)
		}
	}},
	{fault: testpki.FaultGarbage, want: ocspfetch.ErrMalformed},
	{fault: testpki.FaultTruncated, want: ocspfetch.ErrMalformed},
	{fault: testpki.FaultOversize, want: ocspfetch.ErrResponseTooLarge},
	{fault: testpki.FaultOversizeDeclared, want: ocspfetch.ErrResponseTooLarge},
	{fault: testpki.FaultMalformedRequest, always: true, want: ocspfetch.ErrMalformedRequest, check: counts(1, 1)},
	{fault: testpki.FaultMalformedRequest, check: counts(1, 1)}, // a GET mangled, then a POST that works
	{fault: testpki.FaultInternalError, want: ocspfetch.ErrInternalError},
	{fault: testpki.FaultTryLater, want: ocspfetch.ErrTryLater},
	{fault: testpki.FaultSigRequired, want: ocspfetch.ErrSigRequired},
	{fault: testpki.FaultUnauthorized, want: ocspfetch.ErrUnauthorized},
	{fault: testpki.FaultWrongSerial, want: ocspfetch.ErrNoMatchingResponse},
	{fault: testpki.FaultWrongIssuerHash, want: ocspfetch.ErrNoMatchingResponse},
	{fault: testpki.FaultWrongKey, want: ocspfetch.ErrBadSignature},
	{fault: testpki.FaultBadSignature, want: ocspfetch.ErrBadSignature},
	{fault: testpki.FaultSignerNoEKU, want: ocspfetch.ErrUnauthorizedSigner},
	{fault: testpki.FaultSignerExpired, want: ocspfetch.ErrSignerExpired},
	{fault: testpki.FaultSignerOtherCA, want: ocspfetch.ErrUnauthorizedSigner},
	{fault: testpki.FaultExpired, want: ocspfetch.ErrExpired},
	{fault: testpki.FaultFutureThisUpdate, want: ocspfetch.ErrNotYetValid},
	{fault: testpki.FaultNoNextUpdate, check: func(t *testing.T, r *ocspfetch.Response, err error, get, post int) {
		if !r.NextUpdate.IsZero() {
			t.Errorf("NextUpdate %v", r.NextUpdate)
		}
	}},
	{fault: testpki.FaultNoNextUpdate, client: func(c *ocspfetch.Client) { c.Verify.RequireNextUpdate = true }, want: ocspfetch.ErrNoNextUpdate},
	{fault: testpki.FaultCriticalExtension, want: ocspfetch.ErrCriticalExtension},
	{fault: testpki.FaultWrongNonce, client: func(c *ocspfetch.Client) { c.Nonce = true }, want: ocspfetch.ErrNonceMismatch},
	{fault: testpki.FaultWrongNonce}, // no nonce sent: an unasked one is ignored
	{fault: testpki.FaultRedirect, check: counts(2, 0)},
	{fault: testpki.FaultRedirectLoop, want: ocspfetch.ErrTooManyRedirects, check: counts(4, 0)},
	{fault: testpki.FaultRedirectScheme, want: ocspfetch.ErrRedirectScheme},
}

var errHTTP = errors.New("http status") // marker: checked by httpStatus

func (fc faultCase) name() string {
	n := fc.fault.String()
	if fc.always {
		n += "/always"
	}
	if fc.want != nil {
		n += "/" + fc.want.Error()
	}
	return n
}

func TestFetchFaults(t *testing.T) {
	covered := map[testpki.Fault]bool{}
	for _, fc := range faultCases {
		covered[fc.fault] = true
		t.Run(fc.name(), func(t *testing.T) {
			f := newResponderFixture(t, testpki.ResponderOptions{})
			c := testClient()
			if fc.client != nil {
				fc.client(c)
			}
			if fc.always {
				f.r.Fail(fc.fault)
			} else {
				f.r.FailNext(fc.fault)
			}
			r, err := c.Fetch(context.Background(), f.leaf.Cert, f.ca.Cert)
			get, post := f.r.Counts()
			switch {
			case fc.want == nil:
				if err != nil || r == nil {
					t.Fatalf("rejected: %v", err)
				}
				if r.Status != ocspwire.Good || r.HTTP.URL != f.r.URL {
					t.Errorf("status %v from %q", r.Status, r.HTTP.URL)
				}
			case r != nil:
				t.Fatalf("a response came back with %v", err)
			case fc.want == errTimeout:
				if !errors.Is(err, context.DeadlineExceeded) || ocspfetch.Reason(err) != "timeout" {
					t.Fatalf("err = %v (reason %s), want a timeout", err, ocspfetch.Reason(err))
				}
			case fc.want == errConnFail:
				var he *ocspfetch.HTTPError
				if err == nil || errors.As(err, &he) || !ocspfetch.Transient(err) {
					t.Fatalf("err = %v, want a transient network failure", err)
				}
			case fc.want == errHTTP:
				// checked by fc.check
			case !errors.Is(err, fc.want):
				t.Fatalf("err = %v, want %v", err, fc.want)
			}
			var ue *ocspfetch.URLError
			if err != nil && (!errors.As(err, &ue) || ue.URL != f.r.URL) {
				t.Errorf("error does not name the URL: %v", err)
			}
			if fc.check != nil {
				fc.check(t, r, err, get, post)
			}
		})
	}
	for _, fault := range testpki.Faults() {
		if !covered[fault] {
			t.Errorf("no case for fault %v", fault)
		}
	}
}

func TestFetchRequestShape(t *testing.T) {
	long := "/" + strings.Repeat("x", 200)
	tests := []struct {
		name       string
		path       string
		client     func(c *ocspfetch.Client)
		wantMethod string
		wantHash   crypto.Hash
		wantNonce  bool
	}{
		{"short URL: GET, SHA-1, no nonce", "", nil, "GET", crypto.SHA1, false},
		{"long URL: POST", long, nil, "POST", crypto.SHA1, false},
		{"SHA-256", "", func(c *ocspfetch.Client) { c.Hash = crypto.SHA256 }, "GET", crypto.SHA256, false},
		{"nonce", "", func(c *ocspfetch.Client) { c.Nonce = true }, "GET", crypto.SHA1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newResponderFixture(t, testpki.ResponderOptions{Path: tc.path})
			c := testClient()
			if tc.client != nil {
				tc.client(c)
			}
			r, err := c.Fetch(context.Background(), f.leaf.Cert, f.ca.Cert)
			if err != nil {
				t.Fatal(err)
			}
			seen := f.r.Seen()
			if len(seen) != 1 {
				t.Fatalf("%d requests", len(seen))
			}
			s := seen[0]
			if s.Method != tc.wantMethod || r.HTTP.Method != tc.wantMethod || s.UserAgent != "staple/test" {
				t.Errorf("method %s (recorded %s), User-Agent %q", s.Method, r.HTTP.Method, s.UserAgent)
			}
			if s.Method == "POST" && s.ContentType != "application/ocsp-request" {
				t.Errorf("POST Content-Type %q", s.ContentType)
			}
			if s.Request == nil || len(s.Request.CertIDs) != 1 || s.Request.CertIDs[0].Hash != tc.wantHash || r.CertIDHash != tc.wantHash {
				t.Fatalf("request %+v", s.Request)
			}
			if (s.Request.Nonce != nil) != tc.wantNonce || (tc.wantNonce && len(s.Request.Nonce) != ocspfetch.NonceSize) {
				t.Errorf("nonce %x", s.Request.Nonce)
			}
		})
	}
}

func TestGetURL(t *testing.T) {
	der := []byte{0xfb, 0xff, 0xfe} // base64 "+//+"
	if got := ocspfetch.GetURL("http://ocsp.test", der); got != "http://ocsp.test/%2B%2F%2F%2B" {
		t.Errorf("GetURL = %q", got)
	}
	if got := ocspfetch.GetURL("http://ocsp.test/", []byte{1}); got != "http://ocsp.test/AQ%3D%3D" {
		t.Errorf("GetURL = %q", got)
	}
	if got := ocspfetch.GetURL("http://ocsp.test/ocsp?token=t", []byte{1}); got != "http://ocsp.test/ocsp/AQ%3D%3D?token=t" {
		t.Errorf("GetURL with a query = %q", got)
	}
}

func TestFetchURLsAndOverrides(t *testing.T) {
	ca := testpki.NewRoot(t, "URLs Root", testpki.ECDSAP256)
	a := testpki.NewResponder(t, ca, testpki.ResponderOptions{})
	b := testpki.NewResponder(t, ca, testpki.ResponderOptions{Path: "/b"})
	dead := deadURL(t)
	tests := []struct {
		name      string
		aia       []string
		overrides map[string]string
		wantURL   string
		want      error
		attempts  int
	}{
		{"first answers", []string{a.URL, b.URL}, nil, a.URL, nil, 0},
		{"first dead, second answers", []string{dead, b.URL}, nil, b.URL, nil, 0},
		{"first disabled", []string{a.URL, b.URL}, map[string]string{a.URL: ""}, b.URL, nil, 0},
		{"first redirected", []string{dead}, map[string]string{dead: b.URL}, b.URL, nil, 0},
		{"no URL", nil, nil, "", ocspfetch.ErrNoResponderURL, 0},
		{"every URL disabled", []string{a.URL}, map[string]string{a.URL: ""}, "", ocspfetch.ErrNoResponderURL, 0},
		{"every URL dead", []string{dead, dead + "/again"}, nil, "", syscall.ECONNREFUSED, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leaf := ca.Issue(t, testpki.LeafOptions{OCSPURLs: tc.aia})
			c := testClient()
			c.Overrides = tc.overrides
			r, err := c.Fetch(context.Background(), leaf.Cert, ca.Cert)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || r != nil {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				var fe *ocspfetch.FetchError
				if tc.attempts > 0 && (!errors.As(err, &fe) || len(fe.Attempts) != tc.attempts) {
					t.Errorf("attempts: %v", err)
				}
				return
			}
			if err != nil || r.HTTP.URL != tc.wantURL {
				t.Fatalf("err %v, URL %q", err, r.HTTP.URL)
			}
		})
	}
}

// deadURL returns an http URL on which nothing listens.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestFetchCacheHeaders(t *testing.T) {
	f := newResponderFixture(t, testpki.ResponderOptions{MaxAge: 3 * time.Hour, Validity: 7 * 24 * time.Hour})
	r, err := testClient().Fetch(context.Background(), f.leaf.Cert, f.ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	h := r.HTTP
	if !h.HasMaxAge || h.MaxAge != 3*time.Hour || !h.Expires.Equal(r.NextUpdate) || h.ETag == "" ||
		h.LastModified != r.ThisUpdate.Format(http.TimeFormat) || h.Date.IsZero() || h.WrongContentType {
		t.Errorf("HTTP info %+v", h)
	}
}

func TestFetchHTTPS(t *testing.T) {
	f := newResponderFixture(t, testpki.ResponderOptions{TLS: true})
	c := testClient()
	c.Transport = f.r.Server.Client().Transport
	r, err := c.Fetch(context.Background(), f.leaf.Cert, f.ca.Cert)
	if err != nil || !strings.HasPrefix(r.HTTP.URL, "https://") {
		t.Fatalf("%v", err)
	}
}

// The client is shared by the scheduler's workers: concurrent fetches, one kept-alive connection pool.
func TestFetchConcurrentKeepAlive(t *testing.T) {
	f := newResponderFixture(t, testpki.ResponderOptions{})
	c := testClient()
	if _, err := c.Fetch(context.Background(), f.leaf.Cert, f.ca.Cert); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := c.Fetch(context.Background(), f.leaf.Cert, f.ca.Cert); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.r.Connections(); n != 1 {
		t.Errorf("%d connections for 6 sequential fetches, want 1", n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			leaf := f.ca.Issue(t, testpki.LeafOptions{OCSPURLs: []string{f.r.URL}})
			r, err := c.Fetch(context.Background(), leaf.Cert, f.ca.Cert)
			if err == nil && r.Serial.Cmp(leaf.Cert.SerialNumber) != 0 {
				err = errors.New("answer for another certificate")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestFetchHonoursContext(t *testing.T) {
	f := newResponderFixture(t, testpki.ResponderOptions{})
	f.r.Fail(testpki.FaultHang)
	ctx, cancel := context.WithCancel(context.Background())
	c := testClient()
	c.Timeout = time.Minute
	done := make(chan error, 1)
	go func() {
		_, err := c.Fetch(ctx, f.leaf.Cert, f.ca.Cert)
		done <- err
	}()
	// Cancel once the responder holds the request.
	deadline := time.Now().Add(5 * time.Second)
	for len(f.r.Seen()) == 0 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestFetchBodyShorterThanDeclared: a responder that announces more bytes than it sends (the connection
// cut mid-body) gets an error, never a response made of what arrived.
func TestFetchBodyShorterThanDeclared(t *testing.T) {
	f := newResponderFixture(t, testpki.ResponderOptions{})
	good, err := testClient().Fetch(context.Background(), f.leaf.Cert, f.ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Header().Set("Content-Length", strconv.Itoa(len(good.Raw)+100))
		w.Write(good.Raw) // 100 bytes short: the server cuts the connection when the handler returns
	})}
	go srv.Serve(ln)
	defer srv.Close()
	r, err := testClient().FetchURL(context.Background(), "http://"+ln.Addr().String()+"/", f.leaf.Cert, f.ca.Cert)
	if err == nil {
		t.Fatalf("a body 100 bytes short of its Content-Length gave a response (%d bytes)", len(r.Raw))
	}
	t.Logf("%v", err)
}
