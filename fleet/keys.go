package fleet

import (
	"encoding/hex"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"staple/cache"
	"staple/certs"
)

// Every key staple writes in etcd, under the configured prefix P:
//
//	P certs/<key>        cache certificate record       watched certificates, written by the node that watches
//	P responses/<key>    cache response record          the newest verified response of each certificate
//	P thisupdate/<key>   ocspwire.Stamp.Key             compared in the write transaction of responses/<key>
//	P history/<key>      cache history record           the last fetch attempts, whichever node made them
//	P sessions/<id>      cache session record           TLS sessions, each key under a lease that ends it
//	P ticket_keys        cache ticket keys record       current and previous session ticket keys
//	P leader/<lease>     node name                      the election (etcd's concurrency package), one key per node
//	P served/<key>/<lease> node name                    a node serves the certificate, under that node's claims lease
//
// <key> is the hex of cache.EncodeKey (128 characters: issuer hash, then the zero-padded serial), so keys
// sort by issuer then serial as in the bbolt file; <id> is the hex of the session ID. thisupdate/<key> is
// fixed-width (thisUpdate to the nanosecond, then the status's rank), so that etcd's byte comparison orders
// it as ocspwire.Stamp.Before does.
type keyspace struct{ p string }

const (
	dirCerts      = "certs/"
	dirResponses  = "responses/"
	dirThisUpdate = "thisupdate/"
	dirHistory    = "history/"
	dirSessions   = "sessions/"
	dirServed     = "served/"
	keyTickets    = "ticket_keys"
	// election is the election's prefix: etcd's concurrency package adds the "/" and each node's lease.
	election = "leader"
)

func (k keyspace) of(dir string, key certs.Key) string {
	return k.p + dir + hex.EncodeToString(cache.EncodeKey(key))
}

func (k keyspace) cert(key certs.Key) string       { return k.of(dirCerts, key) }
func (k keyspace) response(key certs.Key) string   { return k.of(dirResponses, key) }
func (k keyspace) thisUpdate(key certs.Key) string { return k.of(dirThisUpdate, key) }
func (k keyspace) history(key certs.Key) string    { return k.of(dirHistory, key) }
func (k keyspace) session(id []byte) string        { return k.p + dirSessions + hex.EncodeToString(id) }
func (k keyspace) tickets() string                 { return k.p + keyTickets }
func (k keyspace) election() string                { return k.p + election }
func (k keyspace) dir(dir string) string           { return k.p + dir }

// claims is the prefix of every claim on the certificate of key; claim is the one of the node whose claims
// lease is lease.
func (k keyspace) claims(key certs.Key) string { return k.of(dirServed, key) + "/" }
func (k keyspace) claim(key certs.Key, lease clientv3.LeaseID) string {
	return fmt.Sprintf("%s%x", k.claims(key), int64(lease))
}

// parseClaim returns the certificate key of a claim's etcd key.
func (k keyspace) parseClaim(etcdKey string) (certs.Key, error) {
	i := strings.LastIndexByte(etcdKey, '/')
	if i < 0 {
		return certs.Key{}, fmt.Errorf("%w: etcd key %q is not a claim", cache.ErrCorruptRecord, etcdKey)
	}
	return k.parse(dirServed, etcdKey[:i])
}

// parse returns the certificate key of an etcd key under dir.
func (k keyspace) parse(dir, etcdKey string) (certs.Key, error) {
	h, ok := strings.CutPrefix(etcdKey, k.p+dir)
	if !ok {
		return certs.Key{}, fmt.Errorf("%w: etcd key %q is not under %s", cache.ErrCorruptRecord, etcdKey, k.p+dir)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return certs.Key{}, fmt.Errorf("%w: etcd key %q: %w", cache.ErrCorruptRecord, etcdKey, err)
	}
	return cache.DecodeKey(b)
}
