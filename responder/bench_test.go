package responder_test

import (
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"staple/ocspfetch"
)

// getURLFor is the RFC 5019 GET URL for leaf at the lab's responder.
func getURLFor(t testing.TB, lr *labResponder, leaf *x509.Certificate) string {
	t.Helper()
	req, err := ocspfetch.NewRequest(leaf, lr.lab.CA, ocspfetch.RequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ocspfetch.GetURL(lr.url, req.DER)
}

// BenchmarkGET measures the handler alone answering RFC 5019 GETs for a pre-signed serial: parsing the
// request, stat'ing index.txt, the cache lookup and the headers.
func BenchmarkGET(b *testing.B) {
	lr := startLab(b, "bench.test")
	target := getURLFor(b, lr, lr.leaves["bench.test"].Cert)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			lr.rs.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
			if rec.Code != http.StatusOK {
				b.Errorf("HTTP %d", rec.Code)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkGETLoopback measures whole HTTP exchanges over loopback TCP with keep-alive, as a cache or a
// fleet of staplers would send them, from 16 concurrent clients.
func BenchmarkGETLoopback(b *testing.B) {
	benchLoopback(b, false)
}

// BenchmarkGETLoopbackNewConn is BenchmarkGETLoopback with a new connection for every request, the way
// openssl ocsp (HTTP/1.0, one request per connection) must be driven.
func BenchmarkGETLoopbackNewConn(b *testing.B) {
	benchLoopback(b, true)
}

func benchLoopback(b *testing.B, newConn bool) {
	lr := startLab(b, "bench.test")
	target := getURLFor(b, lr, lr.leaves["bench.test"].Cert)
	client := loadClient(newConn)
	defer client.CloseIdleConnections()
	b.SetParallelism(8) // × GOMAXPROCS goroutines
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := getOnce(client, target); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func loadClient(newConn bool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives:   newConn,
		MaxIdleConnsPerHost: 64,
	}}
}

func getOnce(c *http.Client, target string) error {
	resp, err := c.Get(target)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = &ocspfetch.HTTPError{URL: target, StatusCode: resp.StatusCode}
	}
	return err
}
