package cache

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"staple/certs"
)

// TestExportedCodecMatchesFile checks that the exported encoders write the committed bbolt records byte for
// byte, so a record moves between the bbolt file and another store unchanged.
func TestExportedCodecMatchesFile(t *testing.T) {
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata", "records", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r, err := DecodeResponse(read("response-revoked.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if enc, err := EncodeResponse(r); err != nil || !bytes.Equal(enc, read("response-revoked.bin")) {
		t.Errorf("EncodeResponse: %v, or bytes differ from the file's record", err)
	}
	c, err := DecodeCert(read("cert-muststaple.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if enc, err := EncodeCert(c); err != nil || !bytes.Equal(enc, read("cert-muststaple.bin")) {
		t.Errorf("EncodeCert: %v, or bytes differ", err)
	}
	k, err := DecodeTicketKeys(read("ticket-keys.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if enc, err := EncodeTicketKeys(k); err != nil || !bytes.Equal(enc, read("ticket-keys.bin")) {
		t.Errorf("EncodeTicketKeys: %v, or bytes differ", err)
	}
	data, expires, err := DecodeSession(read("session.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if enc, err := EncodeSession([]byte("id"), data, expires); err != nil || !bytes.Equal(enc, read("session.bin")) {
		t.Errorf("EncodeSession: %v, or bytes differ", err)
	}
	h, err := DecodeHistory(read("history-two.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if enc := AppendAttempt(AppendAttempt(nil, h[0]), h[1]); !bytes.Equal(enc, read("history-two.bin")) {
		t.Error("AppendAttempt twice differs from the file's history record")
	}
}

func TestExportedCodecRefuses(t *testing.T) {
	if _, err := EncodeResponse(Response{}); err == nil {
		t.Error("EncodeResponse of an empty response")
	}
	if _, err := EncodeResponse(Response{Raw: make([]byte, MaxResponseSize+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("EncodeResponse over the limit: %v, want ErrTooLarge", err)
	}
	if _, err := EncodeCert(Cert{Leaf: []byte{1}}); err == nil {
		t.Error("EncodeCert without an issuer")
	}
	if _, err := EncodeSession(nil, []byte{1}, time.Time{}); err == nil {
		t.Error("EncodeSession with an empty id")
	}
	if _, err := EncodeTicketKeys(TicketKeys{}); err == nil {
		t.Error("EncodeTicketKeys without a current key")
	}
	if _, err := DecodeKey([]byte{1, 2}); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("DecodeKey of 2 bytes: %v, want ErrCorruptRecord", err)
	}
}

func TestAppendAttemptKeepsTheLast(t *testing.T) {
	var rec []byte
	for i := range MaxHistory + 5 {
		rec = AppendAttempt(rec, Attempt{Time: t0.Add(time.Duration(i) * time.Minute), Reason: strings.Repeat("x", 2*maxShortText)})
	}
	h, err := DecodeHistory(rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != MaxHistory || !h[0].Time.Equal(t0.Add(5*time.Minute)) || len(h[0].Reason) != maxShortText {
		t.Errorf("history of %d, first at %s, reason of %d bytes", len(h), h[0].Time, len(h[0].Reason))
	}
}

func TestKeyRoundTrip(t *testing.T) {
	k, err := certs.KeyFromBytes(append(bytes.Repeat([]byte{0xab}, 32), 0x01, 0x02))
	if err != nil {
		t.Fatal(err)
	}
	b := EncodeKey(k)
	if len(b) != KeyLen {
		t.Fatalf("EncodeKey: %d bytes, want %d", len(b), KeyLen)
	}
	if back, err := DecodeKey(b); err != nil || back != k {
		t.Errorf("DecodeKey(EncodeKey(k)) = %v, %v", back, err)
	}
}
