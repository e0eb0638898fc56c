package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/cache"
	"staple/tlsserver"
)

// TicketKeys shares the TLS session ticket keys through etcd, so that a ticket issued by one node resumes
// on any other: it is every tlsserver.Server's TicketKeyStore, Watch puts the fleet's keys into use on each
// server (Server.UseTicketKeys) whenever they change, and the leader rotates them with RotateIfDue, the
// previous key kept for decryption. The keys are one record (the cache's ticket keys encoding) under
// Config.Prefix + "ticket_keys". They are secrets: nothing here logs them.
//
// It never stops a server: with etcd unreachable, LoadTicketKeys answers "none stored" (the server makes
// keys of its own) and SaveTicketKeys keeps those keys to offer the fleet later; tickets resume only on
// that node until Watch, once etcd answers, puts the fleet's keys into use. It is safe for concurrent use.
type TicketKeys struct {
	cli     *clientv3.Client
	key     string
	timeout time.Duration
	now     func() time.Time
	log     zerolog.Logger

	mu      sync.Mutex
	pending *cache.TicketKeys // keys a server made while etcd was away, offered when it answers
}

var _ tlsserver.TicketKeyStore = (*TicketKeys)(nil)

// NewTicketKeys returns the ticket key store of the fleet cfg describes, through cli.
func NewTicketKeys(cli *clientv3.Client, cfg Config) *TicketKeys {
	return &TicketKeys{cli: cli, key: keyspace{cfg.prefix()}.tickets(), timeout: cfg.requestTimeout(), now: cfg.now,
		log: cfg.Logger.With().Str("component", "fleet").Logger()}
}

// LoadTicketKeys returns the fleet's keys, or none (a zero TicketKeys) when none are stored or etcd cannot
// be reached. A record that does not decode is an error.
func (k *TicketKeys) LoadTicketKeys() (tlsserver.TicketKeys, error) {
	rec, _, _, err := k.get(context.Background())
	if err != nil {
		k.log.Warn().Err(err).Msg("fleet ticket keys unreachable; this node uses keys of its own until etcd answers")
		return tlsserver.TicketKeys{}, nil
	}
	if rec == nil {
		return tlsserver.TicketKeys{}, nil
	}
	return toServer(*rec), nil
}

// SaveTicketKeys offers a server's keys to the fleet: they are stored only if the fleet has none (in one
// transaction), so the first node's keys become everyone's. When the fleet has keys already, they win, and
// Watch puts them into use on this server. With etcd unreachable the keys are kept and offered when it
// answers (by Watch); the call succeeds, since the server uses them meanwhile.
func (k *TicketKeys) SaveTicketKeys(tk tlsserver.TicketKeys) error {
	rec := cache.TicketKeys{Current: bytes.Clone(tk.Current), Previous: bytes.Clone(tk.Previous), Rotated: tk.Created}
	if rec.Rotated.IsZero() {
		rec.Rotated = k.now()
	}
	if _, err := cache.EncodeTicketKeys(rec); err != nil {
		return fmt.Errorf("fleet: ticket keys: %w", err)
	}
	if _, _, err := k.create(context.Background(), rec); err != nil {
		k.mu.Lock()
		k.pending = &rec
		k.mu.Unlock()
		k.log.Warn().Err(err).Msg("fleet ticket keys not stored; offering them again when etcd answers")
	}
	return nil
}

// RotateIfDue makes a fresh current key and keeps the current one as the previous, when the stored keys
// were rotated at least every ago (or none are stored). The write compares the record's revision, so nodes
// that both believe they lead rotate once. It reports whether it rotated. The leader calls it, for example
// every minute with the rotation period, so that the period holds across changes of leader.
func (k *TicketKeys) RotateIfDue(ctx context.Context, every time.Duration) (bool, error) {
	old, mod, _, err := k.get(ctx)
	if err != nil {
		return false, err
	}
	now := k.now()
	if old != nil && now.Sub(old.Rotated) < every {
		return false, nil
	}
	cur := make([]byte, tlsserver.TicketKeyLen)
	if _, err := rand.Read(cur); err != nil {
		return false, fmt.Errorf("fleet: ticket keys: %w", err)
	}
	next := cache.TicketKeys{Current: cur, Rotated: now}
	if old != nil {
		next.Previous = old.Current
	}
	v, err := cache.EncodeTicketKeys(next)
	if err != nil {
		return false, fmt.Errorf("fleet: ticket keys: %w", err)
	}
	resp, err := call(ctx, k.cli, k.timeout, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return k.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k.key), "=", mod)).
			Then(clientv3.OpPut(k.key, string(v))).Commit()
	})
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// Watch calls use with the fleet's keys now and whenever they change, until ctx ends (it returns nil then).
// use is Server.UseTicketKeys; its errors are logged. When none are stored, keys a server offered while
// etcd was away are stored first. On a broken watch it reads and watches again.
func (k *TicketKeys) Watch(ctx context.Context, use func(tlsserver.TicketKeys) error) error {
	follow := func(ctx context.Context) error { return k.follow(ctx, use) }
	rerun(ctx, 5*time.Second, 0, follow, func(err error) {
		k.log.Warn().Err(err).Msg("fleet ticket keys watch ended; reading again")
	})
	return nil
}

func (k *TicketKeys) follow(ctx context.Context, use func(tlsserver.TicketKeys) error) error {
	rec, _, rev, err := k.get(ctx)
	if err != nil {
		return err
	}
	if rec == nil {
		k.mu.Lock()
		pending := k.pending
		k.mu.Unlock()
		if pending != nil {
			created, crev, err := k.create(ctx, *pending)
			switch {
			case err != nil:
				return err
			case created:
				rec, rev = pending, crev
			default: // another node's keys came first: they are the fleet's
				if rec, _, rev, err = k.get(ctx); err != nil {
					return err
				}
			}
		}
	}
	if rec != nil {
		k.use(use, *rec)
	}
	k.mu.Lock()
	k.pending = nil
	k.mu.Unlock()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range k.cli.Watch(wctx, k.key, clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("fleet: ticket keys watch: %w", err)
		}
		for _, ev := range resp.Events {
			if ev.Type != mvccpb.PUT {
				continue
			}
			r, err := cache.DecodeTicketKeys(ev.Kv.Value)
			if err != nil {
				k.log.Error().Err(err).Msg("fleet ticket keys record skipped")
				continue
			}
			k.use(use, r)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("fleet: ticket keys watch closed")
}

func (k *TicketKeys) use(use func(tlsserver.TicketKeys) error, r cache.TicketKeys) {
	if err := use(toServer(r)); err != nil {
		k.log.Error().Err(err).Msg("fleet ticket keys not put into use")
	}
}

// get returns the stored keys (nil when none), the record's modification revision (0 when none), for a
// compare-and-swap, and the revision read at, from which a watch misses nothing.
func (k *TicketKeys) get(ctx context.Context) (rec *cache.TicketKeys, mod, rev int64, err error) {
	resp, err := call(ctx, k.cli, k.timeout, func(ctx context.Context) (*clientv3.GetResponse, error) {
		return k.cli.Get(ctx, k.key)
	})
	if err != nil {
		return nil, 0, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, resp.Header.Revision, nil
	}
	r, err := cache.DecodeTicketKeys(resp.Kvs[0].Value)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("fleet: ticket keys: %w", err)
	}
	return &r, resp.Kvs[0].ModRevision, resp.Header.Revision, nil
}

// create stores rec if no keys are stored, and reports whether it did, with the revision of the
// transaction.
func (k *TicketKeys) create(ctx context.Context, rec cache.TicketKeys) (bool, int64, error) {
	v, err := cache.EncodeTicketKeys(rec)
	if err != nil {
		return false, 0, err
	}
	resp, err := call(ctx, k.cli, k.timeout, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return k.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k.key), "=", 0)).
			Then(clientv3.OpPut(k.key, string(v))).Commit()
	})
	if err != nil {
		return false, 0, err
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

func toServer(r cache.TicketKeys) tlsserver.TicketKeys {
	return tlsserver.TicketKeys{Current: r.Current, Previous: r.Previous, Created: r.Rotated}
}
