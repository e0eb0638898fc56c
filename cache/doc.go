// Package cache owns staple's state at rest: the bbolt file, its schema (in schema.go) and the encoding of
// every record, which other stores of the same records (package fleet's etcd) use too.
//
// A Store holds, per certificate key (certs.Key), the watched certificate, the newest verified OCSP response
// and the last MaxHistory fetch attempts; it also holds TLS sessions with an expiry and the session ticket keys.
// Open takes bbolt's exclusive lock with a timeout (ErrLocked names the other process), refuses a file from a
// newer staple (ErrNewerSchema), migrates an older one, and reports a corrupt file with its path and the remedy
// (ErrCorrupt; Reset moves the file aside and never deletes it). A read-only Open lets the CLI inspect the
// cache when no service runs. Every method is one short transaction; no transaction is held across network
// I/O, and every byte slice returned is a copy.
//
// The package does no network I/O and never logs: session bytes and ticket keys are secrets.
package cache
