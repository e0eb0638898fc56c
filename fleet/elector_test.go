package fleet

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/stapler"
)

// node is one fleet member of a test: its own etcd client and elector.
type node struct {
	name   string
	cli    *clientv3.Client
	el     *Elector
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	changes []stapler.Role
}

func startNode(t *testing.T, cfg Config, name string) *node {
	t.Helper()
	cli, err := Connect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, cli: cli, el: NewElector(cli, cfg, name), done: make(chan struct{})}
	n.el.OnChange = func(r stapler.Role) {
		n.mu.Lock()
		n.changes = append(n.changes, r)
		n.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { defer close(n.done); n.el.Run(ctx) }()
	t.Cleanup(func() { n.stop(); cli.Close() })
	return n
}

// stop ends Run (a graceful shutdown: the node resigns) and waits for it.
func (n *node) stop() {
	n.cancel()
	<-n.done
}

// kill is a crash: the client goes away without resigning or revoking, and the lease runs out at etcd.
func (n *node) kill() { n.cli.Close() }

// leaderOf returns the one node that is Leader, when exactly one is and every other live node follows it.
func leaderOf(nodes []*node) (*node, bool) {
	var leader *node
	for _, n := range nodes {
		if n.el.Role() == stapler.Leader {
			if leader != nil {
				return nil, false
			}
			leader = n
		}
	}
	if leader == nil {
		return nil, false
	}
	for _, n := range nodes {
		if n != leader && (n.el.Role() != stapler.Follower || n.el.Leader() != leader.name) {
			return nil, false
		}
	}
	return leader, true
}

func without(nodes []*node, gone *node) []*node {
	var out []*node
	for _, n := range nodes {
		if n != gone {
			out = append(out, n)
		}
	}
	return out
}

// TestElectionTakeover: three nodes elect one leader; when it crashes, another takes over within two lease
// TTLs; when that one shuts down cleanly, the last takes over at once.
func TestElectionTakeover(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cfg.LeaseTTL = 2 * time.Second
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(t, cfg, fmt.Sprintf("node-%d", i)))
	}
	var leader *node
	eventually(t, 10*time.Second, "one leader, two followers", func() bool {
		var ok bool
		leader, ok = leaderOf(nodes)
		return ok
	})
	t.Logf("first leader %s", leader.name)

	crashed := time.Now()
	leader.kill()
	rest := without(nodes, leader)
	eventually(t, 2*cfg.LeaseTTL, "a new leader within two TTLs of a crash", func() bool {
		var ok bool
		leader, ok = leaderOf(rest)
		return ok
	})
	t.Logf("takeover after a crash: %s by %s (TTL %s)", time.Since(crashed).Round(10*time.Millisecond), leader.name, cfg.LeaseTTL)

	resigned := time.Now()
	leader.stop()
	last := without(rest, leader)
	eventually(t, cfg.LeaseTTL, "the last node leads at once after a clean shutdown", func() bool {
		_, ok := leaderOf(last)
		return ok
	})
	t.Logf("takeover after a clean shutdown: %s", time.Since(resigned).Round(10*time.Millisecond))
	if r := leader.el.Role(); r != stapler.NoLeader {
		t.Errorf("a stopped elector reports %s, want no_leader", r)
	}
	last[0].mu.Lock()
	changes := append([]stapler.Role(nil), last[0].changes...)
	last[0].mu.Unlock()
	if n := len(changes); n == 0 || changes[n-1] != stapler.Leader {
		t.Errorf("OnChange of the last node: %v, want it to end with leader", changes)
	}
}

// TestElectionWithoutEtcd: with etcd gone, every node reports NoLeader within a TTL (a leader too), and
// when it returns a leader is elected again.
func TestElectionWithoutEtcd(t *testing.T) {
	e := startEtcd(t)
	cfg := e.config(t)
	cfg.LeaseTTL = 2 * time.Second
	nodes := []*node{startNode(t, cfg, "a"), startNode(t, cfg, "b")}
	eventually(t, 10*time.Second, "a leader", func() bool { _, ok := leaderOf(nodes); return ok })
	e.stop()
	stopped := time.Now()
	eventually(t, 2*cfg.LeaseTTL+time.Second, "no leader in sight on every node", func() bool {
		for _, n := range nodes {
			if n.el.Role() != stapler.NoLeader {
				return false
			}
		}
		return true
	})
	t.Logf("no_leader everywhere %s after etcd stopped", time.Since(stopped).Round(10*time.Millisecond))
	e.start()
	eventually(t, 10*time.Second, "a leader again once etcd is back", func() bool { _, ok := leaderOf(nodes); return ok })
}
