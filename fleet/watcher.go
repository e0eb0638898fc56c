package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"

	"staple/cache"
	"staple/certs"
	"staple/stapler"
)

// Target is what a Watcher feeds; *stapler.Stapler is the real one.
type Target interface {
	// Offer takes a response another node stored; Adopt a certificate another node watches.
	Offer(key certs.Key, r cache.Response) error
	Adopt(key certs.Key, c cache.Cert) error
	// Flush writes back, at once, the responses whose writes failed while etcd was away.
	Flush()
	// Withdraw takes a certificate removed from the store: forgotten unless this node watches it, in which
	// case it is written back (kept).
	Withdraw(key certs.Key) (kept bool, err error)
	// Entries lists what the target knows, so that a full read can withdraw what was removed unseen.
	Entries() []stapler.Info
}

var _ Target = (*stapler.Stapler)(nil)

// Watcher follows the fleet's certificates and responses and hands each new one to the Target, so that
// every node staples what the leader fetched as soon as it lands. It reads everything stored, then watches
// from the revision it read at; when the watch fails (etcd compacted past it, or the stream broke) it reads
// and watches again. Each time etcd becomes reachable again it calls Target.Flush, so that what a node
// fetched for itself while etcd was away is written back (the newer-only write decides). A certificate
// removed from the store (a node stopped serving it, or staple cache rm) is withdrawn from every node: those
// that serve it write it back, so that it stays in the store while any node serves it, and the others forget
// it. A removed response is no news: a node keeps stapling the valid one it holds.
//
// A Watcher is safe for concurrent use; Run it once.
type Watcher struct {
	// Near, when set, is the node's near cache (NearStore.Near): what the target takes from the fleet's store
	// is copied into it, and what the target forgets is removed from it, so that a restart, even while etcd
	// is away, staples what the node stapled. Set it before Run.
	Near *cache.Store

	store  *Store
	target Target
	log    zerolog.Logger

	offered, adopted, withdrawn, resyncs atomic.Uint64
}

// NewWatcher returns a watcher of the fleet cfg describes, through cli, feeding target.
func NewWatcher(cli *clientv3.Client, cfg Config, target Target) *Watcher {
	return &Watcher{store: NewStore(cli, cfg), target: target,
		log: cfg.Logger.With().Str("component", "fleet").Logger()}
}

// WatcherStats counts what a Watcher did.
type WatcherStats struct {
	// Offered and Adopted count responses and certificates handed to the Target and accepted by it;
	// Withdrawn counts certificates removed from the store that the Target forgot.
	Offered, Adopted, Withdrawn uint64
	// Resyncs counts full reads of the store: one at start, one after each failed watch.
	Resyncs uint64
}

// Stats returns the watcher's counters.
func (w *Watcher) Stats() WatcherStats {
	return WatcherStats{Offered: w.offered.Load(), Adopted: w.adopted.Load(), Withdrawn: w.withdrawn.Load(),
		Resyncs: w.resyncs.Load()}
}

// Run follows the store until ctx ends, and returns nil then.
func (w *Watcher) Run(ctx context.Context) error {
	go w.flushOnReconnect(ctx)
	rerun(ctx, 5*time.Second, 10*time.Second, w.follow, func(err error) {
		w.log.Warn().Err(err).Msg("fleet watch ended; reading the store again")
	})
	return nil
}

// follow reads the certificates and responses stored, then watches both from the revisions read, until the
// watch fails or ctx ends. What the target knows and the store no longer holds was removed while this node
// did not watch (before it started, or while its watch was broken), or its write failed: it is withdrawn,
// which forgets it, or writes it back when this node serves it.
func (w *Watcher) follow(ctx context.Context) error {
	w.resyncs.Add(1)
	stored := map[certs.Key]bool{}
	certsRev, err := w.store.walk(dirCerts, func(key certs.Key, v []byte, err error) error {
		if err == nil {
			stored[key] = true
		}
		w.adopt(key, v, err)
		return nil
	})
	if err != nil {
		return err
	}
	for _, in := range w.target.Entries() {
		if !stored[in.Key] {
			w.withdraw(in.Key) // forgotten, or written back if this node serves it
		}
	}
	respRev, err := w.store.walk(dirResponses, func(key certs.Key, v []byte, err error) error {
		w.offer(key, v, err)
		return nil
	})
	if err != nil {
		return err
	}
	w.target.Flush()

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	keys, cli := w.store.keys, w.store.cli
	wc := cli.Watch(wctx, keys.dir(dirCerts), clientv3.WithPrefix(), clientv3.WithRev(certsRev+1))
	wr := cli.Watch(wctx, keys.dir(dirResponses), clientv3.WithPrefix(), clientv3.WithRev(respRev+1))
	for {
		var resp clientv3.WatchResponse
		var ok bool
		var dir string
		select {
		case resp, ok = <-wc:
			dir = dirCerts
		case resp, ok = <-wr:
			dir = dirResponses
		case <-ctx.Done():
			return nil
		}
		if !ok {
			return errors.New("fleet: watch channel closed")
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("fleet: watch: %w", err)
		}
		for _, ev := range resp.Events {
			key, err := keys.parse(dir, string(ev.Kv.Key))
			switch {
			case ev.Type == mvccpb.DELETE && dir == dirCerts && err == nil:
				w.withdraw(key)
			case ev.Type != mvccpb.PUT:
			case dir == dirCerts:
				w.adopt(key, ev.Kv.Value, err)
			default:
				w.offer(key, ev.Kv.Value, err)
			}
		}
	}
}

func (w *Watcher) offer(key certs.Key, v []byte, err error) {
	var r cache.Response
	if err == nil {
		r, err = cache.DecodeResponse(v)
	}
	if err == nil {
		err = w.target.Offer(key, r)
		if err == nil {
			w.offered.Add(1)
			w.keepNear(key, func() error { return w.Near.PutResponse(key, r) })
			return
		}
		// An older or expired response is no news: the node holds better, or it is of no use.
		w.log.Debug().Err(err).Str("key", key.String()).Msg("fleet response not taken")
		return
	}
	w.log.Error().Err(err).Str("key", key.String()).Msg("fleet response record skipped")
}

func (w *Watcher) adopt(key certs.Key, v []byte, err error) {
	var c cache.Cert
	if err == nil {
		c, err = cache.DecodeCert(v)
	}
	if err == nil {
		err = w.target.Adopt(key, c)
	}
	if err != nil {
		w.log.Error().Err(err).Str("key", key.String()).Msg("fleet certificate record skipped")
		return
	}
	w.adopted.Add(1)
	w.keepNear(key, func() error {
		if _, err := w.Near.Cert(key); !errors.Is(err, cache.ErrNotFound) {
			return err // held already (or unreadable: the next write tells)
		}
		return w.Near.PutCert(key, c)
	})
}

// keepNear applies write to the near cache, when there is one.
func (w *Watcher) keepNear(key certs.Key, write func() error) {
	if w.Near == nil {
		return
	}
	if err := write(); err != nil && !errors.Is(err, cache.ErrOlder) {
		w.log.Warn().Err(err).Str("key", key.String()).Msg("near cache not written")
	}
}

func (w *Watcher) withdraw(key certs.Key) {
	kept, err := w.target.Withdraw(key)
	switch {
	case errors.Is(err, stapler.ErrNotWatched), errors.Is(err, stapler.ErrClosed):
		// Not known here: this node's own removal coming back, or one it never heard of.
	case err != nil:
		w.log.Error().Err(err).Str("key", key.String()).Msg("certificate removed from the fleet's store and served here: not written back")
	case kept:
		w.log.Info().Str("key", key.String()).Msg("certificate removed from the fleet's store and served here: written back")
	default:
		w.withdrawn.Add(1)
		w.keepNear(key, func() error { return w.Near.Remove(key) })
		w.log.Info().Str("key", key.String()).Msg("certificate removed from the fleet's store: forgotten")
	}
}

// flushOnReconnect calls Target.Flush each time the client's connection becomes ready after failing.
func (w *Watcher) flushOnReconnect(ctx context.Context) {
	conn := w.store.cli.ActiveConnection()
	if conn == nil {
		return
	}
	failed := false
	for state := conn.GetState(); ; state = conn.GetState() {
		switch state {
		case connectivity.TransientFailure:
			failed = true
		case connectivity.Ready:
			if failed {
				failed = false
				w.log.Info().Msg("etcd reachable again; writing back")
				w.target.Flush()
			}
		}
		if !conn.WaitForStateChange(ctx, state) {
			return
		}
	}
}
