package responder

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"staple/ocspwire"
)

// fakeSource answers every request with resp or err and records what it was asked.
type fakeSource struct {
	mu   sync.Mutex
	reqs []*Request
	resp *Response
	err  error
}

func (f *fakeSource) Response(_ context.Context, req *Request) (*Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	return f.resp, f.err
}

func (f *fakeSource) last() *Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return nil
	}
	return f.reqs[len(f.reqs)-1]
}

var (
	testNow    = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	testSigned = NewResponse([]byte("pretend this is a signed OCSP response"), testNow.Add(-10*time.Minute), testNow.Add(50*time.Minute))
)

func newTestResponder() (*Responder, *fakeSource) {
	src := &fakeSource{resp: testSigned}
	return &Responder{Source: src, Faults: &Faults{}, FaultAPI: true, Now: func() time.Time { return testNow }}, src
}

// requestWith returns a one-certificate request whose standard base64 holds '+' and '/', so the GET tests
// exercise the escapes.
func requestWith(t *testing.T) ([]byte, string) {
	t.Helper()
	for i := int64(1); i < 1<<16; i++ {
		der := buildRequestSerial(big.NewInt(i * 7919))
		b64 := base64.StdEncoding.EncodeToString(der)
		if strings.Contains(b64, "+") && strings.Contains(b64, "/") && strings.HasSuffix(b64, "=") {
			return der, b64
		}
	}
	t.Fatal("no request with + and / in its base64")
	return nil, ""
}

// buildRequestSerial is a one-certificate SHA-1 request for serial, issuer hashes all zero.
func buildRequestSerial(serial *big.Int) []byte {
	id := ocspwire.CertID{Hash: crypto.SHA1, IssuerNameHash: make([]byte, 20), IssuerKeyHash: make([]byte, 20), Serial: serial}
	der, err := ocspwire.EncodeRequest([]ocspwire.CertID{id}, nil)
	if err != nil {
		panic(err)
	}
	return der
}

func TestGETForms(t *testing.T) {
	der, b64 := requestWith(t)
	want, err := ParseRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	escaped := url.PathEscape(b64) // PathEscape leaves '+' and '=' alone
	full := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(b64)
	tests := []struct{ name, path string }{
		{"RFC 5019 URL-encoded", "/" + full},
		{"raw slash and plus", "/" + b64},
		{"path-escaped", "/" + escaped},
		{"leading //", "//" + full},
		{"under a prefix", "/ocsp/" + full},
		{"under a prefix with raw slashes", "/ocsp/v1/" + b64},
		{"no padding", "/" + strings.TrimRight(b64, "=")},
		{"plus as space", "/" + strings.ReplaceAll(full, "%2B", "%20")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, src := newTestResponder()
			rec := httptest.NewRecorder()
			rs.ServeHTTP(rec, &http.Request{Method: http.MethodGet, URL: mustURL(t, tt.path), Header: http.Header{}})
			if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), testSigned.Raw) {
				t.Fatalf("HTTP %d %q", rec.Code, rec.Body.Bytes())
			}
			got := src.last()
			if got == nil || got.CertIDs[0].Serial.Cmp(want.CertIDs[0].Serial) != 0 {
				t.Errorf("source asked for %+v", got)
			}
		})
	}
}

// TestGETPathPrefixBound: a request is found under up to maxPathPrefixSegments path segments, and a path of
// thousands of '/' is refused after as many tries, not after one try per '/'.
func TestGETPathPrefixBound(t *testing.T) {
	der, b64 := requestWith(t) // its base64 holds raw '/', which must not count against the bound
	want, err := ParseRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	deep := "/" + strings.Repeat("p/", maxPathPrefixSegments) + b64
	if req, err := requestFromPath(deep); err != nil || req.CertIDs[0].Serial.Cmp(want.CertIDs[0].Serial) != 0 {
		t.Errorf("a request under %d segments: %v", maxPathPrefixSegments, err)
	}
	tooDeep := "/" + strings.Repeat("p/", maxPathPrefixSegments+1) + b64
	if _, err := requestFromPath(tooDeep); !errors.Is(err, ErrMalformedRequest) {
		t.Errorf("a request under %d segments: %v, want ErrMalformedRequest", maxPathPrefixSegments+1, err)
	}
	slashes := "/" + strings.Repeat("A/", 7000)
	allocs := testing.AllocsPerRun(3, func() { requestFromPath(slashes) })
	// A few per try (more under -race); one try per '/' would be some 14,000.
	if max := float64(10 * (maxPathPrefixSegments + 1)); allocs > max {
		t.Errorf("a path of 7,000 '/' made %v allocations, want at most %v: every '/' was tried", allocs, max)
	}
}

// mustURL parses a request target as the server does, keeping the raw escapes.
func mustURL(t *testing.T, target string) *url.URL {
	t.Helper()
	u, err := url.ParseRequestURI(target)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func serve(rs *Responder, method, target string, body []byte, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	rs.ServeHTTP(rec, req)
	return rec
}

func TestMalformedAndMethods(t *testing.T) {
	rs, src := newTestResponder()
	rs.MaxRequestBytes = 100
	tests := []struct {
		name   string
		method string
		target string
		body   []byte
		code   int
		status ocspwire.ResponseStatus // -1: not an OCSP body
	}{
		{"GET without request", http.MethodGet, "/", nil, 200, ocspwire.MalformedRequest},
		{"GET garbage", http.MethodGet, "/bm90IGEgcmVxdWVzdA==", nil, 200, ocspwire.MalformedRequest},
		{"GET base64url", http.MethodGet, "/" + base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe}), nil, 200, ocspwire.MalformedRequest},
		{"POST garbage", http.MethodPost, "/", []byte("garbage"), 200, ocspwire.MalformedRequest},
		{"POST empty", http.MethodPost, "/", nil, 200, ocspwire.MalformedRequest},
		{"POST too large", http.MethodPost, "/", make([]byte, 101), 413, ocspwire.MalformedRequest},
		{"PUT", http.MethodPut, "/", nil, 405, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(rs, tt.method, tt.target, tt.body, nil)
			if rec.Code != tt.code {
				t.Fatalf("HTTP %d, want %d", rec.Code, tt.code)
			}
			if tt.status >= 0 {
				if !bytes.Equal(rec.Body.Bytes(), ocspwire.ErrorResponse(tt.status)) || rec.Header().Get("Cache-Control") != "max-age=0, no-cache" {
					t.Errorf("body %x, Cache-Control %q", rec.Body.Bytes(), rec.Header().Get("Cache-Control"))
				}
			}
		})
	}
	if rec := serve(rs, http.MethodPut, "/", nil, nil); rec.Header().Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("Allow %q", rec.Header().Get("Allow"))
	}
	if len(src.reqs) != 0 {
		t.Errorf("the source was asked %d times about bad requests", len(src.reqs))
	}
}

func TestCacheHeaders(t *testing.T) {
	der, b64 := requestWith(t)
	get := "/" + url.PathEscape(b64)
	rs, _ := newTestResponder()
	rec := serve(rs, http.MethodGet, get, nil, nil)
	h := rec.Header()
	want := map[string]string{
		"Content-Type":   ContentTypeResponse,
		"Content-Length": "38",
		"Last-Modified":  "Wed, 25 Nov 2026 11:50:00 GMT",
		"Expires":        "Wed, 25 Nov 2026 12:50:00 GMT",
		"Cache-Control":  "max-age=3000, public, no-transform, must-revalidate",
		"ETag":           testSigned.ETag,
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	tests := []struct {
		name        string
		method      string
		ifNoneMatch string
		code        int
	}{
		{"GET match", http.MethodGet, testSigned.ETag, 304},
		{"GET weak match", http.MethodGet, "W/" + testSigned.ETag, 304},
		{"GET list", http.MethodGet, `"other", ` + testSigned.ETag, 304},
		{"GET star", http.MethodGet, "*", 304},
		{"GET stale", http.MethodGet, `"other"`, 200},
		{"HEAD match", http.MethodHead, testSigned.ETag, 304},
		{"POST match", http.MethodPost, testSigned.ETag, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, body := get, []byte(nil)
			if tt.method == http.MethodPost {
				target, body = "/", der
			}
			rec := serve(rs, tt.method, target, body, http.Header{"If-None-Match": {tt.ifNoneMatch}})
			if rec.Code != tt.code {
				t.Fatalf("HTTP %d, want %d", rec.Code, tt.code)
			}
			if tt.code == 304 && (rec.Body.Len() != 0 || rec.Header().Get("ETag") == "" || rec.Header().Get("Expires") == "") {
				t.Errorf("304 with body %d bytes, headers %v", rec.Body.Len(), rec.Header())
			}
		})
	}
	// max-age counts down with the clock and stops at zero.
	rs.Now = func() time.Time { return testNow.Add(2 * time.Hour) }
	if cc := serve(rs, http.MethodGet, get, nil, nil).Header().Get("Cache-Control"); cc != "max-age=0, public, no-transform, must-revalidate" {
		t.Errorf("expired: %q", cc)
	}
	rs.Source = &fakeSource{resp: &Response{Raw: []byte{1}, ThisUpdate: testNow}}
	rec = serve(rs, http.MethodGet, get, nil, nil)
	if rec.Header().Get("Cache-Control") != "max-age=0, no-cache" || rec.Header().Get("Expires") != "" || rec.Header().Get("ETag") == "" {
		t.Errorf("no nextUpdate: %v", rec.Header())
	}
}

func TestSourceErrors(t *testing.T) {
	_, b64 := requestWith(t)
	tests := []struct {
		err  error
		want ocspwire.ResponseStatus
	}{
		{ErrUnauthorized, ocspwire.Unauthorized},
		{errors.Join(errors.New("foreign"), ErrUnauthorized), ocspwire.Unauthorized},
		{ErrTryLater, ocspwire.TryLater},
		{ErrUnsupportedFault, ocspwire.InternalError},
		{errors.New("disk on fire"), ocspwire.InternalError},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			rs, _ := newTestResponder()
			rs.Source = &fakeSource{err: tt.err}
			rec := serve(rs, http.MethodGet, "/"+url.PathEscape(b64), nil, nil)
			if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), ocspwire.ErrorResponse(tt.want)) {
				t.Errorf("HTTP %d body %x, want %v", rec.Code, rec.Body.Bytes(), tt.want)
			}
		})
	}
}

func TestFaultsEndpoint(t *testing.T) {
	rs, _ := newTestResponder()
	steps := []struct {
		method, target, body string
		code                 int
		list                 string // GET /-/faults afterwards
	}{
		{http.MethodPut, "/-/faults/1000", "delay=2s", 200, "1000:delay=2s\n"},
		{http.MethodPut, "/-/faults/all", "http503,times=3", 200, "http503,times=3\n1000:delay=2s\n"},
		{http.MethodPut, "/-/faults", "0x0abc:drop", 200, "http503,times=3\n0ABC:drop\n1000:delay=2s\n"},
		{http.MethodPut, "/-/faults/1000", "explode", 400, "http503,times=3\n0ABC:drop\n1000:delay=2s\n"},
		{http.MethodPut, "/-/faults/xyz", "drop", 400, "http503,times=3\n0ABC:drop\n1000:delay=2s\n"},
		{http.MethodDelete, "/-/faults/1000", "", 204, "http503,times=3\n0ABC:drop\n"},
		{http.MethodDelete, "/-/faults/all", "", 204, "0ABC:drop\n"},
		{http.MethodPost, "/-/faults", "drop", 405, "0ABC:drop\n"},
		{http.MethodDelete, "/-/faults", "", 204, ""},
	}
	for _, s := range steps {
		rec := serve(rs, s.method, s.target, []byte(s.body), nil)
		if rec.Code != s.code {
			t.Fatalf("%s %s %q: HTTP %d %s, want %d", s.method, s.target, s.body, rec.Code, rec.Body, s.code)
		}
		if list := serve(rs, http.MethodGet, "/-/faults", nil, nil); list.Body.String() != s.list {
			t.Fatalf("after %s %s: list %q, want %q", s.method, s.target, list.Body, s.list)
		}
	}
	rs.FaultAPI = false
	if rec := serve(rs, http.MethodGet, "/-/faults", nil, nil); rec.Code != 404 {
		t.Errorf("disabled endpoint: HTTP %d", rec.Code)
	}
}

// startServer runs rs on a loopback port until the test ends.
func startServer(t *testing.T, rs *Responder) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rs.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func TestHTTPFaultsFromTheClient(t *testing.T) {
	der, b64 := requestWith(t)
	serial := mustParse(t, der).CertIDs[0].Serial
	rs, src := newTestResponder()
	base := startServer(t, rs)
	getURL := base + "/" + url.PathEscape(b64)
	// No keep-alive: net/http would retry a GET whose reused connection was dropped.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	tests := []struct {
		fault string
		check func(t *testing.T, resp *http.Response, body []byte, err error)
	}{
		{"http500", func(t *testing.T, resp *http.Response, _ []byte, err error) {
			if err != nil || resp.StatusCode != 500 {
				t.Errorf("%v %v", resp, err)
			}
		}},
		{"http503=90s", func(t *testing.T, resp *http.Response, _ []byte, err error) {
			if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "90" {
				t.Errorf("%v %v", resp, err)
			}
		}},
		{"garbage", func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, garbageBody) || resp.Header.Get("Content-Type") != ContentTypeResponse {
				t.Errorf("%v %q %v", resp, body, err)
			}
		}},
		{"empty", func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || len(body) != 0 {
				t.Errorf("%v %q %v", resp, body, err)
			}
		}},
		{"drop", func(t *testing.T, resp *http.Response, _ []byte, err error) {
			if err == nil {
				t.Errorf("a dropped connection answered %v", resp.Status)
			}
		}},
		{"redirect-loop", func(t *testing.T, resp *http.Response, _ []byte, err error) {
			if err == nil || !strings.Contains(err.Error(), "redirects") {
				t.Errorf("%v %v", resp, err)
			}
		}},
		{"oversize=300000", func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.ContentLength != -1 || len(body) != 300000 {
				t.Errorf("%v %d %v", resp, len(body), err)
			}
		}},
		{"wrong-content-type", func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Equal(body, testSigned.Raw) {
				t.Errorf("%v %v", resp, err)
			}
		}},
		{"malformed", statusCheck(ocspwire.MalformedRequest)},
		{"internal-error", statusCheck(ocspwire.InternalError)},
		{"try-later", statusCheck(ocspwire.TryLater)},
		{"sig-required", statusCheck(ocspwire.SigRequired)},
		{"unauthorized", statusCheck(ocspwire.Unauthorized)},
		{"delay=150ms", func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || !bytes.Equal(body, testSigned.Raw) {
				t.Errorf("%v %v", resp, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			rule := SerialKey(serial) + ":" + tt.fault + ",times=1"
			if tt.fault == "redirect-loop" { // every request of the loop takes the fault
				rule = SerialKey(serial) + ":" + tt.fault
				defer serveClient(t, client, http.MethodDelete, base+"/-/faults/"+SerialKey(serial), "")
			}
			put := serveClient(t, client, http.MethodPut, base+"/-/faults", rule)
			if put.StatusCode != 200 {
				t.Fatalf("PUT %q: %v", rule, put.Status)
			}
			start := time.Now()
			resp, err := client.Get(getURL)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			tt.check(t, resp, body, err)
			if tt.fault == "delay=150ms" && time.Since(start) < 150*time.Millisecond {
				t.Errorf("answered after %v", time.Since(start))
			}
			if tt.fault == "redirect-loop" {
				return
			}
			// times=1: the next request is answered normally.
			resp, err = client.Get(getURL)
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(body, testSigned.Raw) {
				t.Errorf("after the fault: HTTP %d %q", resp.StatusCode, body)
			}
		})
	}
	t.Run("delay beyond the client's patience", func(t *testing.T) {
		rs.Faults.Set(nil, Fault{Kind: FaultDelay, Delay: 10 * time.Second, Times: 1})
		impatient := &http.Client{Timeout: 100 * time.Millisecond}
		if _, err := impatient.Get(getURL); err == nil {
			t.Error("no timeout")
		}
	})
	t.Run("signed faults go to the source", func(t *testing.T) {
		for _, k := range FaultKinds {
			if !k.Signed() {
				continue
			}
			rs.Faults.Set(serial, Fault{Kind: k, Times: 1})
			if resp, err := client.Get(getURL); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s: %v %v", k, resp, err)
			}
			if got := src.last().Fault.Kind; got != k {
				t.Errorf("source saw fault %q, want %q", got, k)
			}
		}
	})
}

func statusCheck(s ocspwire.ResponseStatus) func(t *testing.T, resp *http.Response, body []byte, err error) {
	return func(t *testing.T, resp *http.Response, body []byte, err error) {
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, ocspwire.ErrorResponse(s)) {
			t.Errorf("%v %x %v, want %v", resp, body, err, s)
		}
	}
}

func serveClient(t *testing.T, c *http.Client, method, target, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func mustParse(t *testing.T, der []byte) *Request {
	t.Helper()
	r, err := ParseRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSlowClientBlocksNobody opens a connection that sends half a POST and stalls: another client is
// answered while the stalled connection is still open, and the server cuts the stalled one off after
// ReadTimeout.
func TestSlowClientBlocksNobody(t *testing.T) {
	der, b64 := requestWith(t)
	rs, _ := newTestResponder()
	rs.ReadTimeout = 500 * time.Millisecond
	base := startServer(t, rs)
	addr := strings.TrimPrefix(base, "http://")

	slow, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	half := "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: " +
		itoa(len(der)) + "\r\n\r\n" + string(der[:len(der)/2])
	if _, err := io.WriteString(slow, half); err != nil {
		t.Fatal(err)
	}
	cut := make(chan time.Time, 1)
	go func() {
		slow.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.ReadAll(slow)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			cut <- time.Time{}
			return
		}
		cut <- time.Now()
	}()

	start := time.Now()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/" + url.PathEscape(b64))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	answered := time.Now()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	cutAt := <-cut
	if cutAt.IsZero() {
		t.Fatal("the server never cut the stalled client off")
	}
	if !answered.Before(cutAt) {
		t.Errorf("the other client was answered %v after the start, after the stalled one was cut (%v)",
			answered.Sub(start), cutAt.Sub(start))
	}
	if took := cutAt.Sub(start); took < rs.ReadTimeout/2 {
		t.Errorf("cut off after %v, before ReadTimeout %v", took, rs.ReadTimeout)
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func TestConcurrentRequests(t *testing.T) {
	_, b64 := requestWith(t)
	rs, _ := newTestResponder()
	target := startServer(t, rs) + "/" + url.PathEscape(b64)
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan error, 32*10)
	for range 32 {
		wg.Go(func() {
			for range 10 {
				resp, err := client.Get(target)
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !bytes.Equal(body, testSigned.Raw) {
					errs <- errors.New("wrong body")
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestShutdownEndsDelays stops a server while a delayed request is in flight: Serve returns promptly.
func TestShutdownEndsDelays(t *testing.T) {
	_, b64 := requestWith(t)
	rs, _ := newTestResponder()
	rs.Faults.Set(nil, Fault{Kind: FaultDelay, Delay: time.Minute, Times: 2})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rs.Serve(ctx, ln) }()
	got := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + ln.Addr().String() + "/" + url.PathEscape(b64))
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	// The request is inside its delay once it has used one of the fault's two times.
	waitFor(t, 5*time.Second, func() bool { r := rs.Faults.Rules(); return len(r) == 1 && r[0].Fault.Times == 1 })
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if took := time.Since(start); took > DefaultShutdownTimeout {
		t.Errorf("shutdown took %v", took)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the delayed client still waits")
	}
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("condition not met in time")
		}
	}
}
