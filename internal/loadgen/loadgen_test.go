package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"staple/internal/testpki"
)

func TestRunCountsHandshakesAndStaples(t *testing.T) {
	root := testpki.NewRoot(t, "Root", testpki.ECDSAP256)
	// Real clients check validity against the real clock, not testpki's fixed epoch.
	now := time.Now()
	leaf := root.Issue(t, testpki.LeafOptions{DNSNames: []string{"a.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)})
	cert := leaf.TLSCertificate()
	cert.OCSPStaple = []byte{0x30, 0x03, 0x0a, 0x01, 0x00}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// The server keeps the connection until the client closes it, as a web server waiting for a
			// request does: a TLS 1.3 client must not wait for the close to get its ticket.
			go func() { c.(*tls.Conn).Handshake(); io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	for _, tt := range []struct {
		name    string
		version uint16
		resume  bool
	}{
		{"tls13 full", tls.VersionTLS13, false}, {"tls12 full", tls.VersionTLS12, false},
		{"tls12 resumed", tls.VersionTLS12, true}, {"tls13 resumed", tls.VersionTLS13, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := errors.New("bad")
			res, err := Run(context.Background(), Options{Addr: ln.Addr().String(), ServerName: "a.test", Version: tt.version,
				Workers: 2, Count: 20, Resume: tt.resume, RootCAs: root.Pool(), CurvePreferences: []tls.CurveID{tls.X25519},
				TicketWait: 5 * time.Second,
				Staple: func(der []byte, cs tls.ConnectionState) error {
					if len(der) == 0 {
						return bad
					}
					return nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Handshakes != 20 || res.Stapled != 20 || res.BadStaples != 0 || res.Errors != 0 {
				t.Errorf("result %+v", res)
			}
			if tt.resume && res.Resumed < 18 { // the first handshake of each worker is full
				t.Errorf("resumed %d of 20", res.Resumed)
			}
			if res.P99 >= 5*time.Second {
				t.Errorf("p99 %v: a handshake waited out TicketWait instead of ending at its ticket", res.P99)
			}
			if res.P50 <= 0 || res.P99 < res.P50 || res.Rate() <= 0 {
				t.Errorf("latencies %v %v rate %v", res.P50, res.P99, res.Rate())
			}
		})
	}
}

func TestRunCountsErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	res, err := Run(context.Background(), Options{Addr: addr, Count: 3, DialTimeout: time.Second})
	if err != nil || res.Errors != 3 || res.FirstError == nil || res.Handshakes != 0 {
		t.Errorf("result %+v, %v", res, err)
	}
	if _, err := Run(context.Background(), Options{}); err == nil {
		t.Error("no options: want an error")
	}
}

func TestProcessCPU(t *testing.T) {
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for x, deadline := 0, time.Now().Add(2*time.Second); time.Now().Before(deadline); x++ {
		if after, _ := ProcessCPU(os.Getpid()); after > before {
			return
		}
	}
	t.Error("CPU time did not advance while spinning for 2 s")
}

func TestParseStat(t *testing.T) {
	line := []byte("1234 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0")
	d, err := parseStat(line)
	if err != nil || d != 3*time.Second {
		t.Errorf("parseStat = %v, %v; want 3s", d, err)
	}
	for _, bad := range []string{"", "1 (x) S 1", "1 (x) S 1 2 3 4 5 6 7 8 9 10 a b"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): want an error", bad)
		}
	}
}

// A run that ends while its workers are busy counts no error for the dials its deadline cut short. With one
// P the context's timer goroutine waits for the busy worker's time slice, as in a benchmark pinned to a CPU.
func TestRunEndsWithoutErrorsAtItsDeadline(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	root := testpki.NewRoot(t, "Root", testpki.ECDSAP256)
	now := time.Now()
	leaf := root.Issue(t, testpki.LeafOptions{DNSNames: []string{"a.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	for range 5 {
		res, err := Run(context.Background(), Options{Addr: ln.Addr().String(), Workers: 1, Duration: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != 0 || res.Handshakes == 0 {
			t.Fatalf("result %+v", res)
		}
	}
}
