package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestEveryCommandHasAManual runs "staple CMD -h" for every command: exit 0, a man-page manual on stdout
// naming the command, nothing on stderr.
func TestEveryCommandHasAManual(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := Run(context.Background(), Env{Stdout: &out, Stderr: &errOut}, []string{c.name, "-h"})
			if code := ExitCode(err); code != ExitOK {
				t.Fatalf("exit %d (%v)", code, err)
			}
			for _, section := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "staple " + c.name} {
				if !strings.Contains(out.String(), section) {
					t.Errorf("manual lacks %q:\n%s", section, out.String())
				}
			}
			if errOut.Len() != 0 {
				t.Errorf("stderr: %q", errOut.String())
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := newFlagSet(Env{Stdout: new(bytes.Buffer)}, "x", "")
	json := fs.Bool("json", false, "")
	issuer := fs.String("issuer", "", "")
	ops, err := fs.parse([]string{"a.pem", "--json", "b.pem", "--issuer", "ca.pem", "--", "--c.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if !*json || *issuer != "ca.pem" || strings.Join(ops, ",") != "a.pem,b.pem,--c.pem" {
		t.Errorf("json=%v issuer=%q operands=%q", *json, *issuer, ops)
	}
}

func TestExitCodes(t *testing.T) {
	if ExitCode(nil) != 0 || Message(nil) != "" {
		t.Error("nil error")
	}
	if ExitCode(usageError("bad")) != ExitUsage || Message(usageError("bad")) != "bad" {
		t.Error("usage error")
	}
	silent := &ExitError{Code: ExitRevoked}
	if ExitCode(silent) != ExitRevoked || Message(silent) != "" {
		t.Error("silent exit error")
	}
	if ExitCode(context.Canceled) != ExitFailure {
		t.Error("plain error")
	}
}
