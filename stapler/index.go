package stapler

import (
	"hash/maphash"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"staple/certs"
	"staple/ocspwire"
)

// Staple is what the index holds for one certificate: the bytes to staple and the instant they stop being
// stapleable. A Staple is immutable once published; writers publish a new one.
type Staple struct {
	// Raw is the DER OCSPResponse. Callers must not modify it.
	Raw []byte
	// Expires is the instant from which Raw must not be stapled.
	Expires time.Time
	Status  ocspwire.Status
	// ThisUpdate orders staples: a writer never replaces a staple by one with an earlier ThisUpdate.
	ThisUpdate time.Time
}

// indexShards splits the index so that a writer that adds or removes keys copies only 1/indexShards of it.
const indexShards = 64

// slot holds the staple of one key, nil while it has none: a refresh swaps the pointer in place, so the
// common write (a new response for a known certificate) copies nothing.
type slot = atomic.Pointer[Staple]

// shard is one immutable map of keys to their slots. dead counts the slots holding nil; it is read and
// written by writers only (under index.mu).
type shard struct {
	m    map[certs.Key]*slot
	dead int
}

// index is the in-memory map in front of the store, read on the TLS hot path. Get is lock-free and allocates
// nothing: it loads an immutable map through an atomic pointer, then the key's slot. A writer that changes
// a known key's staple stores into its slot; one that adds a key copies the one shard it changes and swaps
// it in (copy-on-write). Removing a key empties its slot, and a shard whose empty slots outnumber its full
// ones is copied without them. Writers are serialized by a mutex. The zero index is not usable; newIndex
// makes one. It is safe for concurrent use.
type index struct {
	seed   maphash.Seed
	shards [indexShards]atomic.Pointer[shard]
	mu     sync.Mutex // serializes writers
}

// newIndex returns an empty index.
func newIndex() *index {
	ix := &index{seed: maphash.MakeSeed()}
	for i := range ix.shards {
		ix.shards[i].Store(&shard{m: map[certs.Key]*slot{}})
	}
	return ix
}

func (ix *index) shardOf(key certs.Key) *atomic.Pointer[shard] {
	return &ix.shards[maphash.Comparable(ix.seed, key)%indexShards]
}

// Get returns the staple of key, or nil. It does not look at Expires: the caller decides with its own clock.
func (ix *index) Get(key certs.Key) *Staple {
	if s := ix.shardOf(key).Load().m[key]; s != nil {
		return s.Load()
	}
	return nil
}

// Put publishes st as the staple of key; a nil st removes key.
func (ix *index) Put(key certs.Key, st *Staple) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	p := ix.shardOf(key)
	sh := p.Load()
	if s := sh.m[key]; s != nil {
		was := s.Load()
		s.Store(st)
		switch {
		case was != nil && st == nil:
			sh.dead++
			if sh.dead > 8 && 2*sh.dead > len(sh.m) {
				p.Store(sh.copy(len(sh.m) - sh.dead))
			}
		case was == nil && st != nil:
			sh.dead--
		}
		return
	}
	if st == nil {
		return
	}
	next := sh.copy(len(sh.m) - sh.dead + 1)
	s := new(slot)
	s.Store(st)
	next.m[key] = s
	p.Store(next)
}

// copy returns a new shard with sh's full slots (the same slots: a writer's store into one is seen through
// either map), sized for n.
func (sh *shard) copy(n int) *shard {
	next := &shard{m: make(map[certs.Key]*slot, n)}
	for k, s := range sh.m {
		if s.Load() != nil {
			next.m[k] = s
		}
	}
	return next
}

// Delete removes key.
func (ix *index) Delete(key certs.Key) { ix.Put(key, nil) }

// PutAll publishes every staple of seq at once, copying each shard it touches once: the warm start of a large
// cache costs one pass, not one copy per entry. The keys of seq get new slots in the new shards, so that
// readers see none of them change before all of them have. A nil staple removes its key.
func (ix *index) PutAll(seq iter.Seq2[certs.Key, *Staple]) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var next [indexShards]*shard
	for key, st := range seq {
		i := maphash.Comparable(ix.seed, key) % indexShards
		if next[i] == nil {
			sh := ix.shards[i].Load()
			next[i] = sh.copy(len(sh.m) - sh.dead)
		}
		if st == nil {
			delete(next[i].m, key)
			continue
		}
		s := new(slot)
		s.Store(st)
		next[i].m[key] = s
	}
	for i, sh := range next {
		if sh != nil {
			ix.shards[i].Store(sh)
		}
	}
}

// Len returns the number of keys with a staple.
func (ix *index) Len() int {
	n := 0
	for i := range ix.shards {
		for _, s := range ix.shards[i].Load().m {
			if s.Load() != nil {
				n++
			}
		}
	}
	return n
}

// All yields every key and its staple. It sees each shard as it was when it reached it, and each staple as
// it is when it reaches it.
func (ix *index) All() iter.Seq2[certs.Key, *Staple] {
	return func(yield func(certs.Key, *Staple) bool) {
		for i := range ix.shards {
			for k, s := range ix.shards[i].Load().m {
				if st := s.Load(); st != nil && !yield(k, st) {
					return
				}
			}
		}
	}
}
