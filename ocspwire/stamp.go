package ocspwire

import (
	"strconv"
	"time"
)

// Stamp is what orders two answers about one certificate: the later ThisUpdate is the newer answer, and at
// the same ThisUpdate a revoked answer outranks a good one, which outranks an unknown one. Responders stamp
// ThisUpdate to the second (openssl ocsp uses the time of the request), so a revocation can carry the very
// stamp of the good answer given just before it, and a good answer that of the unknown one given before the
// certificate reached the responder's index; ranking by status, in the order a certificate's life can take,
// keeps the later answer from being taken for old news and dropped.
type Stamp struct {
	ThisUpdate time.Time
	Status     Status
}

// rank orders statuses at one ThisUpdate: unknown, then good, then revoked.
func (s Status) rank() int {
	switch s {
	case Revoked:
		return 2
	case Good:
		return 1
	}
	return 0
}

// Before reports whether s is older news than t.
func (s Stamp) Before(t Stamp) bool {
	if !s.ThisUpdate.Equal(t.ThisUpdate) {
		return s.ThisUpdate.Before(t.ThisUpdate)
	}
	return s.Status.rank() < t.Status.rank()
}

// Key is s as a fixed-width string whose byte order is the order of Before, for a store that can compare
// strings only (etcd's transactions).
func (s Stamp) Key() string {
	return s.ThisUpdate.UTC().Format("2006-01-02T15:04:05.000000000Z") + "/" + strconv.Itoa(s.Status.rank())
}

// String is s for a message: the ThisUpdate in RFC 3339 and the status.
func (s Stamp) String() string {
	return s.ThisUpdate.UTC().Format(time.RFC3339) + " " + s.Status.String()
}
