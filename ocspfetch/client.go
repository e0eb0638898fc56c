package ocspfetch

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of Client.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultTimeout        = 10 * time.Second
	DefaultMaxBodySize    = 64 << 10
	DefaultMaxRedirects   = 3
	// maxGetURL is the longest URL sent as a GET (RFC 5019 §5); longer requests are POSTed.
	maxGetURL = 255
)

// Client fetches verified OCSP responses over HTTP. The zero value is ready to use with the defaults
// documented on each field. A Client is safe for concurrent use once in use; its fields must not change
// then. It keeps connections alive per responder host.
type Client struct {
	// Transport performs the requests. Nil means the Client's own: Proxy, ConnectTimeout to connect,
	// keep-alive per host.
	Transport http.RoundTripper
	// Proxy chooses the proxy of the Client's own transport; nil means http.ProxyFromEnvironment (HTTP_PROXY,
	// HTTPS_PROXY, NO_PROXY; never for localhost). Unused when Transport is set.
	Proxy func(*http.Request) (*url.URL, error)
	// UserAgent is sent with every request; empty means "staple/devel". The command line sets
	// "staple/<version>".
	UserAgent string
	// ConnectTimeout bounds connecting (and the TLS handshake) of the Client's own transport; zero means 5 s.
	ConnectTimeout time.Duration
	// Timeout bounds each exchange with one responder, from connecting to the end of the body, redirects
	// included; zero means 10 s.
	Timeout time.Duration
	// MaxBodySize caps a response body; zero means 64 KiB. A larger body is ErrResponseTooLarge.
	MaxBodySize int64
	// MaxRedirects is how many redirects are followed (http and https only); zero means 3, negative none.
	MaxRedirects int
	// Overrides maps a responder URL from a certificate to the URL to use instead, or to "" to skip it.
	Overrides map[string]string
	// Hash is the CertID hash; zero means SHA-1.
	Hash crypto.Hash
	// Nonce sends a fresh nonce with every request, which must then come back.
	Nonce bool
	// Verify is the base of the options every response is verified with (skew, TTL, pinned responders);
	// the Client adds the nonce and a VerifyCache of its own when Verify.Cache is nil.
	Verify VerifyOptions
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	once   sync.Once
	client *http.Client
	cache  VerifyCache
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) init() {
	c.once.Do(func() {
		rt := c.Transport
		if rt == nil {
			connect := c.ConnectTimeout
			if connect <= 0 {
				connect = DefaultConnectTimeout
			}
			proxy := c.Proxy
			if proxy == nil {
				proxy = http.ProxyFromEnvironment
			}
			rt = &http.Transport{
				Proxy:                 proxy,
				DialContext:           (&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}).DialContext,
				TLSHandshakeTimeout:   connect,
				ForceAttemptHTTP2:     true,
				MaxIdleConns:          100,
				MaxIdleConnsPerHost:   4,
				IdleConnTimeout:       90 * time.Second,
				ExpectContinueTimeout: time.Second,
			}
		}
		limit := c.MaxRedirects
		if limit == 0 {
			limit = DefaultMaxRedirects
		}
		limit = max(limit, 0)
		c.client = &http.Client{
			Transport: rt,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
					return fmt.Errorf("%w: %s", ErrRedirectScheme, RedactURL(req.URL.String()))
				}
				if len(via) > limit {
					return fmt.Errorf("%w: more than %d", ErrTooManyRedirects, limit)
				}
				return nil
			},
		}
	})
}

// URLError is the failure of one responder URL.
type URLError struct {
	URL    string
	Method string // the last method tried: GET or POST; empty when no request was sent
	Err    error
}

func (e *URLError) Error() string {
	if e.Method == "" {
		return fmt.Sprintf("%s: %v", RedactURL(e.URL), e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Method, RedactURL(e.URL), e.Err)
}

func (e *URLError) Unwrap() error { return e.Err }

// FetchError is the failure of every responder URL of a certificate, in the order tried. It unwraps to the
// first one, the certificate's primary responder, so Reason, Transient and errors.Is/As describe that.
type FetchError struct {
	Attempts []*URLError
}

func (e *FetchError) Error() string {
	var b strings.Builder
	b.WriteString("ocspfetch: ")
	for i, a := range e.Attempts {
		if i > 0 {
			b.WriteString("; then ")
		}
		b.WriteString(a.Error())
	}
	return b.String()
}

func (e *FetchError) Unwrap() error { return e.Attempts[0] }

// URLs returns the responder URLs Fetch tries for leaf: its AIA OCSP URLs in order, each replaced as
// Overrides says (and left out when mapped to ""), without repeats.
func (c *Client) URLs(leaf *x509.Certificate) []string {
	var out []string
	for _, u := range leaf.OCSPServer {
		if o, ok := c.Overrides[u]; ok {
			u = o
		}
		if u != "" && !containsString(out, u) {
			out = append(out, u)
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Fetch returns a verified response for leaf issued by issuer from the first of its responder URLs (see URLs)
// that gives one. With no URL it fails with ErrNoResponderURL; when every URL fails, with a *FetchError.
func (c *Client) Fetch(ctx context.Context, leaf, issuer *x509.Certificate) (*Response, error) {
	if issuer == nil {
		return nil, ErrNoIssuer
	}
	urls := c.URLs(leaf)
	if len(urls) == 0 {
		return nil, ErrNoResponderURL
	}
	fe := &FetchError{}
	for _, u := range urls {
		r, err := c.FetchURL(ctx, u, leaf, issuer)
		if err == nil {
			return r, nil
		}
		var ue *URLError
		if !errors.As(err, &ue) {
			ue = &URLError{URL: u, Err: err}
		}
		fe.Attempts = append(fe.Attempts, ue)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fe
}

// FetchURL asks the responder at url about leaf and verifies the answer. The request is a GET when its URL
// fits in 255 bytes, else a POST; a GET the responder refuses (HTTP 400, 404, 405, 414, 501, or a
// malformedRequest answer) is retried as a POST. Failures are a *URLError.
func (c *Client) FetchURL(ctx context.Context, responderURL string, leaf, issuer *x509.Certificate) (*Response, error) {
	c.init()
	opts := RequestOptions{Hash: c.Hash}
	if c.Nonce {
		n, err := NewNonce()
		if err != nil {
			return nil, &URLError{URL: responderURL, Err: err}
		}
		opts.Nonce = n
	}
	req, err := NewRequest(leaf, issuer, opts)
	if err != nil {
		return nil, &URLError{URL: responderURL, Err: err}
	}
	method := http.MethodPost
	getURL := GetURL(responderURL, req.DER)
	if len(getURL) <= maxGetURL {
		method = http.MethodGet
	}
	r, err := c.exchange(ctx, method, responderURL, getURL, req, leaf, issuer)
	if err != nil && method == http.MethodGet && getRefused(err) && ctx.Err() == nil {
		method = http.MethodPost
		r, err = c.exchange(ctx, method, responderURL, getURL, req, leaf, issuer)
	}
	if err != nil {
		return nil, &URLError{URL: responderURL, Method: method, Err: err}
	}
	return r, nil
}

// getRefused reports whether err says the responder does not take GET requests (or mangled this one).
func getRefused(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		switch he.StatusCode {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed,
			http.StatusRequestURITooLong, http.StatusNotImplemented:
			return true
		}
	}
	return errors.Is(err, ErrMalformedRequest)
}

// getEscaper percent-encodes base64's '+', '/' and '='. One for all requests: a Replacer builds its tables on
// first use, which cost more than the replacement itself when made per request.
var getEscaper = strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D")

// GetURL returns the GET form of an OCSP request to base: base, a slash, and the base64 of der with '+', '/'
// and '=' percent-encoded (RFC 5019 §5). The request goes into the path: a query of base (a responder's
// token) stays after it, whole.
func GetURL(base string, der []byte) string {
	enc := getEscaper.Replace(base64.StdEncoding.EncodeToString(der))
	base, query, hasQuery := strings.Cut(base, "?")
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	if hasQuery {
		return base + enc + "?" + query
	}
	return base + enc
}

func (c *Client) exchange(ctx context.Context, method, responderURL, getURL string, req *Request, leaf, issuer *x509.Certificate) (*Response, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var hreq *http.Request
	var err error
	if method == http.MethodGet {
		hreq, err = http.NewRequestWithContext(ctx, method, getURL, nil)
	} else {
		hreq, err = http.NewRequestWithContext(ctx, method, responderURL, bytes.NewReader(req.DER))
		if err == nil {
			hreq.Header.Set("Content-Type", "application/ocsp-request")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ocspfetch: bad responder URL: %w", redactError(err))
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "staple/devel"
	}
	hreq.Header.Set("User-Agent", ua)
	hreq.Header.Set("Accept", "application/ocsp-response")

	start := c.now()
	resp, err := c.client.Do(hreq)
	if err != nil {
		return nil, redactError(err)
	}
	defer resp.Body.Close()
	info := HTTPInfo{URL: responderURL, Method: method, ContentType: resp.Header.Get("Content-Type")}
	readCacheHeaders(&info, resp.Header)
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // let the connection be reused
		return nil, &HTTPError{URL: responderURL, StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header, c.now())}
	}
	if mt, _, err := mime.ParseMediaType(info.ContentType); err != nil || mt != "application/ocsp-response" {
		info.WrongContentType = true
	}
	body, err := readBody(resp, c.maxBody())
	if err != nil {
		return nil, err
	}
	now := c.now()
	info.Latency = now.Sub(start)
	vo := c.Verify
	vo.Nonce = req.Nonce
	if vo.Cache == nil {
		vo.Cache = &c.cache
	}
	r, err := Verify(body, leaf, issuer, now, vo)
	if err != nil {
		if info.WrongContentType {
			return nil, fmt.Errorf("%w (%w: %q)", err, ErrWrongContentType, info.ContentType)
		}
		return nil, err
	}
	r.HTTP = info
	return r, nil
}

func (c *Client) maxBody() int64 {
	if c.MaxBodySize <= 0 {
		return DefaultMaxBodySize
	}
	return c.MaxBodySize
}

func readBody(resp *http.Response, limit int64) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d, limit %d", ErrResponseTooLarge, resp.ContentLength, limit)
	}
	if n := resp.ContentLength; n >= 0 {
		// Read into a buffer of exactly the announced size: the bytes are kept as the cached response, and
		// io.ReadAll's growing buffer would keep up to twice their size, after two or three copies.
		body := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, body); err != nil {
			return nil, fmt.Errorf("body shorter than its Content-Length %d: %w", n, err)
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, limit)
	}
	return body, nil
}

// readCacheHeaders records the RFC 5019 §6 cache hints of a response.
func readCacheHeaders(info *HTTPInfo, h http.Header) {
	for _, cc := range h.Values("Cache-Control") {
		for _, d := range strings.Split(cc, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), "=")
			if !strings.EqualFold(name, "max-age") {
				continue
			}
			if n, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64); err == nil && n >= 0 && n < 1<<31 {
				info.MaxAge, info.HasMaxAge = time.Duration(n)*time.Second, true
			}
		}
	}
	if t, err := http.ParseTime(h.Get("Expires")); err == nil {
		info.Expires = t
	}
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		info.Date = t
	}
	info.ETag = h.Get("ETag")
	info.LastModified = h.Get("Last-Modified")
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date (relative to now). Zero when absent or
// unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 7*24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 7*24*time.Hour)
	}
	return 0
}
