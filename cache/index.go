package cache

import (
	"hash/maphash"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"staple/certs"
	"staple/ocspfetch"
)

// Staple is what the index holds for one certificate: the bytes to staple and the instant they stop being
// stapleable. A Staple is immutable once published; writers publish a new one.
type Staple struct {
	// Raw is the DER OCSPResponse. Callers must not modify it.
	Raw []byte
	// Expires is the instant from which Raw must not be stapled.
	Expires time.Time
	Status  ocspfetch.Status
	// ThisUpdate orders staples: a writer never replaces a staple by one with an earlier ThisUpdate.
	ThisUpdate time.Time
}

// indexShards splits the index so that a writer copies only 1/indexShards of it.
const indexShards = 64

type shard = map[certs.Key]*Staple

// Index is the in-memory map in front of the store, read on the TLS hot path. Get is lock-free and allocates
// nothing: it loads an immutable map through an atomic pointer. Writers copy the one shard they change and
// swap it in (copy-on-write), serialized by a mutex. The zero Index is not usable; NewIndex makes one. Index is
// safe for concurrent use.
type Index struct {
	seed   maphash.Seed
	shards [indexShards]atomic.Pointer[shard]
	mu     sync.Mutex // serializes writers
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	ix := &Index{seed: maphash.MakeSeed()}
	for i := range ix.shards {
		ix.shards[i].Store(&shard{})
	}
	return ix
}

func (ix *Index) shardOf(key certs.Key) *atomic.Pointer[shard] {
	return &ix.shards[maphash.Comparable(ix.seed, key)%indexShards]
}

// Get returns the staple of key, or nil. It does not look at Expires: the caller decides with its own clock.
func (ix *Index) Get(key certs.Key) *Staple {
	return (*ix.shardOf(key).Load())[key]
}

// Put publishes st as the staple of key; a nil st removes key.
func (ix *Index) Put(key certs.Key, st *Staple) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	p := ix.shardOf(key)
	old := *p.Load()
	next := make(shard, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	if st == nil {
		delete(next, key)
	} else {
		next[key] = st
	}
	p.Store(&next)
}

// Delete removes key.
func (ix *Index) Delete(key certs.Key) { ix.Put(key, nil) }

// PutAll publishes every staple of seq at once, copying each shard it touches once: the warm start of a large
// cache costs one pass, not one copy per entry. A nil staple removes its key.
func (ix *Index) PutAll(seq iter.Seq2[certs.Key, *Staple]) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var next [indexShards]shard
	for key, st := range seq {
		i := maphash.Comparable(ix.seed, key) % indexShards
		if next[i] == nil {
			old := *ix.shards[i].Load()
			next[i] = make(shard, len(old))
			for k, v := range old {
				next[i][k] = v
			}
		}
		if st == nil {
			delete(next[i], key)
		} else {
			next[i][key] = st
		}
	}
	for i, m := range next {
		if m != nil {
			ix.shards[i].Store(&m)
		}
	}
}

// Len returns the number of keys.
func (ix *Index) Len() int {
	n := 0
	for i := range ix.shards {
		n += len(*ix.shards[i].Load())
	}
	return n
}

// All yields every key and staple. It sees each shard as it was when it reached it.
func (ix *Index) All() iter.Seq2[certs.Key, *Staple] {
	return func(yield func(certs.Key, *Staple) bool) {
		for i := range ix.shards {
			for k, v := range *ix.shards[i].Load() {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}
