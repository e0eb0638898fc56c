package responder

import (
	"errors"
	"testing"
)

// FuzzParseFaultRule: the fault API reads a rule from every PUT body, and --fault from the command line. No
// input may panic it, every refusal wraps ErrBadFault, and an accepted rule reads back from its String.
func FuzzParseFaultRule(f *testing.F) {
	for _, k := range FaultKinds {
		f.Add(string(k))
		f.Add("1001:" + string(k) + ",times=3")
	}
	for _, s := range []string{"delay=2s", "http503=10s,times=3", "oversize=1048576", "all:drop", "*:expired",
		"0x10:01:wrong-serial", "DELAY=1ms", "delay=-1s", "oversize=0", "times=1", ":", "1001:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseFaultRule(s)
		if err != nil {
			if !errors.Is(err, ErrBadFault) {
				t.Fatalf("ParseFaultRule(%q): an error without ErrBadFault: %v", s, err)
			}
			return
		}
		again, err := ParseFaultRule(r.String())
		if err != nil {
			t.Fatalf("ParseFaultRule(%q) = %v, whose String %q does not parse: %v", s, r, r.String(), err)
		}
		sameSerial := (r.Serial == nil) == (again.Serial == nil) && (r.Serial == nil || r.Serial.Cmp(again.Serial) == 0)
		if !sameSerial || again.Fault != r.Fault {
			t.Fatalf("ParseFaultRule(%q) = %v, read back from %q as %v", s, r, r.String(), again)
		}
	})
}
