package tlsserver

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
)

// openSSLSuite is a TLS 1.2 cipher suite that both crypto/tls and OpenSSL 3 (Node 20's) implement, under
// OpenSSL's name, with the attributes OpenSSL's cipher-string keywords select on.
type openSSLSuite struct {
	name             string
	id               uint16
	kx, au, enc, mac string
}

var openSSLSuites = []openSSLSuite{
	{"ECDHE-ECDSA-AES256-GCM-SHA384", tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "ECDHE", "ECDSA", "AESGCM256", "AEAD"},
	{"ECDHE-RSA-AES256-GCM-SHA384", tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "ECDHE", "RSA", "AESGCM256", "AEAD"},
	{"ECDHE-ECDSA-CHACHA20-POLY1305", tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE", "ECDSA", "CHACHA20", "AEAD"},
	{"ECDHE-RSA-CHACHA20-POLY1305", tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "ECDHE", "RSA", "CHACHA20", "AEAD"},
	{"ECDHE-ECDSA-AES128-GCM-SHA256", tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "ECDHE", "ECDSA", "AESGCM128", "AEAD"},
	{"ECDHE-RSA-AES128-GCM-SHA256", tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "ECDHE", "RSA", "AESGCM128", "AEAD"},
	{"ECDHE-ECDSA-AES128-SHA256", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, "ECDHE", "ECDSA", "AES128", "SHA256"},
	{"ECDHE-RSA-AES128-SHA256", tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, "ECDHE", "RSA", "AES128", "SHA256"},
	{"ECDHE-ECDSA-AES256-SHA", tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, "ECDHE", "ECDSA", "AES256", "SHA1"},
	{"ECDHE-RSA-AES256-SHA", tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, "ECDHE", "RSA", "AES256", "SHA1"},
	{"ECDHE-ECDSA-AES128-SHA", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, "ECDHE", "ECDSA", "AES128", "SHA1"},
	{"ECDHE-RSA-AES128-SHA", tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, "ECDHE", "RSA", "AES128", "SHA1"},
	{"AES256-GCM-SHA384", tls.TLS_RSA_WITH_AES_256_GCM_SHA384, "RSA", "RSA", "AESGCM256", "AEAD"},
	{"AES128-GCM-SHA256", tls.TLS_RSA_WITH_AES_128_GCM_SHA256, "RSA", "RSA", "AESGCM128", "AEAD"},
	{"AES128-SHA256", tls.TLS_RSA_WITH_AES_128_CBC_SHA256, "RSA", "RSA", "AES128", "SHA256"},
	{"AES256-SHA", tls.TLS_RSA_WITH_AES_256_CBC_SHA, "RSA", "RSA", "AES256", "SHA1"},
	{"AES128-SHA", tls.TLS_RSA_WITH_AES_128_CBC_SHA, "RSA", "RSA", "AES128", "SHA1"},
}

// cipherKeywords are the OpenSSL cipher-string keywords understood, as predicates over openSSLSuites. Those
// that select nothing name families crypto/tls does not implement; they are there so that the usual
// exclusions ("!aNULL:!MD5:!DHE…") read as in OpenSSL.
var cipherKeywords = func() map[string]func(openSSLSuite) bool {
	m := map[string]func(openSSLSuite) bool{
		"ALL": all, "DEFAULT": all, "HIGH": all, "COMPLEMENTOFDEFAULT": none, "COMPLEMENTOFALL": none,
		"kECDHE": kx("ECDHE"), "ECDHE": kx("ECDHE"), "EECDH": kx("ECDHE"), "kRSA": kx("RSA"), "RSA": kx("RSA"),
		"aRSA":   func(s openSSLSuite) bool { return s.au == "RSA" },
		"aECDSA": func(s openSSLSuite) bool { return s.au == "ECDSA" }, "ECDSA": func(s openSSLSuite) bool { return s.au == "ECDSA" },
		"AESGCM":   func(s openSSLSuite) bool { return strings.HasPrefix(s.enc, "AESGCM") },
		"AES":      func(s openSSLSuite) bool { return strings.HasPrefix(s.enc, "AES") },
		"AES128":   func(s openSSLSuite) bool { return s.enc == "AES128" || s.enc == "AESGCM128" },
		"AES256":   func(s openSSLSuite) bool { return s.enc == "AES256" || s.enc == "AESGCM256" },
		"CHACHA20": func(s openSSLSuite) bool { return s.enc == "CHACHA20" },
		"SHA1":     func(s openSSLSuite) bool { return s.mac == "SHA1" }, "SHA": func(s openSSLSuite) bool { return s.mac == "SHA1" },
		"SHA256":  func(s openSSLSuite) bool { return s.mac == "SHA256" },
		"TLSv1.2": func(s openSSLSuite) bool { return s.mac != "SHA1" },
	}
	for _, k := range strings.Fields(`MEDIUM LOW EXPORT EXP aNULL eNULL NULL MD5 DES 3DES RC4 RC2 IDEA SEED CAMELLIA ARIA
		CCM AESCCM AESCCM8 PSK aPSK kPSK ECDHEPSK DHEPSK RSAPSK SRP DSS aDSS DH DHE EDH kDHE kEDH ADH AECDH SHA384
		GOST94 GOST89MAC kGOST aGOST`) {
		m[k] = none
	}
	return m
}()

func all(openSSLSuite) bool  { return true }
func none(openSSLSuite) bool { return false }
func kx(k string) func(openSSLSuite) bool {
	return func(s openSSLSuite) bool { return s.kx == k }
}

// tls13Suites are the TLS 1.3 suites crypto/tls always offers, which Node's ciphers may name.
var tls13Suites = []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}

// parseCiphers reads an OpenSSL cipher string as Node's ciphers option takes it. Names starting with TLS_
// are TLS 1.3 suites (Node passes them to SSL_CTX_set_ciphersuites); crypto/tls cannot choose those, so they
// are accepted only all three together. The rest is OpenSSL's cipher list: names and keywords joined by ':'
// (or ',' or ' '), '+' between keywords for their intersection, a '!' prefix removing for good, '-'
// removing, '+' moving to the end, '@STRENGTH' ordering (crypto/tls orders suites itself either way). It
// returns the TLS 1.2 suites selected (none when only TLS 1.3 suites were named). Names crypto/tls does not
// implement are refused, where OpenSSL skips names it lacks.
func parseCiphers(s string) (suites []uint16, err error) {
	refuse := func(format string, args ...any) ([]uint16, error) {
		return nil, &OptionError{Option: "ciphers", Reason: fmt.Sprintf(format, args...), Err: ErrUnsupportedOption}
	}
	in, banned := map[uint16]bool{}, map[uint16]bool{}
	var named13 []string
	for _, elem := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		op, word := byte(0), elem
		if strings.ContainsRune("!-+", rune(elem[0])) {
			op, word = elem[0], elem[1:]
		}
		switch {
		case strings.HasPrefix(word, "TLS_"):
			if op != 0 || !slices.Contains(tls13Suites, word) {
				return refuse("%q: crypto/tls offers exactly %s for TLS 1.3 and lets none be chosen or removed", elem, strings.Join(tls13Suites, ", "))
			}
			named13 = append(named13, word)
			continue
		case word == "@STRENGTH":
			continue
		case strings.HasPrefix(word, "@"):
			return refuse("%q: crypto/tls has no OpenSSL security levels", elem)
		}
		match, err := cipherMatch(word)
		if err != nil {
			return refuse("%q: %v", elem, err)
		}
		for _, cs := range openSSLSuites {
			if !match(cs) {
				continue
			}
			switch op {
			case 0:
				in[cs.id] = in[cs.id] || !banned[cs.id]
			case '!':
				banned[cs.id], in[cs.id] = true, false
			case '-':
				in[cs.id] = false
			}
		}
	}
	if len(named13) > 0 {
		for _, n := range tls13Suites {
			if !slices.Contains(named13, n) {
				return refuse("%s is not named: crypto/tls offers all three TLS 1.3 suites and lets none be chosen", n)
			}
		}
	}
	for _, cs := range openSSLSuites {
		if in[cs.id] {
			suites = append(suites, cs.id)
		}
	}
	if len(suites) == 0 && len(named13) == 0 {
		return nil, &OptionError{Option: "ciphers", Reason: fmt.Sprintf("%q selects no cipher suite (Node: ERR_SSL_NO_CIPHER_MATCH)", s)}
	}
	return suites, nil
}

// cipherMatch returns the predicate of a name, a keyword or keywords joined by '+'.
func cipherMatch(word string) (func(openSSLSuite) bool, error) {
	if i := slices.IndexFunc(openSSLSuites, func(cs openSSLSuite) bool { return cs.name == word }); i >= 0 {
		name := openSSLSuites[i].name
		return func(cs openSSLSuite) bool { return cs.name == name }, nil
	}
	var preds []func(openSSLSuite) bool
	for _, k := range strings.Split(word, "+") {
		p, ok := cipherKeywords[k]
		if !ok {
			return nil, cipherUnknown(word)
		}
		preds = append(preds, p)
	}
	return func(cs openSSLSuite) bool {
		for _, p := range preds {
			if !p(cs) {
				return false
			}
		}
		return true
	}, nil
}

// cipherUnknown says why a cipher name selects nothing here.
func cipherUnknown(name string) error {
	switch {
	case strings.Contains(name, "DHE-") && !strings.HasPrefix(name, "ECDHE-") || strings.HasPrefix(name, "EDH-"):
		return fmt.Errorf("crypto/tls has no finite-field Diffie-Hellman (DHE) suites")
	case strings.HasPrefix(name, "ECDHE-") || strings.HasPrefix(name, "AES") || strings.HasPrefix(name, "DES-") ||
		strings.Contains(name, "CAMELLIA") || strings.Contains(name, "ARIA") || strings.Contains(name, "PSK"):
		return fmt.Errorf("not a suite crypto/tls implements for TLS 1.2 (it has %s)", suiteNames())
	}
	return fmt.Errorf("not an OpenSSL cipher name or keyword known here")
}

func suiteNames() string {
	names := make([]string, len(openSSLSuites))
	for i, cs := range openSSLSuites {
		names[i] = cs.name
	}
	return strings.Join(names, ", ")
}
