//go:build interop

package e2e

import (
	"crypto/tls"
	"slices"
	"strings"
	"time"
)

// The scenarios of the side-by-side suite (interop_nodeside_test.go). Each names the documented differences
// (docs/node-tls-mapping.md, D1…) it shows; the rest of what it observes must be the same for Node and for
// tlsserver.

// spec is the localhost server with more options, as key, value pairs.
func spec(kv ...any) map[string]any {
	m := map[string]any{"key": "@localhost.key", "cert": "@localhost.crt"}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func kv(pairs ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i].(string)] = pairs[i+1]
	}
	return m
}

func ossl(args ...string) sideStep          { return sideStep{openssl: append([]string{}, args...)} }
func nodeConn(pairs ...any) sideStep        { return sideStep{node: kv(pairs...)} }
func goConn(g goStep) sideStep              { return sideStep{goc: &g} }
func rawConn(kind string) sideStep          { return sideStep{raw: kind} }
func command(line string) sideStep          { return sideStep{cmd: line} }
func restart(pairs ...any) sideStep         { return sideStep{restart: kv(pairs...)} }
func tls12(args ...string) []string         { return append([]string{"-tls1_2"}, args...) }
func tls13(args ...string) []string         { return append([]string{"-tls1_3"}, args...) }
func sni(name string) []string              { return []string{"-servername", name} }
func with(a []string, b ...string) []string { return append(slices.Clone(a), b...) }

var (
	keysA = strings.Repeat("a1", 48)
	keysB = strings.Repeat("b2", 48)
	// contexts are the hosts added with addContext: b.test with its own client CA (root B), and a wildcard.
	contexts = []any{
		kv("hostname", "b.test", "key", "@b.test.key", "cert", "@b.test.crt", "ca", []string{"@rootB"}),
		kv("hostname", "*.w.test", "key", "@star.w.test.key", "cert", "@star.w.test.crt"),
	}
	v12, v13 = uint16(tls.VersionTLS12), uint16(tls.VersionTLS13)
)

var sideScenarios = slices.Concat(handshakeScenarios, sniScenarios, clientAuthScenarios, alpnScenarios, ocspScenarios,
	sessionScenarios, storeScenarios, clientErrorScenarios, optionScenarios, sniCallbackScenarios, serverScenarios)

var (
	clientA     = []string{"-cert", "@clientA.crt", "-key", "@clientA.key"}
	clientB     = []string{"-cert", "@clientB.crt", "-key", "@clientB.key"}
	authServer  = spec("ca", []string{"@root"}, "requestCert", true, "rejectUnauthorized", false, "contexts", contexts)
	rejecting   = spec("ca", []string{"@root"}, "requestCert", true, "contexts", contexts)
	stapling    = spec("ocsp", "staple", "staple", "@staple.der", "contexts", contexts)
	alpnServer  = spec("ALPNProtocols", []string{"h2", "http/1.1"}, "contexts", contexts)
	sniCallback = spec("contexts", append(slices.Clone(contexts), kv("hostname", "", "key", "@c.test.key", "cert", "@c.test.crt")),
		"sni", kv("c.test", 2, "b.test", -1, "bad.test", "error"), "ocsp", "staple", "staple", "@staple.der")
)

var handshakeScenarios = []sideScenario{
	{name: "openssl TLS 1.2", spec: spec(), steps: []sideStep{ossl(tls12(sni("localhost")...)...)},
		want: []string{"S secureConnection alpn=false authorizationError=<nil> authorized=false cn=localhost protocol=TLSv1.2 resumed=false servername=localhost"}},
	{name: "openssl TLS 1.3", spec: spec(), steps: []sideStep{ossl(tls13(sni("localhost")...)...)}, want: []string{"protocol=TLSv1.3"}},
	{name: "openssl without SNI", spec: spec(), steps: []sideStep{ossl("-noservername")}, want: []string{"servername=false"}},
	{name: "node TLS 1.2", spec: spec(), steps: []sideStep{nodeConn("version", "TLSv1.2", "servername", "localhost")}, want: []string{"connected=true"}},
	{name: "node TLS 1.3 without SNI", spec: spec(), steps: []sideStep{nodeConn("version", "TLSv1.3", "servername", "")}, want: []string{"servername=false"}},
	{name: "go TLS 1.2", spec: spec(), steps: []sideStep{goConn(goStep{version: v12, serverName: "localhost"})}, want: []string{"C go protocol=TLSv1.2"}},
	{name: "go TLS 1.3 without SNI", spec: spec(), steps: []sideStep{goConn(goStep{version: v13})}, want: []string{"servername=false"}},
	{name: "RSA certificate", spec: spec("key", "@rsa.key", "cert", "@rsa.crt"), steps: []sideStep{ossl(tls12()...), goConn(goStep{version: v13})}},
}

// sniScenarios: addContext patterns, as Node matches them.
var sniScenarios = []sideScenario{
	{name: "addContext: exact name", spec: spec("contexts", contexts), steps: []sideStep{ossl(sni("b.test")...)}, want: []string{"cn=b.test"}},
	{name: "addContext: wildcard", spec: spec("contexts", contexts), steps: []sideStep{ossl(sni("a.w.test")...)}, want: []string{"cn=*.w.test"}},
	{name: "addContext: wildcard does not cross a dot", spec: spec("contexts", contexts), steps: []sideStep{ossl(sni("x.a.w.test")...)}, want: []string{"cn=localhost"}},
	{name: "addContext: names are case-sensitive", spec: spec("contexts", contexts), steps: []sideStep{ossl(sni("B.TEST")...)}, want: []string{"cn=localhost"}},
	{name: "addContext: no SNI gets the default", spec: spec("contexts", contexts), steps: []sideStep{ossl("-noservername")}, want: []string{"cn=localhost"}},
	{name: "addContext: the most recent match wins", spec: spec("contexts", append(slices.Clone(contexts), kv("hostname", "a.w.test", "key", "@a.w.test.key", "cert", "@a.w.test.crt"))),
		steps: []sideStep{ossl(sni("a.w.test")...), ossl(sni("z.w.test")...)}, want: []string{"cn=a.w.test"}},
	{name: "addContext: a resumed TLS 1.3 session", spec: spec("contexts", contexts), steps: []sideStep{
		ossl(tls13(with(sni("b.test"), "-sess_out", "sess:a")...)...), ossl(tls13(with(sni("b.test"), "-sess_in", "sess:a")...)...),
	}, want: []string{"handshake=Reused"}, diff: []sideDiff{diffResumedContext}},
	{name: "addContext: a resumed TLS 1.2 session", spec: spec("contexts", contexts), steps: []sideStep{
		ossl(tls12(with(sni("b.test"), "-sess_out", "sess:a")...)...), ossl(tls12(with(sni("b.test"), "-sess_in", "sess:a")...)...),
	}, want: []string{"handshake=Reused"}, diff: []sideDiff{diffServername, diffResumedContext}},
	{name: "addContext: node client", spec: spec("contexts", contexts), steps: []sideStep{nodeConn("servername", "b.test")}, want: []string{"cn=b.test"}},
	{name: "addContext: go client", spec: spec("contexts", contexts), steps: []sideStep{goConn(goStep{serverName: "q.w.test"})}, want: []string{"cn=*.w.test"}},
}

// clientAuthScenarios: requestCert and rejectUnauthorized are the server's, for every context; each context
// verifies client certificates against its own ca.
var clientAuthScenarios = []sideScenario{
	{name: "client auth: each context verifies against its own ca", spec: authServer, steps: []sideStep{
		ossl(tls13(with(sni("b.test"), clientB...)...)...), ossl(tls13(with(sni("localhost"), clientB...)...)...),
		ossl(tls12(with(sni("b.test"), clientA...)...)...), ossl(tls12(with(sni("localhost"), clientA...)...)...),
	}, want: []string{"authorizationError=UNABLE_TO_VERIFY_LEAF_SIGNATURE authorized=false cn=localhost", "authorized=true cn=b.test"}},
	{name: "client auth: an added context refuses a client without a certificate", spec: rejecting, steps: []sideStep{
		ossl(tls13(sni("b.test")...)...), ossl(tls12(sni("b.test")...)...), nodeConn("servername", "b.test"), goConn(goStep{serverName: "a.w.test"}),
	}, want: []string{"ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE"}},
	{name: "client auth: no certificate, not rejected", spec: authServer, steps: []sideStep{ossl(sni("b.test")...), nodeConn("version", "TLSv1.2")},
		want: []string{"authorizationError=UNABLE_TO_GET_ISSUER_CERT"}},
	{name: "client auth: self-signed certificate", spec: authServer, steps: []sideStep{ossl("-cert", "@selfclient.crt", "-key", "@selfclient.key")},
		want: []string{"DEPTH_ZERO_SELF_SIGNED_CERT"}},
	{name: "client auth: expired certificate", spec: authServer, steps: []sideStep{ossl("-cert", "@expiredA.crt", "-key", "@expiredA.key")},
		want: []string{"CERT_HAS_EXPIRED"}},
	{name: "client auth: node and go clients on an added context", spec: authServer, steps: []sideStep{
		nodeConn("servername", "b.test", "cert", "@clientB.crt", "key", "@clientB.key"), goConn(goStep{serverName: "b.test", cert: "@clientB"}),
		goConn(goStep{serverName: "a.w.test", cert: "@clientA"}),
	}, want: []string{"authorized=true cn=b.test"}},
	{name: "client auth: an unverified certificate is closed after the handshake", spec: rejecting,
		steps: []sideStep{ossl(tls12(with(sni("localhost"), clientB...)...)...), goConn(goStep{serverName: "b.test", cert: "@clientA", version: v13})},
		diff:  []sideDiff{diffUnauthorized}},
	{name: "client auth: a verified certificate gets through a rejecting server", spec: rejecting,
		steps: []sideStep{ossl(with(sni("b.test"), clientB...)...), nodeConn("servername", "localhost", "cert", "@clientA.crt", "key", "@clientA.key")},
		want:  []string{"greeting=true"}},
	{name: "client auth: no requestCert asks for nothing anywhere", spec: spec("ca", []string{"@root"}, "contexts", contexts),
		steps: []sideStep{ossl(with(sni("b.test"), clientB...)...), ossl(with(sni("localhost"), clientA...)...)}, want: []string{"authorizationError=<nil> authorized=false"}},
	{name: "client auth: a resumed TLS 1.2 session keeps its certificate", spec: authServer, steps: []sideStep{
		ossl(tls12(with(sni("localhost"), append(clientA, "-sess_out", "sess:a")...)...)...), ossl(tls12(with(sni("localhost"), append(clientA, "-sess_in", "sess:a")...)...)...),
	}, want: []string{"authorized=true cn=localhost protocol=TLSv1.2 resumed=true"}, diff: []sideDiff{diffServername}},
	{name: "client auth: a resumed TLS 1.3 session keeps its certificate", spec: authServer, steps: []sideStep{
		ossl(tls13(with(sni("localhost"), append(clientA, "-sess_out", "sess:a")...)...)...), ossl(tls13(with(sni("localhost"), append(clientA, "-sess_in", "sess:a")...)...)...),
	}, want: []string{"authorized=true cn=localhost protocol=TLSv1.3 resumed=true"}},
}

// alpnScenarios: ALPNProtocols is the server's, for every context.
var alpnScenarios = []sideScenario{
	{name: "ALPN: the server's choice", spec: alpnServer, steps: []sideStep{ossl("-alpn", "http/1.1,h2"), nodeConn("alpn", []string{"http/1.1"})}, want: []string{"alpn=h2"}},
	{name: "ALPN: an added context offers the server's protocols", spec: alpnServer, steps: []sideStep{ossl(with(sni("b.test"), "-alpn", "h2")...), goConn(goStep{serverName: "a.w.test", alpn: []string{"http/1.1"}})},
		want: []string{"alpn=h2 authorizationError=<nil> authorized=false cn=b.test"}},
	{name: "ALPN: no protocol in common, openssl", spec: alpnServer, steps: []sideStep{ossl(tls13("-alpn", "foo")...), ossl(tls12("-alpn", "foo")...)},
		want: []string{"alert=120", "ERR_SSL_NO_APPLICATION_PROTOCOL"}},
	{name: "ALPN: no protocol in common, node and go", spec: alpnServer, steps: []sideStep{nodeConn("alpn", []string{"foo"}), goConn(goStep{alpn: []string{"foo"}, version: v12})},
		want: []string{"ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL"}},
	{name: "ALPN: an http/1.1 client of an h2 server", spec: spec("ALPNProtocols", []string{"h2"}), steps: []sideStep{ossl("-alpn", "http/1.1")}, diff: []sideDiff{diffALPNFallback}},
	{name: "ALPN: a client that offers none", spec: alpnServer, steps: []sideStep{ossl(), goConn(goStep{})}, want: []string{"alpn=false"}},
	{name: "ALPN: none on the server", spec: spec(), steps: []sideStep{ossl("-alpn", "h2")}, want: []string{"alpn=false"}},
}

// ocspScenarios: OCSPRequest, its issuer, and the staple each client gets.
var ocspScenarios = []sideScenario{
	{name: "OCSP: openssl TLS 1.3", spec: stapling, steps: []sideStep{ossl(tls13(with(sni("localhost"), "-status")...)...)},
		want: []string{"S OCSPRequest cert=localhost issuer=intermediate A", "staple=successful"}},
	{name: "OCSP: openssl TLS 1.2 without SNI", spec: stapling, steps: []sideStep{ossl(tls12("-noservername", "-status")...)}, want: []string{"staple=successful"}},
	{name: "OCSP: go client", spec: stapling, steps: []sideStep{goConn(goStep{version: v12}), goConn(goStep{version: v13, serverName: "localhost"})}},
	{name: "OCSP: node client with requestOCSP", spec: stapling, steps: []sideStep{nodeConn("requestOCSP", true, "version", "TLSv1.2"), nodeConn("requestOCSP", true)}},
	{name: "OCSP: a client that does not ask", spec: stapling, steps: []sideStep{nodeConn(), ossl()}},
	{name: "OCSP: no response", spec: spec("ocsp", "null"), steps: []sideStep{ossl("-status"), goConn(goStep{})}, want: []string{"staple=none"}},
	{name: "OCSP: an error destroys the connection with no alert", spec: spec("ocsp", "error"), steps: []sideStep{ossl(tls13("-status")...), ossl(tls12("-status")...), nodeConn("requestOCSP", true)},
		want: []string{"S tlsClientError code=hook failed"}},
	{name: "OCSP: issuer from the chain", spec: stapling, steps: []sideStep{ossl("-status")}, want: []string{"issuer=intermediate A"}},
	{name: "OCSP: issuer from ca", spec: spec("cert", "@localhost-leaf.crt", "ca", []string{"@root", "@inter"}, "ocsp", "null"), steps: []sideStep{ossl("-status")},
		want: []string{"issuer=intermediate A"}},
	{name: "OCSP: no issuer", spec: spec("cert", "@localhost-leaf.crt", "ocsp", "null"), steps: []sideStep{ossl("-status")}, want: []string{"issuer=<nil>"}},
	{name: "OCSP: a self-signed leaf alone has no issuer", spec: spec("key", "@self.key", "cert", "@self.crt", "ocsp", "null"), steps: []sideStep{ossl("-status")},
		want: []string{"cert=localhost issuer=<nil>"}},
	{name: "OCSP: a self-signed leaf in ca is its own issuer", spec: spec("key", "@self.key", "cert", "@self.crt", "ca", []string{"@self.crt"}, "ocsp", "null"),
		steps: []sideStep{ossl("-status")}, want: []string{"cert=localhost issuer=localhost"}},
	{name: "OCSP: a self-signed leaf in its chain is its own issuer", spec: spec("key", "@self.key", "cert", "@self2.crt", "ocsp", "null"),
		steps: []sideStep{ossl("-status")}, want: []string{"cert=localhost issuer=localhost"}},
	{name: "OCSP: the context chosen by SNI", spec: stapling, steps: []sideStep{ossl(with(sni("b.test"), "-status")...), ossl(with(sni("a.w.test"), "-status")...)},
		want: []string{"S OCSPRequest cert=b.test", "S OCSPRequest cert=*.w.test"}},
	{name: "OCSP: not on a resumed TLS 1.3 session", spec: stapling, steps: []sideStep{
		ossl(tls13(with(sni("localhost"), "-status", "-sess_out", "sess:a")...)...), ossl(tls13(with(sni("localhost"), "-status", "-sess_in", "sess:a")...)...),
	}, want: []string{"resumed=true"}},
	{name: "OCSP: not on a resumed TLS 1.2 session", spec: stapling, steps: []sideStep{
		ossl(tls12(with(sni("localhost"), "-status", "-sess_out", "sess:a")...)...), ossl(tls12(with(sni("localhost"), "-status", "-sess_in", "sess:a")...)...),
		goConn(goStep{version: v12, session: "g"}), goConn(goStep{version: v12, session: "g"}),
	}, want: []string{"resumed=true"}, diff: []sideDiff{diffServername}},
}

// sessionScenarios: session tickets, ticket keys and sessionIdContext.
var sessionScenarios = []sideScenario{
	{name: "tickets: openssl TLS 1.2", spec: spec(), steps: []sideStep{ossl(tls12(with(sni("localhost"), "-sess_out", "sess:a")...)...), ossl(tls12(with(sni("localhost"), "-sess_in", "sess:a")...)...)},
		want: []string{"handshake=Reused"}, diff: []sideDiff{diffServername}},
	{name: "tickets: openssl TLS 1.3", spec: spec(), steps: []sideStep{ossl(tls13(with(sni("localhost"), "-sess_out", "sess:a")...)...), ossl(tls13(with(sni("localhost"), "-sess_in", "sess:a")...)...)},
		want: []string{"handshake=Reused"}},
	{name: "tickets: node TLS 1.2", spec: spec(), steps: []sideStep{nodeConn("version", "TLSv1.2", "sessOut", "n"), nodeConn("version", "TLSv1.2", "sessIn", "n")},
		want: []string{"reused=true"}},
	{name: "tickets: node TLS 1.3", spec: spec(), steps: []sideStep{nodeConn("version", "TLSv1.3", "sessOut", "n"), nodeConn("version", "TLSv1.3", "sessIn", "n")},
		want: []string{"reused=true"}},
	{name: "tickets: go TLS 1.2", spec: spec(), steps: []sideStep{goConn(goStep{version: v12, session: "g"}), goConn(goStep{version: v12, session: "g"})}, want: []string{"resumed=true"}},
	{name: "tickets: go TLS 1.3", spec: spec(), steps: []sideStep{goConn(goStep{version: v13, session: "g"}), goConn(goStep{version: v13, session: "g"})}, want: []string{"resumed=true"}},
	{name: "tickets: setTicketKeys ends earlier tickets", spec: spec("ticketKeys", keysA), steps: []sideStep{
		ossl(tls13("-sess_out", "sess:a")...), nodeConn("version", "TLSv1.2", "sessOut", "n"), command("setTicketKeys " + keysB),
		ossl(tls13("-sess_in", "sess:a")...), nodeConn("version", "TLSv1.2", "sessIn", "n"),
	}, want: []string{"reused=false"}},
	{name: "tickets: the old keys back resume them again", spec: spec("ticketKeys", keysA), steps: []sideStep{
		ossl(tls13("-sess_out", "sess:a")...), command("setTicketKeys " + keysB), command("setTicketKeys " + keysA), ossl(tls13("-sess_in", "sess:a")...),
	}, want: []string{"handshake=Reused"}},
	{name: "tickets: getTicketKeys returns ticketKeys", spec: spec("ticketKeys", keysA), steps: []sideStep{command("getTicketKeys")}, want: []string{"hex=" + keysA}},
	{name: "tickets: same ticketKeys after a restart", spec: spec("ticketKeys", keysA), steps: []sideStep{
		ossl(tls13("-sess_out", "sess:a")...), goConn(goStep{session: "g"}), restart(), ossl(tls13("-sess_in", "sess:a")...), goConn(goStep{session: "g"}),
	}, want: []string{"handshake=Reused"}},
	{name: "tickets: other ticketKeys after a restart", spec: spec("ticketKeys", keysA), steps: []sideStep{
		ossl(tls12("-sess_out", "sess:a")...), restart("ticketKeys", keysB), ossl(tls12("-sess_in", "sess:a")...),
	}, want: []string{"handshake=New"}},
	{name: "tickets: the same sessionIdContext resumes", spec: spec("ticketKeys", keysA, "sessionIdContext", "app"), steps: []sideStep{
		ossl(tls13("-sess_out", "sess:a")...), nodeConn("version", "TLSv1.2", "sessOut", "n"), restart(), ossl(tls13("-sess_in", "sess:a")...), nodeConn("version", "TLSv1.2", "sessIn", "n"),
	}, want: []string{"reused=true"}},
	{name: "tickets: another sessionIdContext does not", spec: spec("ticketKeys", keysA, "sessionIdContext", "app"), steps: []sideStep{
		ossl(tls13("-sess_out", "sess:a")...), nodeConn("version", "TLSv1.2", "sessOut", "n"), restart("sessionIdContext", "other"),
		ossl(tls13("-sess_in", "sess:a")...), nodeConn("version", "TLSv1.2", "sessIn", "n"),
	}, want: []string{"reused=false"}},
	{name: "tickets: sessionTimeout ends sessions", spec: spec("sessionTimeout", 1), steps: []sideStep{
		ossl(tls13("-sess_out", "sess:a")...), {sleep: 2500 * time.Millisecond}, ossl(tls13("-sess_in", "sess:a")...),
	}, want: []string{"handshake=New"}},
	{name: "tickets: a TLS 1.2 client that refuses tickets", spec: spec(), steps: []sideStep{ossl(tls12("-no_ticket", "-sess_out", "sess:a")...), ossl(tls12("-no_ticket", "-sess_in", "sess:a")...)}},
	{name: "tickets: secureOptions SSL_OP_NO_TICKET", spec: spec("secureOptions", 0x4000), steps: []sideStep{
		ossl(tls12("-sess_out", "sess:a")...), ossl(tls12("-sess_in", "sess:a")...), ossl(tls13("-sess_out", "sess:b")...), ossl(tls13("-sess_in", "sess:b")...),
	}},
}

// storeScenarios: newSession and resumeSession with an external store.
var storeScenarios = []sideScenario{
	{name: "store: openssl TLS 1.2", spec: spec("store", "memory"), steps: []sideStep{ossl(tls12("-sess_out", "sess:a")...), ossl(tls12("-sess_in", "sess:a")...)}, want: []string{"handshake=Reused"}, diff: []sideDiff{diffStoreEvents}},
	{name: "store: openssl TLS 1.3", spec: spec("store", "memory"), steps: []sideStep{ossl(tls13("-sess_out", "sess:a")...), ossl(tls13("-sess_in", "sess:a")...)}, want: []string{"handshake=Reused"}, diff: []sideDiff{diffStoreEvents}},
	{name: "store: node TLS 1.2", spec: spec("store", "memory"), steps: []sideStep{nodeConn("version", "TLSv1.2", "sessOut", "n"), nodeConn("version", "TLSv1.2", "sessIn", "n")}, want: []string{"reused=true"}, diff: []sideDiff{diffStoreEvents}},
	{name: "store: go TLS 1.3", spec: spec("store", "memory"), steps: []sideStep{goConn(goStep{version: v13, session: "g"}), goConn(goStep{version: v13, session: "g"})}, want: []string{"resumed=true"}, diff: []sideDiff{diffStoreEvents}},
	{name: "store: a TLS 1.2 client that refuses tickets", spec: spec("store", "memory"), steps: []sideStep{ossl(tls12("-no_ticket", "-sess_out", "sess:a")...), ossl(tls12("-no_ticket", "-sess_in", "sess:a")...)}, diff: []sideDiff{diffStoreEvents, diffNoTicket}},
	{name: "store: setTicketKeys ends stored sessions", spec: spec("store", "memory", "ticketKeys", keysA), steps: []sideStep{
		ossl(tls13("-sess_out", "sess:a")...), command("setTicketKeys " + keysB), ossl(tls13("-sess_in", "sess:a")...),
	}, want: []string{"handshake=New"}, diff: []sideDiff{diffStoreEvents}},
	{name: "store: a failing store", spec: spec("store", "failing"), steps: []sideStep{ossl(tls13("-sess_out", "sess:a")...), ossl(tls13("-sess_in", "sess:a")...), nodeConn("version", "TLSv1.2")}, diff: []sideDiff{diffStoreEvents, diffStoreDown}},
	{name: "store: a hanging store", spec: spec("store", "hanging", "handshakeTimeout", 1500), steps: []sideStep{ossl(tls13("-sess_out", "sess:a")...), nodeConn("version", "TLSv1.2")}, diff: []sideDiff{diffStoreEvents, diffStoreDown}},
}

// clientErrorScenarios: what ends a connection before secureConnection.
var clientErrorScenarios = []sideScenario{
	{name: "client error: TCP connect, then close", spec: spec(), steps: []sideStep{rawConn("close")}, want: []string{"S tlsClientError code=ECONNRESET"}},
	{name: "client error: HTTP instead of TLS", spec: spec(), steps: []sideStep{rawConn("http")}, want: []string{"ERR_SSL_HTTP_REQUEST"}},
	{name: "client error: idle past the handshake timeout", spec: spec("handshakeTimeout", 300), steps: []sideStep{rawConn("idle")}, want: []string{"ERR_TLS_HANDSHAKE_TIMEOUT"}, diff: []sideDiff{diffIdle}},
	{name: "client error: TLS 1.2 client rejects the certificate", spec: spec(), steps: []sideStep{ossl(tls12("-CAfile", "@rootB", "-verify_return_error")...)},
		want: []string{"ERR_SSL_TLSV1_ALERT_UNKNOWN_CA"}},
	{name: "client error: TLS 1.3 client rejects the certificate", spec: spec(), steps: []sideStep{ossl(tls13("-CAfile", "@rootB", "-verify_return_error")...)}, diff: []sideDiff{diffTLS13Alert}},
	{name: "client error: node client rejects the certificate", spec: spec("ca", []string{"@rootB"}), steps: []sideStep{nodeConn("version", "TLSv1.2", "servername", "x.test")}},
	{name: "client error: no common TLS version", spec: spec("minVersion", "TLSv1.3"), steps: []sideStep{ossl(tls12()...), goConn(goStep{version: v12})},
		want: []string{"alert=70"}, diff: []sideDiff{diffCodes}},
}

// optionScenarios: the createServer options in Node's formats.
var optionScenarios = []sideScenario{
	{name: "option ciphers: only the suites named", spec: spec("ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"), steps: []sideStep{
		ossl(tls12("-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")...), ossl(tls12("-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")...), ossl(tls13()...),
	}, want: []string{"alert=40"}, diff: []sideDiff{diffCodes}},
	{name: "option ciphers: keywords", spec: spec("ciphers", "ECDHE+AESGCM:!AES256"), steps: []sideStep{
		ossl(tls12("-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305")...), ossl(tls12("-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")...),
	}, diff: []sideDiff{diffCodes}},
	{name: "option ciphers: TLS 1.3 suites alone", spec: spec("ciphers", "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"),
		steps: []sideStep{ossl(tls12()...), ossl(tls13()...)}, want: []string{"alert=70"}, diff: []sideDiff{diffCodes}},
	{name: "option ciphers: an unknown name", spec: spec("ciphers", "FOO"), want: []string{"S createError"}},
	{name: "option ciphers: a DHE suite", spec: spec("ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256"), steps: []sideStep{ossl(tls12()...)}, diff: []sideDiff{diffRefused}},
	{name: "option ecdhCurve: one curve", spec: spec("ecdhCurve", "P-384"), steps: []sideStep{
		ossl(tls13("-groups", "P-256")...), ossl(tls12("-groups", "P-256")...), ossl(tls13("-groups", "P-384")...), goConn(goStep{curves: []tls.CurveID{tls.CurveP256}}),
	}, diff: []sideDiff{diffCodes}},
	{name: "option ecdhCurve: OpenSSL's names", spec: spec("ecdhCurve", "prime256v1:secp384r1"), steps: []sideStep{ossl(tls13("-groups", "X25519:P-256")...)}, want: []string{"handshake=New"}},
	{name: "option ecdhCurve: X448", spec: spec("ecdhCurve", "X448"), steps: []sideStep{ossl()}, diff: []sideDiff{diffRefused}},
	{name: "option secureProtocol: TLSv1_2_method", spec: spec("secureProtocol", "TLSv1_2_method"), steps: []sideStep{ossl(tls13()...), ossl()}, want: []string{"protocol=TLSv1.2"}, diff: []sideDiff{diffCodes}},
	{name: "option secureProtocol: unknown", spec: spec("secureProtocol", "TLSv1_3_method"), want: []string{"S createError"}},
	{name: "option secureProtocol with minVersion", spec: spec("secureProtocol", "TLSv1_2_method", "minVersion", "TLSv1.2"), want: []string{"S createError"}},
	{name: "option minVersion: TLSv1.3", spec: spec("minVersion", "TLSv1.3"), steps: []sideStep{nodeConn("version", "TLSv1.2"), ossl()}, diff: []sideDiff{diffCodes}},
	{name: "option maxVersion: TLSv1.2", spec: spec("maxVersion", "TLSv1.2"), steps: []sideStep{ossl(tls13()...), nodeConn()}, want: []string{"protocol=TLSv1.2"}, diff: []sideDiff{diffCodes}},
	{name: "option secureOptions: SSL_OP_NO_TLSv1_3", spec: spec("secureOptions", 0x20000000), steps: []sideStep{ossl(tls13()...), goConn(goStep{})}, diff: []sideDiff{diffCodes}},
	{name: "option secureOptions: SSL_OP_NO_TLSv1_2", spec: spec("secureOptions", 0x08000000), steps: []sideStep{ossl(tls12()...), goConn(goStep{})}, diff: []sideDiff{diffCodes}},
	{name: "option honorCipherOrder: false", spec: spec("honorCipherOrder", false), steps: []sideStep{ossl()}, diff: []sideDiff{diffRefused}},
	{name: "option honorCipherOrder: true", spec: spec("honorCipherOrder", true), steps: []sideStep{ossl()}, want: []string{"greeting=true"}},
	{name: "option dhparam", spec: spec("dhparam", "auto"), steps: []sideStep{ossl()}, diff: []sideDiff{diffRefused}},
	{name: "option NPNProtocols", spec: spec("NPNProtocols", []string{"http/1.1"}), steps: []sideStep{ossl()}, diff: []sideDiff{diffRefused}},
	{name: "option pfx with passphrase", spec: kv("pfx", "@localhost.pfx", "passphrase", "s3cret"), steps: []sideStep{ossl(sni("localhost")...)}, want: []string{"cn=localhost"}},
	{name: "option pfx: wrong passphrase", spec: kv("pfx", "@localhost.pfx", "passphrase", "wrong"), want: []string{"S createError"}},
	{name: "option pfx: OpenSSL 3's default encryption", spec: kv("pfx", "@localhost-modern.pfx", "passphrase", "s3cret"), steps: []sideStep{ossl()}, diff: []sideDiff{diffRefused}},
	{name: "option passphrase: an encrypted key", spec: spec("key", "@localhost-enc.key", "passphrase", "s3cret"), steps: []sideStep{ossl()}, want: []string{"greeting=true"}},
	{name: "option passphrase: wrong", spec: spec("key", "@localhost-enc.key", "passphrase", "wrong"), want: []string{"S createError"}},
	{name: "option ticketKeys: 47 bytes", spec: spec("ticketKeys", keysA[2:]), want: []string{"S createError"}},
	{name: "option sessionIdContext: 33 bytes", spec: spec("sessionIdContext", strings.Repeat("x", 33)), want: []string{"S createError"}},
	{name: "option key: another certificate's", spec: spec("key", "@b.test.key"), want: []string{"S createError"}},
}

// sniCallbackScenarios: Node's SNICallback option, with addContext and stapling.
var sniCallbackScenarios = []sideScenario{
	{name: "SNICallback: its context serves the name", spec: sniCallback, steps: []sideStep{ossl(with(sni("c.test"), "-status")...), nodeConn("servername", "c.test")},
		want: []string{"S SNICallback servername=c.test", "S OCSPRequest cert=c.test", "cn=c.test"}},
	{name: "SNICallback: not asked without SNI", spec: sniCallback, steps: []sideStep{ossl("-noservername"), goConn(goStep{})}, want: []string{"cn=localhost"}},
	{name: "SNICallback: its error destroys the connection", spec: sniCallback, steps: []sideStep{ossl(tls13(sni("bad.test")...)...), ossl(tls12(sni("bad.test")...)...), goConn(goStep{serverName: "bad.test"})},
		want: []string{"S tlsClientError code=hook failed"}},
	{name: "SNICallback: no context for an unknown name", spec: sniCallback, steps: []sideStep{ossl(sni("unknown.test")...)}, want: []string{"cn=localhost"}},
	{name: "SNICallback: none for a name addContext has", spec: sniCallback, steps: []sideStep{ossl(sni("b.test")...)}, diff: []sideDiff{diffSNICompose}},
	{name: "SNICallback: resumption", spec: sniCallback, steps: []sideStep{ossl(tls13(with(sni("c.test"), "-sess_out", "sess:a")...)...), ossl(tls13(with(sni("c.test"), "-sess_in", "sess:a")...)...)}, diff: []sideDiff{diffResumedContext}},
}

// serverScenarios: maxConnections, connections and close.
var serverScenarios = []sideScenario{
	{name: "maxConnections: one over the cap is closed at once", spec: spec("maxConnections", 1, "hold", true), steps: []sideStep{
		goConn(goStep{hold: true}), ossl(), goConn(goStep{}), command("release"),
	}},
	{name: "maxConnections: room again once a connection ends", spec: spec("maxConnections", 1, "hold", true), steps: []sideStep{
		goConn(goStep{hold: true}), command("release"), goConn(goStep{hold: true}), command("release"),
	}, want: []string{"greeting=true"}},
	// Node closes its listening socket on the next turn of its loop: the pause keeps a connection from
	// slipping in before.
	{name: "close: with no connection", spec: spec(), steps: []sideStep{command("close"), {sleep: 100 * time.Millisecond}, rawConn("close")}, want: []string{"S closed"}},
	{name: "close: waits for the live connection", spec: spec("hold", true), steps: []sideStep{
		goConn(goStep{hold: true}), command("close"), {sleep: 100 * time.Millisecond}, rawConn("close"), command("release"),
	}, want: []string{"S closed"}},
}

// The documented differences (docs/node-tls-mapping.md, "Differences that remain"), as the scenarios show them.
var (
	// D1: a session store that fails or hangs: Node destroys the socket (or waits until the handshake
	// timeout); tlsserver completes the handshake and tells SessionStoreError.
	diffStoreDown = sideDiff{id: "D1",
		node: []edit{{`^C openssl handshake=none .*`, "-"}, {`^S tlsClientError code=(store failed|ERR_TLS_HANDSHAKE_TIMEOUT)$`, "-"}},
		gos:  []edit{{`^C openssl handshake=(New|Reused) protocol=TLSv1\.3 .*`, "-"}, {`^S sessionStoreError .*`, "-"}, {`^S secureConnection .*protocol=TLSv1\.3 .*`, "-"}}}
	// D2: an unverified client certificate, rejected: Node's tlsClientError says ECONNRESET, tlsserver's
	// ClientError an *UnauthorizedError with OpenSSL's code.
	diffUnauthorized = sideDiff{id: "D2", gos: []edit{{`code=unauthorized: \S+$`, "code=ECONNRESET"}}}
	// D3: when a session store is called: Node only for TLS 1.2 clients without tickets, and on TLS 1.3
	// (resumeSession on every handshake, newSession twice after secureConnection); tlsserver for every
	// session, once, before secureConnection.
	diffStoreEvents = sideDiff{id: "D3", node: []edit{{`^S (newSession|resumeSession)`, "-"}}, gos: []edit{{`^S (newSession|resumeSession)`, "-"}}}
	// D4: a TLS 1.2 client without tickets resumes by session ID in Node (with a store), never in tlsserver.
	diffNoTicket = sideDiff{id: "D4", node: []edit{{`handshake=Reused`, "handshake=New"}, {`resumed=true`, "resumed=false"}}}
	// D5: servername on a resumed TLS 1.2 session: false in Node, the name sent in tlsserver.
	diffServername = sideDiff{id: "D5", gos: []edit{{`^(S secureConnection .*protocol=TLSv1\.2 resumed=true) servername=\S+$`, "$1 servername=false"}}}
	// D6: a client offering only http/1.1 to an h2 server: Node sends no_application_protocol, crypto/tls lets
	// it in without ALPN.
	diffALPNFallback = sideDiff{id: "D6",
		node: []edit{{`^C openssl handshake=none .*alert=120 .*`, "C openssl: http/1.1 only, server h2"}, {`^S tlsClientError code=ERR_SSL_NO_APPLICATION_PROTOCOL$`, "-"}},
		gos:  []edit{{`^C openssl handshake=New .*alpn=- .*greeting=true$`, "C openssl: http/1.1 only, server h2"}, {`^S secureConnection alpn=false .*`, "-"}}}
	// D7: an SNICallback that has no context for a name: Node serves the default context, tlsserver then
	// tries the addContext patterns.
	diffSNICompose = sideDiff{id: "D7", node: []edit{{`cn=localhost`, "cn=(fallback)"}}, gos: []edit{{`cn=b\.test`, "cn=(fallback)"}}}
	// D8: an option Node takes and tlsserver refuses (no DHE, no X448, no client cipher order, no NPN,
	// PKCS#12 as x/crypto/pkcs12 reads it).
	diffRefused = sideDiff{id: "D8", node: []edit{{`.*`, "-"}}, gos: []edit{{`^S createError$`, "-"}}}
	// D9: a TLS 1.3 client that rejects the certificate: OpenSSL reads its alert, crypto/tls fails on the
	// record instead.
	diffTLS13Alert = sideDiff{id: "D9", gos: []edit{{`code=go: local error: tls: bad record MAC$`, "code=ERR_SSL_TLSV1_ALERT_UNKNOWN_CA"}}}
	// D10: protocol-level refusals (no common version, suite or group) reach ClientError as crypto/tls's
	// untyped errors; Node gives OpenSSL's codes.
	diffCodes = sideDiff{id: "D10", gos: []edit{
		{`code=go: tls: client offered only unsupported versions.*`, "code=ERR_SSL_UNSUPPORTED_PROTOCOL"},
		{`code=go: tls: no cipher suite supported by both client and server.*`, "code=ERR_SSL_NO_SHARED_CIPHER"},
		{`code=go: tls: no key exchanges supported by both client and server$`, "code=ERR_SSL_NO_SUITABLE_KEY_SHARE"},
	}}
	// D11: on a resumed handshake Node runs no SNICallback (OpenSSL's certificate callback, where it runs, is
	// skipped) and the socket reports the default context's certificate; tlsserver chooses the context again.
	// (The SNICallback lines are dropped on both sides: which handshakes call it is the difference.)
	diffResumedContext = sideDiff{id: "D11", node: []edit{{`cn=localhost (protocol=TLSv1\.[23] resumed=true)`, "cn=(resumed) $1"}, {`^S SNICallback `, "-"}},
		gos: []edit{{`cn=\S+ (protocol=TLSv1\.[23] resumed=true)`, "cn=(resumed) $1"}, {`^S SNICallback `, "-"}}}
	// D12: at the handshake timeout Node reports ERR_TLS_HANDSHAKE_TIMEOUT and leaves the TCP connection
	// open; tlsserver closes it.
	diffIdle = sideDiff{id: "D12", node: []edit{{`^C raw idle not closed by the server$`, "C raw idle closed by the server after 0 bytes"}}}
)
