package tlsserver

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// nodeVersions are Node's names of the TLS versions (minVersion, maxVersion).
var nodeVersions = map[string]uint16{"TLSv1": tls.VersionTLS10, "TLSv1.1": tls.VersionTLS11, "TLSv1.2": tls.VersionTLS12, "TLSv1.3": tls.VersionTLS13}

// secureProtocols are the server methods Node's secureProtocol takes, as version bounds (0: no bound).
var secureProtocols = map[string][2]uint16{
	"TLS_method": {}, "TLS_server_method": {}, "SSLv23_method": {}, "SSLv23_server_method": {},
	"TLSv1_method": {tls.VersionTLS10, tls.VersionTLS10}, "TLSv1_server_method": {tls.VersionTLS10, tls.VersionTLS10},
	"TLSv1_1_method": {tls.VersionTLS11, tls.VersionTLS11}, "TLSv1_1_server_method": {tls.VersionTLS11, tls.VersionTLS11},
	"TLSv1_2_method": {tls.VersionTLS12, tls.VersionTLS12}, "TLSv1_2_server_method": {tls.VersionTLS12, tls.VersionTLS12},
}

// OpenSSL's SSL_OP_ bits that secureOptions may carry (OpenSSL 3.0, Node's crypto.constants).
const (
	opNoTLSv1      = 0x04000000
	opNoTLSv1_1    = 0x10000000
	opNoTLSv1_2    = 0x08000000
	opNoTLSv1_3    = 0x20000000
	opNoTicket     = 0x00004000
	opsAsCryptoTLS = 0x02000000 | // NO_SSLv3: crypto/tls has no SSL 3.0
		0x00020000 | // NO_COMPRESSION: it never compresses
		0x40000000 | // NO_RENEGOTIATION: its server never renegotiates
		0x00010000 | // NO_SESSION_RESUMPTION_ON_RENEGOTIATION: the same
		0x00400000 | // CIPHER_SERVER_PREFERENCE: it picks the suite, not the client
		0x00200000 // PRIORITIZE_CHACHA: it prefers ChaCha20 when the client does
)

// curves are the names ecdhCurve takes for the groups crypto/tls implements.
var curves = map[string]tls.CurveID{
	"P-256": tls.CurveP256, "prime256v1": tls.CurveP256, "secp256r1": tls.CurveP256,
	"P-384": tls.CurveP384, "secp384r1": tls.CurveP384, "P-521": tls.CurveP521, "secp521r1": tls.CurveP521,
	"X25519": tls.X25519,
}

// tlsConfig turns the server's protocol options into a tls.Config: ciphers, ecdhCurve, the version bounds of
// secureProtocol, minVersion, maxVersion and secureOptions; it refuses honorCipherOrder: false, dhparam
// and NPNProtocols.
func (o *Options) tlsConfig() (*tls.Config, error) {
	refuse := func(option, reason string) error {
		return &OptionError{Option: option, Reason: reason, Err: ErrUnsupportedOption}
	}
	switch {
	case o.ClientCipherOrder:
		return nil, refuse("honorCipherOrder", "false is refused: crypto/tls picks the suite by its own preference, never the client's")
	case o.DHParam != nil:
		return nil, refuse("dhparam", "crypto/tls has no finite-field Diffie-Hellman (DHE); its key exchange is ECDHE (ecdhCurve)")
	case o.NPNProtocols != nil:
		return nil, refuse("NPNProtocols", "NPN was removed from crypto/tls (Go 1.14) and from Node; use ALPNProtocols")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	if err := o.versions(cfg); err != nil {
		return nil, err
	}
	if o.Ciphers != "" {
		suites, err := parseCiphers(o.Ciphers)
		if err != nil {
			return nil, err
		}
		cfg.CipherSuites = suites
		if len(suites) == 0 { // TLS 1.3 suites alone: TLS 1.3 only, as in Node
			if cfg.MaxVersion < tls.VersionTLS13 {
				return nil, &OptionError{Option: "ciphers", Reason: "names TLS 1.3 suites only, and TLS 1.3 is off"}
			}
			cfg.MinVersion = tls.VersionTLS13
		}
	}
	if o.ECDHCurve != "" && o.ECDHCurve != "auto" {
		for _, name := range strings.Split(o.ECDHCurve, ":") {
			id, ok := curves[name]
			if !ok {
				return nil, refuse("ecdhCurve", fmt.Sprintf("%q is not a curve crypto/tls implements (P-256, P-384, P-521, X25519)", name))
			}
			cfg.CurvePreferences = append(cfg.CurvePreferences, id)
		}
	}
	cfg.SessionTicketsDisabled = o.SecureOptions&opNoTicket != 0
	return cfg, nil
}

// versions sets cfg's bounds from secureProtocol, minVersion, maxVersion and secureOptions, as Node does.
func (o *Options) versions(cfg *tls.Config) error {
	if o.SecureProtocol != "" {
		if o.MinVersion != "" || o.MaxVersion != "" {
			return &OptionError{Option: "secureProtocol", Reason: "conflicts with minVersion and maxVersion (Node: ERR_TLS_PROTOCOL_VERSION_CONFLICT)"}
		}
		b, ok := secureProtocols[o.SecureProtocol]
		if !ok {
			return &OptionError{Option: "secureProtocol", Reason: fmt.Sprintf("%q is not a TLS server method (Node: ERR_TLS_INVALID_PROTOCOL_METHOD; SSLv2 and SSLv3 are gone)", o.SecureProtocol), Err: ErrUnsupportedOption}
		}
		if b[0] != 0 {
			cfg.MinVersion, cfg.MaxVersion = b[0], b[1]
		}
	}
	for _, v := range []struct {
		option, name string
		bound        *uint16
	}{{"minVersion", o.MinVersion, &cfg.MinVersion}, {"maxVersion", o.MaxVersion, &cfg.MaxVersion}} {
		if v.name == "" {
			continue
		}
		ver, ok := nodeVersions[v.name]
		if !ok {
			return &OptionError{Option: v.option, Reason: fmt.Sprintf("%q is not a TLS version (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)", v.name)}
		}
		*v.bound = ver
	}
	opts := o.SecureOptions
	if rest := opts &^ (opNoTLSv1 | opNoTLSv1_1 | opNoTLSv1_2 | opNoTLSv1_3 | opNoTicket | opsAsCryptoTLS); rest != 0 {
		return &OptionError{Option: "secureOptions", Reason: fmt.Sprintf("bits %#x have no crypto/tls counterpart", rest), Err: ErrUnsupportedOption}
	}
	var allowed []uint16
	for v, bit := range map[uint16]uint64{tls.VersionTLS10: opNoTLSv1, tls.VersionTLS11: opNoTLSv1_1, tls.VersionTLS12: opNoTLSv1_2, tls.VersionTLS13: opNoTLSv1_3} {
		if v >= cfg.MinVersion && v <= cfg.MaxVersion && opts&bit == 0 {
			allowed = append(allowed, v)
		}
	}
	if len(allowed) == 0 {
		return &OptionError{Option: "secureOptions", Reason: "no TLS version is left"}
	}
	lo, hi := allowed[0], allowed[0]
	for _, v := range allowed {
		lo, hi = min(lo, v), max(hi, v)
	}
	if int(hi-lo) != len(allowed)-1 {
		return &OptionError{Option: "secureOptions", Reason: "the SSL_OP_NO_TLSv1… bits leave a gap between versions", Err: ErrUnsupportedOption}
	}
	cfg.MinVersion, cfg.MaxVersion = lo, hi
	return nil
}
