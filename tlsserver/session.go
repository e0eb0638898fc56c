package tlsserver

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
)

// sessionMeta is what the server adds to every session it issues (in SessionState.Extra, which crypto/tls
// keeps and ignores), so that it can tell, before crypto/tls does, whether a session will resume.
type sessionMeta struct {
	version   uint16
	suite     uint16
	created   int64 // Unix seconds, by the server's clock
	ems       bool  // TLS 1.2: made with extended master secret
	peerCerts bool  // the client presented certificates
}

var sessionMetaTag = []byte("tlsserver/1\x00")

const sessionMetaLen = 2 + 2 + 8 + 1

func (m sessionMeta) marshal() []byte {
	b := make([]byte, 0, len(sessionMetaTag)+sessionMetaLen)
	b = append(b, sessionMetaTag...)
	b = binary.BigEndian.AppendUint16(b, m.version)
	b = binary.BigEndian.AppendUint16(b, m.suite)
	b = binary.BigEndian.AppendUint64(b, uint64(m.created))
	var flags byte
	if m.ems {
		flags |= 1
	}
	if m.peerCerts {
		flags |= 2
	}
	return append(b, flags)
}

func parseSessionMeta(b []byte) (sessionMeta, bool) {
	rest, ok := bytes.CutPrefix(b, sessionMetaTag)
	if !ok || len(rest) != sessionMetaLen {
		return sessionMeta{}, false
	}
	return sessionMeta{
		version:   binary.BigEndian.Uint16(rest[0:]),
		suite:     binary.BigEndian.Uint16(rest[2:]),
		created:   int64(binary.BigEndian.Uint64(rest[4:])),
		ems:       rest[12]&1 != 0,
		peerCerts: rest[12]&2 != 0,
	}, true
}

// findSessionMeta returns the server's entry among ss.Extra; false for a session the server did not issue.
func findSessionMeta(ss *tls.SessionState) (sessionMeta, bool) {
	for _, e := range ss.Extra {
		if m, ok := parseSessionMeta(e); ok {
			return m, true
		}
	}
	return sessionMeta{}, false
}
