package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/rs/zerolog"

	"staple/admin"
	"staple/cache"
	"staple/certs"
	"staple/fleet"
	"staple/ocspfetch"
	"staple/service"
)

// storeTarget says where a cache command finds the cache: the service's data directory (its admin socket,
// else its cache file) or, for a fleet, the configuration whose [fleet] table names the etcd cluster.
type storeTarget struct {
	dataDir, config *string
	fs              *flagSet
}

// storeFlags adds --data-dir (with serve's default) and --config to fs.
func storeFlags(fs *flagSet) storeTarget {
	return storeTarget{
		dataDir: fs.String("data-dir", service.DefaultDataDir, "the service's data directory: cache database and admin socket"),
		config:  fs.String("config", "", "staple serve's configuration: its data_dir, and for a fleet the etcd cluster of [fleet]"),
		fs:      fs,
	}
}

// resolve returns the data directory and, when the configuration has a [fleet] table, the fleet's settings.
func (t storeTarget) resolve() (dataDir string, cfg *service.Config, err error) {
	dataDir = *t.dataDir
	if *t.config == "" {
		return dataDir, nil, nil
	}
	if cfg, err = service.LoadConfig(*t.config); err != nil {
		return "", nil, err
	}
	explicit := false
	t.fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "data-dir" })
	if !explicit {
		dataDir = cfg.DataDir
	}
	return dataDir, cfg, nil
}

// access says what a command needs of the cache when no service runs.
type access int

const (
	readCache  access = iota // ls, show, export: a read-only open, alongside nothing else
	writeCache               // rm, import, refresh: a read-write open; refused while a service runs
)

// openBackend returns the running service's admin API when one answers on the data directory's socket, else
// the cache file itself. close releases what was opened.
func openBackend(ctx context.Context, env Env, target storeTarget, mode access) (admin.Backend, func(), error) {
	dataDir, cfg, err := target.resolve()
	if err != nil {
		return nil, nil, err
	}
	client := admin.NewClient(filepath.Join(dataDir, admin.SocketName))
	if err := client.Ping(ctx); err == nil {
		return client, func() {}, nil
	} else if !errors.Is(err, admin.ErrNoService) {
		return nil, nil, fmt.Errorf("the service on %s answered with an error: %w", filepath.Join(dataDir, admin.SocketName), err)
	}
	if cfg != nil && cfg.Fleet.Enabled() {
		// No service here, but the fleet's store answers for every node, running or not.
		return openFleetBackend(env, cfg, mode)
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
	return offlineBackend(env, store, mode), func() { store.Close() }, nil
}

// offlineBackend serves the cache commands from a store, fetching for refresh when mode allows writes.
func offlineBackend(env Env, store admin.Store, mode access) *admin.OfflineBackend {
	b := &admin.OfflineBackend{Store: store, Now: env.now}
	if mode == writeCache {
		b.Fetcher = &ocspfetch.Client{UserAgent: "staple/" + Version(env), Now: env.Now}
	}
	return b
}

// openFleetBackend serves the cache commands from a fleet's etcd store.
func openFleetBackend(env Env, cfg *service.Config, mode access) (admin.Backend, func(), error) {
	fc := cfg.FleetConfig(zerolog.Nop())
	cli, err := fleet.Connect(fc)
	if err != nil {
		return nil, nil, fmt.Errorf("the fleet's etcd %v: %w", fc.Endpoints, err)
	}
	return offlineBackend(env, fleet.NewStore(cli, fc), mode), func() { cli.Close() }, nil
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
