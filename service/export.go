package service

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"staple/atomicfile"
	"staple/certs"
	"staple/config"
)

// exporter writes new responses where nginx (ssl_stapling_file) and HAProxy (<cert>.ocsp, "set ssl
// ocsp-response") read them, then runs the reload command. Writes are atomic (temp file, fsync, rename):
// a reader sees the old file or the new one, never half of one. Reloads are serialized and coalesced: a burst
// of new responses causes at most one reload after the one already running.
type exporter struct {
	cfg config.Export
	log zerolog.Logger

	mu      sync.Mutex
	running bool
	pending bool
	idle    chan struct{} // closed and replaced when no reload is running or pending
}

func newExporter(cfg config.Export, log zerolog.Logger) *exporter {
	e := &exporter{cfg: cfg, log: log, idle: make(chan struct{})}
	close(e.idle)
	return e
}

// matches reports whether this export covers the certificate loaded from certFile.
func (e *exporter) matches(certFile string) bool { return e.cfg.Cert == "" || e.cfg.Cert == certFile }

// path returns the file the response of (certFile, key) goes to.
func (e *exporter) path(certFile string, key certs.Key) string {
	p := strings.ReplaceAll(e.cfg.Path, "{cert}", certFile)
	return strings.ReplaceAll(p, "{key}", strings.ReplaceAll(key.String(), ":", "-"))
}

// export writes der for the certificate and schedules a reload. It returns the path written.
func (e *exporter) export(ctx context.Context, certFile string, key certs.Key, der []byte) (string, error) {
	data := der
	if e.cfg.Format == "base64" {
		data = []byte(base64.StdEncoding.EncodeToString(der) + "\n")
	}
	path := e.path(certFile, key)
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return path, err
	}
	if len(e.cfg.Reload) > 0 {
		e.scheduleReload(ctx)
	}
	return path, nil
}

func (e *exporter) scheduleReload(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running {
		e.pending = true
		return
	}
	e.running = true
	e.idle = make(chan struct{})
	go e.reloadLoop(ctx)
}

func (e *exporter) reloadLoop(ctx context.Context) {
	for {
		e.reload(ctx)
		e.mu.Lock()
		if !e.pending {
			e.running = false
			close(e.idle)
			e.mu.Unlock()
			return
		}
		e.pending = false
		e.mu.Unlock()
	}
}

// wait blocks until no reload is running or pending, or ctx ends.
func (e *exporter) wait(ctx context.Context) {
	e.mu.Lock()
	idle := e.idle
	e.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}

// reload runs the reload command with its timeout; its output (the first 4 KiB) goes to the log.
func (e *exporter) reload(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ReloadTimeout.Duration)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cfg.Reload[0], e.cfg.Reload[1:]...)
	var out limitedBuffer
	out.limit = 4 << 10
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	ev := e.log.Info()
	if err != nil {
		ev = e.log.Error().Err(err)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			ev = ev.Dur("timeout", e.cfg.ReloadTimeout.Duration)
		}
	}
	ev.Strs("command", e.cfg.Reload).Dur("took", time.Since(start)).Str("output", strings.TrimSpace(out.String())).Msg("export reload command")
}

// limitedBuffer keeps the first limit bytes written to it and drops the rest.
type limitedBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	limit int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
