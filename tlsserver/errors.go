package tlsserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
)

// Sentinel errors. Each is returned wrapped with %w where there is more to say; test with errors.Is.
var (
	// ErrServerClosed is returned by Serve after Close or Shutdown (net/http's ErrServerClosed).
	ErrServerClosed = errors.New("tlsserver: server closed")
	// ErrNotListening is returned by Close, Shutdown and Address when the server is not listening (Node's
	// ERR_SERVER_NOT_RUNNING).
	ErrNotListening = errors.New("tlsserver: server is not listening")
	// ErrAlreadyListening is returned by Listen and Serve while the server is listening (Node's
	// ERR_SERVER_ALREADY_LISTEN).
	ErrAlreadyListening = errors.New("tlsserver: server is already listening")
	// ErrNoCertificate is returned for a secure context without a certificate chain and its private key.
	ErrNoCertificate = errors.New("tlsserver: secure context has no certificate and key")
	// ErrBadPattern is returned by AddContext for an empty host name pattern (Node's
	// ERR_TLS_REQUIRED_SERVER_NAME) or one that Node's regular expression rules reject.
	ErrBadPattern = errors.New("tlsserver: bad host name pattern")
	// ErrTicketKeysLength is returned by SetTicketKeys for keys that are not 48 bytes long (Node throws).
	ErrTicketKeysLength = errors.New("tlsserver: session ticket keys must be 48 bytes")
	// ErrTicketKeyStore wraps an error of the TicketKeyStore.
	ErrTicketKeyStore = errors.New("tlsserver: ticket key store")
	// ErrHandshakeTimeout is given to ClientError when the handshake did not finish within
	// HandshakeTimeout, including when a hook was still running (Node's ERR_TLS_HANDSHAKE_TIMEOUT).
	ErrHandshakeTimeout = errors.New("tlsserver: TLS handshake timeout")
	// ErrSessionStoreTimeout is wrapped in the *HookError given to SessionStoreError when a NewSession or
	// ResumeSession call did not return within SessionStoreTimeout.
	ErrSessionStoreTimeout = errors.New("tlsserver: session store did not answer in time")
	// ErrNoApplicationProtocol is given to ClientError, wrapping crypto/tls's error, when the client's ALPN
	// protocols share none with the context's and the client got a no_application_protocol alert (Node's
	// ERR_SSL_NO_APPLICATION_PROTOCOL).
	ErrNoApplicationProtocol = errors.New("tlsserver: no application protocol in common with the client")
	// ErrNoClientCertificate is given to ClientError, wrapping crypto/tls's error, when a context that
	// rejects unauthorized clients asked for a certificate and the client sent none (Node's
	// ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE).
	ErrNoClientCertificate = errors.New("tlsserver: client sent no certificate")
)

// HookError is given to ClientError when a hook (OCSPRequest, SNICallback) returned an error and the
// connection was therefore dropped without an alert, and to SessionStoreError when a session store hook
// (NewSession, ResumeSession) failed or ran out of time and the handshake went on without it. It unwraps to
// the hook's error.
type HookError struct {
	// Hook names the hook: "OCSPRequest", "SNICallback", "NewSession" or "ResumeSession".
	Hook string
	// Err is what the hook returned.
	Err error
}

func (e *HookError) Error() string { return "tlsserver: " + e.Hook + ": " + e.Err.Error() }

func (e *HookError) Unwrap() error { return e.Err }

// UnauthorizedError is given to ClientError when a secure context requires a verified client certificate
// (RequestCert without AllowUnauthorized) and the client's certificate did not verify: the handshake
// completed, and the connection was then closed, as Node does.
type UnauthorizedError struct {
	// Code is OpenSSL's verification error code as Node reports it in authorizationError,
	// e.g. "UNABLE_TO_VERIFY_LEAF_SIGNATURE".
	Code string
	// Err is the x509 verification error, if there was one.
	Err error
}

func (e *UnauthorizedError) Error() string {
	if e.Err == nil {
		return "tlsserver: client certificate not authorized: " + e.Code
	}
	return "tlsserver: client certificate not authorized: " + e.Code + ": " + e.Err.Error()
}

func (e *UnauthorizedError) Unwrap() error { return e.Err }

// PeerAlertError is given to ClientError when the client ended the handshake with a TLS alert
// (Node: ERR_SSL_TLSV1_ALERT_…). It unwraps to crypto/tls's error.
type PeerAlertError struct {
	// Alert is the alert the client sent, e.g. 48 (unknown_ca).
	Alert tls.AlertError
	// Err is the error crypto/tls returned.
	Err error
}

func (e *PeerAlertError) Error() string { return "tlsserver: client sent alert: " + e.Alert.Error() }

func (e *PeerAlertError) Unwrap() error { return e.Err }

// classify gives a failed handshake's error the type ClientError documents: a client's alert, no common
// ALPN protocol, no client certificate; other errors are returned as they are. crypto/tls's errors for the
// last two carry no type, only these texts.
func classify(err error) error {
	if a, ok := peerAlert(err); ok {
		return a
	}
	switch msg := err.Error(); {
	case strings.HasPrefix(msg, "tls: client requested unsupported application protocols"):
		return fmt.Errorf("%w: %w", ErrNoApplicationProtocol, err)
	case msg == "tls: client didn't provide a certificate":
		return fmt.Errorf("%w: %w", ErrNoClientCertificate, err)
	}
	return err
}

// peerAlert recognises crypto/tls's "remote error" (a *net.OpError around its unexported alert type) by the
// alert's text, the same as tls.AlertError's, and returns it as a *PeerAlertError.
func peerAlert(err error) (*PeerAlertError, bool) {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && op.Err != nil {
		if a, ok := alertByText()[op.Err.Error()]; ok {
			return &PeerAlertError{Alert: a, Err: err}, true
		}
	}
	return nil, false
}

// alertByText maps the Error text of each of the 256 TLS alert codes to the code, built on first use.
var alertByText = sync.OnceValue(func() map[string]tls.AlertError {
	m := make(map[string]tls.AlertError, 256)
	for a := range 256 {
		m[tls.AlertError(a).Error()] = tls.AlertError(a)
	}
	return m
})
