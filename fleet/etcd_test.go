package fleet

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdBinary is Debian's etcd-server (3.4); the tests that need etcd skip without it.
const etcdBinary = "/usr/bin/etcd"

// etcdServer is a real single-member etcd on loopback, with its data in a temporary directory. It can be
// stopped and started again on the same ports and data, as an outage.
type etcdServer struct {
	t                 testing.TB
	dir, client, peer string
	cmd               *exec.Cmd
	exited            chan struct{}
}

// startEtcd starts an etcd for the test and stops it in Cleanup.
func startEtcd(t testing.TB) *etcdServer {
	t.Helper()
	if _, err := os.Stat(etcdBinary); err != nil {
		t.Skipf("%s not found (apt-get install etcd-server): the fleet's tests need a real etcd", etcdBinary)
	}
	e := &etcdServer{t: t, dir: t.TempDir(), client: "http://" + freeAddr(t), peer: "http://" + freeAddr(t)}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (e *etcdServer) start() {
	e.t.Helper()
	logf, err := os.OpenFile(filepath.Join(e.dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	e.cmd = exec.Command(etcdBinary,
		"--name", "default",
		"--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.client, "--advertise-client-urls", e.client,
		"--listen-peer-urls", e.peer, "--initial-advertise-peer-urls", e.peer,
		"--initial-cluster", "default="+e.peer,
		"--logger", "zap", "--log-level", "warn")
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		logf.Close()
		e.t.Fatalf("starting etcd: %v", err)
	}
	e.exited = make(chan struct{})
	go func() { e.cmd.Wait(); logf.Close(); close(e.exited) }()
	e.waitHealthy()
}

// waitHealthy polls etcd's /health until it answers true, for at most 20 s.
func (e *etcdServer) waitHealthy() {
	e.t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	hc := &http.Client{Timeout: time.Second}
	for {
		resp, err := hc.Get(e.client + "/health")
		if err == nil {
			var b [64]byte
			n, _ := resp.Body.Read(b[:])
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b[:n]), `"true"`) {
				return
			}
		}
		select {
		case <-e.exited:
			e.t.Fatalf("etcd exited at start:\n%s", e.logTail())
		case <-deadline:
			e.t.Fatalf("etcd not healthy after 20 s:\n%s", e.logTail())
		case <-tick.C:
		}
	}
}

// stop ends etcd (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (e *etcdServer) stop() {
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(10 * time.Second):
		e.cmd.Process.Kill()
		<-e.exited
	}
	e.cmd = nil
}

func (e *etcdServer) logTail() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "etcd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// config returns a fleet configuration for this etcd under a prefix of the test's own.
func (e *etcdServer) config(t testing.TB) Config {
	return Config{Endpoints: []string{e.client}, Prefix: "/test/" + t.Name() + "/", RequestTimeout: 2 * time.Second,
		DialTimeout: 2 * time.Second}
}

// connect returns a client (a node's connection), closed in Cleanup.
func connect(t testing.TB, cfg Config) *clientv3.Client {
	t.Helper()
	cli, err := Connect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// eventually polls cond every 10 ms until it holds or the timeout passes, and fails the test then.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		<-tick.C
	}
}

func TestEtcdHarness(t *testing.T) {
	e := startEtcd(t)
	cli := connect(t, e.config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/harness", "ok"); err != nil {
		t.Fatal(err)
	}
	st, err := cli.Status(ctx, e.client)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd server %s", st.Version)
}
