package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"staple/admin"
	"staple/cache"
	"staple/certs"
	"staple/ocspfetch"
	"staple/service"
)

// dataDirFlag adds --data-dir to fs, with serve's default.
func dataDirFlag(fs *flagSet) *string {
	return fs.String("data-dir", service.DefaultDataDir, "the service's data directory: cache database and admin socket")
}

// access says what a command needs of the cache when no service runs.
type access int

const (
	readCache  access = iota // ls, show, export: a read-only open, alongside nothing else
	writeCache               // rm, import, refresh: a read-write open; refused while a service runs
)

// openBackend returns the running service's admin API when one answers on the data directory's socket, else
// the cache file itself. close releases what was opened.
func openBackend(ctx context.Context, env Env, dataDir string, mode access) (admin.Backend, func(), error) {
	client := admin.NewClient(filepath.Join(dataDir, admin.SocketName))
	if err := client.Ping(ctx); err == nil {
		return client, func() {}, nil
	} else if !errors.Is(err, admin.ErrNoService) {
		return nil, nil, fmt.Errorf("the service on %s answered with an error: %w", filepath.Join(dataDir, admin.SocketName), err)
	}
	path := filepath.Join(dataDir, service.DatabaseName)
	store, err := cache.Open(path, cache.Options{ReadOnly: mode == readCache, Now: env.Now})
	switch {
	case errors.Is(err, cache.ErrLocked):
		return nil, nil, fmt.Errorf("%s is locked by another process and no service answers on %s: is a staple serve starting or stopping? try again", path, filepath.Join(dataDir, admin.SocketName))
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("no cache at %s (nothing was fetched with this --data-dir yet)", path)
	case err != nil:
		return nil, nil, err
	}
	b := &admin.OfflineBackend{Store: store, Now: env.now}
	if mode == writeCache {
		b.Fetcher = &ocspfetch.Client{UserAgent: "staple/" + Version(env), Now: env.Now}
	}
	return b, func() { store.Close() }, nil
}

// resolveRef turns a KEY operand, or the path of a certificate file (with an optional issuer file), into the
// key reference it stands for.
func resolveRef(arg, issuerFile string) (certs.KeyRef, error) {
	if ref, err := certs.ParseKey(arg); err == nil {
		return ref, nil
	}
	chain, err := certs.LoadChain(arg, "", issuerFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return certs.KeyRef{}, usageError("%q is neither a cache key (ISSUERHASH:SERIAL, as 'staple cache ls' prints) nor a certificate file", arg)
		}
		return certs.KeyRef{}, err
	}
	key, ok := chain.CacheKey()
	if !ok {
		return certs.KeyRef{}, fmt.Errorf("the issuer of %s in %s is unknown: give it with --issuer", certs.Describe(chain.Leaf), arg)
	}
	return certs.KeyRef{IssuerPrefix: key.IssuerHash[:], Serial: key.Serial()}, nil
}
