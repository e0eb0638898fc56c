package lab

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"staple/ocspwire"
)

// Status is the first column of an index.txt row.
type Status byte

const (
	Valid   Status = 'V'
	Revoked Status = 'R'
	Expired Status = 'E' // written by `openssl ca -updatedb` for V rows past their notAfter
)

func (s Status) String() string {
	switch s {
	case Valid:
		return "valid"
	case Revoked:
		return "revoked"
	case Expired:
		return "expired"
	}
	return "invalid"
}

// Entry is one row of an OpenSSL CA database (index.txt), as `openssl ca` writes it and `openssl ocsp -index`
// reads it: six tab-separated columns, status (V, R or E), notAfter, revocation ("date[,reason[,extra]]",
// empty unless revoked), serial (upper-case hex), file ("unknown") and subject.
type Entry struct {
	Status  Status
	Expires time.Time // the certificate's notAfter
	// RevokedAt, Reason, HoldInstruction and InvalidityDate describe a revocation (Status Revoked) and are
	// zero otherwise. Reason is ocspwire.ReasonNone when the row gives none. HoldInstruction goes with
	// ocspwire.ReasonCertificateHold (the row says holdInstruction,<instruction>); InvalidityDate with
	// ocspwire.ReasonKeyCompromise or ocspwire.ReasonCACompromise (the row says keyTime or CAkeyTime,<date>).
	RevokedAt       time.Time
	Reason          ocspwire.Reason
	HoldInstruction ocspwire.HoldInstruction
	InvalidityDate  time.Time

	Serial  *big.Int
	File    string // "unknown" as openssl ca writes it
	Subject string // OpenSSL's one-line form, /O=…/CN=…
}

// SerialHex returns the serial as index.txt spells it: upper-case hex, an even number of digits.
func (e Entry) SerialHex() string { return serialHex(e.Serial) }

func serialHex(n *big.Int) string {
	b := n.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	return fmt.Sprintf("%X", b)
}

// Equal reports whether e and o are the same row.
func (e Entry) Equal(o Entry) bool {
	return e.Status == o.Status && e.Expires.Equal(o.Expires) && e.RevokedAt.Equal(o.RevokedAt) &&
		e.Reason == o.Reason && e.HoldInstruction.Equal(o.HoldInstruction) &&
		e.InvalidityDate.Equal(o.InvalidityDate) && e.Serial.Cmp(o.Serial) == 0 && e.File == o.File &&
		e.Subject == o.Subject
}

// ErrBadIndex is wrapped by ParseIndex errors; the message names the line.
var ErrBadIndex = errors.New("lab: bad index.txt")

// ParseIndex parses an OpenSSL index.txt as written by `openssl ca` or by staple: V, R and E rows, UTCTime
// and GeneralizedTime dates, every revocation form of `openssl ca -revoke` (reason names in any case,
// holdInstruction,<instruction>, keyTime,<date>, CAkeyTime,<date>). Blank lines are skipped, a CR before the
// newline is tolerated, and the last newline may be missing. Duplicate serials are returned as they are
// (see Source for which one counts).
func ParseIndex(data []byte) ([]Entry, error) {
	var entries []Entry
	for n := 1; len(data) > 0; n++ {
		line, rest, _ := bytes.Cut(data, []byte{'\n'})
		data = rest
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		e, err := parseRow(string(line))
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadIndex, n, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func parseRow(line string) (Entry, error) {
	cols := strings.Split(line, "\t")
	if len(cols) != 6 {
		return Entry{}, fmt.Errorf("%d tab-separated columns, want 6", len(cols))
	}
	e := Entry{Reason: ocspwire.ReasonNone, File: cols[4], Subject: cols[5]}
	if len(cols[0]) != 1 {
		return Entry{}, fmt.Errorf("status %q", cols[0])
	}
	e.Status = Status(cols[0][0])
	var err error
	if e.Expires, err = parseIndexTime(cols[1]); err != nil {
		return Entry{}, fmt.Errorf("expiry: %v", err)
	}
	switch e.Status {
	case Valid, Expired:
		if cols[2] != "" {
			return Entry{}, fmt.Errorf("revocation %q on a row that is not R", cols[2])
		}
	case Revoked:
		if err := parseRevocation(cols[2], &e); err != nil {
			return Entry{}, err
		}
	default:
		return Entry{}, fmt.Errorf("status %q (want V, R or E)", cols[0])
	}
	if e.Serial, err = parseSerialHex(cols[3]); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func parseSerialHex(s string) (*big.Int, error) {
	if s == "" || len(s) > 80 || strings.Trim(s, "0123456789abcdefABCDEF") != "" {
		return nil, fmt.Errorf("serial %q is not hex", s)
	}
	n, _ := new(big.Int).SetString(s, 16)
	return n, nil
}

// parseRevocation parses column 3 of an R row: time[,reason[,argument]].
func parseRevocation(col string, e *Entry) error {
	parts := strings.SplitN(col, ",", 3)
	var err error
	if e.RevokedAt, err = parseIndexTime(parts[0]); err != nil {
		return fmt.Errorf("revocation time: %v", err)
	}
	if len(parts) == 1 {
		return nil
	}
	arg, hasArg := "", len(parts) == 3
	if hasArg {
		arg = parts[2]
	}
	switch name := parts[1]; {
	case strings.EqualFold(name, "holdInstruction"):
		if !hasArg {
			return errors.New("holdInstruction without an instruction")
		}
		e.Reason = ocspwire.ReasonCertificateHold
		e.HoldInstruction, err = ocspwire.ParseHoldInstruction(arg)
		return err
	case strings.EqualFold(name, "keyTime"), strings.EqualFold(name, "CAkeyTime"):
		if !hasArg {
			return fmt.Errorf("%s without a compromise time", name)
		}
		e.Reason = ocspwire.ReasonKeyCompromise
		if strings.EqualFold(name, "CAkeyTime") {
			e.Reason = ocspwire.ReasonCACompromise
		}
		if e.InvalidityDate, err = parseIndexTime(arg); err != nil {
			return fmt.Errorf("compromise time: %v", err)
		}
		return nil
	}
	if e.Reason, err = ocspwire.ParseReason(parts[1]); err != nil || e.Reason == ocspwire.ReasonNone {
		return fmt.Errorf("reason %q", parts[1])
	}
	// OpenSSL ignores an argument after a plain reason; a hand-written "certificateHold,<instruction>" is
	// read as the instruction it names.
	if hasArg && e.Reason == ocspwire.ReasonCertificateHold {
		if hold, err := ocspwire.ParseHoldInstruction(arg); err == nil {
			e.HoldInstruction = hold
		}
	}
	return nil
}

// parseIndexTime parses UTCTime YYMMDDHHMMSSZ (years 1950–2049) or GeneralizedTime YYYYMMDDHHMMSSZ.
func parseIndexTime(s string) (time.Time, error) {
	switch len(s) {
	case 13:
		century := "20"
		if s[:2] >= "50" {
			century = "19"
		}
		s = century + s
	case 15:
	default:
		return time.Time{}, fmt.Errorf("%q is neither YYMMDDHHMMSSZ nor YYYYMMDDHHMMSSZ", s)
	}
	if strings.Trim(s[:14], "0123456789") != "" || s[14] != 'Z' {
		return time.Time{}, fmt.Errorf("%q is not a time", s)
	}
	t, err := time.Parse("20060102150405Z", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: %v", s, err)
	}
	return t, nil
}

// formatIndexTime writes t as OpenSSL does: UTCTime for 1950–2049, GeneralizedTime outside.
func formatIndexTime(t time.Time) string {
	t = t.UTC()
	if y := t.Year(); y >= 1950 && y < 2050 {
		return t.Format("060102150405Z")
	}
	return t.Format("20060102150405Z")
}

// revocationColumn returns column 3 of the row, as `openssl ca -revoke` writes it.
func (e Entry) revocationColumn() string {
	if e.Status != Revoked {
		return ""
	}
	s := formatIndexTime(e.RevokedAt)
	switch {
	case e.Reason == ocspwire.ReasonNone:
	case e.Reason == ocspwire.ReasonCertificateHold && e.HoldInstruction != nil:
		s += ",holdInstruction," + e.HoldInstruction.Name()
	case e.Reason == ocspwire.ReasonKeyCompromise && !e.InvalidityDate.IsZero():
		s += ",keyTime," + e.InvalidityDate.UTC().Format("20060102150405Z")
	case e.Reason == ocspwire.ReasonCACompromise && !e.InvalidityDate.IsZero():
		s += ",CAkeyTime," + e.InvalidityDate.UTC().Format("20060102150405Z")
	default:
		s += "," + e.Reason.String()
	}
	return s
}

// Line returns the row as index.txt holds it, without the newline.
func (e Entry) Line() string {
	return strings.Join([]string{string(e.Status), formatIndexTime(e.Expires), e.revocationColumn(),
		e.SerialHex(), e.File, e.Subject}, "\t")
}

// FormatIndex returns entries as an index.txt, every row ending in a newline.
func FormatIndex(entries []Entry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		b.WriteString(e.Line())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// validate checks that e can be written so that OpenSSL reads it back.
func (e Entry) validate() error {
	if strings.ContainsAny(e.Subject+e.File, "\t\n\r") {
		return errors.New("lab: subject or file name holds a tab or newline")
	}
	if e.Serial == nil || e.Serial.Sign() < 0 {
		return errors.New("lab: entry without a serial")
	}
	if e.Status != Revoked {
		return nil
	}
	// openssl reads the revocation time with ASN1_UTCTIME_set_string.
	if y := e.RevokedAt.UTC().Year(); y < 1950 || y >= 2050 {
		return fmt.Errorf("lab: revocation time %v cannot be written as UTCTime (1950–2049)", e.RevokedAt)
	}
	if e.HoldInstruction != nil && e.Reason != ocspwire.ReasonCertificateHold {
		return fmt.Errorf("lab: a hold instruction goes with certificateHold, not %v", e.Reason)
	}
	if !e.InvalidityDate.IsZero() && e.Reason != ocspwire.ReasonKeyCompromise && e.Reason != ocspwire.ReasonCACompromise {
		return fmt.Errorf("lab: an invalidity date goes with keyCompromise or CACompromise, not %v", e.Reason)
	}
	// A reason index.txt can record is one whose name reads back.
	if _, err := ocspwire.ParseReason(e.Reason.String()); err != nil {
		return fmt.Errorf("lab: code %d: %w", int(e.Reason), err)
	}
	return nil
}
