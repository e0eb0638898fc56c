package cache

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"staple/certs"
)

// Entry is one certificate's records for PutEntries: its certificate, its response, or both.
type Entry struct {
	Key      certs.Key
	Cert     *Cert
	Response *Response
}

// bulkTxSize is how many entries PutEntries writes per transaction: large enough that the commit (an fsync)
// is paid rarely, small enough that a transaction's dirty pages stay a few megabytes.
const bulkTxSize = 5000

// PutEntries stores many certificates and responses in few transactions, one commit per bulkTxSize entries
// instead of one per record: for importing a cache and for filling one in benchmarks. As with PutResponse, a
// response older than the stored one (by ocspwire.Stamp) is kept out (the stored one stays); that is not an
// error. On failure the entries of the transactions already committed stay stored.
func (s *Store) PutEntries(es []Entry) error {
	for _, e := range es {
		if e.Cert != nil {
			if err := checkCert(*e.Cert); err != nil {
				return fmt.Errorf("%w (%s)", err, e.Key)
			}
		}
		if e.Response != nil {
			if err := checkResponse(*e.Response); err != nil {
				return fmt.Errorf("%w (%s)", err, e.Key)
			}
		}
	}
	for start := 0; start < len(es); start += bulkTxSize {
		chunk := es[start:min(start+bulkTxSize, len(es))]
		err := s.update(func(tx *bolt.Tx) error {
			certsB, resps := tx.Bucket(bucketCerts), tx.Bucket(bucketResponses)
			for _, e := range chunk {
				k := EncodeKey(e.Key)
				if e.Cert != nil {
					if err := certsB.Put(k, encodeCert(*e.Cert)); err != nil {
						return err
					}
				}
				if e.Response == nil {
					continue
				}
				if old := resps.Get(k); old != nil && older(e.Key, old, *e.Response) != nil {
					continue
				}
				if err := resps.Put(k, encodeResponse(*e.Response)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("cache: storing entries %d to %d of %d: %w", start+1, start+len(chunk), len(es), err)
		}
	}
	return nil
}

// RemoveAll forgets many certificates, their responses and their histories in few transactions (one per
// bulkTxSize keys), as Remove does one.
func (s *Store) RemoveAll(keys []certs.Key) error {
	for start := 0; start < len(keys); start += bulkTxSize {
		chunk := keys[start:min(start+bulkTxSize, len(keys))]
		err := s.update(func(tx *bolt.Tx) error {
			for _, key := range chunk {
				k := EncodeKey(key)
				for _, name := range [][]byte{bucketCerts, bucketResponses, bucketHistory} {
					if err := tx.Bucket(name).Delete(k); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("cache: removing entries %d to %d of %d: %w", start+1, start+len(chunk), len(keys), err)
		}
	}
	return nil
}

// PutFetched stores what one fetch produced, the response and the attempt for the history, in one transaction
// (one commit, one fsync, where PutResponse and AddAttempt take two). As with PutResponse, a response older
// than the stored one (by ocspwire.Stamp) is kept out and the error wraps ErrOlder; the attempt is stored all
// the same. Concurrent calls are committed together (bbolt's Batch: a write waits up to 10 ms for others to
// join its transaction), so a sweep pays one commit per group of responses rather than one per response;
// PutFetched returns once its write is committed.
func (s *Store) PutFetched(key certs.Key, r Response, a Attempt) error {
	if err := checkResponse(r); err != nil {
		return fmt.Errorf("%w (%s)", err, key)
	}
	k, v := EncodeKey(key), encodeResponse(r)
	var refused error
	err := s.batch(func(tx *bolt.Tx) error {
		refused = nil
		b := tx.Bucket(bucketResponses)
		if old := b.Get(k); old != nil {
			refused = older(key, old, r)
		}
		if refused == nil {
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return putAttempt(tx, k, a)
	})
	if err != nil {
		return err
	}
	return refused
}
