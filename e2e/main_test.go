package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"staple/e2e/harness"
)

// TestMain builds staple once for every test that runs it (binary) and prints the interop outcome
// table after them.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "staple-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "staple")
	// The main package is the module root, one directory up: built by its import path.
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v0.0.0-test", "-o", binary, "staple")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		panic("building staple: " + err.Error())
	}
	code := m.Run()
	printSummary(os.Stdout)
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestBinaryVersion(t *testing.T) {
	out, errOut, code := staple(t, "version")
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "staple v0.0.0-test go1.") {
		t.Errorf("version: code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestBinaryVersionFromBuildInfo builds staple without -ldflags: the version then comes from the build
// information (the module's VCS version when go stamps one, "devel" otherwise).
func TestBinaryVersionFromBuildInfo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "staple")
	ctx, cancel := context.WithTimeout(context.Background(), harness.Timeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "staple").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^staple (devel|v\S+) go1\.\S+ \S+/\S+\n$`).Match(out) || strings.Contains(string(out), "v0.0.0-test") {
		t.Errorf("version without -ldflags: %q", out)
	}
}

func TestBinaryUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string // substring
		stderrRe string // the one line expected on stderr ("" = none)
	}{
		{"help", []string{"-h"}, 0, "SYNOPSIS", ""},
		{"help word", []string{"help"}, 0, "COMMANDS", ""},
		{"command help", []string{"version", "-h"}, 0, "staple version - print the version", ""},
		{"no command", nil, 2, "", "SYNOPSIS"},
		{"unknown command", []string{"frobnicate"}, 2, "", `staple: unknown command "frobnicate" (run 'staple -h' for the list)`},
		{"unknown flag", []string{"version", "--bogus"}, 2, "", "staple: version: flag provided but not defined: -bogus (run 'staple version -h')"},
		{"flag before command", []string{"--bogus"}, 2, "", "staple: unknown flag --bogus before the command (run 'staple -h')"},
		{"extra argument", []string{"version", "x"}, 2, "", `staple: version: unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := staple(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errOut)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q does not contain %q", out, tt.stdout)
			}
			if tt.stderrRe == "" && errOut != "" {
				t.Errorf("stderr %q, want none", errOut)
			}
			if tt.stderrRe != "" && !strings.Contains(errOut, tt.stderrRe) {
				t.Errorf("stderr %q, want %q", errOut, tt.stderrRe)
			}
			if tt.code == 2 && tt.args != nil && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("stderr has more than one line: %q", errOut)
			}
			if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
				t.Errorf("stack trace on stderr: %q", errOut)
			}
		})
	}
}
