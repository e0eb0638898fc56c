package lab

import (
	"bytes"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"staple/ocspwire"
)

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseIndexForms(t *testing.T) {
	data, err := os.ReadFile("testdata/index/openssl-every-form.txt")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Status: Valid, Expires: date("2026-12-23T18:37:12Z"), Reason: ocspwire.ReasonNone, Serial: big.NewInt(0x1000), File: "unknown", Subject: "/CN=leaf.test"},
		{Status: Revoked, Expires: date("2026-12-23T18:37:12Z"), RevokedAt: date("2026-11-23T18:48:49Z"), Reason: ocspwire.ReasonKeyCompromise, Serial: big.NewInt(0x1001), File: "unknown", Subject: "/CN=revoked.test"},
		{Status: Revoked, Expires: date("2027-02-23T14:30:55Z"), RevokedAt: date("2026-11-25T14:30:55Z"), Reason: ocspwire.ReasonCertificateHold, HoldInstruction: ocspwire.HoldInstructionReject, Serial: big.NewInt(0x1003), File: "unknown", Subject: "/CN=openssl.test"},
		{Status: Revoked, Expires: date("2027-02-23T14:30:47Z"), RevokedAt: date("2026-11-25T14:30:57Z"), Reason: ocspwire.ReasonKeyCompromise, InvalidityDate: date("2026-11-20T12:00:00Z"), Serial: big.NewInt(0x1002), File: "unknown", Subject: "/CN=other.test"},
		{Status: Revoked, Expires: date("2027-02-23T14:30:47Z"), RevokedAt: date("2026-11-25T14:30:57Z"), Reason: ocspwire.ReasonCACompromise, InvalidityDate: date("2026-11-20T12:00:00Z"), Serial: big.NewInt(0x1004), File: "unknown", Subject: "/CN=ca-compromise.test"},
		{Status: Revoked, Expires: date("2027-02-23T14:30:47Z"), RevokedAt: date("2026-11-25T14:30:57Z"), Reason: ocspwire.ReasonNone, Serial: big.NewInt(0x1005), File: "unknown", Subject: "/CN=no-reason.test"},
		{Status: Expired, Expires: date("2025-12-23T18:37:12Z"), Reason: ocspwire.ReasonNone, Serial: big.NewInt(0xABC), File: "unknown", Subject: "/CN=expired.test"},
		{Status: Valid, Expires: date("2051-01-01T00:00:00Z"), Reason: ocspwire.ReasonNone, Serial: big.NewInt(0xBEEF), File: "unknown", Subject: "/O=staple lab/CN=far.test"},
		{Status: Revoked, Expires: date("2027-02-23T14:30:47Z"), RevokedAt: date("2026-11-25T14:30:57Z"), Reason: ocspwire.ReasonRemoveFromCRL, Serial: big.NewInt(0x1006), File: "unknown", Subject: "/CN=remove.test"},
	}
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(entries), len(want))
	}
	for i := range want {
		if !entries[i].Equal(want[i]) {
			t.Errorf("row %d:\n got %+v\nwant %+v", i+1, entries[i], want[i])
		}
	}
	// Every form OpenSSL writes comes back byte for byte.
	if got := FormatIndex(entries); !bytes.Equal(got, data) {
		t.Errorf("round trip:\n got %q\nwant %q", got, data)
	}
}

func TestParseIndexLenient(t *testing.T) {
	data, err := os.ReadFile("testdata/index/hand-written.txt")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d entries, want 2 (CRLF, blank line, no final newline)", len(entries))
	}
	if e := entries[1]; e.Reason != ocspwire.ReasonCertificateHold || !e.HoldInstruction.Equal(ocspwire.HoldInstructionReject) {
		t.Errorf("certificateHold,<instruction>: reason %v, instruction %v", e.Reason, e.HoldInstruction)
	}
	// Written back in the form openssl ca itself uses.
	if line := entries[1].Line(); !strings.Contains(line, "\t261123190000Z,holdInstruction,holdInstructionReject\t") {
		t.Errorf("line %q", line)
	}
}

func TestParseIndexErrors(t *testing.T) {
	tests := []struct {
		name, row string
	}{
		{"five columns", "V\t261223183712Z\t\t1000\tunknown"},
		{"seven columns", "V\t261223183712Z\t\t1000\tunknown\t/CN=a\textra"},
		{"unknown status", "X\t261223183712Z\t\t1000\tunknown\t/CN=a"},
		{"two-letter status", "VR\t261223183712Z\t\t1000\tunknown\t/CN=a"},
		{"bad expiry", "V\t2612231837Z\t\t1000\tunknown\t/CN=a"},
		{"expiry without Z", "V\t261223183712X\t\t1000\tunknown\t/CN=a"},
		{"impossible date", "V\t261323183712Z\t\t1000\tunknown\t/CN=a"},
		{"revoked without date", "R\t261223183712Z\t\t1000\tunknown\t/CN=a"},
		{"valid with revocation", "V\t261223183712Z\t261123184849Z\t1000\tunknown\t/CN=a"},
		{"unknown reason", "R\t261223183712Z\t261123184849Z,stolen\t1000\tunknown\t/CN=a"},
		{"reason none", "R\t261223183712Z\t261123184849Z,none\t1000\tunknown\t/CN=a"},
		{"hold without instruction", "R\t261223183712Z\t261123184849Z,holdInstruction\t1000\tunknown\t/CN=a"},
		{"bad hold instruction", "R\t261223183712Z\t261123184849Z,holdInstruction,sometimes\t1000\tunknown\t/CN=a"},
		{"keyTime without time", "R\t261223183712Z\t261123184849Z,keyTime\t1000\tunknown\t/CN=a"},
		{"keyTime with bad time", "R\t261223183712Z\t261123184849Z,keyTime,yesterday\t1000\tunknown\t/CN=a"},
		{"serial not hex", "V\t261223183712Z\t\t10G0\tunknown\t/CN=a"},
		{"empty serial", "V\t261223183712Z\t\t\tunknown\t/CN=a"},
		{"negative serial", "V\t261223183712Z\t\t-10\tunknown\t/CN=a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseIndex([]byte("V\t261223183712Z\t\t0FFF\tunknown\t/CN=ok\n" + tt.row + "\n"))
			if !errors.Is(err, ErrBadIndex) {
				t.Fatalf("err = %v, want ErrBadIndex", err)
			}
			if !strings.Contains(err.Error(), "line 2") {
				t.Errorf("error does not name the line: %v", err)
			}
		})
	}
}

func TestFormatIndexTime(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{date("2026-11-25T14:30:55Z"), "261125143055Z"},
		{date("1950-01-01T00:00:00Z"), "500101000000Z"},
		{date("2049-12-31T23:59:59Z"), "491231235959Z"},
		{date("2050-01-01T00:00:00Z"), "20500101000000Z"},
		{date("1949-12-31T23:59:59Z"), "19491231235959Z"},
	}
	for _, tt := range tests {
		got := formatIndexTime(tt.t)
		if got != tt.want {
			t.Errorf("formatIndexTime(%v) = %q, want %q", tt.t, got, tt.want)
		}
		back, err := parseIndexTime(got)
		if err != nil || !back.Equal(tt.t) {
			t.Errorf("parseIndexTime(%q) = %v, %v", got, back, err)
		}
	}
}

func TestEntryValidate(t *testing.T) {
	base := Entry{Status: Revoked, Expires: date("2027-01-01T00:00:00Z"), RevokedAt: date("2026-11-25T00:00:00Z"),
		Reason: ocspwire.ReasonNone, Serial: big.NewInt(1), File: "unknown", Subject: "/CN=a"}
	tests := []struct {
		name string
		edit func(*Entry)
		ok   bool
	}{
		{"plain", func(*Entry) {}, true},
		{"hold with instruction", func(e *Entry) {
			e.Reason, e.HoldInstruction = ocspwire.ReasonCertificateHold, ocspwire.HoldInstructionCallIssuer
		}, true},
		{"key compromise with date", func(e *Entry) { e.Reason, e.InvalidityDate = ocspwire.ReasonKeyCompromise, e.RevokedAt }, true},
		{"instruction without hold", func(e *Entry) {
			e.Reason, e.HoldInstruction = ocspwire.ReasonSuperseded, ocspwire.HoldInstructionReject
		}, false},
		{"invalidity date with superseded", func(e *Entry) { e.Reason, e.InvalidityDate = ocspwire.ReasonSuperseded, e.RevokedAt }, false},
		{"revoked in 2050", func(e *Entry) { e.RevokedAt = date("2050-01-01T00:00:00Z") }, false},
		{"tab in subject", func(e *Entry) { e.Subject = "/CN=a\tb" }, false},
		{"reason 7", func(e *Entry) { e.Reason = 7 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base
			tt.edit(&e)
			if err := e.validate(); (err == nil) != tt.ok {
				t.Fatalf("validate = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok {
				back, err := ParseIndex([]byte(e.Line() + "\n"))
				if err != nil || len(back) != 1 || !back[0].Equal(e) {
					t.Errorf("round trip of %q: %+v, %v", e.Line(), back, err)
				}
			}
		})
	}
}

// FuzzParseIndex checks that no input panics the parser and that whatever parses is written back in a form
// that parses to the same rows.
func FuzzParseIndex(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/index/*.txt")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("R\t20510101000000Z\t491231235959Z,CAkeyTime,20261120120000Z\t00\tx\t/\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseIndex(data)
		if err != nil {
			if !errors.Is(err, ErrBadIndex) {
				t.Fatalf("error %v does not wrap ErrBadIndex", err)
			}
			return
		}
		again, err := ParseIndex(FormatIndex(entries))
		if err != nil {
			t.Fatalf("written form does not parse: %v\n%q", err, FormatIndex(entries))
		}
		if len(again) != len(entries) {
			t.Fatalf("%d rows became %d", len(entries), len(again))
		}
		for i := range entries {
			if !again[i].Equal(entries[i]) {
				t.Fatalf("row %d: %+v became %+v", i, entries[i], again[i])
			}
		}
	})
}
