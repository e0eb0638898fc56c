package admin

import (
	"context"
	"errors"
	"time"

	"staple/certs"
)

// Errors a Backend returns and the Client reproduces from the API's status codes.
var (
	ErrNotFound  = errors.New("admin: no cached certificate matches")
	ErrAmbiguous = errors.New("admin: the key matches several certificates; give more of the issuer hash")
	ErrBadInput  = errors.New("admin: bad request")
	ErrReadOnly  = errors.New("admin: the cache is open read-only")
	ErrNoService = errors.New("admin: no staple service answers on the admin socket")
)

// Entry is one watched or cached certificate as `staple cache ls`, the status page and the API show it.
type Entry struct {
	Key        string   `json:"key"`
	Names      []string `json:"names"`
	MustStaple bool     `json:"must_staple"`
	// Status is good, revoked or unknown for a valid response; "expired" when the newest response has passed
	// its nextUpdate; "none" when there is no response yet; "n/a" when the certificate has no OCSP URL.
	Status      string    `json:"status"`
	ProducedAt  time.Time `json:"produced_at,omitzero"`
	ThisUpdate  time.Time `json:"this_update,omitzero"`
	NextUpdate  time.Time `json:"next_update,omitzero"`
	Expires     time.Time `json:"expires,omitzero"`
	NextRefresh time.Time `json:"next_refresh,omitzero"`
	Fetched     time.Time `json:"fetched,omitzero"`
	Responder   string    `json:"responder,omitempty"`
	URLs        []string  `json:"urls,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	Failures    int       `json:"failures,omitempty"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	Reason      string    `json:"revocation_reason,omitempty"`
	// Watched is set when the certificate is known, so that it is kept fresh (a response stored without its
	// certificate is served until it expires, never fetched).
	Watched bool `json:"watched"`
}

// Attempt is one fetch in an entry's history.
type Attempt struct {
	Time    time.Time     `json:"time"`
	Result  string        `json:"result"` // "ok" or the failure reason label
	Status  string        `json:"status,omitempty"`
	Error   string        `json:"error,omitempty"`
	URL     string        `json:"url,omitempty"`
	Latency time.Duration `json:"latency_ns"`
}

// Detail is one entry with its history and its response.
type Detail struct {
	Entry
	History []Attempt `json:"history"`
	// DER is the cached OCSP response (nil when none): what export writes.
	DER []byte `json:"der,omitempty"`
	// Fleet is set when the store is a fleet's; ServedBy then names the nodes that serve the certificate
	// now (none: the fleet's leader removes it once it has gone unserved for unserved_after).
	// ServedByError says why ServedBy is unknown (etcd unreachable), "" when it is known.
	Fleet         bool     `json:"fleet,omitempty"`
	ServedBy      []string `json:"served_by,omitempty"`
	ServedByError string   `json:"served_by_error,omitempty"`
	// Leaf and Issuer are the DER certificates, used to decode and verify the response.
	Leaf   []byte `json:"leaf,omitempty"`
	Issuer []byte `json:"issuer,omitempty"`
}

// SetServedBy records, in a fleet's entry, the nodes that serve it, or why they are unknown: the rest of the
// entry is worth showing without them.
func (d *Detail) SetServedBy(nodes []string, err error) {
	d.Fleet, d.ServedBy = true, nodes
	if err != nil {
		d.ServedByError = err.Error()
	}
}

// Stats are the service's counters.
type Stats struct {
	Entries        int       `json:"entries"`
	Ready          bool      `json:"ready"`
	Healthy        bool      `json:"healthy"`
	Problem        string    `json:"problem,omitempty"`
	Started        time.Time `json:"started,omitzero"`
	Fetches        int64     `json:"fetches"`
	FetchFailures  int64     `json:"fetch_failures"`
	PersistFails   int64     `json:"persist_failures"`
	Handshakes     int64     `json:"handshakes"`
	Stapled        int64     `json:"stapled"`
	ReadOnly       bool      `json:"read_only"`
	DatabasePath   string    `json:"database,omitempty"`
	ServiceVersion string    `json:"version,omitempty"`
}

// ImportRequest carries a response to verify and store, with the certificate it is for.
type ImportRequest struct {
	DER    []byte `json:"der"`
	Chain  []byte `json:"chain_pem"`            // the certificate (and optionally its chain), PEM
	Issuer []byte `json:"issuer_pem,omitempty"` // the issuer when the chain lacks it
}

// Backend is what the admin API serves and the cache commands call: Engine over a stapler in this process
// (a service's, or the command line's over a store it opened), or Client over a service's admin socket.
// Implementations are safe for concurrent use.
type Backend interface {
	Entries(ctx context.Context) ([]Entry, error)
	Entry(ctx context.Context, ref certs.KeyRef) (Detail, error)
	// Refresh fetches now: the entry ref selects, or every watched entry when ref is nil. It returns the
	// entries refreshed, after the fetches completed.
	Refresh(ctx context.Context, ref *certs.KeyRef) ([]Entry, error)
	// Remove forgets the entry ref selects and returns no entry; an entry that a site of the running service
	// serves keeps its certificate, has its response and history dropped and a fresh response fetched at
	// once, and is returned after that fetch (with its error, as Refresh).
	Remove(ctx context.Context, ref certs.KeyRef) ([]Entry, error)
	Import(ctx context.Context, req ImportRequest) (Entry, error)
	Stats(ctx context.Context) (Stats, error)
}
