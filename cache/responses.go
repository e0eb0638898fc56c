package cache

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"staple/certs"
)

// PutResponse stores r as the response of key, unless the stored one is newer (ErrOlder; ocspwire.Stamp orders them): a
// cache never goes back in time.
func (s *Store) PutResponse(key certs.Key, r Response) error {
	if err := checkResponse(r); err != nil {
		return fmt.Errorf("%w (%s)", err, key)
	}
	k, v := EncodeKey(key), encodeResponse(r)
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketResponses)
		if old := b.Get(k); old != nil {
			if err := older(key, old, r); err != nil {
				return err
			}
		}
		return b.Put(k, v)
	})
}

// Response returns the stored response of key, or ErrNotFound.
func (s *Store) Response(key certs.Key) (Response, error) {
	var r Response
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketResponses).Get(EncodeKey(key))
		if v == nil {
			return fmt.Errorf("%w: no response for %s", ErrNotFound, key)
		}
		var err error
		r, err = DecodeResponse(v)
		return err
	})
	return r, err
}

// Responses calls fn for every stored response in key order. A record that does not decode is passed with a
// zero Response and an error wrapping ErrCorruptRecord or ErrNewerRecord, so that one bad record does not hide
// the rest. An error returned by fn stops the walk and is returned. fn runs inside a read transaction: it must
// not block on anything but memory, and must not write to the store.
func (s *Store) Responses(fn func(key certs.Key, r Response, err error) error) error {
	return walk(s, bucketResponses, "response for", DecodeResponse, fn)
}

// walk calls fn for every record of bucket in key order, decoded by decode; what names a record in errors.
func walk[T any](s *Store, bucket []byte, what string, decode func([]byte) (T, error), fn func(certs.Key, T, error) error) error {
	return s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var zero T
			key, err := DecodeKey(k)
			if err != nil {
				return fn(key, zero, err)
			}
			r, err := decode(v)
			if err != nil {
				return fn(key, zero, fmt.Errorf("%s %s: %w", what, key, err))
			}
			return fn(key, r, nil)
		})
	})
}

// DeleteResponse removes the response of key; removing an absent one is not an error.
func (s *Store) DeleteResponse(key certs.Key) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketResponses).Delete(EncodeKey(key)) })
}

// PutCert stores c as the watched certificate of key.
func (s *Store) PutCert(key certs.Key, c Cert) error {
	if err := checkCert(c); err != nil {
		return fmt.Errorf("%w (%s)", err, key)
	}
	k, v := EncodeKey(key), encodeCert(c)
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketCerts).Put(k, v) })
}

// Cert returns the watched certificate of key, or ErrNotFound.
func (s *Store) Cert(key certs.Key) (Cert, error) {
	var c Cert
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCerts).Get(EncodeKey(key))
		if v == nil {
			return fmt.Errorf("%w: no certificate %s", ErrNotFound, key)
		}
		var err error
		c, err = DecodeCert(v)
		return err
	})
	return c, err
}

// Certs calls fn for every watched certificate in key order, with the same contract as Responses.
func (s *Store) Certs(fn func(key certs.Key, c Cert, err error) error) error {
	return walk(s, bucketCerts, "certificate", DecodeCert, fn)
}

// DeleteCert stops remembering key as watched; its response and history stay. Removing an absent one is not an
// error.
func (s *Store) DeleteCert(key certs.Key) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketCerts).Delete(EncodeKey(key)) })
}

// AddAttempt appends a to the history of key, keeping the last MaxHistory attempts. Over-long text is cut.
func (s *Store) AddAttempt(key certs.Key, a Attempt) error {
	k := EncodeKey(key)
	return s.update(func(tx *bolt.Tx) error { return putAttempt(tx, k, a) })
}

// putAttempt appends a to the history under the disk key k.
func putAttempt(tx *bolt.Tx, k []byte, a Attempt) error {
	b := tx.Bucket(bucketHistory)
	var h []Attempt
	if old := b.Get(k); old != nil {
		// A history that does not decode is replaced: it is a diagnostic, not state to protect.
		h, _ = DecodeHistory(old)
	}
	return b.Put(k, encodeHistory(appendAttempt(h, a)))
}

// History returns the fetch attempts of key, oldest first; none is not an error.
func (s *Store) History(key certs.Key) ([]Attempt, error) {
	var h []Attempt
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketHistory).Get(EncodeKey(key))
		if v == nil {
			return nil
		}
		var err error
		h, err = DecodeHistory(v)
		return err
	})
	return h, err
}

// Histories calls fn for every stored history (oldest attempt first) in key order, with the same contract as
// Responses.
func (s *Store) Histories(fn func(key certs.Key, h []Attempt, err error) error) error {
	return walk(s, bucketHistory, "history of", DecodeHistory, fn)
}

// Remove forgets key entirely: its certificate, response and history.
func (s *Store) Remove(key certs.Key) error {
	k := EncodeKey(key)
	return s.update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketCerts, bucketResponses, bucketHistory} {
			if err := tx.Bucket(name).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
