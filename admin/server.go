package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"staple/certs"
)

// SocketName is the admin socket's file name in the data directory.
const SocketName = "admin.sock"

// maxImportBody caps an import request: what 'staple cache import' reads with no service (a response of up
// to 1 MiB, a chain and an issuer file of up to certs.MaxFileSize each), in base64 in JSON, so that the
// command accepts the same files either way.
const maxImportBody = (1<<20+2*certs.MaxFileSize)*4/3 + 64<<10

// Handler returns the API over b:
//
//	GET    /v1/entries              every entry
//	GET    /v1/entries/{key}        one entry with history and DER (key: ISSUERHASH:SERIAL as cache ls prints)
//	GET    /v1/entries/{key}/der    the DER response alone (application/ocsp-response)
//	POST   /v1/entries/{key}/refresh
//	POST   /v1/refresh              every watched entry
//	DELETE /v1/entries/{key}
//	POST   /v1/import               ImportRequest as JSON; verified before it is stored
//	GET    /v1/stats
//	GET    /healthz                 200 when healthy (cache writes succeed), else 503 with the problem
//	GET    /readyz                  200 when ready (every Must-Staple certificate stapled), else 503
func Handler(b Backend, log zerolog.Logger) http.Handler {
	mux := http.NewServeMux()
	h := &handler{b: b, log: log}
	mux.HandleFunc("GET /v1/entries", h.entries)
	mux.HandleFunc("GET /v1/entries/{key}", h.entry)
	mux.HandleFunc("GET /v1/entries/{key}/der", h.der)
	mux.HandleFunc("POST /v1/entries/{key}/refresh", h.refresh)
	mux.HandleFunc("POST /v1/refresh", h.refresh)
	mux.HandleFunc("DELETE /v1/entries/{key}", h.remove)
	mux.HandleFunc("POST /v1/import", h.importResponse)
	mux.HandleFunc("GET /v1/stats", h.stats)
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /readyz", h.readyz)
	return mux
}

type handler struct {
	b   Backend
	log zerolog.Logger
}

func (h *handler) entries(w http.ResponseWriter, r *http.Request) {
	es, err := h.b.Entries(r.Context())
	h.reply(w, es, err)
}

func (h *handler) entry(w http.ResponseWriter, r *http.Request) {
	ref, ok := h.ref(w, r)
	if !ok {
		return
	}
	d, err := h.b.Entry(r.Context(), ref)
	h.reply(w, d, err)
}

func (h *handler) der(w http.ResponseWriter, r *http.Request) {
	ref, ok := h.ref(w, r)
	if !ok {
		return
	}
	d, err := h.b.Entry(r.Context(), ref)
	if err == nil && d.DER == nil {
		err = fmt.Errorf("%w: %s has no cached response", ErrNotFound, d.Key)
	}
	if err != nil {
		h.reply(w, nil, err)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(d.DER)
}

func (h *handler) refresh(w http.ResponseWriter, r *http.Request) {
	var ref *certs.KeyRef
	if r.PathValue("key") != "" {
		k, ok := h.ref(w, r)
		if !ok {
			return
		}
		ref = &k
	}
	es, err := h.b.Refresh(r.Context(), ref)
	h.replyFetched(w, es, err)
}

// replyFetched replies with the entries after their fetches; when some failed, the entries go with the
// error (502), as a command without a service prints them.
func (h *handler) replyFetched(w http.ResponseWriter, es []Entry, err error) {
	if err != nil && es != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		json.NewEncoder(w).Encode(apiError{Error: err.Error(), Entries: es})
		return
	}
	if es == nil {
		es = []Entry{}
	}
	h.reply(w, es, err)
}

func (h *handler) remove(w http.ResponseWriter, r *http.Request) {
	ref, ok := h.ref(w, r)
	if !ok {
		return
	}
	es, err := h.b.Remove(r.Context(), ref)
	h.replyFetched(w, es, err)
}

func (h *handler) importResponse(w http.ResponseWriter, r *http.Request) {
	var req ImportRequest
	body := http.MaxBytesReader(w, r.Body, maxImportBody)
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		h.reply(w, nil, fmt.Errorf("%w: %w", ErrBadInput, err))
		return
	}
	e, err := h.b.Import(r.Context(), req)
	h.reply(w, e, err)
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	s, err := h.b.Stats(r.Context())
	h.reply(w, s, err)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	s, err := h.b.Stats(r.Context())
	switch {
	case err != nil:
		h.reply(w, nil, err)
	case !s.Healthy:
		http.Error(w, "unhealthy: "+s.Problem, http.StatusServiceUnavailable)
	default:
		io.WriteString(w, "ok\n")
	}
}

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	s, err := h.b.Stats(r.Context())
	switch {
	case err != nil:
		h.reply(w, nil, err)
	case !s.Ready:
		http.Error(w, "not ready: a Must-Staple certificate has no valid staple yet, or a first fetch is pending", http.StatusServiceUnavailable)
	default:
		io.WriteString(w, "ready\n")
	}
}

func (h *handler) ref(w http.ResponseWriter, r *http.Request) (certs.KeyRef, bool) {
	ref, err := certs.ParseKey(r.PathValue("key"))
	if err != nil {
		h.reply(w, nil, fmt.Errorf("%w: %w", ErrBadInput, err))
		return certs.KeyRef{}, false
	}
	return ref, true
}

// apiError is the body of every error reply. A refresh whose fetches failed (502) carries the entries too.
type apiError struct {
	Error   string  `json:"error"`
	Entries []Entry `json:"entries,omitempty"`
}

func (h *handler) reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, ErrAmbiguous):
			code = http.StatusConflict
		case errors.Is(err, ErrBadInput):
			code = http.StatusBadRequest
		case errors.Is(err, ErrReadOnly):
			code = http.StatusMethodNotAllowed
		default:
			h.log.Warn().Err(err).Msg("admin request failed")
		}
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(apiError{Error: err.Error()})
		return
	}
	json.NewEncoder(w).Encode(v)
}

// Listen opens the admin socket at path with mode 0600. A socket file left by a process that died is
// replaced; a socket that answers means another service runs, which is an error.
func Listen(path string) (net.Listener, error) {
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("admin: another staple service answers on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin: removing the stale socket: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ln, nil
}

// Serve serves the API on ln until ctx ends, then shuts down within a second.
func Serve(ctx context.Context, ln net.Listener, b Backend, log zerolog.Logger) error {
	srv := &http.Server{Handler: Handler(b, log), ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}
