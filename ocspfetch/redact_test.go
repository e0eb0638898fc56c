package ocspfetch_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"staple/internal/testpki"
	"staple/ocspfetch"
)

// secrets are the credentials of credURL; no text a person sees may hold any of them.
var secrets = []string{"alice", "s3cret", "t0ken", "p4ss"}

// credURL is base (http://HOST[:PORT]/PATH) with both kinds of credentials: user information and a token
// in the query.
func credURL(base string) string {
	u, _ := url.Parse(base)
	u.User = url.UserPassword("alice", "s3cret")
	u.RawQuery = "token=t0ken&p4ss"
	return u.String()
}

func noSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s shows %q: %s", what, sec, s)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://ocsp.test/":                           "http://ocsp.test/",
		"http://alice:s3cret@ocsp.test:8080/a/b":      "http://REDACTED@ocsp.test:8080/a/b",
		"http://alice@ocsp.test/?token=t0ken&p4ss":    "http://REDACTED@ocsp.test/?token=REDACTED&REDACTED",
		"https://ocsp.test/x?a=1&b=&=t0ken#frag":      "https://ocsp.test/x?a=REDACTED&b=REDACTED&REDACTED#REDACTED",
		"http://alice:s3cret@ocsp.test:bad/?token=t0": "http://REDACTED@ocsp.test:bad/?REDACTED",
		"http://[::1/?token=t0ken":                    "http://[::1/?REDACTED",
	} {
		if got := ocspfetch.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFetchErrorsRedactCredentials: a responder URL with user information and a token in its query reaches
// the responder whole (the GET's request goes in the path, the query after it), and no error of a fetch that
// fails (an HTTP status, a refused connection, a URL net/http rejects, every URL of a certificate) quotes it.
func TestFetchErrorsRedactCredentials(t *testing.T) {
	f := newResponderFixture(t, testpki.ResponderOptions{})
	c := testClient()
	ctx := context.Background()
	r, err := c.FetchURL(ctx, credURL(f.r.URL), f.leaf.Cert, f.ca.Cert)
	if err != nil {
		t.Fatalf("a fetch through a URL with credentials: %v", err)
	}
	if seen := f.r.Seen(); len(seen) != 1 || seen[0].Method != "GET" || seen[0].Request == nil {
		t.Errorf("the responder saw %+v, want one GET carrying the request", seen)
	}
	if r.HTTP.URL != credURL(f.r.URL) {
		t.Errorf("HTTP.URL %q: the caller's URL, whole, is what it asked", r.HTTP.URL)
	}

	f.r.Fail(testpki.Fault503)
	_, err503 := c.FetchURL(ctx, credURL(f.r.URL), f.leaf.Cert, f.ca.Cert)
	_, errDead := c.FetchURL(ctx, credURL(deadURL(t)), f.leaf.Cert, f.ca.Cert)
	_, errBad := c.FetchURL(ctx, "http://alice:s3cret@127.0.0.1:99999/?token=t0ken", f.leaf.Cert, f.ca.Cert)
	c.Overrides = map[string]string{f.r.URL: credURL(deadURL(t))}
	_, errAll := c.Fetch(ctx, f.leaf.Cert, f.ca.Cert)
	for name, err := range map[string]error{"HTTP 503": err503, "refused": errDead, "bad URL": errBad, "every URL": errAll} {
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		noSecret(t, name, err.Error())
	}
}

// FuzzRedactURL: no input panics RedactURL, and what it returns for a URL that parses, parsed again, has no
// user information but REDACTED and no query value but REDACTED.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"http://alice:s3cret@ocsp.test:8080/a?token=t0ken&x#f", "http://[::1/?t=1", "http://a@b@c/?=&&=",
		"%zz", "http://ocsp.test/%2F?a=%zz", "//alice@host/p?q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := ocspfetch.RedactURL(s)
		if _, err := url.Parse(s); err != nil {
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("RedactURL(%q) = %q, which does not parse: %v", s, got, err)
		}
		if u.User != nil && u.User.String() != "REDACTED" {
			t.Errorf("RedactURL(%q) = %q keeps user information", s, got)
		}
		for k, vs := range u.Query() {
			for _, v := range vs {
				if v != "REDACTED" && !(v == "" && k == "REDACTED") {
					t.Errorf("RedactURL(%q) = %q keeps query value %q", s, got, v)
				}
			}
		}
	})
}
