package cache

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CheckSession returns the error PutSessions would meet for data under id (ErrTooLarge over the limits).
func (s *Store) CheckSession(id, data []byte) error { return checkSession(id, data) }

// PutSessions stores, in one transaction, every session that all yields, each until expires: the flush of a
// write-behind session store. Nothing is stored when one of them is refused (see CheckSession).
func (s *Store) PutSessions(all func(yield func(id, data []byte, expires time.Time) bool)) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		var err error
		all(func(id, data []byte, expires time.Time) bool {
			if err = checkSession(id, data); err == nil {
				err = b.Put(append([]byte(nil), id...), encodeSession(data, expires))
			}
			return err == nil
		})
		return err
	})
}

// LookupSession returns the TLS session stored under id, or nil when there is none or it has expired at now.
// Session bytes are secrets: the cache never logs them, and its errors never quote them.
func (s *Store) LookupSession(id []byte, now time.Time) ([]byte, error) {
	if len(id) == 0 || len(id) > MaxSessionIDSize {
		return nil, nil
	}
	var data []byte
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSessions).Get(id)
		if v == nil {
			return nil
		}
		d, expires, err := DecodeSession(v)
		if err == nil && now.Before(expires) {
			data = d
		}
		return err
	})
	return data, err
}

// PurgeSessions removes every session expired at now, and sessions whose record does not decode, and returns
// how many it removed.
func (s *Store) PurgeSessions(now time.Time) (int, error) {
	var n int
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		var stale [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if v == nil {
				return nil // a nested bucket in a mangled file: no session, and Delete cannot remove it
			}
			if _, expires, err := DecodeSession(v); err != nil || !now.Before(expires) {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(stale)
		return nil
	})
	return n, err
}

// TicketKeys returns the session ticket keys at rest, or ErrNotFound when none were stored.
func (s *Store) TicketKeys() (TicketKeys, error) {
	var k TicketKeys
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTicketKeys).Get(ticketKeysKey)
		if v == nil {
			return fmt.Errorf("%w: no ticket keys", ErrNotFound)
		}
		var err error
		k, err = DecodeTicketKeys(v)
		return err
	})
	return k, err
}

// PutTicketKeys stores the session ticket keys, replacing the ones stored.
func (s *Store) PutTicketKeys(k TicketKeys) error {
	if err := checkTicketKeys(k); err != nil {
		return err
	}
	v := encodeTicketKeys(k)
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketTicketKeys).Put(ticketKeysKey, v) })
}
