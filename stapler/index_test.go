package stapler

import (
	"maps"
	"math/big"
	"sync"
	"testing"
	"time"

	"staple/certs"
)

// indexExpiry is a fixed expiry for the index's staples, which the index itself never reads.
var indexExpiry = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testKey(issuer string, serial int64) certs.Key {
	return certs.KeyFor([]byte("spki of "+issuer), big.NewInt(serial))
}

func TestIndex(t *testing.T) {
	ix := newIndex()
	k1, k2 := testKey("ca", 1), testKey("ca", 2)
	if ix.Get(k1) != nil || ix.Len() != 0 {
		t.Fatal("a new index is not empty")
	}
	s1 := &Staple{Raw: []byte{1}, Expires: indexExpiry}
	ix.Put(k1, s1)
	if ix.Get(k1) != s1 || ix.Get(k2) != nil {
		t.Error("Get after Put")
	}
	s1b := &Staple{Raw: []byte{2}, Expires: indexExpiry}
	ix.Put(k1, s1b)
	if ix.Get(k1) != s1b || ix.Len() != 1 {
		t.Error("Put did not replace")
	}
	ix.Delete(k1)
	if ix.Get(k1) != nil || ix.Len() != 0 {
		t.Error("Delete did not remove")
	}

	bulk := map[certs.Key]*Staple{}
	for i := range 1000 {
		bulk[testKey("bulk", int64(i))] = &Staple{Raw: []byte{byte(i)}}
	}
	ix.Put(k2, s1)
	ix.PutAll(maps.All(bulk))
	if ix.Len() != 1001 {
		t.Errorf("Len after PutAll = %d, want 1001", ix.Len())
	}
	for k, v := range bulk {
		if ix.Get(k) != v {
			t.Fatalf("PutAll lost %v", k)
		}
	}
	if ix.Get(k2) != s1 {
		t.Error("PutAll dropped an existing key")
	}
	ix.PutAll(func(yield func(certs.Key, *Staple) bool) { yield(k2, nil) })
	if ix.Get(k2) != nil {
		t.Error("PutAll with a nil staple did not remove")
	}
	n := 0
	for range ix.All() {
		n++
	}
	if n != 1000 {
		t.Errorf("All yielded %d, want 1000", n)
	}
}

func TestIndexGetAllocatesNothing(t *testing.T) {
	ix := newIndex()
	key := testKey("ca", 42)
	ix.Put(key, &Staple{Raw: []byte{1}})
	miss := testKey("ca", 43)
	allocs := testing.AllocsPerRun(1000, func() {
		if ix.Get(key) == nil || ix.Get(miss) != nil {
			panic("lookup")
		}
	})
	if allocs != 0 {
		t.Errorf("Get allocates %.1f times per call, want 0", allocs)
	}
}

// TestIndexConcurrent runs readers against writers; with -race it checks that publication is safe.
func TestIndexConcurrent(t *testing.T) {
	ix := newIndex()
	keys := make([]certs.Key, 64)
	for i := range keys {
		keys[i] = testKey("ca", int64(i))
		ix.Put(keys[i], &Staple{Raw: []byte{0}})
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, k := range keys {
					if st := ix.Get(k); st == nil || len(st.Raw) != 1 {
						t.Error("a reader saw a missing or torn staple")
						return
					}
				}
			}
		})
	}
	for round := range 200 {
		for _, k := range keys {
			ix.Put(k, &Staple{Raw: []byte{byte(round)}})
		}
	}
	close(stop)
	wg.Wait()
}

// TestIndexRefreshCopiesNothing: a new staple for a known key is stored in place (no allocation, whatever
// the index's size); removed keys are dropped from their shard once they outnumber the rest, and a key
// removed then put again is found.
func TestIndexRefreshCopiesNothing(t *testing.T) {
	ix := newIndex()
	keys := make([]certs.Key, 10000)
	for i := range keys {
		keys[i] = testKey("many", int64(i))
		ix.Put(keys[i], &Staple{Raw: []byte{1}})
	}
	next := &Staple{Raw: []byte{2}}
	allocs := testing.AllocsPerRun(1000, func() { ix.Put(keys[7], next) })
	if allocs != 0 {
		t.Errorf("a refresh of a known key allocates %.1f times, want 0 (the shard was copied)", allocs)
	}
	if ix.Get(keys[7]) != next {
		t.Fatal("the refresh is not seen")
	}

	for _, k := range keys[:9000] {
		ix.Delete(k)
	}
	if n := ix.Len(); n != 1000 {
		t.Errorf("Len after removing 9,000 of 10,000 = %d", n)
	}
	slots := 0
	for i := range ix.shards {
		slots += len(ix.shards[i].Load().m)
	}
	if slots > 2*1000+indexShards*9 {
		t.Errorf("%d slots kept for 1,000 keys: removed keys are not dropped", slots)
	}
	for _, k := range keys[:9000] {
		if ix.Get(k) != nil {
			t.Fatalf("removed %v is found", k)
		}
	}
	for _, k := range keys[9000:] {
		if ix.Get(k) == nil {
			t.Fatalf("%v, never removed, is lost", k)
		}
	}
	again := &Staple{Raw: []byte{3}}
	ix.Put(keys[0], again)
	if ix.Get(keys[0]) != again || ix.Len() != 1001 {
		t.Error("a key removed and put again is not found")
	}
}

// BenchmarkIndexRefresh puts a new staple for a known key in an index of 100,000: what every refresh does.
func BenchmarkIndexRefresh(b *testing.B) {
	ix := newIndex()
	keys := make([]certs.Key, 100000)
	for i := range keys {
		keys[i] = testKey("bench", int64(i))
	}
	ix.PutAll(func(yield func(certs.Key, *Staple) bool) {
		for _, k := range keys {
			if !yield(k, &Staple{Raw: []byte{1}}) {
				return
			}
		}
	})
	st := &Staple{Raw: []byte{2}}
	i := 0
	for b.Loop() {
		ix.Put(keys[i%len(keys)], st)
		i += 7919
	}
}
