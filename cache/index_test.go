package cache

import (
	"maps"
	"sync"
	"testing"

	"staple/certs"
)

func TestIndex(t *testing.T) {
	ix := NewIndex()
	k1, k2 := testKey("ca", 1), testKey("ca", 2)
	if ix.Get(k1) != nil || ix.Len() != 0 {
		t.Fatal("a new index is not empty")
	}
	s1 := &Staple{Raw: []byte{1}, Expires: t0}
	ix.Put(k1, s1)
	if ix.Get(k1) != s1 || ix.Get(k2) != nil {
		t.Error("Get after Put")
	}
	s1b := &Staple{Raw: []byte{2}, Expires: t0}
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
	ix := NewIndex()
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
	ix := NewIndex()
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
