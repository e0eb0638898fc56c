package cache

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"staple/ocspwire"
)

var update = flag.Bool("update", false, "rewrite the golden record files under testdata/records")

// goldenRecords are one record of each kind with every field set. Their encodings are committed under
// testdata/records: a change to the on-disk format shows up as a diff there (and needs a new record version),
// and the files seed FuzzDecodeRecord.
func goldenRecords() map[string][]byte {
	revoked := Response{
		Raw: []byte{0x30, 0x03, 0x0a, 0x01, 0x00}, Status: ocspwire.Revoked,
		ProducedAt: t0, ThisUpdate: t0, NextUpdate: t0.Add(96 * time.Hour), Expires: t0.Add(96 * time.Hour),
		RefreshAt: t0.Add(48 * time.Hour), RevokedAt: time.Unix(0, 0).UTC(), RevocationReason: 1, HasReason: true,
		Fetched: t0.Add(1500 * time.Millisecond), URL: "http://ocsp.example.test/", ETag: `"v1"`,
		LastModified: "Sun, 01 Mar 2026 12:00:00 GMT",
	}
	noNext := Response{Raw: []byte{0x30, 0x00}, Status: ocspwire.Good, ThisUpdate: t0, Expires: t0.Add(time.Hour)}
	return map[string][]byte{
		"response-revoked.bin":       encodeResponse(revoked),
		"response-no-nextupdate.bin": encodeResponse(noNext),
		"cert-muststaple.bin": encodeCert(Cert{Leaf: []byte("leaf DER"), Issuer: []byte("issuer DER"),
			URLs: []string{"http://ocsp.example.test/", "http://backup.example.test/"}, MustStaple: true, Added: t0}),
		"history-two.bin": encodeHistory([]Attempt{
			{Time: t0, Reason: "http_503", Error: "ocspfetch: http://ocsp.example.test/ answered HTTP 503",
				URL: "http://ocsp.example.test/", Latency: 40 * time.Millisecond},
			{Time: t0.Add(time.Minute), Reason: "ok", Status: ocspwire.Good, URL: "http://ocsp.example.test/", Latency: 12 * time.Millisecond},
		}),
		"session.bin":     encodeSession([]byte("opaque session state"), t0.Add(5*time.Minute)),
		"ticket-keys.bin": encodeTicketKeys(TicketKeys{Current: bytes.Repeat([]byte{7}, 48), Previous: bytes.Repeat([]byte{8}, 48), Rotated: t0}),
	}
}

func TestGoldenRecords(t *testing.T) {
	dir := filepath.Join("testdata", "records")
	for name, enc := range goldenRecords() {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if *update {
				os.MkdirAll(dir, 0o755)
				if err := os.WriteFile(path, enc, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./cache -run TestGoldenRecords -update)", err)
			}
			if !bytes.Equal(enc, want) {
				t.Errorf("the encoding of %s changed: bump recordVersion and keep a decoder for the old one", name)
			}
			if _, err := decodeAny(name, want); err != nil {
				t.Errorf("the committed record does not decode: %v", err)
			}
		})
	}
}

// TestLegacyRecords decodes the records an earlier staple wrote (version 1, no checksum, under
// testdata/records/v1) to the same values as the current ones.
func TestLegacyRecords(t *testing.T) {
	for name := range goldenRecords() {
		t.Run(name, func(t *testing.T) {
			old, err := os.ReadFile(filepath.Join("testdata", "records", "v1", name))
			if err != nil {
				t.Fatal(err)
			}
			cur, _ := os.ReadFile(filepath.Join("testdata", "records", name))
			a, err := decodeAny(name, old)
			if err != nil {
				t.Fatalf("a version 1 record does not decode: %v", err)
			}
			b, _ := decodeAny(name, cur)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("version 1 decodes to %+v, version 2 to %+v", a, b)
			}
		})
	}
}

// TestRecordChecksum flips every bit of every golden record, one at a time: each flip is refused as a
// corrupt record, none decodes to another value.
func TestRecordChecksum(t *testing.T) {
	for name, enc := range goldenRecords() {
		for i := 1; i < len(enc); i++ { // byte 0 is the version: flipping it is a different error
			for bit := range 8 {
				b := bytes.Clone(enc)
				b[i] ^= 1 << bit
				if v, err := decodeAny(name, b); !errors.Is(err, ErrCorruptRecord) {
					t.Fatalf("%s: bit %d of byte %d flipped: %v, %+v; want ErrCorruptRecord", name, bit, i, err, v)
				}
			}
		}
	}
}

// decodeAny decodes a record by the kind its file name starts with.
func decodeAny(name string, b []byte) (any, error) {
	switch {
	case strings.HasPrefix(name, "response"):
		return DecodeResponse(b)
	case strings.HasPrefix(name, "cert"):
		return DecodeCert(b)
	case strings.HasPrefix(name, "history"):
		return DecodeHistory(b)
	case strings.HasPrefix(name, "session"):
		d, e, err := DecodeSession(b)
		return struct {
			D []byte
			E time.Time
		}{d, e}, err
	case strings.HasPrefix(name, "ticket"):
		return DecodeTicketKeys(b)
	}
	return nil, errors.New("unknown record kind " + name)
}

func TestRecordRoundTrips(t *testing.T) {
	for name, enc := range goldenRecords() {
		t.Run(name, func(t *testing.T) {
			v, err := decodeAny(name, enc)
			if err != nil {
				t.Fatal(err)
			}
			var again []byte
			switch r := v.(type) {
			case Response:
				again = encodeResponse(r)
			case Cert:
				again = encodeCert(r)
			case []Attempt:
				again = encodeHistory(r)
			case TicketKeys:
				again = encodeTicketKeys(r)
			default:
				rv := reflect.ValueOf(r)
				again = encodeSession(rv.Field(0).Bytes(), rv.Field(1).Interface().(time.Time))
			}
			if !bytes.Equal(again, enc) {
				t.Errorf("decode then encode differs:\n got %x\nwant %x", again, enc)
			}
		})
	}
}

func TestRecordDecodeErrors(t *testing.T) {
	good := encodeResponse(testResponse(t0, 10))
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrCorruptRecord},
		{"version 0", append([]byte{0}, good[1:]...), ErrCorruptRecord},
		{"newer version", append([]byte{recordVersion + 1}, good[1:]...), ErrNewerRecord},
		{"truncated", good[:len(good)-1], ErrCorruptRecord},
		{"trailing bytes", append(bytes.Clone(good), 0), ErrCorruptRecord},
		{"bad status", append([]byte{recordVersion, 9}, good[2:]...), ErrCorruptRecord},
		{"bad flags", append([]byte{recordVersion, 0, 0x80}, good[3:]...), ErrCorruptRecord},
		{"bad time marker", append([]byte{recordVersion, 0, 0, 0, 7}, good[5:]...), ErrCorruptRecord},
		{"huge length", []byte{recordVersion, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrCorruptRecord},
		{"overlong varint", append([]byte{recordVersion, 0, 0}, bytes.Repeat([]byte{0xff}, 11)...), ErrCorruptRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeResponse(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("DecodeResponse: %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := DecodeHistory(append([]byte{recordVersion}, 21)); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("a history of 21 attempts: %v, want ErrCorruptRecord", err)
	}
	if _, err := DecodeCert(encodeCert(Cert{Leaf: []byte{1}})); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("a certificate record without issuer: %v, want ErrCorruptRecord", err)
	}
}

// FuzzDecodeRecord feeds every decoder bytes as a corrupt file would hold them. None may panic or allocate
// beyond the limits, and whatever decodes must encode back to bytes that decode to the same value.
func FuzzDecodeRecord(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "records"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		for _, dir := range []string{"", "v1"} {
			b, err := os.ReadFile(filepath.Join("testdata", "records", dir, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeResponse(b); err == nil {
			if r2, err := DecodeResponse(encodeResponse(r)); err != nil || !reflect.DeepEqual(r, r2) {
				t.Errorf("response does not survive a round trip: %v", err)
			}
		}
		if c, err := DecodeCert(b); err == nil {
			if c2, err := DecodeCert(encodeCert(c)); err != nil || !reflect.DeepEqual(c, c2) {
				t.Errorf("certificate does not survive a round trip: %v", err)
			}
		}
		if h, err := DecodeHistory(b); err == nil {
			if h2, err := DecodeHistory(encodeHistory(h)); err != nil || !reflect.DeepEqual(h, h2) {
				t.Errorf("history does not survive a round trip: %v", err)
			}
		}
		if d, e, err := DecodeSession(b); err == nil {
			if d2, e2, err := DecodeSession(encodeSession(d, e)); err != nil || !bytes.Equal(d, d2) || !e.Equal(e2) {
				t.Errorf("session does not survive a round trip: %v", err)
			}
		}
		if k, err := DecodeTicketKeys(b); err == nil {
			if k2, err := DecodeTicketKeys(encodeTicketKeys(k)); err != nil || !reflect.DeepEqual(k, k2) {
				t.Errorf("ticket keys do not survive a round trip: %v", err)
			}
		}
		_, _ = DecodeKey(b)
	})
}
