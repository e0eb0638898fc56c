package cache

import (
	"fmt"
	"time"
)

// The encoders of records for other stores of them (package fleet keeps them in etcd): the same checks as the
// Store's, and the same bytes as the bbolt file (schema.go documents them).

// EncodeResponse returns the record of r, or an error when r is empty or over the size limits (ErrTooLarge):
// the same checks Store.PutResponse makes.
func EncodeResponse(r Response) ([]byte, error) {
	if err := checkResponse(r); err != nil {
		return nil, err
	}
	return encodeResponse(r), nil
}

// EncodeCert returns the record of c, or an error when it lacks its leaf or issuer or is over the limits.
func EncodeCert(c Cert) ([]byte, error) {
	if err := checkCert(c); err != nil {
		return nil, err
	}
	return encodeCert(c), nil
}

// AppendAttempt returns the history record of h with a appended, keeping the last MaxHistory attempts and
// cutting over-long text, as Store.AddAttempt does. A history that does not decode is replaced: it is a
// diagnostic, not state to protect.
func AppendAttempt(history []byte, a Attempt) []byte {
	var h []Attempt
	if history != nil {
		h, _ = DecodeHistory(history)
	}
	return encodeHistory(appendAttempt(h, a))
}

// EncodeSession returns the record of a TLS session stored until expires.
func EncodeSession(id, data []byte, expires time.Time) ([]byte, error) {
	if err := checkSession(id, data); err != nil {
		return nil, err
	}
	return encodeSession(data, expires), nil
}

// EncodeTicketKeys returns the record of k, or an error when it has no current key or a key is over the limit.
func EncodeTicketKeys(k TicketKeys) ([]byte, error) {
	if err := checkTicketKeys(k); err != nil {
		return nil, err
	}
	return encodeTicketKeys(k), nil
}

func checkResponse(r Response) error {
	switch {
	case len(r.Raw) == 0:
		return fmt.Errorf("cache: empty response")
	case len(r.Raw) > MaxResponseSize, len(r.URL) > maxURLLen, len(r.ETag) > maxShortText, len(r.LastModified) > maxShortText:
		return fmt.Errorf("%w: response", ErrTooLarge)
	}
	return nil
}

func checkCert(c Cert) error {
	if len(c.Leaf) == 0 || len(c.Issuer) == 0 {
		return fmt.Errorf("cache: certificate record without leaf or issuer")
	}
	if len(c.Leaf) > MaxCertSize || len(c.Issuer) > MaxCertSize || len(c.URLs) > maxURLs {
		return fmt.Errorf("%w: certificate", ErrTooLarge)
	}
	for _, u := range c.URLs {
		if len(u) > maxURLLen {
			return fmt.Errorf("%w: responder URL", ErrTooLarge)
		}
	}
	return nil
}

func checkSession(id, data []byte) error {
	switch {
	case len(id) == 0:
		return fmt.Errorf("cache: empty session id")
	case len(id) > MaxSessionIDSize, len(data) > MaxSessionSize:
		return fmt.Errorf("%w: session of %d bytes with an id of %d bytes", ErrTooLarge, len(data), len(id))
	}
	return nil
}

func checkTicketKeys(k TicketKeys) error {
	if len(k.Current) == 0 {
		return fmt.Errorf("cache: ticket keys without a current key")
	}
	if len(k.Current) > MaxTicketKeySize || len(k.Previous) > MaxTicketKeySize {
		return fmt.Errorf("%w: ticket key", ErrTooLarge)
	}
	return nil
}

// appendAttempt appends a to h, cutting over-long text and keeping the last MaxHistory attempts.
func appendAttempt(h []Attempt, a Attempt) []Attempt {
	a.Reason = truncate(a.Reason, maxShortText)
	a.Error = truncate(a.Error, maxShortText)
	a.URL = truncate(a.URL, maxURLLen)
	h = append(h, a)
	if len(h) > MaxHistory {
		h = h[len(h)-MaxHistory:]
	}
	return h
}
