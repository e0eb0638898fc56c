package ocspfetch_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// roundTripper answers every request with one canned response, and records the requests.
type roundTripper struct {
	mu     sync.Mutex
	status int
	header http.Header
	body   []byte
	seen   []*http.Request
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.seen = append(rt.seen, req)
	rt.mu.Unlock()
	return &http.Response{StatusCode: rt.status, Header: rt.header.Clone(), Body: io.NopCloser(bytes.NewReader(rt.body)),
		ContentLength: int64(len(rt.body)), Request: req}, nil
}

func TestInjectedTransport(t *testing.T) {
	ca := testpki.NewRoot(t, "Transport Root", testpki.ECDSAP256)
	leaf := ca.Issue(t, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.transport.test/"}})
	good := ca.Respond(t, leaf.Cert, testpki.ResponseOptions{})
	now := testpki.Epoch()
	tests := []struct {
		name  string
		rt    *roundTripper
		want  []error
		check func(t *testing.T, r *ocspfetch.Response, err error)
	}{
		{name: "wrong Content-Type, good body: accepted and recorded",
			rt: &roundTripper{status: 200, header: http.Header{"Content-Type": {"application/octet-stream"}}, body: good},
			check: func(t *testing.T, r *ocspfetch.Response, err error) {
				if !r.HTTP.WrongContentType || r.HTTP.ContentType != "application/octet-stream" {
					t.Errorf("%+v", r.HTTP)
				}
			}},
		{name: "Content-Type with parameters is right",
			rt: &roundTripper{status: 200, header: http.Header{"Content-Type": {"application/ocsp-response; charset=binary"}}, body: good},
			check: func(t *testing.T, r *ocspfetch.Response, err error) {
				if r.HTTP.WrongContentType {
					t.Errorf("%+v", r.HTTP)
				}
			}},
		{name: "wrong Content-Type, garbage: both said",
			rt:   &roundTripper{status: 200, header: http.Header{"Content-Type": {"text/html"}}, body: []byte("<html>")},
			want: []error{ocspfetch.ErrMalformed, ocspfetch.ErrWrongContentType}},
		{name: "503 with an HTTP-date Retry-After",
			rt:   &roundTripper{status: 503, header: http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}},
			want: []error{&ocspfetch.HTTPError{}},
			check: func(t *testing.T, r *ocspfetch.Response, err error) {
				var he *ocspfetch.HTTPError
				if errors.As(err, &he); he.RetryAfter != 90*time.Second {
					t.Errorf("RetryAfter %v", he.RetryAfter)
				}
			}},
		{name: "429 with a garbled Retry-After",
			rt:   &roundTripper{status: 429, header: http.Header{"Retry-After": {"soon"}}},
			want: []error{&ocspfetch.HTTPError{}},
			check: func(t *testing.T, r *ocspfetch.Response, err error) {
				var he *ocspfetch.HTTPError
				if errors.As(err, &he); he.RetryAfter != 0 || !ocspfetch.Transient(err) {
					t.Errorf("RetryAfter %v", he.RetryAfter)
				}
			}},
		{name: "Content-Length over the cap",
			rt:   &roundTripper{status: 200, header: http.Header{"Content-Type": {"application/ocsp-response"}}, body: make([]byte, 70<<10)},
			want: []error{ocspfetch.ErrResponseTooLarge}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &ocspfetch.Client{Transport: tc.rt, Now: func() time.Time { return now }}
			r, err := c.Fetch(context.Background(), leaf.Cert, ca.Cert)
			for _, w := range tc.want {
				var he *ocspfetch.HTTPError
				if _, isHTTP := w.(*ocspfetch.HTTPError); isHTTP && !errors.As(err, &he) || !isHTTP && !errors.Is(err, w) {
					t.Fatalf("err = %v, want %v", err, w)
				}
			}
			if len(tc.want) == 0 && err != nil {
				t.Fatal(err)
			}
			if len(tc.want) > 0 && r != nil {
				t.Fatal("a response came back with the error")
			}
			if tc.check != nil {
				tc.check(t, r, err)
			}
			if len(tc.rt.seen) != 1 || tc.rt.seen[0].Method != "GET" || tc.rt.seen[0].Header.Get("User-Agent") != "staple/devel" {
				t.Errorf("requests: %d", len(tc.rt.seen))
			}
		})
	}
}

// The Client's own transport goes through the proxy it is given (ProxyFromEnvironment by default, which
// ignores loopback, hence the injected function here).
func TestProxy(t *testing.T) {
	ca := testpki.NewRoot(t, "Proxy Root", testpki.ECDSAP256)
	r := testpki.NewResponder(t, ca, testpki.ResponderOptions{})
	leaf := ca.Issue(t, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.behind-proxy.test/ocsp"}})
	var mu sync.Mutex
	var proxied []string
	target, _ := url.Parse(r.URL)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		proxied = append(proxied, req.URL.String())
		mu.Unlock()
		// Forward to the fake responder, as a proxy would to ocsp.behind-proxy.test.
		out, _ := http.NewRequestWithContext(req.Context(), req.Method, target.Scheme+"://"+target.Host+req.URL.EscapedPath(), req.Body)
		out.Header = req.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(proxy.Close)
	proxyURL, _ := url.Parse(proxy.URL)
	c := &ocspfetch.Client{Now: testpki.Epoch, Proxy: http.ProxyURL(proxyURL)}
	resp, err := c.Fetch(context.Background(), leaf.Cert, ca.Cert)
	if err != nil || resp.Status != ocspwire.Good {
		t.Fatalf("through the proxy: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(proxied) != 1 || !bytes.HasPrefix([]byte(proxied[0]), []byte("http://ocsp.behind-proxy.test/ocsp/")) {
		t.Errorf("proxy saw %q", proxied)
	}
}
