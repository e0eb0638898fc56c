package service

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"staple/admin"
	"staple/cache"
	"staple/certs"
	"staple/stapler"
)

// liveBackend serves the admin API from the running stapler: what it lists is what the TLS server staples.
type liveBackend struct{ s *Service }

var _ admin.Backend = (*liveBackend)(nil)

// entries lists every certificate the stapler knows, as the status page, the metrics and the API show them.
func (s *Service) entries() []admin.Entry {
	infos := s.stapler.Entries()
	out := make([]admin.Entry, 0, len(infos))
	set := s.sites.Load()
	for _, in := range infos {
		out = append(out, s.entryFrom(in, set))
	}
	return out
}

// entryFrom describes one stapler entry: what the cache holds, with the stapler's live state on top.
func (s *Service) entryFrom(in stapler.Info, set *siteSet) admin.Entry {
	var c *cache.Cert
	if in.Leaf != nil {
		c = &cache.Cert{Leaf: in.Leaf.Raw, URLs: in.URLs, MustStaple: in.MustStaple}
	}
	e := admin.EntryFrom(in.Key, c, in.Response, nil, s.now())
	e.Watched = in.Watched
	e.NextRefresh = in.NextRefresh
	e.Failures = in.Failures
	e.LastError = ""
	if in.LastError != "" {
		e.LastError = in.LastReason + ": " + in.LastError
	}
	if set != nil {
		if sites := set.byKey[in.Key]; len(sites) > 0 {
			e.CertFile = sites[0].cfg.Cert
		}
	}
	return e
}

// find returns the one entry ref selects.
func (b *liveBackend) find(ref certs.KeyRef) (stapler.Info, error) {
	var found []stapler.Info
	for _, in := range b.s.stapler.Entries() {
		if ref.Matches(in.Key) {
			found = append(found, in)
		}
	}
	switch len(found) {
	case 0:
		return stapler.Info{}, fmt.Errorf("%w: %x:%X", admin.ErrNotFound, ref.IssuerPrefix, ref.Serial)
	case 1:
		return found[0], nil
	}
	return stapler.Info{}, fmt.Errorf("%w (%d match)", admin.ErrAmbiguous, len(found))
}

func (b *liveBackend) Entries(context.Context) ([]admin.Entry, error) { return b.s.entries(), nil }

func (b *liveBackend) Entry(_ context.Context, ref certs.KeyRef) (admin.Detail, error) {
	in, err := b.find(ref)
	if err != nil {
		return admin.Detail{}, err
	}
	in, ok := b.s.stapler.Entry(in.Key) // with the history
	if !ok {
		return admin.Detail{}, fmt.Errorf("%w: %s", admin.ErrNotFound, in.Key)
	}
	d := admin.Detail{Entry: b.s.entryFrom(in, b.s.sites.Load())}
	for _, a := range in.History {
		d.History = append(d.History, admin.AttemptFrom(a))
	}
	if in.Response != nil {
		d.DER = in.Response.Raw
	}
	if in.Leaf != nil {
		d.Leaf = in.Leaf.Raw
	}
	if in.Issuer != nil {
		d.Issuer = in.Issuer.Raw
	}
	if b.s.fleet != nil {
		d.SetServedBy(b.s.fleet.store.ServedBy(in.Key))
	}
	return d, nil
}

// Refresh fetches the selected entry now, or every entry that can be fetched when ref is nil, and waits for
// the outcomes. An entry whose fetch failed is returned with its error in LastError; the call fails only
// when nothing could be asked.
func (b *liveBackend) Refresh(ctx context.Context, ref *certs.KeyRef) ([]admin.Entry, error) {
	var infos []stapler.Info
	if ref != nil {
		in, err := b.find(*ref)
		if err != nil {
			return nil, err
		}
		in, err = b.s.stapler.Refresh(ctx, in.Key)
		if err != nil && in.Key == (certs.Key{}) {
			return nil, err // nothing was asked (removed, no certificate, closed) or ctx ended: no entry to show
		}
		infos = []stapler.Info{in}
	} else {
		var err error
		if infos, err = b.s.stapler.RefreshAll(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]admin.Entry, 0, len(infos))
	set := b.s.sites.Load()
	for _, in := range infos {
		out = append(out, b.s.entryFrom(in, set))
	}
	slices.SortFunc(out, func(a, b admin.Entry) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (b *liveBackend) Remove(_ context.Context, ref certs.KeyRef) error {
	in, err := b.find(ref)
	if err != nil {
		return err
	}
	return b.s.stapler.Remove(in.Key)
}

// Import verifies a response against the certificate given and hands it to the stapler, which staples it at
// once when it is newer than the one held.
func (b *liveBackend) Import(_ context.Context, req admin.ImportRequest) (admin.Entry, error) {
	_, leaf, issuer, resp, err := admin.VerifyImport(req, b.s.now())
	if err != nil {
		return admin.Entry{}, err
	}
	in, err := b.s.stapler.Import(leaf, issuer, resp)
	if err != nil {
		return admin.Entry{}, fmt.Errorf("%w: %w", admin.ErrBadInput, err)
	}
	return b.s.entryFrom(in, b.s.sites.Load()), nil
}

func (b *liveBackend) Stats(context.Context) (admin.Stats, error) {
	m := b.s.stapler.Metrics()
	st := admin.Stats{
		Entries:        m.Entries,
		Ready:          b.s.stapler.Ready(),
		Healthy:        true,
		Started:        b.s.started,
		Fetches:        int64(m.Fetches),
		PersistFails:   int64(m.PersistFailures),
		Handshakes:     b.s.handshakes.Load(),
		Stapled:        b.s.stapled.Load(),
		DatabasePath:   b.s.storagePath,
		ServiceVersion: b.s.opts.Version,
	}
	for _, n := range m.Failures {
		st.FetchFailures += int64(n)
	}
	if err := b.s.stapler.Healthy(); err != nil {
		st.Healthy, st.Problem = false, err.Error()
	}
	return st, nil
}
