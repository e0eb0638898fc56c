package certs

import (
	"encoding/hex"
	"errors"
	"math/big"
	"testing"
)

func TestKeyForms(t *testing.T) {
	spki := []byte("issuer public key info")
	tests := []struct {
		name   string
		serial *big.Int
		hex    string
	}{
		{"small", big.NewInt(0x1000), "1000"},
		{"zero", big.NewInt(0), "00"},
		{"high bit", new(big.Int).SetBytes([]byte{0x80, 0x01}), "8001"},
		{"twenty octets", new(big.Int).SetBytes([]byte{0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}), "7F0102030405060708090A0B0C0D0E0F10111213"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := KeyFor(spki, tt.serial)
			if k.SerialHex() != tt.hex {
				t.Errorf("SerialHex = %s, want %s", k.SerialHex(), tt.hex)
			}
			if k.Serial().Cmp(tt.serial) != 0 {
				t.Errorf("Serial = %v, want %v", k.Serial(), tt.serial)
			}
			back, err := KeyFromBytes(k.Bytes())
			if err != nil || back != k {
				t.Errorf("KeyFromBytes(Bytes) = %v, %v; want %v", back, err, k)
			}
			ref, err := ParseKey(k.String())
			if err != nil || !ref.Matches(k) {
				t.Errorf("ParseKey(%q) = %v, %v; does not match", k.String(), ref, err)
			}
			if k.IsZero() {
				t.Error("IsZero on a real key")
			}
		})
	}
	if (Key{}).String() != "<none>" || !(Key{}).IsZero() {
		t.Error("zero Key")
	}
}

func TestKeysDifferByIssuerAndSerial(t *testing.T) {
	a := KeyFor([]byte("issuer A"), big.NewInt(1))
	b := KeyFor([]byte("issuer B"), big.NewInt(1))
	c := KeyFor([]byte("issuer A"), big.NewInt(2))
	if a == b || a == c {
		t.Fatal("keys of different issuers or serials are equal")
	}
	m := map[Key]int{a: 1, b: 2, c: 3}
	if m[KeyFor([]byte("issuer A"), big.NewInt(1))] != 1 {
		t.Error("map lookup by an equal key failed")
	}
}

func TestParseKey(t *testing.T) {
	k := KeyFor([]byte("x"), big.NewInt(0xABCDEF))
	prefix := k.String()[:16]
	tests := []struct {
		name  string
		in    string
		match bool
		err   bool
	}{
		{"as printed", k.String(), true, false},
		{"lower case serial", prefix + ":abcdef", true, false},
		{"0x and colons", prefix + ":0xAB:CD:EF", true, false},
		{"leading zeros", prefix + ":00ABCDEF", true, false},
		{"short prefix", prefix[:4] + ":ABCDEF", true, false},
		{"whole hash", "", true, false},
		{"other serial", prefix + ":ABCDEE", false, false},
		{"no colon", prefix + "ABCDEF", false, true},
		{"odd prefix", prefix[:3] + ":ABCDEF", false, true},
		{"empty serial", prefix + ":", false, true},
		{"not hex", prefix + ":XYZ", false, true},
		{"negative", prefix + ":-1", false, true},
		{"prefix too long", prefix + prefix + prefix + prefix + prefix + ":1", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if tt.name == "whole hash" {
				in = hex.EncodeToString(k.IssuerHash[:]) + ":ABCDEF"
			}
			ref, err := ParseKey(in)
			if tt.err {
				if !errors.Is(err, ErrBadKey) {
					t.Fatalf("ParseKey(%q) error = %v, want ErrBadKey", in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey(%q): %v", in, err)
			}
			if ref.Matches(k) != tt.match {
				t.Errorf("Matches = %v, want %v", !tt.match, tt.match)
			}
		})
	}
}

func TestKeyFromBytesRejects(t *testing.T) {
	for _, n := range []int{0, 32, 32 + maxSerialLen + 1} {
		if _, err := KeyFromBytes(make([]byte, n)); !errors.Is(err, ErrBadKey) {
			t.Errorf("KeyFromBytes(%d bytes) error = %v, want ErrBadKey", n, err)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add("3f2a9c0d11e4b7a2:1000")
	f.Add("ab:0x00:01")
	f.Add(":")
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseKey(s)
		if err != nil {
			return
		}
		if len(ref.IssuerPrefix) == 0 || ref.Serial.Sign() < 0 {
			t.Fatalf("ParseKey(%q) accepted %v", s, ref)
		}
	})
}
