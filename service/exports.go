package service

import (
	"context"
	"sync"

	"github.com/rs/zerolog"

	"staple/certs"
)

// exports is the part that writes each new response where nginx and HAProxy read it ([[export]]): files
// written atomically, then the export's reload command. It works off the stapler's event path, through a
// queue.
type exports struct {
	queue *exportQueue
	// staple is the engine's current staple of a key; sites, the sites in force (whose exporters and
	// certificate files say where a key's response goes).
	staple func(certs.Key) []byte
	sites  func() *siteSet
	log    zerolog.Logger
}

func newExports(log zerolog.Logger) *exports {
	return &exports{queue: newExportQueue(log), log: log}
}

// changed queues the exports of key's newest staple.
func (x *exports) changed(key certs.Key) {
	if set := x.sites(); set == nil || len(set.exporters) == 0 {
		return
	}
	x.queue.add(key, x.write)
}

// write writes key's staple to every export that covers a site serving it, then lets each export's reload
// command run (coalesced).
func (x *exports) write(key certs.Key) {
	set := x.sites()
	der := x.staple(key)
	if der == nil {
		return // expired or unknown meanwhile: an old file is better than none for nginx, so it stays
	}
	written := map[string]bool{}
	for _, st := range set.byKey[key] {
		for _, e := range set.exporters {
			if !e.matches(st.cfg.Cert) || written[e.path(st.cfg.Cert, key)] {
				continue
			}
			path, err := e.export(context.Background(), st.cfg.Cert, key, der)
			written[path] = true
			if err != nil {
				x.log.Error().Err(err).Str("key", key.String()).Str("path", path).Msg("export not written")
				continue
			}
			x.log.Info().Str("key", key.String()).Str("path", path).Str("format", e.cfg.Format).Msg("exported OCSP response")
		}
	}
}

// close writes what is queued and waits for it, and for the reload commands under way, or for ctx.
func (x *exports) close(ctx context.Context) {
	x.queue.close(ctx)
	if x.sites == nil {
		return
	}
	if set := x.sites(); set != nil {
		for _, e := range set.exporters { // a reload under way finishes: the server reads the last export
			e.wait(ctx)
		}
	}
}

// exportQueue writes exports off the stapler's event path: a new response marks its key, and one worker
// writes the newest staple of each marked key, so a burst of updates to one certificate writes it once
// and never out of order.
type exportQueue struct {
	log     zerolog.Logger
	mu      sync.Mutex
	pending map[certs.Key]bool
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool
}

func newExportQueue(log zerolog.Logger) *exportQueue {
	return &exportQueue{log: log, pending: map[certs.Key]bool{}, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// add marks key; the worker, started on the first call, runs write for it.
func (q *exportQueue) add(key certs.Key, write func(certs.Key)) {
	q.mu.Lock()
	q.pending[key] = true
	if !q.started {
		q.started = true
		go q.run(write)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *exportQueue) run(write func(certs.Key)) {
	defer close(q.done)
	for {
		select {
		case <-q.wake:
		case <-q.stop:
			q.drain(write)
			return
		}
		q.drain(write)
	}
}

func (q *exportQueue) drain(write func(certs.Key)) {
	for {
		q.mu.Lock()
		var key certs.Key
		found := false
		for k := range q.pending {
			key, found = k, true
			delete(q.pending, k)
			break
		}
		q.mu.Unlock()
		if !found {
			return
		}
		write(key)
	}
}

// close writes what is pending and waits for the worker, or for ctx.
func (q *exportQueue) close(ctx context.Context) {
	q.mu.Lock()
	started := q.started
	q.mu.Unlock()
	if !started {
		return
	}
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	select {
	case <-q.done:
	case <-ctx.Done():
	}
}
