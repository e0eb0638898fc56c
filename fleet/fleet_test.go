package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/cache"
	"staple/certs"
	"staple/ocspfetch"
	"staple/stapler"
)

// member is a whole fleet node of a test, wired as staple serve is meant to wire one: its own etcd client,
// the etcd store under its stapler, an elector whose role the stapler asks, and a watcher feeding it.
type member struct {
	name    string
	cli     *clientv3.Client
	el      *Elector
	st      *stapler.Stapler
	w       *Watcher
	claims  *Claims
	store   *Store
	cancel  context.CancelFunc
	stopped chan struct{}
}

func startMember(t *testing.T, cfg Config, name string, fetcher stapler.Fetcher, margin time.Duration) *member {
	t.Helper()
	cli, err := Connect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{name: name, cli: cli, el: NewElector(cli, cfg, name), store: NewStore(cli, cfg), stopped: make(chan struct{})}
	m.st, err = stapler.New(stapler.Config{Fetcher: fetcher, Storage: m.store, Role: m.el.Role, SelfFetchMargin: margin,
		Sweep: "@every 1s", Rand: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	m.el.OnChange = func(stapler.Role) { m.st.RoleChanged() }
	m.w = NewWatcher(cli, cfg, m.st)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	elDone := make(chan struct{})
	go func() { defer close(elDone); m.el.Run(ctx) }()
	select {
	case <-m.el.Settled():
	case <-time.After(2 * m.el.TTL()):
		t.Fatalf("%s: the election did not settle within two TTLs", name)
	}
	if err := m.st.Start(); err != nil {
		t.Fatal(err)
	}
	wDone, cDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(wDone); m.w.Run(ctx) }()
	m.claims = NewClaims(cli, cfg, name, m.st.Watched, func() bool { return m.el.Role() == stapler.Leader })
	go func() { defer close(cDone); m.claims.Run(ctx) }()
	go func() { <-elDone; <-wDone; <-cDone; close(m.stopped) }()
	t.Cleanup(m.stop)
	return m
}

// stop shuts the member down cleanly; crash leaves like a dead process.
func (m *member) stop() {
	select {
	case <-m.stopped:
		return
	default:
	}
	m.cancel()
	<-m.stopped
	m.st.Close(context.Background())
	m.cli.Close()
}

func (m *member) crash() {
	m.st.Close(context.Background())
	m.cli.Close()
}

func (m *member) staple(key certs.Key) []byte { return m.st.Staple(key) }

// TestFleetFetchesOncePerRefresh: three nodes watch one certificate; only the leader asks the CA, every
// refresh reaches the others by watch, and when the leader crashes another takes over the refreshes before
// the staple expires.
func TestFleetFetchesOncePerRefresh(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cfg.LeaseTTL = 2 * time.Second
	ca := testCA(t, "fleet CA")
	chain := testChain(t, ca)
	const validity = 8 * time.Second // refreshed every 4 s
	fetcher := newCAResponder(t, ca, validity)
	var members []*member
	for i := range 3 {
		members = append(members, startMember(t, cfg, fmt.Sprintf("node-%d", i), fetcher, 0))
	}
	var key certs.Key
	for _, m := range members {
		k, err := m.st.Watch(chain)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	same := func(ms []*member) bool {
		first := ms[0].staple(key)
		for _, m := range ms[1:] {
			if first == nil || !bytes.Equal(m.staple(key), first) {
				return false
			}
		}
		return true
	}
	eventually(t, 5*time.Second, "every node staples the same response", func() bool { return same(members) })
	if n := fetcher.requests(); n != 1 {
		t.Errorf("%d requests to the CA for three nodes, want 1", n)
	}
	var leader *member
	for _, m := range members {
		if m.el.Role() == stapler.Leader {
			leader = m
		} else if f := m.st.Metrics().Fetches; f != 0 {
			t.Errorf("follower %s fetched %d times", m.name, f)
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	first := leader.staple(key)

	// The leader refreshes at the midpoint; the followers take it from the watch.
	eventually(t, validity, "a refresh by the leader reaches every node", func() bool {
		return same(members) && !bytes.Equal(members[0].staple(key), first)
	})
	if n := fetcher.requests(); n != 2 {
		t.Errorf("%d requests to the CA after one refresh, want 2", n)
	}

	crashed := time.Now()
	leader.crash()
	var rest []*member
	for _, m := range members {
		if m != leader {
			rest = append(rest, m)
		}
	}
	before := rest[0].staple(key)
	eventually(t, 2*cfg.LeaseTTL, "a new leader after the crash", func() bool {
		return rest[0].el.Role() == stapler.Leader || rest[1].el.Role() == stapler.Leader
	})
	t.Logf("new leader %s after the crash", time.Since(crashed).Round(10*time.Millisecond))
	eventually(t, validity, "the new leader's refresh reaches the last node", func() bool {
		return same(rest) && !bytes.Equal(rest[0].staple(key), before)
	})
	for _, m := range rest {
		r, _ := m.st.Entry(key)
		if !r.Stapled {
			t.Errorf("%s: not stapled after the takeover", m.name)
		}
	}
	t.Logf("%d CA requests for three nodes over three refresh cycles (the first fetch, a refresh, the new leader's)", fetcher.requests())
}

// TestFleetStaplesThroughEtcdOutage: with etcd stopped, every node keeps stapling from memory; a node whose
// staple nears expiry with no leader in sight fetches for itself; when etcd returns the newest of those
// responses is written back and every node converges on it.
func TestFleetStaplesThroughEtcdOutage(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cfg.LeaseTTL = 2 * time.Second
	cfg.RequestTimeout = time.Second
	ca := testCA(t, "outage CA")
	chain := testChain(t, ca)
	const validity = 20 * time.Second // the leader refreshes at 10 s; with no leader, nodes fetch from 5 s
	fetcher := newCAResponder(t, ca, validity)
	a := startMember(t, cfg, "a", fetcher, 15*time.Second)
	b := startMember(t, cfg, "b", fetcher, 15*time.Second)
	key, _ := a.st.Watch(chain)
	b.st.Watch(chain)
	eventually(t, 5*time.Second, "both nodes staple the leader's response", func() bool {
		return a.staple(key) != nil && bytes.Equal(a.staple(key), b.staple(key))
	})
	r1 := a.staple(key)
	if n := fetcher.requests(); n != 1 {
		t.Fatalf("%d requests before the outage, want 1", n)
	}

	e.stop()
	for _, m := range []*member{a, b} {
		if !bytes.Equal(m.staple(key), r1) {
			t.Errorf("%s: not stapling from memory right after etcd stopped", m.name)
		}
	}
	eventually(t, 2*cfg.LeaseTTL+time.Second, "no leader in sight", func() bool {
		return a.el.Role() == stapler.NoLeader && b.el.Role() == stapler.NoLeader
	})
	eventually(t, validity/2, "both nodes fetch for themselves and keep the response in memory", func() bool {
		return a.st.Metrics().PersistBacklog == 1 && b.st.Metrics().PersistBacklog == 1
	})
	for _, m := range []*member{a, b} {
		if got := m.staple(key); got == nil || bytes.Equal(got, r1) {
			t.Errorf("%s: not stapling its own fresh response during the outage", m.name)
		}
	}
	if n := fetcher.requests(); n != 3 {
		t.Errorf("%d requests after both self-fetches, want 3", n)
	}

	e.start()
	restarted := time.Now()
	var stored []byte
	eventually(t, 10*time.Second, "write-back, and both nodes staple what etcd holds", func() bool {
		r, err := a.store.Response(key)
		if err != nil {
			return false
		}
		stored = r.Raw
		return bytes.Equal(a.staple(key), stored) && bytes.Equal(b.staple(key), stored) &&
			a.st.Metrics().PersistBacklog == 0 && b.st.Metrics().PersistBacklog == 0
	})
	t.Logf("converged %s after etcd restarted", time.Since(restarted).Round(10*time.Millisecond))
	rs, _ := a.store.Response(key)
	resp, err := ocspfetch.Verify(rs.Raw, chain.Leaf, chain.Issuer, time.Now(), ocspfetch.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := fetcher.lastThisUpdate(); !resp.ThisUpdate.Equal(want) {
		t.Errorf("etcd holds thisUpdate %s, want the newest fetched, %s", resp.ThisUpdate, want)
	}
}

// TestFleetFollowsRemovals: a certificate removed from the fleet's store is forgotten by the nodes that do not
// serve it and written back by one that does, so the store keeps what any node serves; a removal the watcher
// did not see (it happened while the watch was down) is caught by the next full read.
func TestFleetFollowsRemovals(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cfg.LeaseTTL = 2 * time.Second
	ca := testCA(t, "removal CA")
	shared, onlyA := testChain(t, ca), testChain(t, ca)
	fetcher := newCAResponder(t, ca, time.Hour)
	a := startMember(t, cfg, "a", fetcher, 0)
	b := startMember(t, cfg, "b", fetcher, 0)
	c := startMember(t, cfg, "c", fetcher, 0) // serves neither: knows both from the fleet
	sharedKey, _ := a.st.Watch(shared)
	b.st.Watch(shared)
	onlyAKey, _ := a.st.Watch(onlyA)
	members := []*member{a, b, c}
	eventually(t, 5*time.Second, "every node staples both", func() bool {
		for _, m := range members {
			if m.staple(sharedKey) == nil || m.staple(onlyAKey) == nil {
				return false
			}
		}
		return true
	})

	// a stops serving the certificate only it served: it leaves the store and every node.
	if err := a.st.Unwatch(onlyAKey); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b and c forget the certificate nobody serves", func() bool {
		_, inB := b.st.Entry(onlyAKey)
		_, inC := c.st.Entry(onlyAKey)
		return !inB && !inC
	})
	if _, err := a.store.Cert(onlyAKey); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("the certificate nobody serves is still stored: %v", err)
	}

	// a stops serving the shared one, then an operator removes it (staple cache rm): b serves it, so it stays
	// in the store, and every node keeps stapling it.
	if err := a.st.Unwatch(sharedKey); err != nil {
		t.Fatal(err)
	}
	if err := NewStore(connect(t, cfg), cfg).Remove(sharedKey); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b writes the certificate it serves back", func() bool {
		_, err := a.store.Cert(sharedKey)
		return err == nil
	})
	eventually(t, 5*time.Second, "every node staples the certificate b serves", func() bool {
		for _, m := range members {
			if m.staple(sharedKey) == nil {
				return false
			}
		}
		return true
	})
	if got := a.w.Stats().Withdrawn + b.w.Stats().Withdrawn + c.w.Stats().Withdrawn; got < 2 {
		t.Errorf("%d withdrawals counted, want at least 2", got)
	}

	// A removal while c's watcher is down is caught when it reads the store again: of a certificate c only
	// knew, forgotten; of one c serves, written back.
	third, fourth := testChain(t, ca), testChain(t, ca)
	thirdKey, _ := a.st.Watch(third)
	fourthKey, _ := c.st.Watch(fourth)
	eventually(t, 5*time.Second, "c knows the third certificate, and the fourth's response is stored", func() bool {
		_, ok := c.st.Entry(thirdKey)
		_, err := a.store.Response(fourthKey)
		return ok && err == nil && c.staple(fourthKey) != nil
	})
	c.cancel()
	<-c.stopped
	if err := a.st.Unwatch(thirdKey); err != nil {
		t.Fatal(err)
	}
	if err := NewStore(connect(t, cfg), cfg).Remove(fourthKey); err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(c.cli, cfg, c.st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done; c.st.Close(context.Background()); c.cli.Close() }()
	eventually(t, 5*time.Second, "c's next full read forgets the certificate removed unseen", func() bool {
		_, ok := c.st.Entry(thirdKey)
		return !ok
	})
	if _, ok := c.st.Entry(sharedKey); !ok {
		t.Error("c's full read forgot a certificate that is still stored")
	}
	eventually(t, 5*time.Second, "c's full read writes back the certificate it serves, with its response", func() bool {
		_, errC := a.store.Cert(fourthKey)
		_, errR := a.store.Response(fourthKey)
		return errC == nil && errR == nil
	})
	if c.staple(fourthKey) == nil {
		t.Error("c no longer staples the certificate it serves")
	}
}
