package fleet

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/cache"
	"staple/certs"
	"staple/stapler"
)

// Store keeps the stapler's state at rest in etcd: watched certificates, the newest response of each and
// their fetch history, in the cache package's record encoding. It is the fleet's stapler.Storage. Every
// method makes its calls with Config.RequestTimeout and fails fast with ErrUnavailable while the connection
// is failing. It is safe for concurrent use.
type Store struct {
	cli     *clientv3.Client
	keys    keyspace
	timeout time.Duration
	ctx     context.Context
	desc    string
}

var _ stapler.Storage = (*Store)(nil)

// pageSize is how many records one range request of a walk returns; keysPageSize how many keys one of a
// keys-only scan does.
const (
	pageSize     = 256
	keysPageSize = 2048
)

// maxCASRetries bounds the read-modify-write loops (history) under contention.
const maxCASRetries = 8

// NewStore returns the store of the fleet cfg describes, through cli.
func NewStore(cli *clientv3.Client, cfg Config) *Store {
	return &Store{cli: cli, keys: keyspace{cfg.prefix()}, timeout: cfg.requestTimeout(), ctx: context.Background(),
		desc: fmt.Sprintf("etcd %v %s", cfg.Endpoints, cfg.prefix())}
}

// Path describes the store for humans: the endpoints and the prefix.
func (s *Store) Path() string { return s.desc }

// ReadOnly reports false: the fleet's store is always written through etcd.
func (s *Store) ReadOnly() bool { return false }

// PutResponse stores r as the response of key only if the stored one is older (by ocspwire.Stamp: thisUpdate,
// then status), compared in the write's transaction: a response whose stamp equals the stored one is not
// written again (nil), and
// one older than the stored one is refused with ErrStale (which wraps cache.ErrOlder). The same transaction
// requires the certificate of key to be stored, else ErrNoCert: a fetch that ends after a node or an operator
// removed the certificate leaves no response behind for the other nodes to take up.
func (s *Store) PutResponse(key certs.Key, r cache.Response) error {
	rec, err := cache.EncodeResponse(r)
	if err != nil {
		return fmt.Errorf("fleet: %s: %w", key, err)
	}
	stamp := r.Stamp().Key()
	ck, rk, tk := s.keys.cert(key), s.keys.response(key), s.keys.thisUpdate(key)
	put := []clientv3.Op{clientv3.OpPut(rk, string(rec)), clientv3.OpPut(tk, stamp)}
	resp, err := call(s.ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		// The outer comparison requires the certificate; the middle one catches a first write (a missing key
		// compares false on its value); the inner one writes only over an older stamp, and otherwise
		// reads the stored one to tell why not.
		return s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(ck), ">", 0)).
			Then(clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(tk), "=", 0)},
				put,
				[]clientv3.Op{clientv3.OpTxn(
					[]clientv3.Cmp{clientv3.Compare(clientv3.Value(tk), "<", stamp)},
					put,
					[]clientv3.Op{clientv3.OpGet(tk)},
				)},
			)).Commit()
	})
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: %s: response not written", ErrNoCert, key)
	}
	first := resp.Responses[0].GetResponseTxn()
	if first.Succeeded {
		return nil
	}
	inner := first.Responses[0].GetResponseTxn()
	if inner.Succeeded {
		return nil
	}
	kvs := inner.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && string(kvs[0].Value) == stamp {
		return nil // the same answer is stored
	}
	stored := "?"
	if len(kvs) == 1 {
		stored = string(kvs[0].Value)
	}
	return fmt.Errorf("%w: %s: stored %s, offered %s", ErrStale, key, stored, stamp)
}

// Response returns the stored response of key, or an error wrapping cache.ErrNotFound.
func (s *Store) Response(key certs.Key) (cache.Response, error) {
	v, err := s.get(s.keys.response(key))
	if err != nil {
		return cache.Response{}, err
	}
	if v == nil {
		return cache.Response{}, fmt.Errorf("%w: no response for %s", cache.ErrNotFound, key)
	}
	return cache.DecodeResponse(v)
}

// Responses calls fn for every stored response in key order, with cache.Store.Responses' contract: a record
// that does not decode comes with an error, and an error from fn stops the walk. The walk reads one
// consistent revision, page by page, and fn runs between requests, never inside one.
func (s *Store) Responses(fn func(key certs.Key, r cache.Response, err error) error) error {
	_, err := s.walk(dirResponses, func(key certs.Key, v []byte, err error) error {
		if err != nil {
			return fn(key, cache.Response{}, err)
		}
		r, err := cache.DecodeResponse(v)
		if err != nil {
			err = fmt.Errorf("response for %s: %w", key, err)
		}
		return fn(key, r, err)
	})
	return err
}

// PutCert stores c as the watched certificate of key.
func (s *Store) PutCert(key certs.Key, c cache.Cert) error {
	rec, err := cache.EncodeCert(c)
	if err != nil {
		return fmt.Errorf("fleet: %s: %w", key, err)
	}
	_, err = call(s.ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.PutResponse, error) {
		return s.cli.Put(ctx, s.keys.cert(key), string(rec))
	})
	return err
}

// Cert returns the watched certificate of key, or an error wrapping cache.ErrNotFound.
func (s *Store) Cert(key certs.Key) (cache.Cert, error) {
	v, err := s.get(s.keys.cert(key))
	if err != nil {
		return cache.Cert{}, err
	}
	if v == nil {
		return cache.Cert{}, fmt.Errorf("%w: no certificate %s", cache.ErrNotFound, key)
	}
	return cache.DecodeCert(v)
}

// Certs calls fn for every watched certificate in key order, with the contract of Responses.
func (s *Store) Certs(fn func(key certs.Key, c cache.Cert, err error) error) error {
	_, err := s.walk(dirCerts, func(key certs.Key, v []byte, err error) error {
		if err != nil {
			return fn(key, cache.Cert{}, err)
		}
		c, err := cache.DecodeCert(v)
		if err != nil {
			err = fmt.Errorf("certificate %s: %w", key, err)
		}
		return fn(key, c, err)
	})
	return err
}

// AddAttempt appends a to the history of key, keeping the last cache.MaxHistory attempts, if the certificate
// of key is stored (else ErrNoCert, as PutResponse). Concurrent writers are serialized by comparing the
// history's revision: a lost race returns the history as it now is in the same round trip, and the next try
// waits a random moment so that two writers in step fall out of it. After maxCASRetries lost races it gives
// up with ErrConflict (the history is a diagnostic).
func (s *Store) AddAttempt(key certs.Key, a cache.Attempt) error {
	ck, hk := s.keys.cert(key), s.keys.history(key)
	got, err := call(s.ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.GetResponse, error) {
		return s.cli.Get(ctx, hk)
	})
	if err != nil {
		return err
	}
	kvs := got.Kvs
	for try := range maxCASRetries {
		var old []byte
		var rev int64
		if len(kvs) == 1 {
			old, rev = kvs[0].Value, kvs[0].ModRevision
		}
		rec := cache.AppendAttempt(old, a)
		resp, err := call(s.ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.TxnResponse, error) {
			return s.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(hk), "=", rev), clientv3.Compare(clientv3.CreateRevision(ck), ">", 0)).
				Then(clientv3.OpPut(hk, string(rec))).
				Else(clientv3.OpGet(hk), clientv3.OpGet(ck, clientv3.WithCountOnly())).Commit()
		})
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
		if resp.Responses[1].GetResponseRange().Count == 0 {
			return fmt.Errorf("%w: %s: fetch attempt not recorded", ErrNoCert, key)
		}
		kvs = resp.Responses[0].GetResponseRange().Kvs
		time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond) << try)))
	}
	return fmt.Errorf("%w: history of %s", ErrConflict, key)
}

// History returns the fetch attempts of key, oldest first; none is not an error.
func (s *Store) History(key certs.Key) ([]cache.Attempt, error) {
	v, err := s.get(s.keys.history(key))
	if err != nil || v == nil {
		return nil, err
	}
	return cache.DecodeHistory(v)
}

// Remove forgets key entirely, in one transaction: its certificate, response and history.
func (s *Store) Remove(key certs.Key) error {
	_, err := call(s.ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).Then(s.removeOps(key)...).Commit()
	})
	return err
}

// ServedBy returns the names of the nodes that claim the certificate of key (Claims): those that serve it
// now, sorted; none is not an error.
func (s *Store) ServedBy(key certs.Key) ([]string, error) {
	resp, err := call(s.ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.GetResponse, error) {
		return s.cli.Get(ctx, s.keys.claims(key), clientv3.WithPrefix())
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		names = append(names, string(kv.Value))
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// RemoveUnclaimed is Remove if no node claims the certificate of key (Claims), compared in the same
// transaction; it reports whether it removed it.
func (s *Store) RemoveUnclaimed(key certs.Key) (bool, error) {
	resp, err := call(s.ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(s.keys.claims(key)), "=", 0).WithPrefix()).
			Then(s.removeOps(key)...).Commit()
	})
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

func (s *Store) removeOps(key certs.Key) []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpDelete(s.keys.cert(key)), clientv3.OpDelete(s.keys.response(key)),
		clientv3.OpDelete(s.keys.thisUpdate(key)), clientv3.OpDelete(s.keys.history(key)),
	}
}

func (s *Store) get(key string) ([]byte, error) {
	resp, err := call(s.ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.GetResponse, error) {
		return s.cli.Get(ctx, key)
	})
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

// walk calls fn for every key under dir in order, page by page at the revision of the first page, and
// returns that revision (a watch from the next one misses nothing). fn runs between requests.
func (s *Store) walk(dir string, fn func(key certs.Key, v []byte, err error) error) (int64, error) {
	return s.scan(s.keys.dir(dir), false, func(kv *mvccpb.KeyValue) error {
		key, err := s.keys.parse(dir, string(kv.Key))
		return fn(key, kv.Value, err)
	})
}

// scan calls fn for every key-value under prefix in order (keys only: values left empty), page by page at
// the revision of the first page, which it returns. fn runs between requests.
func (s *Store) scan(prefix string, keysOnly bool, fn func(kv *mvccpb.KeyValue) error) (int64, error) {
	start, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(pageSize)}
		if keysOnly {
			opts = []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(keysPageSize), clientv3.WithKeysOnly()}
		}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := call(s.ctx, s.cli, s.timeout, func(ctx context.Context) (*clientv3.GetResponse, error) {
			return s.cli.Get(ctx, start, opts...)
		})
		if err != nil {
			return 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv); err != nil {
				return rev, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		last := resp.Kvs[len(resp.Kvs)-1].Key
		start = string(append(bytes.Clone(last), 0))
	}
}
