package responder

import (
	"errors"
	"math/big"
	"testing"
	"time"

	"staple/ocspwire"
)

func TestParseFault(t *testing.T) {
	tests := []struct {
		in   string
		want Fault
		str  string
	}{
		{"delay", Fault{Kind: FaultDelay}, "delay"},
		{"delay=250ms", Fault{Kind: FaultDelay, Delay: 250 * time.Millisecond}, "delay=250ms"},
		{"DELAY=2s,times=3", Fault{Kind: FaultDelay, Delay: 2 * time.Second, Times: 3}, "delay=2s,times=3"},
		{"http503=10s", Fault{Kind: FaultHTTP503, RetryAfter: 10 * time.Second}, "http503=10s"},
		{"oversize=1048576", Fault{Kind: FaultOversize, Size: 1 << 20}, "oversize=1048576"},
		{"wrong-signer,times=1", Fault{Kind: FaultWrongSigner, Times: 1}, "wrong-signer,times=1"},
		{" try-later ", Fault{Kind: FaultTryLater}, "try-later"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			f, err := ParseFault(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if f != tt.want || f.String() != tt.str {
				t.Errorf("got %+v %q, want %+v %q", f, f.String(), tt.want, tt.str)
			}
			if back, err := ParseFault(f.String()); err != nil || back != f {
				t.Errorf("round trip: %+v, %v", back, err)
			}
		})
	}
	for _, bad := range []string{"", "explode", "delay=soon", "delay=-1s", "drop=1", "oversize=0", "oversize=big",
		"delay,times=0", "delay,twice", "http503=0s"} {
		if _, err := ParseFault(bad); !errors.Is(err, ErrBadFault) {
			t.Errorf("ParseFault(%q) = %v, want ErrBadFault", bad, err)
		}
	}
	for _, k := range FaultKinds {
		if f, err := ParseFault(string(k)); err != nil || f.Kind != k {
			t.Errorf("kind %s: %v", k, err)
		}
	}
}

func TestParseFaultRule(t *testing.T) {
	tests := []struct {
		in     string
		serial *big.Int
		kind   FaultKind
		str    string
	}{
		{"drop", nil, FaultDrop, "drop"},
		{"all:drop", nil, FaultDrop, "drop"},
		{"1000:http500", big.NewInt(0x1000), FaultHTTP500, "1000:http500"},
		{"0x0abc:expired,times=2", big.NewInt(0xabc), FaultExpired, "0ABC:expired,times=2"},
		{"10:00:garbage", nil, "", ""}, // colons belong to the serial only in ParseSerial
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseFaultRule(tt.in)
			if tt.kind == "" {
				if err == nil {
					t.Fatalf("accepted: %+v", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (r.Serial == nil) != (tt.serial == nil) || (r.Serial != nil && r.Serial.Cmp(tt.serial) != 0) || r.Fault.Kind != tt.kind || r.String() != tt.str {
				t.Errorf("got %+v %q", r, r.String())
			}
		})
	}
	if _, err := ParseFaultRule("zz:drop"); !errors.Is(err, ErrBadFault) {
		t.Errorf("bad serial: %v", err)
	}
}

func TestFaultsTake(t *testing.T) {
	var fs Faults
	ids := func(serials ...int64) []ocspwire.CertID {
		var out []ocspwire.CertID
		for _, s := range serials {
			out = append(out, ocspwire.CertID{Serial: big.NewInt(s)})
		}
		return out
	}
	if f := fs.take(ids(1)); !f.IsZero() {
		t.Fatalf("empty Faults gave %v", f)
	}
	var nilFaults *Faults
	if f := nilFaults.take(ids(1)); !f.IsZero() {
		t.Fatalf("nil Faults gave %v", f)
	}
	fs.Set(nil, Fault{Kind: FaultHTTP500})
	fs.Set(big.NewInt(2), Fault{Kind: FaultDrop, Times: 2})
	steps := []struct {
		ids  []ocspwire.CertID
		want FaultKind
	}{
		{ids(1), FaultHTTP500},
		{ids(1, 2), FaultDrop}, // a serial's fault wins over the one for all
		{ids(2), FaultDrop},
		{ids(2), FaultHTTP500}, // used up
	}
	for i, s := range steps {
		if f := fs.take(s.ids); f.Kind != s.want || f.Times != 0 {
			t.Errorf("step %d: %+v, want %s", i, f, s.want)
		}
	}
	if rules := fs.Rules(); len(rules) != 1 || rules[0].Serial != nil {
		t.Errorf("rules %v", rules)
	}
	fs.Set(nil, Fault{Kind: FaultGarbage, Times: 1})
	fs.Set(big.NewInt(0x10), Fault{Kind: FaultExpired})
	fs.Set(big.NewInt(0x9), Fault{Kind: FaultExpired})
	if rules := fs.Rules(); len(rules) != 3 || rules[1].Serial.Int64() != 9 || rules[2].Serial.Int64() != 0x10 {
		t.Errorf("rules not in order: %v", rules)
	}
	if f := fs.take(ids(1)); f.Kind != FaultGarbage {
		t.Errorf("%v", f)
	}
	if f := fs.take(ids(1)); !f.IsZero() {
		t.Errorf("times=1 fault for all applied twice: %v", f)
	}
	fs.Set(big.NewInt(0x10), Fault{})
	fs.Reset()
	if len(fs.Rules()) != 0 {
		t.Error("Reset left rules")
	}
}

func TestFaultKindsSigned(t *testing.T) {
	signed := 0
	for _, k := range FaultKinds {
		if k.Signed() {
			signed++
		}
	}
	if signed != 7 {
		t.Errorf("%d signed kinds, want 7", signed)
	}
}
