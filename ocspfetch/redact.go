package ocspfetch

import (
	"errors"
	"net/url"
	"strings"
)

// redacted stands for what RedactURL hides.
const redacted = "REDACTED"

// RedactURL returns responder URL s as it may reach a person (logs, listings, the status page, errors):
// the user information and the value of every query parameter, where a responder's credentials go, become
// REDACTED, and so does a fragment. The scheme, host, port and path stay, so the responder is still known.
// A URL that does not parse loses its user information and everything from its first '?' or '#'.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i] + "?" + redacted
		}
		if _, rest, ok := strings.Cut(s, "://"); ok {
			authority, _, _ := strings.Cut(rest, "/")
			if i := strings.LastIndex(authority, "@"); i >= 0 {
				s = s[:len(s)-len(rest)] + redacted + rest[i:]
			}
		}
		return s
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	if u.RawQuery != "" || u.ForceQuery {
		params := strings.Split(u.RawQuery, "&")
		for i, p := range params {
			if k, _, ok := strings.Cut(p, "="); ok && k != "" {
				params[i] = k + "=" + redacted
			} else {
				params[i] = redacted
			}
		}
		u.RawQuery, u.ForceQuery = strings.Join(params, "&"), false
	}
	if u.Fragment != "" || u.RawFragment != "" {
		u.Fragment, u.RawFragment = redacted, ""
	}
	return u.String()
}

// redactError hides the credentials of the URL that net/http's *url.Error quotes (the request's, or a
// redirect's), in place, and returns err.
func redactError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = RedactURL(ue.URL)
	}
	return err
}
