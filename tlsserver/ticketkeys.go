package tlsserver

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"time"
)

// TicketKeyLen is the length of Node's session ticket keys: a 16-byte name, a 16-byte HMAC secret and a
// 16-byte AES key. Go derives its own ticket keys from all 48 bytes.
const TicketKeyLen = 48

// TicketKeys are the server's session ticket keys, as saved to and loaded from a TicketKeyStore.
//
// A TicketKeys value holds secrets: never log it.
type TicketKeys struct {
	// Current encrypts new tickets and decrypts presented ones. TicketKeyLen bytes.
	Current []byte
	// Previous, if not nil, only decrypts: tickets issued before the last RotateTicketKeys still resume.
	// nil after SetTicketKeys, which, as in Node, invalidates every earlier ticket.
	Previous []byte
	// Created is when Current was made or set, by the server's clock (TLSConfig.Time).
	Created time.Time
}

// TicketKeyStore persists the ticket keys so that resumption survives a restart and several servers can
// share keys. Package cache provides the bbolt-backed one. Implementations must be safe for concurrent use.
type TicketKeyStore interface {
	// LoadTicketKeys returns the saved keys, or a zero TicketKeys (Current nil) when none are saved.
	LoadTicketKeys() (TicketKeys, error)
	// SaveTicketKeys replaces the saved keys.
	SaveTicketKeys(TicketKeys) error
}

// ticketKeySet is one immutable generation of keys, swapped whole; cfg carries the derived crypto/tls keys
// and encrypts and decrypts tickets (Config.EncryptTicket/DecryptTicket use the Config's own keys).
type ticketKeySet struct {
	keys          TicketKeys
	cfg           *tls.Config
	current, prev tag // name the keys in sessions (prev is zero without a previous key)
}

func newTicketKeySet(k TicketKeys, rnd io.Reader) *ticketKeySet {
	seeds := [][32]byte{sha256.Sum256(k.Current)}
	if k.Previous != nil {
		seeds = append(seeds, sha256.Sum256(k.Previous))
	}
	cfg := &tls.Config{Rand: rnd}
	cfg.SetSessionTicketKeys(seeds)
	ks := &ticketKeySet{keys: k, cfg: cfg, current: tagOf("ticket key", k.Current)}
	if k.Previous != nil {
		ks.prev = tagOf("ticket key", k.Previous)
	}
	return ks
}

// issued reports whether a session named t was issued under these keys.
func (ks *ticketKeySet) issued(t tag) bool {
	return t == ks.current || ks.keys.Previous != nil && t == ks.prev
}

// SetTicketKeys replaces the session ticket keys with keys, which must be TicketKeyLen (48) bytes. As in
// Node, it affects connections that start their handshake afterwards, and sessions issued under earlier keys
// no longer resume, whether their ticket holds them or a session store does (use RotateTicketKeys to keep the
// previous key). With a TicketKeyStore,
// the keys are saved; a save error is returned, wrapped in ErrTicketKeyStore, but the keys are in use.
func (s *Server) SetTicketKeys(keys []byte) error {
	if len(keys) != TicketKeyLen {
		return fmt.Errorf("%w: got %d", ErrTicketKeysLength, len(keys))
	}
	return s.setTicketKeys(TicketKeys{Current: bytes.Clone(keys), Created: s.now()})
}

// GetTicketKeys returns a copy of the current session ticket keys (48 bytes). Unless set, loaded from the
// TicketKeyStore or rotated, they are 48 random bytes chosen the first time they are needed, as in Node.
// It returns nil only if the TicketKeyStore fails to load; Listen and Serve report that error.
func (s *Server) GetTicketKeys() []byte {
	ks, err := s.ticketKeySet()
	if err != nil {
		return nil
	}
	return bytes.Clone(ks.keys.Current)
}

// RotateTicketKeys makes 48 fresh random bytes the current key and keeps the current one as the previous
// key, for decryption only, so that tickets issued before the rotation still resume until the next one.
// It is for a scheduled rotation (the service runs it from a cron schedule); with a TicketKeyStore the new
// keys are saved, and a save error is returned wrapped in ErrTicketKeyStore with the new keys in use.
func (s *Server) RotateTicketKeys() error {
	old, err := s.ticketKeySet()
	if err != nil {
		return err
	}
	cur, err := s.randomKey()
	if err != nil {
		return err
	}
	return s.setTicketKeys(TicketKeys{Current: cur, Previous: old.keys.Current, Created: s.now()})
}

// UseTicketKeys puts keys that are already at rest into use: the TicketKeyStore's own, changed elsewhere (in
// a fleet, another server rotated the shared keys). Current encrypts new tickets; Previous, if not nil,
// still decrypts. Unlike SetTicketKeys and RotateTicketKeys it saves nothing. Each key must be TicketKeyLen
// bytes (ErrTicketKeysLength). It affects connections that start their handshake afterwards.
func (s *Server) UseTicketKeys(k TicketKeys) error {
	if len(k.Current) != TicketKeyLen || k.Previous != nil && len(k.Previous) != TicketKeyLen {
		return fmt.Errorf("%w: current %d, previous %d", ErrTicketKeysLength, len(k.Current), len(k.Previous))
	}
	k = TicketKeys{Current: bytes.Clone(k.Current), Previous: bytes.Clone(k.Previous), Created: k.Created}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	s.keys.Store(newTicketKeySet(k, s.rand()))
	return nil
}

func (s *Server) setTicketKeys(k TicketKeys) error {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	s.keys.Store(newTicketKeySet(k, s.rand()))
	if s.TicketKeyStore != nil {
		if err := s.TicketKeyStore.SaveTicketKeys(k); err != nil {
			return fmt.Errorf("%w: save: %w", ErrTicketKeyStore, err)
		}
	}
	return nil
}

// ticketKeySet returns the keys in use, loading them from the TicketKeyStore, or making random ones, the
// first time.
func (s *Server) ticketKeySet() (*ticketKeySet, error) {
	if ks := s.keys.Load(); ks != nil {
		return ks, nil
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if ks := s.keys.Load(); ks != nil {
		return ks, nil
	}
	var k TicketKeys
	if s.TicketKeyStore != nil {
		var err error
		if k, err = s.TicketKeyStore.LoadTicketKeys(); err != nil {
			return nil, fmt.Errorf("%w: load: %w", ErrTicketKeyStore, err)
		}
		if k.Current != nil && (len(k.Current) != TicketKeyLen || k.Previous != nil && len(k.Previous) != TicketKeyLen) {
			return nil, fmt.Errorf("%w: load: %w", ErrTicketKeyStore, ErrTicketKeysLength)
		}
	}
	if k.Current == nil {
		cur, err := s.randomKey()
		if err != nil {
			return nil, err
		}
		k = TicketKeys{Current: cur, Created: s.now()}
		if s.TicketKeyStore != nil {
			if err := s.TicketKeyStore.SaveTicketKeys(k); err != nil {
				return nil, fmt.Errorf("%w: save: %w", ErrTicketKeyStore, err)
			}
		}
	}
	ks := newTicketKeySet(k, s.rand())
	s.keys.Store(ks)
	return ks, nil
}

func (s *Server) randomKey() ([]byte, error) {
	k := make([]byte, TicketKeyLen)
	if _, err := io.ReadFull(s.rand(), k); err != nil {
		return nil, fmt.Errorf("tlsserver: ticket keys: %w", err)
	}
	return k, nil
}

func (s *Server) rand() io.Reader {
	if s.TLSConfig != nil && s.TLSConfig.Rand != nil {
		return s.TLSConfig.Rand
	}
	return rand.Reader
}

func (s *Server) now() time.Time {
	if s.TLSConfig != nil && s.TLSConfig.Time != nil {
		return s.TLSConfig.Time()
	}
	return time.Now()
}
