package lab

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"staple/atomicfile"
	"staple/ocspwire"
	"staple/responder"
)

// DefaultValidity is how long a signed response is valid (nextUpdate − thisUpdate) unless told otherwise.
const DefaultValidity = time.Hour

// ErrSignerNotAuthorized is returned by NewSource for a signer that clients would reject: neither the issuer
// nor a certificate the issuer signed with the OCSPSigning extended key usage (RFC 6960 §4.2.2.2).
var ErrSignerNotAuthorized = errors.New("lab: signer is not authorized by the issuer")

// SourceConfig says what a Source answers for and how it signs.
type SourceConfig struct {
	// IndexFile is the OpenSSL index.txt the answers come from. Required.
	IndexFile string
	// Issuer is the CA whose certificates are answered for; CertIDs of any other issuer get unauthorized.
	// Required.
	Issuer *x509.Certificate
	// Signer signs the responses: a delegated responder certificate issued by Issuer, embedded in every
	// response, or nil for the issuer itself (nothing embedded).
	Signer *x509.Certificate
	// Key is the signer's private key. Required.
	Key crypto.Signer
	// Validity is nextUpdate − thisUpdate; zero means DefaultValidity. Pre-signed responses are re-signed
	// once half of it has passed.
	Validity time.Duration
	// ByKey makes the ResponderID the key hash instead of the signer's name.
	ByKey bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives index reloads and their failures; the zero Logger logs nothing.
	Log zerolog.Logger
}

// SourceConfig returns the configuration of a Source answering for the lab with its delegated signer.
func (l *Lab) SourceConfig() SourceConfig {
	return SourceConfig{IndexFile: l.Path(IndexFile), Issuer: l.CA, Signer: l.Signer, Key: l.SignerKey, Now: l.Now}
}

// LoadSourceConfig loads the files of an existing OpenSSL CA, as `openssl ocsp -index F -CA F -rsigner F
// -rkey F` takes them: index.txt, the CA certificate, the signer certificate ("" when the CA signs its own
// responses) and the signer's key (may be the same file as the signer certificate).
func LoadSourceConfig(indexFile, caFile, signerFile, keyFile string) (SourceConfig, error) {
	ca, _, err := loadCert(caFile, "")
	if err != nil {
		return SourceConfig{}, err
	}
	cfg := SourceConfig{IndexFile: indexFile, Issuer: ca}
	if signerFile == "" {
		signerFile = caFile
	}
	cfg.Signer, cfg.Key, err = loadCert(signerFile, keyFile)
	if err != nil {
		return SourceConfig{}, err
	}
	return cfg, nil
}

// Source is a responder.Source that signs answers from an OpenSSL index.txt: V rows are good, R rows revoked
// (with their reason, hold instruction and invalidity date as openssl ocsp gives them), E rows and serials
// not in the index unknown, and CertIDs of another issuer unauthorized.
//
// A request for one certificate without a nonce (RFC 5019, what every stapler sends) is answered from a
// response pre-signed for that serial and CertID hash, re-signed when half its validity has passed or when
// the serial's row changed. Before each answer the Source stats index.txt (inode, size, mtime) and reloads it
// when it changed, so the first request after a revocation already says revoked; an index that no longer
// parses is logged and the previous one kept. Requests with a nonce or for several certificates are signed
// fresh, the nonce echoed. Request.Fault kinds that sign (expired, not-yet-valid, no-next-update,
// wrong-signer, bad-signature, wrong-serial, wrong-nonce) are signed fresh, wrongly.
//
// A Source is safe for concurrent use.
type Source struct {
	cfg      SourceConfig
	signer   *x509.Certificate
	certs    []*x509.Certificate // embedded in responses
	validity time.Duration
	ids      map[crypto.Hash]ocspwire.CertID // the issuer's CertID per hash, without a serial

	rogue    *x509.Certificate // the wrong-signer fault's: same name as the signer, a key nobody authorized
	rogueKey crypto.Signer

	state    atomic.Pointer[indexState]
	reloadMu sync.Mutex
	badInfo  os.FileInfo // the index file that failed to parse last; guarded by reloadMu

	mu    sync.RWMutex
	cache map[cacheKey]*presigned
	// fillMu lets one goroutine at a time sign into the cache, so a burst for one serial signs once.
	fillMu sync.Mutex
}

type indexState struct {
	info os.FileInfo
	rows map[string]Entry // by responder.SerialKey
}

type cacheKey struct {
	hash   crypto.Hash
	serial string
}

type presigned struct {
	id        ocspwire.CertID
	row       Entry // the row it was signed from
	resp      *responder.Response
	refreshAt time.Time
}

// NewSource checks cfg, loads the index and returns a Source. Nothing is signed until asked: call Presign to
// sign every row ahead of the first request.
func NewSource(cfg SourceConfig) (*Source, error) {
	if cfg.IndexFile == "" || cfg.Issuer == nil || cfg.Key == nil {
		return nil, errors.New("lab: a Source needs an index file, an issuer and a key")
	}
	s := &Source{cfg: cfg, signer: cfg.Signer, validity: cfg.Validity, cache: make(map[cacheKey]*presigned)}
	if s.validity == 0 {
		s.validity = DefaultValidity
	}
	if s.validity < 2*time.Second {
		return nil, fmt.Errorf("lab: validity %v is too short (at least 2s)", s.validity)
	}
	if s.signer == nil {
		s.signer = cfg.Issuer
	}
	if err := checkSigner(cfg.Issuer, s.signer, cfg.Key); err != nil {
		return nil, err
	}
	if !bytes.Equal(s.signer.Raw, cfg.Issuer.Raw) {
		s.certs = []*x509.Certificate{s.signer}
	}
	s.ids = make(map[crypto.Hash]ocspwire.CertID)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		id, err := ocspwire.NewCertID(cfg.Issuer, nil, h)
		if err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		s.ids[h] = id
	}
	if err := s.makeRogue(); err != nil {
		return nil, err
	}
	info, err := os.Stat(cfg.IndexFile)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	st, err := loadIndex(cfg.IndexFile, info)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	return s, nil
}

func checkSigner(issuer, signer *x509.Certificate, key crypto.Signer) error {
	pub, ok := signer.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return fmt.Errorf("lab: the signing key does not belong to %q", signer.Subject)
	}
	if _, err := ocspwire.SchemeFor(key.Public(), 0, 0); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if bytes.Equal(signer.Raw, issuer.Raw) {
		return nil
	}
	if err := signer.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("%w: %q was not issued by %q", ErrSignerNotAuthorized, signer.Subject, issuer.Subject)
	}
	if !slices.Contains(signer.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return fmt.Errorf("%w: %q lacks the OCSPSigning extended key usage", ErrSignerNotAuthorized, signer.Subject)
	}
	return nil
}

// makeRogue makes the wrong-signer fault's certificate: self-signed, with the real signer's name and the
// OCSPSigning usage, so only a client that checks who issued the signer rejects it.
func (s *Source) makeRogue() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	now := s.now()
	tmpl := &x509.Certificate{
		Subject:     s.signer.Subject,
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.AddDate(10, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
	}
	s.rogue, err = createCert(tmpl, tmpl, key.Public(), key)
	s.rogueKey = key
	return err
}

func (s *Source) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Len returns the number of serials in the index as last loaded.
func (s *Source) Len() int { return len(s.state.Load().rows) }

func loadIndex(path string, info os.FileInfo) (*indexState, error) {
	data, err := atomicfile.Read(path, maxIndexFile)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	entries, err := ParseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	rows := make(map[string]Entry, len(entries))
	for _, e := range entries {
		key := responder.SerialKey(e.Serial)
		// A serial twice (hand-edited, or two CAs' rows merged): a revoked row wins, else the later one.
		if old, ok := rows[key]; ok && old.Status == Revoked && e.Status != Revoked {
			continue
		}
		rows[key] = e
	}
	return &indexState{info: info, rows: rows}, nil
}

func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// current returns the index to answer from, reloading it first when the file changed.
func (s *Source) current() *indexState {
	st := s.state.Load()
	info, err := os.Stat(s.cfg.IndexFile)
	if err != nil || sameFile(st.info, info) {
		return st // gone for a moment (an editor's rename) or unchanged: answer from what we have
	}
	return s.reload()
}

func (s *Source) reload() *indexState {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.state.Load()
	info, err := os.Stat(s.cfg.IndexFile)
	if err != nil || sameFile(old.info, info) || sameFile(s.badInfo, info) {
		return old
	}
	st, err := loadIndex(s.cfg.IndexFile, info)
	if err != nil {
		s.badInfo = info
		s.cfg.Log.Error().Err(err).Msg("index.txt changed but does not parse: answering from the previous one")
		return old
	}
	s.badInfo = nil
	s.state.Store(st)
	resigned := s.resignChanged(st)
	s.cfg.Log.Info().Int("rows", len(st.rows)).Int("resigned", resigned).Msg("index.txt reloaded")
	return st
}

// resignChanged re-signs the pre-signed responses whose row changed in st and drops those whose serial left
// the index. It returns how many it re-signed.
func (s *Source) resignChanged(st *indexState) int {
	var stale []*presigned
	s.mu.Lock()
	for k, p := range s.cache {
		row, ok := st.rows[k.serial]
		switch {
		case !ok:
			delete(s.cache, k)
		case !row.Equal(p.row):
			stale = append(stale, p)
		}
	}
	s.mu.Unlock()
	now := s.now()
	n := 0
	for _, p := range stale {
		if _, err := s.fill(st, p.id, now); err == nil {
			n++
		}
	}
	return n
}

// Presign signs a SHA-1 response (the RFC 5019 default) for every serial in the index, so that the first
// request for each is already answered from memory. It returns how many it signed.
func (s *Source) Presign(ctx context.Context) (int, error) {
	st := s.current()
	now := s.now()
	n := 0
	for _, row := range st.rows {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		id := s.ids[crypto.SHA1]
		id.Serial = row.Serial
		if _, err := s.fill(st, id, now); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Response answers req (see Source).
func (s *Source) Response(_ context.Context, req *responder.Request) (*responder.Response, error) {
	for _, id := range req.CertIDs {
		if !s.ours(id) {
			return nil, fmt.Errorf("%w: serial %s of another issuer", responder.ErrUnauthorized, responder.SerialKey(id.Serial))
		}
	}
	st := s.current()
	now := s.now()
	if len(req.CertIDs) == 1 && req.Nonce == nil && req.Fault.IsZero() {
		return s.presignedResponse(st, req.CertIDs[0], now)
	}
	return s.signFresh(st, req, now)
}

func (s *Source) ours(id ocspwire.CertID) bool {
	mine, ok := s.ids[id.Hash]
	return ok && mine.SameIssuer(id)
}

func (s *Source) presignedResponse(st *indexState, id ocspwire.CertID, now time.Time) (*responder.Response, error) {
	key := cacheKey{id.Hash, responder.SerialKey(id.Serial)}
	row, known := st.rows[key.serial]
	if !known {
		// Not cached: a client asking for random serials must not grow memory.
		return s.signFresh(st, &responder.Request{Request: ocspwire.Request{CertIDs: []ocspwire.CertID{id}}}, now)
	}
	s.mu.RLock()
	p := s.cache[key]
	s.mu.RUnlock()
	if p.fresh(row, now) {
		return p.resp, nil
	}
	return s.fill(st, id, now)
}

func (p *presigned) fresh(row Entry, now time.Time) bool {
	return p != nil && now.Before(p.refreshAt) && !now.Before(p.resp.ThisUpdate) && p.row.Equal(row)
}

// fill signs the response for id from st into the cache, unless another goroutine just did.
func (s *Source) fill(st *indexState, id ocspwire.CertID, now time.Time) (*responder.Response, error) {
	key := cacheKey{id.Hash, responder.SerialKey(id.Serial)}
	row := st.rows[key.serial]
	s.fillMu.Lock()
	defer s.fillMu.Unlock()
	s.mu.RLock()
	p := s.cache[key]
	s.mu.RUnlock()
	if p.fresh(row, now) {
		return p.resp, nil
	}
	thisUpdate := now.UTC().Truncate(time.Second)
	nextUpdate := thisUpdate.Add(s.validity)
	data := ocspwire.ResponseData{ProducedAt: thisUpdate,
		Responses: []ocspwire.SingleResponse{singleFor(id, row, true, thisUpdate, nextUpdate)}}
	raw, err := s.sign(data, s.signer, ocspwire.SignOptions{Key: s.cfg.Key, Certs: s.certs})
	if err != nil {
		return nil, err
	}
	p = &presigned{id: id, row: row, resp: responder.NewResponse(raw, thisUpdate, nextUpdate),
		refreshAt: thisUpdate.Add(s.validity / 2)}
	s.mu.Lock()
	s.cache[key] = p
	s.mu.Unlock()
	return p.resp, nil
}

// singleFor answers id from row: V good, R revoked (with the invalidityDate and holdInstructionCode
// singleExtensions openssl ocsp writes), E and absent rows unknown.
func singleFor(id ocspwire.CertID, row Entry, known bool, thisUpdate, nextUpdate time.Time) ocspwire.SingleResponse {
	sr := ocspwire.SingleResponse{CertID: id, Status: ocspwire.Unknown, Reason: ocspwire.ReasonNone, ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	if !known {
		return sr
	}
	switch row.Status {
	case Valid:
		sr.Status = ocspwire.Good
	case Revoked:
		sr.Status, sr.RevokedAt, sr.Reason = ocspwire.Revoked, row.RevokedAt, row.Reason
		if !row.InvalidityDate.IsZero() {
			sr.Extensions = append(sr.Extensions, ocspwire.InvalidityDateExtension(row.InvalidityDate))
		}
		if row.HoldInstruction != nil {
			sr.Extensions = append(sr.Extensions, ocspwire.HoldInstructionExtension(row.HoldInstruction))
		}
	}
	return sr
}

// sign signs data as signer, named by name or by key as the configuration says.
func (s *Source) sign(data ocspwire.ResponseData, signer *x509.Certificate, o ocspwire.SignOptions) ([]byte, error) {
	var err error
	if data.ResponderID, err = ocspwire.NewResponderID(signer, s.cfg.ByKey); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	raw, err := ocspwire.Sign(data, o)
	if err != nil {
		return nil, fmt.Errorf("lab: signing the response: %w", err)
	}
	return raw, nil
}

// notYetValidBy is how far in the future the not-yet-valid fault puts thisUpdate: beyond any client's skew.
const notYetValidBy = time.Hour

// signFresh signs a response for this request alone: several certificates, a nonce, or a fault.
func (s *Source) signFresh(st *indexState, req *responder.Request, now time.Time) (*responder.Response, error) {
	produced := now.UTC().Truncate(time.Second)
	thisUpdate, nextUpdate := produced, produced.Add(s.validity)
	signer, key, certs := s.signer, s.cfg.Key, s.certs
	var exts []pkix.Extension
	if req.Nonce != nil {
		exts = []pkix.Extension{{Id: ocspwire.OIDNonce, Value: req.Nonce}} // echoed verbatim
	}
	switch req.Fault.Kind {
	case "", responder.FaultBadSignature, responder.FaultWrongSerial:
	case responder.FaultExpired:
		thisUpdate, nextUpdate = produced.Add(-2*s.validity), produced.Add(-s.validity)
		produced = thisUpdate
	case responder.FaultNotYetValid:
		thisUpdate = produced.Add(notYetValidBy)
		nextUpdate = thisUpdate.Add(s.validity)
	case responder.FaultNoNextUpdate:
		nextUpdate = time.Time{}
	case responder.FaultWrongSigner:
		signer, key, certs = s.rogue, s.rogueKey, []*x509.Certificate{s.rogue}
	case responder.FaultWrongNonce:
		nonce := make([]byte, 16) // as clients send
		rand.Read(nonce)
		exts = []pkix.Extension{ocspwire.NonceExtension(nonce)}
	default:
		return nil, fmt.Errorf("%w: %s", responder.ErrUnsupportedFault, req.Fault.Kind)
	}
	data := ocspwire.ResponseData{ProducedAt: produced, Extensions: exts}
	for _, id := range req.CertIDs {
		row, known := st.rows[responder.SerialKey(id.Serial)]
		if req.Fault.Kind == responder.FaultWrongSerial {
			id.Serial = new(big.Int).Add(id.Serial, big.NewInt(1))
		}
		data.Responses = append(data.Responses, singleFor(id, row, known, thisUpdate, nextUpdate))
	}
	raw, err := s.sign(data, signer, ocspwire.SignOptions{Key: key, Certs: certs,
		CorruptSignature: req.Fault.Kind == responder.FaultBadSignature})
	if err != nil {
		return nil, err
	}
	return responder.NewResponse(raw, thisUpdate, nextUpdate), nil
}
