// Package tlsserver owns staple's TLS server: a Go port of the API of Node's tls.Server (the Node 4–6
// documentation), in Go's idiom, with typed hook fields in the manner of net/http.Server and tls.Config
// instead of string-named events. It staples through a hook and never imports the stapler.
//
// Each Node item keeps its meaning:
//
//	Node                              tlsserver
//	tls.createServer(options, cb)     CreateServer(Options, cb): key, cert, pfx, passphrase, ca, ciphers,
//	                                  ecdhCurve, secureProtocol, secureOptions, min/maxVersion, ticketKeys,
//	                                  sessionIdContext in Node's formats; dhparam, honorCipherOrder: false
//	                                  and NPNProtocols refused with an *OptionError (none is ignored)
//	tls.createSecureContext(options)  CreateSecureContext(Options), or a SecureContext{Certificate, CA}
//	requestCert, rejectUnauthorized   Server.RequestCert, Server.AllowUnauthorized: every context, each
//	                                  verifying against its own CA (SecureContext.ClientAuth overrides
//	                                  them for one context, a Go extension)
//	ALPNProtocols                     Server.ALPNProtocols (every context; SecureContext.ALPNProtocols
//	                                  overrides it)
//	SNICallback                       Server.SNICallback (nil falls back to AddContext)
//	'secureConnection' (tlsSocket)    Server.SecureConnection(*Conn): Authorized, AuthorizationError,
//	                                  ALPNProtocol, ServerName, Resumed (npnProtocol: NPN is gone from
//	                                  Go and Node, there is none)
//	'newSession' / 'resumeSession'    Server.NewSession / Server.ResumeSession (an external session store:
//	                                  MemorySessionStore; WriteBehindSessionStore over a SessionBackend),
//	                                  bounded by SessionStoreTimeout, failures to SessionStoreError
//	'OCSPRequest'                     Server.OCSPRequest(ctx, cert, issuer) → staple
//	'clientError' ('tlsClientError')  Server.ClientError(*Conn, error)
//	connections / maxConnections      Server.Connections() / Server.MaxConnections
//	listen(port, host, cb)            Server.Listen(port, host, cb); Server.Serve(net.Listener)
//	address()                         Server.Address()
//	addContext(hostname, context)     Server.AddContext(hostname, *SecureContext)
//	setTicketKeys / getTicketKeys     Server.SetTicketKeys / Server.GetTicketKeys (and, beyond Node,
//	                                  RotateTicketKeys and a TicketKeyStore)
//	close(cb)                         Server.Close(cb); Server.Shutdown(ctx) as in net/http
//	handshakeTimeout, sessionTimeout  Server.HandshakeTimeout, Server.SessionTimeout
//	sessionIdContext                  Server.SessionIDContext
//
// Where crypto/tls and OpenSSL differ, the server bridges the gap so that Node's behaviour holds (see
// docs/node-tls-mapping.md): GetCertificate always runs, even without SNI, so a staple goes out
// to every client that asks; OCSPRequest never runs on a resumed handshake, also on TLS 1.2, where crypto/tls
// picks the certificate before it looks at the ticket (the staple is filled in once UnwrapSession has ruled
// resumption out); a hook's error closes the connection without the alert crypto/tls would send; a client
// certificate that does not verify still completes the handshake and is then closed, and the reason is
// OpenSSL's code; new ticket keys end every earlier session, with or without a session store.
//
// What cannot be bridged, documented on the fields and listed in docs/node-tls-mapping.md (D1…D12, each
// shown by the side-by-side suite in package e2e): Go's TLS 1.2 server has no session-ID cache, so every
// session travels in a ticket (with a store, the ticket is the session ID) and a TLS 1.2 client that refuses
// tickets never resumes (prefer TLS 1.3, or let the client take tickets); TLS 1.3 issues one ticket per
// handshake and calls NewSession before SecureConnection (OpenSSL: two, after); sessions are Go's
// SessionState encoding, not OpenSSL's DER.
//
// Errors start with "tlsserver:"; sentinels (ErrNotListening, ErrHandshakeTimeout, ErrNoApplicationProtocol,
// ErrNoClientCertificate, …) and types (*HookError, *UnauthorizedError, *PeerAlertError, *OptionError) are
// for errors.Is and errors.As. Server's methods are safe for concurrent use; its fields are set before Listen
// or Serve.
package tlsserver
