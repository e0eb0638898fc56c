package fleet

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"staple/internal/testpki"
	"staple/tlsserver"
)

// tlsFixture is a certificate for localhost and a client configuration that trusts it.
type tlsFixture struct {
	cert  tls.Certificate
	roots *x509.CertPool
}

func newTLSFixture(t *testing.T) *tlsFixture {
	ca := testCA(t, "tls CA")
	now := time.Now()
	leaf := ca.Issue(t, testpki.LeafOptions{DNSNames: []string{"localhost"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &tlsFixture{cert: leaf.TLSCertificate(), roots: roots}
}

// serve starts s on loopback and returns its address; it is closed in Cleanup.
func (f *tlsFixture) serve(t *testing.T, s *tlsserver.Server) string {
	t.Helper()
	s.SecureContext = &tlsserver.SecureContext{Certificate: &f.cert}
	if err := s.Listen(0, "127.0.0.1", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(nil) })
	a, err := s.Address()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(a.Address, strconv.Itoa(a.Port))
}

// client returns a client configuration with its own session cache. Every server is "localhost" to it, so
// a session from one server is offered to the others.
func (f *tlsFixture) client(version uint16) *tls.Config {
	return &tls.Config{RootCAs: f.roots, ServerName: "localhost", MinVersion: version, MaxVersion: version,
		ClientSessionCache: tls.NewLRUClientSessionCache(4)}
}

// resumed dials addr, reads until the server closes, and reports whether the handshake resumed.
func resumed(t *testing.T, addr string, cfg *tls.Config) bool {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	conn.Read(b[:]) // TLS 1.3 tickets arrive after the handshake: read until the server closes
	return conn.ConnectionState().DidResume
}

// TestTicketKeysSharedAndRotated: two servers share the fleet's ticket keys, so a ticket from A resumes on
// B; after the leader's rotation both use the new key, an older ticket still resumes (previous key), and
// after a second rotation it no longer does.
func TestTicketKeysSharedAndRotated(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	f := newTLSFixture(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var servers []*tlsserver.Server
	var addrs []string
	var leaderKeys *TicketKeys
	for range 2 {
		tk := NewTicketKeys(connect(t, cfg), cfg)
		leaderKeys = tk
		srv := &tlsserver.Server{TicketKeyStore: tk}
		addrs = append(addrs, f.serve(t, srv))
		servers = append(servers, srv)
		wg.Go(func() { tk.Watch(ctx, srv.UseTicketKeys) })
	}
	a, b := servers[0], servers[1]
	if !bytes.Equal(a.GetTicketKeys(), b.GetTicketKeys()) {
		t.Fatal("the second server did not load the first one's keys")
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c := f.client(v)
		if resumed(t, addrs[0], c) {
			t.Fatal("the first handshake resumed")
		}
		if !resumed(t, addrs[1], c) {
			t.Errorf("TLS %x: a ticket from A does not resume on B", v)
		}
	}

	old := f.client(tls.VersionTLS13)
	resumed(t, addrs[0], old) // a ticket under the first key
	older := f.client(tls.VersionTLS13)
	resumed(t, addrs[0], older)
	first := a.GetTicketKeys()
	if ok, err := leaderKeys.RotateIfDue(ctx, time.Hour); err != nil || ok {
		t.Fatalf("RotateIfDue of fresh keys: %v, %v; want no rotation", ok, err)
	}
	if ok, err := leaderKeys.RotateIfDue(ctx, 0); err != nil || !ok {
		t.Fatalf("RotateIfDue: %v, %v", ok, err)
	}
	eventually(t, 5*time.Second, "both servers use the rotated key", func() bool {
		return !bytes.Equal(a.GetTicketKeys(), first) && bytes.Equal(a.GetTicketKeys(), b.GetTicketKeys())
	})
	if !resumed(t, addrs[1], old) {
		t.Error("a ticket under the previous key does not resume after a rotation")
	}
	second := a.GetTicketKeys()
	if ok, err := leaderKeys.RotateIfDue(ctx, 0); err != nil || !ok {
		t.Fatalf("RotateIfDue: %v, %v", ok, err)
	}
	eventually(t, 5*time.Second, "both servers use the second rotation's key", func() bool {
		return !bytes.Equal(a.GetTicketKeys(), second) && bytes.Equal(a.GetTicketKeys(), b.GetTicketKeys())
	})
	if resumed(t, addrs[1], older) {
		t.Error("a ticket two rotations old still resumes")
	}

	// Nodes that both believe they lead rotate once.
	var rotations atomic.Int32
	var rw sync.WaitGroup
	for range 2 {
		tk := NewTicketKeys(connect(t, cfg), Config{Endpoints: cfg.Endpoints, Prefix: cfg.Prefix, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
		rw.Go(func() {
			if ok, err := tk.RotateIfDue(ctx, time.Hour); err != nil {
				t.Error(err)
			} else if ok {
				rotations.Add(1)
			}
		})
	}
	rw.Wait()
	if n := rotations.Load(); n != 1 {
		t.Errorf("%d rotations by two concurrent leaders, want 1", n)
	}
}

// TestTicketKeysWithoutEtcd: a server starting while etcd is away serves with keys of its own; when etcd
// answers, its keys become the fleet's (none were stored).
func TestTicketKeysWithoutEtcd(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cfg.RequestTimeout = 500 * time.Millisecond
	f := newTLSFixture(t)
	e.stop()
	tk := NewTicketKeys(connect(t, cfg), cfg)
	srv := &tlsserver.Server{TicketKeyStore: tk}
	addr := f.serve(t, srv)
	c := f.client(tls.VersionTLS13)
	resumed(t, addr, c)
	if !resumed(t, addr, c) {
		t.Error("no resumption on the node itself while etcd is away")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tk.Watch(ctx, srv.UseTicketKeys) }()
	defer func() { cancel(); <-done }()
	e.start()
	eventually(t, 10*time.Second, "the node's keys are stored once etcd answers", func() bool {
		k, err := NewTicketKeys(connect(t, cfg), cfg).LoadTicketKeys()
		return err == nil && bytes.Equal(k.Current, srv.GetTicketKeys())
	})
}

// TestSessionsAcrossNodes: with sessions in etcd, a session stored by A resumes on B; the key carries a
// lease of about the TTL and is gone after it; a session past its expiry is refused before that.
func TestSessionsAcrossNodes(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	f := newTLSFixture(t)
	const ttl = 2 * time.Second
	var stores []*Sessions
	var addrs []string
	var sizes sync.Map // the lengths of the session data stored
	for range 2 {
		s := NewSessions(connect(t, cfg), cfg, ttl)
		stores = append(stores, s)
		store := func(ctx context.Context, id, data []byte) error {
			sizes.Store(len(data), true)
			return s.NewSession(ctx, id, data)
		}
		// The nodes share ticket keys, as staple serve's do: a session resumes only under the keys it was
		// issued under, in a store as in a ticket.
		addrs = append(addrs, f.serve(t, &tlsserver.Server{NewSession: store, ResumeSession: s.ResumeSession, SessionTimeout: ttl,
			TicketKeyStore: NewTicketKeys(connect(t, cfg), cfg)}))
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c := f.client(v)
		resumed(t, addrs[0], c)
		if !resumed(t, addrs[1], c) {
			t.Errorf("TLS %x: a session stored by A does not resume on B", v)
		}
	}
	if st := stores[1].Stats(); st.Resumed != 2 || st.Failed != 0 {
		t.Errorf("B's stats %+v, want 2 resumed", st)
	}

	cli := connect(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, stores[0].keys.dir(dirSessions), clientv3WithPrefix()...)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("no session keys in etcd: %v", err)
	}
	leases := map[int64]bool{}
	for _, kv := range resp.Kvs {
		if kv.Lease == 0 {
			t.Fatalf("session %s has no lease", kv.Key)
		}
		leases[kv.Lease] = true
	}
	for id := range leases {
		ttlResp, err := cli.TimeToLive(ctx, leaseID(id))
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Duration(ttlResp.GrantedTTL) * time.Second; got < ttl || got > ttl+2*time.Second {
			t.Errorf("session lease granted for %s, want the TTL %s plus a window", got, ttl)
		}
	}
	var lens []int
	sizes.Range(func(k, _ any) bool { lens = append(lens, k.(int)); return true })
	t.Logf("%d sessions stored under %d leases; session data of %v bytes, record and key %d bytes", len(resp.Kvs), len(leases), lens, len(resp.Kvs[0].Value)+len(resp.Kvs[0].Key))
	eventually(t, ttl+5*time.Second, "etcd deletes the sessions when their lease ends", func() bool {
		r, err := cli.Get(ctx, stores[0].keys.dir(dirSessions), clientv3WithPrefix()...)
		return err == nil && len(r.Kvs) == 0
	})

	// Past its own expiry, a session that etcd still holds is not resumed.
	later := NewSessions(connect(t, cfg), Config{Endpoints: cfg.Endpoints, Prefix: cfg.Prefix, Now: func() time.Time { return time.Now().Add(ttl) }}, ttl)
	if err := stores[0].NewSession(ctx, []byte("id-1"), []byte("data")); err != nil {
		t.Fatal(err)
	}
	if got, _ := stores[1].ResumeSession(ctx, []byte("id-1")); string(got) != "data" {
		t.Errorf("ResumeSession = %q, want the data stored", got)
	}
	if got, err := later.ResumeSession(ctx, []byte("id-1")); got != nil || err != nil {
		t.Errorf("ResumeSession past the expiry = %q, %v; want a miss", got, err)
	}

	// With etcd away, handshakes go on in full.
	e.stop()
	if err := stores[0].NewSession(ctx, []byte("id-2"), []byte("data")); err != nil {
		t.Errorf("NewSession with etcd stopped: %v, want nil (the session is dropped)", err)
	}
	if got, err := stores[0].ResumeSession(ctx, []byte("id-1")); got != nil || err != nil {
		t.Errorf("ResumeSession with etcd stopped = %q, %v; want a miss", got, err)
	}
	c := f.client(tls.VersionTLS13)
	if resumed(t, addrs[0], c) || resumed(t, addrs[1], c) {
		t.Error("resumed with etcd stopped")
	}
	if st := stores[0].Stats(); st.Failed == 0 {
		t.Errorf("stats %+v: no failure counted with etcd stopped", st)
	}
}
