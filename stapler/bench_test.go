package stapler

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"runtime"
	"testing"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// responseSize is the DER size of the benchmarks' responses: a delegated-signer RSA response is about this.
const responseSize = 1536

// fillStore writes n watched certificates with valid responses (refresh far away) and returns their keys.
func fillStore(b *testing.B, path string, n int) []certs.Key {
	b.Helper()
	st, err := cache.Open(path, cache.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	keys := make([]certs.Key, n)
	es := make([]cache.Entry, n)
	leaf, issuer := bytes.Repeat([]byte{0x30}, 900), bytes.Repeat([]byte{0x31}, 900)
	for i := range es {
		keys[i] = certs.KeyFor([]byte("benchmark issuer"), big.NewInt(int64(0x10000+i)))
		raw := bytes.Repeat([]byte{byte(i)}, responseSize)
		c := cache.Cert{Leaf: leaf, Issuer: issuer, URLs: []string{"http://ocsp.bench.test/"}, Added: now}
		r := cache.Response{Raw: raw, Status: ocspwire.Good, ProducedAt: now, ThisUpdate: now,
			NextUpdate: now.Add(96 * time.Hour), Expires: now.Add(96 * time.Hour), RefreshAt: now.Add(48 * time.Hour),
			Fetched: now, URL: "http://ocsp.bench.test/"}
		es[i] = cache.Entry{Key: keys[i], Cert: &c, Response: &r}
	}
	if err := st.PutEntries(es); err != nil {
		b.Fatal(err)
	}
	return keys
}

// idleFetcher is never asked: every response is fresh for days.
type idleFetcher struct{}

var errNoFetch = errors.New("benchmark: no fetch expected")

func (idleFetcher) Fetch(context.Context, *x509.Certificate, *x509.Certificate) (*ocspfetch.Response, error) {
	return nil, errNoFetch
}

// BenchmarkStaple measures the TLS hot path, Staple on a stapler holding 10,000 responses, against a plain
// Go map read of the same bytes as the baseline in the same run (target: under 100 ns and 0 allocations).
func BenchmarkStaple(b *testing.B) {
	const n = 10000
	path := tempStorePath(b)
	keys := fillStore(b, path, n)
	st := openStore(b, path)
	s, err := New(Config{Fetcher: idleFetcher{}, Storage: st}) // Now nil: the hot path's clock, as in service
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(context.Background()) })
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	plain := make(map[certs.Key][]byte, n)
	for _, k := range keys {
		if plain[k] = s.Staple(k); plain[k] == nil {
			b.Fatal("a stored response is not stapled")
		}
	}
	b.Run("Staple", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if s.Staple(keys[i%n]) == nil {
				b.Fatal("no staple")
			}
			i++
		}
	})
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if plain[keys[i%n]] == nil {
				b.Fatal("no staple")
			}
			i++
		}
	})
}

// BenchmarkWarmStart measures Start with 100,000 cached entries: from opening the bbolt file to the first
// stapled lookup (target under 1 s here), and the heap it takes per entry (target under 3 KiB with a
// 1.5 KiB response), reported as bytes/entry.
func BenchmarkWarmStart(b *testing.B) {
	n := 100000
	if testing.Short() {
		n = 10000
	}
	path := tempStorePath(b)
	keys := fillStore(b, path, n)
	var perEntry float64
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		st, err := cache.Open(path, cache.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(Config{Fetcher: idleFetcher{}, Storage: st})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Start(); err != nil {
			b.Fatal(err)
		}
		if s.Staple(keys[len(keys)/2]) == nil {
			b.Fatal("not stapled after the warm start")
		}
		b.StopTimer()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
		runtime.KeepAlive(s)
		s.Close(context.Background())
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(perEntry, "bytes/entry")
	b.ReportMetric(float64(n), "entries")
	b.Logf("%d entries, %.0f bytes of heap each (%d of them the response)", n, perEntry, responseSize)
}
