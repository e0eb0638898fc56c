package admin

import (
	"crypto/x509"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/ocspwire"
)

// EntryFrom builds the Entry of key from what the cache holds: the watched certificate (nil when only a
// response is cached), the response (nil when none) and the fetch history (oldest first).
func EntryFrom(key certs.Key, c *cache.Cert, r *cache.Response, history []cache.Attempt, now time.Time) Entry {
	e := Entry{Key: key.String(), Status: "none", Watched: c != nil}
	if c != nil {
		e.MustStaple = c.MustStaple
		e.URLs = c.URLs
		if leaf, err := x509.ParseCertificate(c.Leaf); err == nil {
			e.Names = certs.Names(leaf)
		}
		if len(c.URLs) == 0 {
			e.Status = "n/a"
		}
	}
	if r != nil {
		e.ProducedAt, e.ThisUpdate, e.NextUpdate, e.Expires = r.ProducedAt, r.ThisUpdate, r.NextUpdate, r.Expires
		e.NextRefresh, e.Fetched, e.Responder = r.RefreshAt, r.Fetched, r.URL
		e.Status = "expired"
		if r.ValidAt(now) {
			e.Status = r.Status.String()
		}
		if r.Status == ocspwire.Revoked {
			e.RevokedAt = r.RevokedAt
			if r.HasReason {
				e.Reason = ocspwire.ReasonName(r.RevocationReason)
			}
		}
	}
	for i := len(history) - 1; i >= 0 && !history[i].OK(); i-- {
		e.Failures++
		if e.LastError == "" {
			e.LastError = history[i].Reason
			if history[i].Error != "" {
				e.LastError += ": " + history[i].Error
			}
		}
	}
	return e
}

// AttemptFrom converts a history record.
func AttemptFrom(a cache.Attempt) Attempt {
	out := Attempt{Time: a.Time, Result: a.Reason, Error: a.Error, URL: a.URL, Latency: a.Latency}
	if a.OK() {
		out.Status = a.Status.String()
	}
	return out
}
