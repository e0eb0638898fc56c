package tlsserver

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestMemorySessionStore(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	m := &MemorySessionStore{Now: func() time.Time { return now }}
	data := []byte("session")
	must(t, m.NewSession(ctx, []byte("a"), data))
	data[0] = 'X' // the store keeps its own copy
	tests := []struct {
		name  string
		after time.Duration
		id    string
		want  []byte
	}{
		{"found", 0, "a", []byte("session")},
		{"unknown id", 0, "b", nil},
		{"just before the TTL", DefaultSessionTimeout - time.Second, "a", []byte("session")},
		{"at the TTL", DefaultSessionTimeout, "a", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := now
			now = now.Add(tt.after)
			defer func() { now = saved }()
			got, err := m.ResumeSession(ctx, []byte(tt.id))
			must(t, err)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("ResumeSession(%q) = %q, want %q", tt.id, got, tt.want)
			}
			if got != nil {
				got[0] = 'Y'
				if again, _ := m.ResumeSession(ctx, []byte(tt.id)); again[0] != 's' {
					t.Error("ResumeSession does not return a copy")
				}
			}
		})
	}

	// Expired sessions are purged as new ones arrive.
	now = now.Add(DefaultSessionTimeout)
	must(t, m.NewSession(ctx, []byte("c"), []byte("x")))
	if m.Len() != 1 {
		t.Errorf("Len() = %d after the first session expired, want 1", m.Len())
	}
	short := &MemorySessionStore{TTL: time.Second, Now: func() time.Time { return now }}
	must(t, short.NewSession(ctx, []byte("a"), []byte("x")))
	now = now.Add(time.Second)
	if got, _ := short.ResumeSession(ctx, []byte("a")); got != nil {
		t.Error("a session outlived its TTL")
	}
}
