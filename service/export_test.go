package service

import (
	"bytes"
	"context"
	"encoding/base64"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"staple/certs"
	"staple/config"
)

func TestExportWritesAtomicallyAndReloads(t *testing.T) {
	dir := t.TempDir()
	certFile := filepath.Join(dir, "site.pem")
	marker := filepath.Join(dir, "reloads")
	key := certs.KeyFor([]byte("issuer"), big.NewInt(0x1000))
	der := []byte{0x30, 0x03, 0x0a, 0x01, 0x00}

	tests := []struct {
		name, path, format string
		wantPath           string
		want               []byte
	}{
		{"haproxy layout", "{cert}.ocsp", "der", certFile + ".ocsp", der},
		{"by key, base64", filepath.Join(dir, "{key}.b64"), "base64", filepath.Join(dir, strings.ReplaceAll(key.String(), ":", "-")+".b64"), []byte(base64.StdEncoding.EncodeToString(der) + "\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			e := newExporter(config.Export{Path: tt.path, Format: tt.format, ReloadTimeout: config.Duration{Duration: 5 * time.Second},
				Reload: []string{"sh", "-c", "echo reloaded >> " + marker}}, zerolog.New(&logs))
			p, err := e.export(context.Background(), certFile, key, der)
			if err != nil {
				t.Fatal(err)
			}
			if p != tt.wantPath {
				t.Errorf("path %s, want %s", p, tt.wantPath)
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("file holds %q, %v", got, err)
			}
			if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
				t.Errorf("mode %v", st.Mode())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e.wait(ctx)
			if !strings.Contains(logs.String(), "reloaded") {
				t.Errorf("reload output not logged: %s", logs.String())
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*tmp-*"))
			if len(left) != 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// TestExportReloadsCoalesce: a burst of writes while a reload runs causes exactly one more reload.
func TestExportReloadsCoalesce(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	gate := filepath.Join(dir, "gate")
	// The first reload waits for the gate file, so the burst arrives while it runs.
	script := "echo x >> " + count + "; while [ ! -e " + gate + " ]; do sleep 0.01; done"
	e := newExporter(config.Export{Path: filepath.Join(dir, "{key}"), Format: "der", ReloadTimeout: config.Duration{Duration: 10 * time.Second},
		Reload: []string{"sh", "-c", script}}, zerolog.Nop())
	key := certs.KeyFor([]byte("i"), big.NewInt(1))
	for range 5 {
		if _, err := e.export(context.Background(), "c.pem", key, []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(gate, nil, 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e.wait(ctx)
	b, _ := os.ReadFile(count)
	if n := strings.Count(string(b), "x"); n != 2 {
		t.Errorf("%d reloads for a burst of 5 writes, want 2 (the running one and one after)", n)
	}
}

func TestExportReloadTimeout(t *testing.T) {
	var logs bytes.Buffer
	e := newExporter(config.Export{Path: filepath.Join(t.TempDir(), "{key}"), Format: "der", ReloadTimeout: config.Duration{Duration: 100 * time.Millisecond},
		Reload: []string{"sleep", "30"}}, zerolog.New(&logs))
	start := time.Now()
	e.export(context.Background(), "c.pem", certs.KeyFor([]byte("i"), big.NewInt(1)), []byte{1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.wait(ctx)
	if time.Since(start) > 5*time.Second {
		t.Errorf("a reload command that hangs held the exporter for %v", time.Since(start))
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "timeout") {
		t.Errorf("timeout not logged as an error: %s", logs.String())
	}
}

func TestExportUnwritableDirectory(t *testing.T) {
	e := newExporter(config.Export{Path: "/nonexistent-dir/{key}", Format: "der"}, zerolog.Nop())
	if _, err := e.export(context.Background(), "c.pem", certs.KeyFor([]byte("i"), big.NewInt(1)), []byte{1}); err == nil {
		t.Error("export into a missing directory: want an error")
	}
}

// TestExportsPart: a new response goes to every export that covers a site serving its certificate, once per
// path, off the caller's goroutine; with no staple left (expired meanwhile) the file in place is kept.
func TestExportsPart(t *testing.T) {
	dir := t.TempDir()
	key := certs.KeyFor([]byte("issuer"), big.NewInt(0x2000))
	der := []byte{0x30, 0x03, 0x0a, 0x01, 0x00}
	set := &siteSet{byKey: map[certs.Key][]*site{key: {
		{cfg: config.Site{Cert: filepath.Join(dir, "a.pem")}}, {cfg: config.Site{Cert: filepath.Join(dir, "b.pem")}},
	}}}
	for _, e := range []config.Export{
		{Path: "{cert}.ocsp", Format: "der"},                                                     // one file per site
		{Path: filepath.Join(dir, "{key}.der"), Format: "der"},                                   // one file per key
		{Cert: filepath.Join(dir, "b.pem"), Path: filepath.Join(dir, "b.b64"), Format: "base64"}, // b's only
	} {
		set.exporters = append(set.exporters, newExporter(e, zerolog.Nop()))
	}
	staple := der
	x := newExports(zerolog.Nop())
	x.sites = func() *siteSet { return set }
	x.staple = func(certs.Key) []byte { return staple }
	x.changed(key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	x.close(ctx)
	byKey := filepath.Join(dir, strings.ReplaceAll(key.String(), ":", "-")+".der")
	for path, want := range map[string]string{
		filepath.Join(dir, "a.pem.ocsp"): string(der), filepath.Join(dir, "b.pem.ocsp"): string(der),
		byKey: string(der), filepath.Join(dir, "b.b64"): base64.StdEncoding.EncodeToString(der) + "\n",
	} {
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", filepath.Base(path), got, err)
		}
	}
	staple = nil
	x.write(key)
	if got, _ := os.ReadFile(byKey); string(got) != string(der) {
		t.Error("with no staple left, the file in place was not kept")
	}
}
