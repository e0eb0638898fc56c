package tlsserver

import (
	"bytes"
	"crypto/sha256"
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
	key       tag   // the ticket key in force when it was issued: SetTicketKeys ends it, store or not
	context   tag   // the SessionIDContext it was issued under
}

// tag is a short one-way digest that names a ticket key or a session-ID context without revealing it.
type tag [8]byte

func tagOf(kind string, b []byte) tag {
	h := sha256.New()
	h.Write([]byte("tlsserver/" + kind + "\x00"))
	h.Write(b)
	return tag(h.Sum(nil))
}

var sessionMetaTag = []byte("tlsserver/2\x00")

const sessionMetaLen = 2 + 2 + 8 + 1 + 8 + 8

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
	b = append(b, flags)
	b = append(b, m.key[:]...)
	return append(b, m.context[:]...)
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
		key:       tag(rest[13:21]),
		context:   tag(rest[21:29]),
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
