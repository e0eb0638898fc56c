package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"staple/admin"
	"staple/cache"
	"staple/certs"
	"staple/config"
	"staple/fleet"
	"staple/stapler"
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
		dataDir: fs.String("data-dir", config.DefaultDataDir, "the service's data directory: cache database and admin socket"),
		config:  fs.String("config", "", "staple serve's configuration: its data_dir, its [fetch] policy, and for a fleet the etcd cluster of [fleet]"),
		fs:      fs,
	}
}

// resolve returns the data directory and the configuration (serve's defaults when no --config is given).
func (t storeTarget) resolve() (dataDir string, cfg *config.Config, err error) {
	dataDir = *t.dataDir
	if *t.config == "" {
		cfg = &config.Config{}
		cfg.SetDefaults()
		return dataDir, cfg, nil
	}
	if cfg, err = config.Load(*t.config); err != nil {
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
// the same engine run here over the cache file (or a fleet's store). close releases what was opened.
func openBackend(ctx context.Context, env Env, target storeTarget, mode access) (admin.Backend, func(), error) {
	dataDir, cfg, err := target.resolve()
	if err != nil {
		return nil, nil, err
	}
	socket := filepath.Join(dataDir, admin.SocketName)
	client := admin.NewClient(socket)
	if err := client.Ping(ctx); err == nil {
		return client, func() {}, nil
	} else if !errors.Is(err, admin.ErrNoService) {
		return nil, nil, fmt.Errorf("the service on %s answered with an error: %w", socket, err)
	}
	if cfg.Fleet.Enabled() {
		// No service here, but the fleet's store answers for every node, running or not.
		fc := cfg.FleetConfig(zerolog.Nop())
		cli, err := fleet.Connect(fc)
		if err != nil {
			return nil, nil, fmt.Errorf("the fleet's etcd %v: %w", fc.Endpoints, err)
		}
		store := fleet.NewStore(cli, fc)
		return runEngine(env, cfg, store, store.Path(), mode, store.ServedBy, func() { cli.Close() })
	}
	path := filepath.Join(dataDir, config.DatabaseName)
	store, err := cache.Open(path, cache.Options{ReadOnly: mode == readCache, Now: env.Now})
	switch {
	case errors.Is(err, cache.ErrLocked):
		return nil, nil, fmt.Errorf("%s is locked by another process and no service answers on %s: is a staple serve starting or stopping? try again", path, socket)
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("no cache at %s (nothing was fetched with this --data-dir yet)", path)
	case err != nil:
		return nil, nil, err
	}
	return runEngine(env, cfg, store, store.Path(), mode, nil, func() { store.Close() })
}

// runEngine starts, over storage, the engine a service runs (configured from cfg's [fetch] table), in manual
// mode: it fetches only what a command asks for. done closes the engine, then calls release.
func runEngine(env Env, cfg *config.Config, storage stapler.Storage, where string, mode access,
	servedBy func(certs.Key) ([]string, error), release func()) (admin.Backend, func(), error) {
	sc := cfg.StaplerConfig(Version(env), env.Now)
	sc.Storage, sc.Manual, sc.Rand = storage, true, env.Rand
	st, err := stapler.New(sc)
	if err == nil {
		err = st.Start()
	}
	if err != nil {
		release()
		return nil, nil, err
	}
	done := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st.Close(ctx)
		release()
	}
	b := &admin.Engine{Stapler: st, ReadOnly: mode == readCache, Database: where, ServedBy: servedBy, Now: env.Now}
	return b, done, nil
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
