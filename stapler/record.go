package stapler

import (
	"time"

	"staple/cache"
	"staple/ocspfetch"
)

// ResponseRecord returns the storage record of a verified response. expires is the instant it stops being
// stapleable (r.Expiry with the policy's TTL) and refreshAt when the next fetch is planned.
func ResponseRecord(r *ocspfetch.Response, expires, refreshAt time.Time) cache.Response {
	return cache.Response{
		Raw:              r.Raw,
		Status:           r.Status,
		ProducedAt:       r.ProducedAt,
		ThisUpdate:       r.ThisUpdate,
		NextUpdate:       r.NextUpdate,
		Expires:          expires,
		RefreshAt:        refreshAt,
		RevokedAt:        r.RevokedAt,
		RevocationReason: r.RevocationReason,
		HasReason:        r.HasReason,
		Fetched:          r.Verified,
		URL:              r.HTTP.URL,
		ETag:             r.HTTP.ETag,
		LastModified:     r.HTTP.LastModified,
	}
}
