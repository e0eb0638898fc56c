package admin

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"staple/certs"
	"staple/stapler"
)

// Engine is the Backend over a stapler in this process: the running service's, or the one the command line
// runs over a store it opened when no service runs. Both answer alike because both are the same engine; the
// Client reaches a service's Engine over the admin socket. Set the fields before the first call.
type Engine struct {
	Stapler *stapler.Stapler
	// ReadOnly refuses Refresh, Remove and Import with ErrReadOnly: an engine over a store opened read-only.
	ReadOnly bool
	// Database says where the engine's state lives (a file path, or etcd's endpoints and prefix), for Stats.
	Database string
	// ServedBy, when set, names the nodes of a fleet that serve a certificate now (fleet.Store.ServedBy).
	ServedBy func(certs.Key) ([]string, error)
	// AddStats, when set, adds to the engine's figures what only a service knows (handshakes, start, version).
	AddStats func(*Stats)
	// Now is the clock that decides whether a response has expired; nil means time.Now.
	Now func() time.Time
}

var _ Backend = (*Engine)(nil)

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Entries lists every certificate the engine knows, in key order.
func (e *Engine) Entries(context.Context) ([]Entry, error) {
	infos := e.Stapler.Entries()
	now := e.now()
	out := make([]Entry, 0, len(infos))
	for _, in := range infos {
		out = append(out, EntryOf(in, now))
	}
	return out, nil
}

// Entry describes the certificate ref selects, with its history and response (ErrNotFound, ErrAmbiguous).
func (e *Engine) Entry(_ context.Context, ref certs.KeyRef) (Detail, error) {
	key, err := e.lookup(ref)
	if err != nil {
		return Detail{}, err
	}
	in, ok := e.Stapler.Entry(key)
	if !ok {
		return Detail{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	d := DetailOf(in, e.now())
	if e.ServedBy != nil {
		d.SetServedBy(e.ServedBy(key))
	}
	return d, nil
}

// FetchTimeout bounds what an operation that fetches (refresh, rm of a served certificate) waits for its
// fetches, whether a service runs it or a command.
const FetchTimeout = 5 * time.Minute

// Refresh fetches now the entry ref selects, or every entry with a certificate when ref is nil, and waits for
// the fetches. It returns the entries afterwards and, when a fetch failed, an error naming each failure: a
// failed refresh is an error whether a service runs or not. A certificate with no responder URL to ask is
// listed and not counted as a failure of a refresh of everything.
func (e *Engine) Refresh(ctx context.Context, ref *certs.KeyRef) ([]Entry, error) {
	if e.ReadOnly {
		return nil, ErrReadOnly
	}
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	var infos []stapler.Info
	var err error
	if ref == nil {
		infos, err = e.Stapler.RefreshAll(ctx)
	} else {
		key, lerr := e.lookup(*ref)
		if lerr != nil {
			return nil, lerr
		}
		var in stapler.Info
		if in, err = e.Stapler.Refresh(ctx, key); in.Key.IsZero() {
			return nil, e.translate(err, *ref) // nothing was asked: no entry to show
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", key, err)
		}
		infos = []stapler.Info{in}
	}
	now := e.now()
	out := make([]Entry, 0, len(infos))
	for _, in := range infos {
		out = append(out, EntryOf(in, now))
	}
	return out, errors.Join(err, notStored(infos))
}

// notStored names the entries whose response or certificate was taken but not written to storage: a
// command with no service loses them when it ends, so it fails either way.
func notStored(infos []stapler.Info) error {
	var errs []error
	for _, in := range infos {
		if !in.Persisted && in.StoreError != "" {
			errs = append(errs, fmt.Errorf("%s: %w: %s", in.Key, stapler.ErrNotStored, in.StoreError))
		}
	}
	return errors.Join(errs...)
}

// Remove forgets the certificate ref selects, or, when a site of the running service serves it, drops its
// response and history and fetches a fresh one, returning its entry after that fetch.
func (e *Engine) Remove(ctx context.Context, ref certs.KeyRef) ([]Entry, error) {
	if e.ReadOnly {
		return nil, ErrReadOnly
	}
	key, err := e.lookup(ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	in, err := e.Stapler.Remove(ctx, key)
	if !in.Watched {
		return nil, e.translate(err, ref)
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", key, err)
	}
	return []Entry{EntryOf(in, e.now())}, errors.Join(err, notStored([]stapler.Info{in}))
}

// Import verifies the response against the certificate given, at now, and hands it to the engine, which
// staples it at once when it is newer than the one held and stores it with its certificate. A response that
// does not verify, or is older than the one held, is ErrBadInput wrapping the reason.
func (e *Engine) Import(_ context.Context, req ImportRequest) (Entry, error) {
	if e.ReadOnly {
		return Entry{}, ErrReadOnly
	}
	chain, err := req.chain()
	if err != nil {
		return Entry{}, err
	}
	in, err := e.Stapler.Import(chain, req.DER)
	switch {
	case errors.Is(err, stapler.ErrNotStored):
		return EntryOf(in, e.now()), err
	case errors.Is(err, stapler.ErrClosed):
		return Entry{}, err
	case err != nil:
		return Entry{}, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	return EntryOf(in, e.now()), nil
}

// chain parses the certificates of an import: the leaf and its issuer, from Chain or Issuer.
func (req ImportRequest) chain() (*certs.Chain, error) {
	bundle, err := certs.ParsePEM(req.Chain, "certificate")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	if len(bundle.Certs) == 0 {
		return nil, fmt.Errorf("%w: no certificate given", ErrBadInput)
	}
	var extra []*x509.Certificate
	if len(req.Issuer) > 0 {
		ib, err := certs.ParsePEM(req.Issuer, "issuer")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
		}
		extra = ib.Certs
	}
	chain, err := certs.NewChain(bundle.Certs, nil, extra)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	if chain.Issuer == nil {
		return nil, fmt.Errorf("%w: the issuer of %s is unknown: give it with --issuer", ErrBadInput, certs.Describe(chain.Leaf))
	}
	return chain, nil
}

// Stats returns the engine's figures, with what AddStats adds.
func (e *Engine) Stats(context.Context) (Stats, error) {
	m := e.Stapler.Metrics()
	st := Stats{
		Entries: m.Entries, Ready: e.Stapler.Ready(), Healthy: true, Fetches: int64(m.Fetches),
		PersistFails: int64(m.PersistFailures), ReadOnly: e.ReadOnly, DatabasePath: e.Database,
	}
	for _, n := range m.Failures {
		st.FetchFailures += int64(n)
	}
	if err := e.Stapler.Healthy(); err != nil {
		st.Healthy, st.Problem = false, err.Error()
	}
	if e.AddStats != nil {
		e.AddStats(&st)
	}
	return st, nil
}

// lookup finds the key ref selects.
func (e *Engine) lookup(ref certs.KeyRef) (certs.Key, error) {
	key, err := e.Stapler.Lookup(ref)
	return key, e.translate(err, ref)
}

// translate gives the engine's errors about ref the API's meaning (ErrNotFound, ErrAmbiguous).
func (e *Engine) translate(err error, ref certs.KeyRef) error {
	switch {
	case errors.Is(err, stapler.ErrNotFound), errors.Is(err, stapler.ErrNotWatched):
		return fmt.Errorf("%w: %s", ErrNotFound, ref)
	case errors.Is(err, stapler.ErrAmbiguous):
		return fmt.Errorf("%w: %w", ErrAmbiguous, err)
	}
	return err
}
