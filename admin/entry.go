package admin

import (
	"time"

	"staple/cache"
	"staple/ocspfetch"
	"staple/ocspwire"
	"staple/stapler"
)

// EntryOf describes one of the engine's certificates as listings show it, at now. Responder URLs are
// redacted (ocspfetch.RedactURL): listings, JSON, the API and the status page show no credentials.
func EntryOf(in stapler.Info, now time.Time) Entry {
	e := Entry{
		Key: in.Key.String(), Names: in.Names, MustStaple: in.MustStaple, Status: "none",
		Watched: in.Fetchable, NextRefresh: in.NextRefresh, Failures: in.Failures,
	}
	for _, u := range in.URLs {
		e.URLs = append(e.URLs, ocspfetch.RedactURL(u))
	}
	if in.Fetchable && len(in.URLs) == 0 {
		e.Status = "n/a"
	}
	if r := in.Response; r != nil {
		e.ProducedAt, e.ThisUpdate, e.NextUpdate, e.Expires = r.ProducedAt, r.ThisUpdate, r.NextUpdate, r.Expires
		e.Fetched, e.Responder = r.Fetched, redactOptional(r.URL)
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
	if e.LastError = in.LastReason; in.LastError != "" {
		e.LastError += ": " + in.LastError
	}
	return e
}

// DetailOf is EntryOf with the history, the response and the certificates of an Info from Stapler.Entry.
func DetailOf(in stapler.Info, now time.Time) Detail {
	d := Detail{Entry: EntryOf(in, now)}
	for _, a := range in.History {
		d.History = append(d.History, attemptOf(a))
	}
	if in.Response != nil {
		d.DER = in.Response.Raw
	}
	if in.Leaf != nil && in.Issuer != nil {
		d.Leaf, d.Issuer = in.Leaf.Raw, in.Issuer.Raw
	}
	return d
}

func attemptOf(a cache.Attempt) Attempt {
	out := Attempt{Time: a.Time, Result: a.Reason, Error: a.Error, URL: redactOptional(a.URL), Latency: a.Latency}
	if a.OK() {
		out.Status = a.Status.String()
	}
	return out
}

// redactOptional is ocspfetch.RedactURL, keeping "" for no URL.
func redactOptional(u string) string {
	if u == "" {
		return ""
	}
	return ocspfetch.RedactURL(u)
}
