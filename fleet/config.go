package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"

	"staple/cache"
	"staple/certs"
)

// Errors of the fleet.
var (
	// ErrStale: the store holds a response newer (by ocspwire.Stamp: thisUpdate, then status) than the one
	// offered, which was not written.
	// It wraps cache.ErrOlder, which the stapler treats as "at rest".
	ErrStale = fmt.Errorf("fleet: the store holds a newer response: %w", cache.ErrOlder)
	// ErrUnavailable: etcd cannot be reached now (the client's connection is failing); the call was not made.
	ErrUnavailable = errors.New("fleet: etcd is unreachable")
	// ErrConflict: a read-modify-write lost to concurrent writers too many times.
	ErrConflict = errors.New("fleet: concurrent writes")
	// ErrNoCert: a response or a fetch attempt was offered for a certificate the store does not hold (it was
	// removed, or its write has not landed), and was not written: the store never holds a response without its
	// certificate, so that a node reading it never staples what nobody serves. It wraps cache.ErrNotFound.
	ErrNoCert = fmt.Errorf("fleet: no certificate stored: %w", cache.ErrNotFound)
	// ErrConfig: the configuration cannot be used.
	ErrConfig = errors.New("fleet: bad configuration")
)

// Defaults of Config.
const (
	DefaultPrefix         = "/staple/"
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 3 * time.Second
	// DefaultLeaseTTL is the election's lease: a new leader takes over within two of them.
	DefaultLeaseTTL = 10 * time.Second
)

// maxReconnectDelay bounds the wait between two attempts to reach etcd.
const maxReconnectDelay = 2 * time.Second

// Config says how to reach the fleet's etcd cluster and where staple's keys live in it. Only Endpoints is
// required; every zero field has the default its comment gives. Config is a value: share it freely.
type Config struct {
	// Endpoints are the etcd client URLs (http://host:2379, or https:// with TLS).
	Endpoints []string
	// Prefix is prepended to every key staple writes, so that several fleets (or other users) share one
	// cluster. Empty means DefaultPrefix; a missing trailing "/" is added.
	Prefix string
	// CertFile and KeyFile are the client certificate and key (PEM) for etcd's client certificate
	// authentication; both or neither. CAFile is the CA bundle that signs the servers' certificates; empty
	// means the system roots. Any of them set, or an https:// endpoint, makes the connection TLS.
	CertFile, KeyFile, CAFile string
	// Username and Password, when set, authenticate with etcd's own users.
	Username, Password string
	// DialTimeout bounds establishing a connection; RequestTimeout bounds every call. Zero means
	// DefaultDialTimeout and DefaultRequestTimeout.
	DialTimeout, RequestTimeout time.Duration
	// LeaseTTL is the election's lease, rounded down to whole seconds (etcd's unit; at least 2 s, etcd's
	// minimum). Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// UnservedAfter is how long a certificate may go without a node claiming it (Claims) before the leader
	// removes it from the store. Zero means DefaultUnservedAfter; negative means never.
	UnservedAfter time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Logger receives the fleet's structured log. The zero Logger logs nothing.
	Logger zerolog.Logger
}

func (c Config) prefix() string {
	p := c.Prefix
	if p == "" {
		p = DefaultPrefix
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

func (c Config) requestTimeout() time.Duration {
	if c.RequestTimeout > 0 {
		return c.RequestTimeout
	}
	return DefaultRequestTimeout
}

func (c Config) leaseSeconds() int64 {
	ttl := c.LeaseTTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	return max(int64(ttl/time.Second), 2)
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// TLS returns the client TLS configuration Config asks for, or nil for a plain connection.
func (c Config) TLS() (*tls.Config, error) {
	secure := c.CertFile != "" || c.KeyFile != "" || c.CAFile != ""
	for _, e := range c.Endpoints {
		secure = secure || strings.HasPrefix(e, "https://")
	}
	if !secure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, fmt.Errorf("%w: a client certificate needs both cert_file and key_file", ErrConfig)
	}
	if c.CertFile != "" {
		chain, err := certs.LoadChain(c.CertFile, c.KeyFile, "")
		var pair tls.Certificate
		if err == nil {
			pair, err = chain.TLSCertificate()
		}
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %w", ErrConfig, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if c.CAFile != "" {
		b, err := certs.LoadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if len(b.Certs) == 0 {
			return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrConfig, c.CAFile)
		}
		cfg.RootCAs = x509.NewCertPool()
		for _, ca := range b.Certs {
			cfg.RootCAs.AddCert(ca)
		}
	}
	return cfg, nil
}

// Connect returns a client of the cluster Config names. It does not wait for etcd: a node starts, and
// staples, while etcd is away, and the client connects when it can. Close the client when done.
func Connect(c Config) (*clientv3.Client, error) {
	if len(c.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: no etcd endpoints", ErrConfig)
	}
	tc, err := c.TLS()
	if err != nil {
		return nil, err
	}
	dial := c.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            c.Endpoints,
		TLS:                  tc,
		Username:             c.Username,
		Password:             c.Password,
		DialTimeout:          dial,
		DialKeepAliveTime:    dial,
		DialKeepAliveTimeout: dial,
		// etcd's client logs through zap; staple logs through zerolog, and reports what matters itself.
		Logger: zap.NewNop(),
		// gRPC's default reconnect backoff grows to two minutes: a node would take that long to notice that
		// etcd is back. Local clusters are cheap to ask again.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxReconnectDelay},
			MinConnectTimeout: dial,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: etcd client: %w", err)
	}
	return cli, nil
}

// call runs one etcd call with the request deadline, failing fast with ErrUnavailable when the client's
// connection is known to be failing, so that a write-back or a handshake hook does not wait out its deadline
// for nothing.
func call[T any](parent context.Context, cli *clientv3.Client, timeout time.Duration, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if conn := cli.ActiveConnection(); conn != nil && conn.GetState() == connectivity.TransientFailure {
		return zero, ErrUnavailable
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	v, err := fn(ctx)
	if err != nil {
		return zero, fmt.Errorf("fleet: etcd: %w", err)
	}
	return v, nil
}
