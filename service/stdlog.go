package service

import (
	"log"
	"strings"

	"github.com/rs/zerolog"
)

// newStdLogger adapts the service's logger for net/http's ErrorLog, at debug level: what http.Server
// reports there (TLS handshake errors, bad requests from clients) is the clients' business.
func newStdLogger(l zerolog.Logger) *log.Logger {
	return log.New(stdWriter{l}, "", 0)
}

type stdWriter struct{ l zerolog.Logger }

func (w stdWriter) Write(p []byte) (int, error) {
	w.l.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
