// Command tlsnode is the Go side of the side-by-side suite (e2e/interop_nodeside_test.go): a tlsserver.Server
// built from the JSON spec that testdata/nodeside/server.js builds a Node tls.Server from, printing the same
// JSON events and reading the same commands (see server.js). It is what a Node program ported name for name
// looks like: CreateServer for the options in Node's formats, Server fields and hooks for the rest, and the
// typed errors of ClientError turned back into Node's codes.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"staple/tlsserver"
)

type spec struct {
	Key, Cert, PFX, Passphrase, Staple, OCSP, Store string
	CA                                              []string
	RequestCert                                     bool
	RejectUnauthorized                              *bool
	ALPNProtocols                                   []string
	Contexts                                        []struct {
		Hostname, Key, Cert string
		CA                  []string
	}
	SNI                                map[string]any
	TicketKeys, SessionIDContext       string
	SessionTimeout                     int // seconds
	HandshakeTimeout, MaxConnections   int // ms; count
	Hold                               bool
	Ciphers, ECDHCurve, SecureProtocol string
	MinVersion, MaxVersion, DHParam    string
	HonorCipherOrder                   *bool
	SecureOptions                      uint64
	NPNProtocols                       []string
}

var out = struct {
	sync.Mutex
	*json.Encoder
}{Encoder: json.NewEncoder(os.Stdout)}

func emit(ev string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["ev"] = ev
	out.Lock()
	defer out.Unlock()
	out.Encode(fields)
}

func read(name string) []byte {
	if name == "" {
		return nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return b
}

func readAll(names []string) []byte {
	var all []byte
	for _, n := range names {
		all = append(all, read(n)...)
	}
	return all
}

func main() {
	var sp spec
	if err := json.Unmarshal([]byte(os.Args[1]), &sp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o := tlsserver.Options{Key: read(sp.Key), Cert: read(sp.Cert), PFX: read(sp.PFX), Passphrase: sp.Passphrase, CA: readAll(sp.CA),
		Ciphers: sp.Ciphers, ECDHCurve: sp.ECDHCurve, SecureProtocol: sp.SecureProtocol, MinVersion: sp.MinVersion,
		MaxVersion: sp.MaxVersion, SecureOptions: sp.SecureOptions, SessionIDContext: sp.SessionIDContext, NPNProtocols: sp.NPNProtocols,
		ClientCipherOrder: sp.HonorCipherOrder != nil && !*sp.HonorCipherOrder}
	if sp.DHParam != "" {
		o.DHParam = []byte(sp.DHParam)
	}
	if sp.TicketKeys != "" {
		o.TicketKeys, _ = hex.DecodeString(sp.TicketKeys)
	}
	srv, err := tlsserver.CreateServer(o, nil)
	if err != nil {
		var oe *tlsserver.OptionError
		errors.As(err, &oe)
		emit("createError", map[string]any{"code": oe.Option})
		return
	}
	srv.RequestCert = sp.RequestCert
	srv.AllowUnauthorized = sp.RejectUnauthorized != nil && !*sp.RejectUnauthorized
	srv.ALPNProtocols = sp.ALPNProtocols
	srv.MaxConnections = sp.MaxConnections
	srv.SessionTimeout = time.Duration(sp.SessionTimeout) * time.Second
	srv.HandshakeTimeout = time.Duration(sp.HandshakeTimeout) * time.Millisecond
	var contexts []*tlsserver.SecureContext
	for _, c := range sp.Contexts {
		sc, err := tlsserver.CreateSecureContext(tlsserver.Options{Key: read(c.Key), Cert: read(c.Cert), CA: readAll(c.CA)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		contexts = append(contexts, sc)
		if c.Hostname != "" {
			srv.AddContext(c.Hostname, sc)
		}
	}
	if sp.SNI != nil {
		srv.SNICallback = func(_ context.Context, name string) (*tlsserver.SecureContext, error) {
			emit("SNICallback", map[string]any{"servername": name})
			switch v := sp.SNI[name].(type) {
			case string:
				return nil, errors.New("hook failed")
			case float64:
				if v >= 0 {
					return contexts[int(v)], nil
				}
			}
			return nil, nil
		}
	}
	hooks(srv, &sp)
	port, _ := strconv.Atoi(os.Getenv("SIDE_PORT")) // as server.js: 0 for any
	if err := srv.Listen(port, "127.0.0.1", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	a, _ := srv.Address()
	emit("listening", map[string]any{"port": a.Port})
	commands(srv)
}

// hooks installs the event hooks, as server.js's listeners.
func hooks(srv *tlsserver.Server, sp *spec) {
	var mu sync.Mutex
	release := make(chan struct{})
	held = func() { // ends the connections held now; later ones wait for the next release
		mu.Lock()
		defer mu.Unlock()
		close(release)
		release = make(chan struct{})
	}
	srv.SecureConnection = func(c *tlsserver.Conn) {
		cs := c.ConnectionState()
		emit("secureConnection", map[string]any{
			"servername": orFalse(c.ServerName()), "alpn": orFalse(c.ALPNProtocol()), "authorized": c.Authorized(),
			"authorizationError": orNull(c.AuthorizationError()), "resumed": c.Resumed(),
			"protocol": strings.Replace(tls.VersionName(cs.Version), "TLS 1", "TLSv1", 1), "cn": c.Leaf().Subject.CommonName,
		})
		if sp.Hold {
			mu.Lock()
			wait := release
			mu.Unlock()
			<-wait
		}
		io.WriteString(c, "hello\n")
	}
	srv.ClientError = func(_ *tlsserver.Conn, err error) { emit("tlsClientError", map[string]any{"code": nodeCode(err)}) }
	srv.SessionStoreError = func(err error) { emit("sessionStoreError", map[string]any{"code": nodeCode(err)}) }
	if sp.OCSP != "" {
		staple := read(sp.Staple)
		srv.OCSPRequest = func(_ context.Context, cert, issuer *x509.Certificate) ([]byte, error) {
			var iss any
			if issuer != nil {
				iss = issuer.Subject.CommonName
			}
			emit("OCSPRequest", map[string]any{"cert": cert.Subject.CommonName, "issuer": iss})
			switch sp.OCSP {
			case "error":
				return nil, errors.New("hook failed")
			case "staple":
				return staple, nil
			}
			return nil, nil
		}
	}
	if sp.Store != "" {
		var mu sync.Mutex
		store := map[string][]byte{}
		srv.NewSession = func(ctx context.Context, id, data []byte) error {
			emit("newSession", nil)
			switch sp.Store {
			case "hanging":
				<-ctx.Done()
				return ctx.Err()
			case "failing":
				return errors.New("store failed")
			}
			mu.Lock()
			defer mu.Unlock()
			store[string(id)] = data
			return nil
		}
		srv.ResumeSession = func(ctx context.Context, id []byte) ([]byte, error) {
			mu.Lock()
			data := store[string(id)]
			mu.Unlock()
			emit("resumeSession", map[string]any{"found": data != nil})
			switch sp.Store {
			case "hanging":
				<-ctx.Done()
				return nil, ctx.Err()
			case "failing":
				return nil, errors.New("store failed")
			}
			return data, nil
		}
	}
}

var held func() // ends the held connections ("release")

func orFalse(s string) any {
	if s == "" {
		return false
	}
	return s
}

func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nodeCode gives ClientError's typed errors the codes Node's tlsClientError has for the same causes.
func nodeCode(err error) string {
	var alert *tlsserver.PeerAlertError
	var hook *tlsserver.HookError
	var unauthorized *tlsserver.UnauthorizedError
	var rh tls.RecordHeaderError
	switch {
	case errors.Is(err, tlsserver.ErrHandshakeTimeout):
		return "ERR_TLS_HANDSHAKE_TIMEOUT"
	case errors.Is(err, tlsserver.ErrNoApplicationProtocol):
		return "ERR_SSL_NO_APPLICATION_PROTOCOL"
	case errors.Is(err, tlsserver.ErrNoClientCertificate):
		return "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE"
	case errors.Is(err, tlsserver.ErrSessionStoreTimeout):
		return "session store timeout"
	case errors.As(err, &alert):
		if name, ok := opensslAlerts[alert.Alert]; ok {
			return "ERR_SSL_" + name
		}
		return "alert " + alert.Alert.Error()
	case errors.As(err, &hook):
		return hook.Err.Error()
	case errors.As(err, &unauthorized):
		return "unauthorized: " + unauthorized.Code
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "ECONNRESET"
	case errors.As(err, &rh):
		if strings.HasPrefix(string(rh.RecordHeader[:]), "GET ") || strings.HasPrefix(string(rh.RecordHeader[:]), "POST") {
			return "ERR_SSL_HTTP_REQUEST"
		}
		return "ERR_SSL_WRONG_VERSION_NUMBER"
	}
	return "go: " + err.Error()
}

// opensslAlerts are OpenSSL's names of the alerts a client sends, as Node's error codes carry them.
var opensslAlerts = map[tls.AlertError]string{
	10: "SSLV3_ALERT_UNEXPECTED_MESSAGE", 40: "SSLV3_ALERT_HANDSHAKE_FAILURE", 42: "SSLV3_ALERT_BAD_CERTIFICATE",
	43: "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", 44: "SSLV3_ALERT_CERTIFICATE_REVOKED", 45: "SSLV3_ALERT_CERTIFICATE_EXPIRED",
	46: "SSLV3_ALERT_CERTIFICATE_UNKNOWN", 47: "SSLV3_ALERT_ILLEGAL_PARAMETER", 48: "TLSV1_ALERT_UNKNOWN_CA",
	49: "TLSV1_ALERT_ACCESS_DENIED", 50: "TLSV1_ALERT_DECODE_ERROR", 51: "TLSV1_ALERT_DECRYPT_ERROR",
	70: "TLSV1_ALERT_PROTOCOL_VERSION", 71: "TLSV1_ALERT_INSUFFICIENT_SECURITY", 80: "TLSV1_ALERT_INTERNAL_ERROR",
	90: "TLSV1_ALERT_USER_CANCELLED", 112: "TLSV1_UNRECOGNIZED_NAME", 116: "TLSV13_ALERT_CERTIFICATE_REQUIRED",
	120: "TLSV1_ALERT_NO_APPLICATION_PROTOCOL",
}

// commands reads server.js's commands from stdin.
func commands(srv *tlsserver.Server) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "sync":
			n, _ := strconv.Atoi(arg)
			go func() {
				deadline := time.Now().Add(5 * time.Second)
				for srv.Connections() > n && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				emit("sync", map[string]any{"connections": srv.Connections()})
			}()
		case "setTicketKeys":
			k, _ := hex.DecodeString(arg)
			srv.SetTicketKeys(k)
			emit("ok", nil)
		case "getTicketKeys":
			emit("ticketKeys", map[string]any{"hex": hex.EncodeToString(srv.GetTicketKeys())})
			emit("ok", nil)
		case "close": // closed comes after ok, as Node calls back asynchronously
			closed := make(chan struct{})
			srv.Close(func() { close(closed) })
			emit("ok", nil)
			go func() { <-closed; emit("closed", nil) }()
		case "release":
			held()
			emit("ok", nil)
		case "exit":
			return
		}
	}
}
