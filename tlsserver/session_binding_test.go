package tlsserver

import (
	"bytes"
	"crypto/tls"
	"testing"

	"staple/internal/testpki"
)

// TestSessionBinding checks that a session resumes only under the ticket keys it was issued under (or the
// previous ones after one rotation) and the same SessionIDContext, with tickets and with a session store
// alike: in Node, setTicketKeys ends every earlier ticket and sessionIdContext keeps sessions apart. Two
// servers share the first keys and, in store mode, the store: a session made on A is offered to B.
func TestSessionBinding(t *testing.T) {
	f := newFixture(t, testpki.ECDSAP256)
	k1, k2 := bytes.Repeat([]byte{1}, 48), bytes.Repeat([]byte{2}, 48)
	tests := []struct {
		name    string
		setup   func(t *testing.T, b *Server)
		resumes bool
	}{
		{"same keys, same context", func(*testing.T, *Server) {}, true},
		{"SetTicketKeys", func(t *testing.T, b *Server) { must(t, b.SetTicketKeys(k2)) }, false},
		{"SetTicketKeys, then back", func(t *testing.T, b *Server) { must(t, b.SetTicketKeys(k2)); must(t, b.SetTicketKeys(k1)) }, true},
		{"one rotation", func(t *testing.T, b *Server) { must(t, b.RotateTicketKeys()) }, true},
		{"two rotations", func(t *testing.T, b *Server) { must(t, b.RotateTicketKeys()); must(t, b.RotateTicketKeys()) }, false},
		{"other SessionIDContext", func(_ *testing.T, b *Server) { b.SessionIDContext = "b" }, false},
	}
	for _, mode := range []string{"tickets", "store"} {
		for _, tt := range tests {
			for _, v := range versions {
				t.Run(mode+"/"+tt.name+"/"+versionName(v), func(t *testing.T) {
					store := &MemorySessionStore{}
					server := func() *Server {
						s := &Server{SecureContext: f.context(f.leaf)}
						if mode == "store" {
							s.NewSession, s.ResumeSession = store.NewSession, store.ResumeSession
						}
						must(t, s.SetTicketKeys(k1))
						return s
					}
					a, b := server(), server()
					tt.setup(t, b)
					addrA, _ := start(t, a)
					addrB, _ := start(t, b)
					cfg := f.goConfig(v)
					cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4) // by server name: A's session goes to B
					must(t, goDial(t, addrA, cfg).err)
					g := goDial(t, addrB, cfg)
					must(t, g.err)
					if g.state.DidResume != tt.resumes {
						t.Errorf("resumed on the other server: %v, want %v", g.state.DidResume, tt.resumes)
					}
				})
			}
		}
	}
}
