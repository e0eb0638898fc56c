package service

import (
	"errors"

	"staple/cache"
	"staple/tlsserver"
)

// ticketKeyStore keeps the TLS server's session ticket keys in the cache file, so that tickets issued before
// a restart still resume. The file is 0600: the keys are secrets and are never logged.
type ticketKeyStore struct{ st *cache.Store }

var _ tlsserver.TicketKeyStore = ticketKeyStore{}

func (t ticketKeyStore) LoadTicketKeys() (tlsserver.TicketKeys, error) {
	k, err := t.st.TicketKeys()
	if errors.Is(err, cache.ErrNotFound) {
		return tlsserver.TicketKeys{}, nil
	}
	if err != nil {
		return tlsserver.TicketKeys{}, err
	}
	return tlsserver.TicketKeys{Current: k.Current, Previous: k.Previous, Created: k.Rotated}, nil
}

func (t ticketKeyStore) SaveTicketKeys(k tlsserver.TicketKeys) error {
	return t.st.PutTicketKeys(cache.TicketKeys{Current: k.Current, Previous: k.Previous, Rotated: k.Created})
}
