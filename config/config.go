package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/rs/zerolog"

	"staple/atomicfile"
	"staple/ocspfetch"
	"staple/stapler"
)

// ErrConfig is wrapped by every configuration error; the message names the file, line and key.
var ErrConfig = errors.New("config: bad configuration")

// Defaults of the configuration, documented in the manual of staple serve.
const (
	DefaultDataDir          = "./staple-data"
	DefaultListen           = "127.0.0.1:8443"
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDrainTimeout     = 30 * time.Second
	DefaultSweep            = "@every 30s"
	DefaultPerHost          = 4
	DefaultConcurrency      = 16
	DefaultFetchTimeout     = 10 * time.Second
	DefaultConnectTimeout   = 5 * time.Second
	DefaultMaxResponse      = 64 << 10
	DefaultReloadTimeout    = 30 * time.Second
	DefaultSessionTTL       = 300 * time.Second
	// DatabaseName is the cache file's name in the data directory.
	DatabaseName = "cache.db"
	// LabDir is the embedded lab's directory in the data directory.
	LabDir = "lab"
	// DefaultLabResponderURL is where the embedded lab's responder listens, and so the AIA OCSP URL of the
	// certificates it issues. It is not lab.DefaultResponderURL, so that a 'staple responder' for another lab
	// can run beside 'staple serve'.
	DefaultLabResponderURL = "http://127.0.0.1:8889"
)

// Config is staple serve's configuration: a TOML file, flags, or both (flags win).
type Config struct {
	// DataDir holds the cache database, the admin socket and the embedded lab. Default ./staple-data.
	DataDir string `toml:"data_dir"`
	// Listen is the TLS address. Default 127.0.0.1:8443.
	Listen string `toml:"listen"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `toml:"log_level"`
	// LogFormat is json, text or auto (text on a terminal, else json). Default auto.
	LogFormat string `toml:"log_format"`
	// MetricsListen serves Prometheus metrics at /metrics when set. Off by default.
	MetricsListen string `toml:"metrics_listen"`
	// ResponderListen serves the caching OCSP responder (RFC 5019) for the watched certificates when set.
	ResponderListen string `toml:"responder_listen"`
	// MaxConnections closes connections over the limit at once (Node's maxConnections). 0 = no limit.
	MaxConnections int `toml:"max_connections"`
	// HandshakeTimeout bounds a TLS handshake. Default 10 s: a client that stalls its handshake (slowloris)
	// holds a connection slot no longer. (tlsserver, as Node, defaults to 120 s.)
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// DrainTimeout bounds the wait for live connections at shutdown. Default 30 s.
	DrainTimeout Duration `toml:"drain_timeout"`
	// SessionTTL is how long a TLS session stays resumable. Default 300 s, as Node's sessionTimeout.
	SessionTTL Duration `toml:"session_ttl"`
	// Sessions is where resumable TLS sessions live. "tickets", the default: sealed in the session ticket
	// under the ticket keys (kept in the cache, shared by a fleet), nothing stored per handshake. "store":
	// Node's newSession/resumeSession, the ticket carries a session ID and the session is kept in the cache
	// file (written behind the handshake) or, in a fleet, in etcd (one write per session), for clients that
	// refuse to hold tickets.
	Sessions string `toml:"sessions"`
	// LabResponderURL is the responder URL of the embedded lab (no [[site]]: the lab under the data
	// directory serves localhost), used when the lab is first made. Default http://127.0.0.1:8889.
	LabResponderURL string `toml:"lab_responder_url"`

	Fetch   Fetch    `toml:"fetch"`
	Tickets Tickets  `toml:"tickets"`
	Fleet   Fleet    `toml:"fleet"`
	Sites   []Site   `toml:"site"`
	Exports []Export `toml:"export"`

	// File is the configuration file's path ("" when the configuration came from flags only).
	File  string `toml:"-"`
	lines map[string]int
}

// Fetch is the [fetch] table: how responders are queried and when.
type Fetch struct {
	// Sweep is the cron spec of the refresh sweep. Default "@every 30s".
	Sweep string `toml:"sweep"`
	// Timeout bounds one request; ConnectTimeout its connection. Defaults 10 s and 5 s.
	Timeout        Duration `toml:"timeout"`
	ConnectTimeout Duration `toml:"connect_timeout"`
	// MaxResponseBytes caps a response body. Default 64 KiB.
	MaxResponseBytes int64 `toml:"max_response_bytes"`
	// PerHost and Concurrency bound requests in flight per responder host and overall. Defaults 4 and 16.
	PerHost     int `toml:"per_host"`
	Concurrency int `toml:"concurrency"`
	// SHA256 puts a SHA-256 CertID in requests instead of SHA-1.
	SHA256 bool `toml:"sha256"`
	// Nonce sends a nonce (and requires it back). Off by default: pre-signing responders reject it.
	Nonce bool `toml:"nonce"`
	// Overrides maps a responder URL to another ("" disables it).
	Overrides map[string]string `toml:"overrides"`
	// StapleUnknown staples verified "unknown" responses. Off by default.
	StapleUnknown bool `toml:"staple_unknown"`
	// Margin is the least time before nextUpdate a refresh is scheduled. Default 1 h.
	Margin Duration `toml:"margin"`
	// NoNextUpdateTTL is how long a response without nextUpdate is used. Default 1 h.
	NoNextUpdateTTL Duration `toml:"no_next_update_ttl"`
}

// Fleet is the [fleet] table: several staple nodes that share one etcd cluster, so that one node (the
// elected leader) asks the CAs, every node staples what it fetched, and a session made on one node resumes on
// any other. Without endpoints the node stands alone on its bbolt cache.
type Fleet struct {
	// Endpoints are etcd's client URLs. Empty means no fleet.
	Endpoints []string `toml:"endpoints"`
	// Prefix is where staple's keys live in etcd. Default "/staple/".
	Prefix string `toml:"prefix"`
	// CertFile and KeyFile are a client certificate for etcd; CAFile the CA of etcd's server certificates.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	CAFile   string `toml:"ca_file"`
	// Username and Password authenticate with etcd's own users.
	Username string `toml:"username"`
	Password string `toml:"password"`
	// LeaseTTL is the leader's lease: another node takes over within two of them. Default 10 s.
	LeaseTTL Duration `toml:"lease_ttl"`
	// Node names this node in the election. Default the host name and the listen address.
	Node string `toml:"node"`
	// SelfFetch lets a node with no leader in sight fetch, for itself, a response that expires within
	// SelfFetchMargin (default 2 h). Default true.
	SelfFetch       *bool    `toml:"self_fetch"`
	SelfFetchMargin Duration `toml:"self_fetch_margin"`
	// UnservedAfter is how long a certificate may go with no node serving it (renewed while its node was
	// stopped, or served by a node that left) before the leader removes it from the fleet's store. Default
	// 1 h, at least 1 min. RemoveUnserved false keeps such certificates (and their fetches) for good.
	UnservedAfter  Duration `toml:"unserved_after"`
	RemoveUnserved *bool    `toml:"remove_unserved"`
}

// Enabled reports whether the node is in a fleet.
func (f Fleet) Enabled() bool { return len(f.Endpoints) > 0 }

// Tickets is the [tickets] table.
type Tickets struct {
	// Rotate is a cron spec for rotating session ticket keys (the previous key still decrypts). "" = never.
	Rotate string `toml:"rotate"`
}

// Site is one [[site]]: the certificate served for some SNI names, and what to do with the connections.
type Site struct {
	// Names are SNI patterns ("example.com", "*.example.com"; * matches within one label). A site without
	// names is the default, served when no pattern matches or the client sends no SNI.
	Names []string `toml:"names"`
	// Cert is the certificate chain (PEM, any order, may hold the key); Key the key file when separate;
	// Issuer an issuer certificate or CA bundle when the chain lacks it.
	Cert   string `toml:"cert"`
	Key    string `toml:"key"`
	Issuer string `toml:"issuer"`
	// At most one of Upstream (reverse-proxy HTTP to this http:// or https:// URL) and Forward (relay raw
	// TCP to host:port); with neither, the built-in status page is served.
	Upstream string `toml:"upstream"`
	Forward  string `toml:"forward"`
	// ALPN protocols offered. Default: h2 and http/1.1 for upstream and status page, none for forward.
	ALPN []string `toml:"alpn"`
	// ClientCA asks for client certificates verified against this bundle; RejectUnauthorized closes
	// connections whose certificate does not verify (Node's requestCert / rejectUnauthorized).
	ClientCA           string `toml:"client_ca"`
	RequestCert        bool   `toml:"request_cert"`
	RejectUnauthorized bool   `toml:"reject_unauthorized"`
}

// Export is one [[export]]: after every new response for the matching certificates, write it to a file and
// run a reload command, for nginx's ssl_stapling_file and HAProxy's .ocsp files.
type Export struct {
	// Cert selects the site by its cert path; "" exports every watched certificate.
	Cert string `toml:"cert"`
	// Path is where to write; "{cert}" is replaced by the certificate file's path, "{key}" by the cache key.
	// Default "{cert}.ocsp", HAProxy's layout.
	Path string `toml:"path"`
	// Format is der (nginx, HAProxy files) or base64 (HAProxy's "set ssl ocsp-response"). Default der.
	Format string `toml:"format"`
	// Reload is a command and its arguments, run (no shell) after a write.
	Reload []string `toml:"reload"`
	// ReloadTimeout bounds the reload command. Default 30 s.
	ReloadTimeout Duration `toml:"reload_timeout"`
}

// Duration is a time.Duration written as a Go duration string in TOML ("90s", "1h30m").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration (write it like \"30s\", \"5m\" or \"1h\")", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// maxFileSize bounds the configuration file Load reads.
const maxFileSize = 1 << 20

// Load reads and checks a configuration file. Relative paths in it are relative to its directory.
func Load(path string) (*Config, error) {
	data, err := atomicfile.Read(path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return Parse(data, path)
}

// Parse decodes and checks a configuration; name is the file name used in errors and the base of
// relative paths ("" for none).
func Parse(data []byte, name string) (*Config, error) {
	c := &Config{File: name}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, decodeError(name, err)
	}
	c.lines = keyLines(data)
	if name != "" {
		c.resolvePaths(filepath.Dir(name))
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeError(name string, err error) error {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if key := strings.Join(de.Key(), "."); key != "" {
			return fmt.Errorf("%w: %s:%d: %s: %s", ErrConfig, name, row, key, msg)
		}
		return fmt.Errorf("%w: %s:%d: %s", ErrConfig, name, row, msg)
	}
	var se *toml.StrictMissingError
	if errors.As(err, &se) && len(se.Errors) > 0 {
		return decodeError(name, &se.Errors[0])
	}
	return fmt.Errorf("%w: %s: %v", ErrConfig, name, err)
}

func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.DataDir)
	for i := range c.Sites {
		s := &c.Sites[i]
		abs(&s.Cert)
		abs(&s.Key)
		abs(&s.Issuer)
		abs(&s.ClientCA)
	}
	abs(&c.Fleet.CertFile)
	abs(&c.Fleet.KeyFile)
	abs(&c.Fleet.CAFile)
	for i := range c.Exports {
		abs(&c.Exports[i].Cert)
		if p := c.Exports[i].Path; p != "" && !strings.HasPrefix(p, "{") {
			abs(&c.Exports[i].Path)
		}
	}
}

// Errorf returns a configuration error at key ("site[2].cert"), naming the file and line when known.
func (c *Config) Errorf(key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	switch line := c.lines[key]; {
	case c.File != "" && line > 0:
		return fmt.Errorf("%w: %s:%d: %s: %s", ErrConfig, c.File, line, key, msg)
	case c.File != "":
		return fmt.Errorf("%w: %s: %s: %s", ErrConfig, c.File, key, msg)
	}
	return fmt.Errorf("%w: %s: %s", ErrConfig, key, msg)
}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defDur := func(d *Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	def(&c.DataDir, DefaultDataDir)
	def(&c.Listen, DefaultListen)
	def(&c.LogLevel, "info")
	def(&c.LogFormat, "auto")
	def(&c.Sessions, "tickets")
	def(&c.LabResponderURL, DefaultLabResponderURL)
	defDur(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	defDur(&c.DrainTimeout, DefaultDrainTimeout)
	defDur(&c.SessionTTL, DefaultSessionTTL)
	f := &c.Fetch
	def(&f.Sweep, DefaultSweep)
	defDur(&f.Timeout, DefaultFetchTimeout)
	defDur(&f.ConnectTimeout, DefaultConnectTimeout)
	if f.MaxResponseBytes == 0 {
		f.MaxResponseBytes = DefaultMaxResponse
	}
	if f.PerHost == 0 {
		f.PerHost = DefaultPerHost
	}
	if f.Concurrency == 0 {
		f.Concurrency = DefaultConcurrency
	}
	for i := range c.Exports {
		e := &c.Exports[i]
		def(&e.Path, "{cert}.ocsp")
		def(&e.Format, "der")
		defDur(&e.ReloadTimeout, DefaultReloadTimeout)
	}
}

// Check validates the configuration (after SetDefaults, which it calls): addresses, URLs, cron specs,
// SNI patterns and the choices of each site and export. It does not read certificate files: the service
// does that when it starts, and reports errors at the same keys.
func (c *Config) Check() error {
	c.SetDefaults()
	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		return c.Errorf("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "auto", "json", "text":
	default:
		return c.Errorf("log_format", "%q is not one of auto, json, text", c.LogFormat)
	}
	for key, addr := range map[string]string{"listen": c.Listen, "metrics_listen": c.MetricsListen, "responder_listen": c.ResponderListen} {
		if addr == "" && key != "listen" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return c.Errorf(key, "%q is not HOST:PORT", addr)
		}
	}
	if c.LabResponderURL != "" {
		if err := checkHTTPURL(c.LabResponderURL); err != nil || !strings.HasPrefix(c.LabResponderURL, "http://") {
			return c.Errorf("lab_responder_url", "%q is not an http:// URL", c.LabResponderURL)
		}
	}
	switch c.Sessions {
	case "", "tickets", "store":
	default:
		return c.Errorf("sessions", "%q is not tickets or store", c.Sessions)
	}
	if c.MaxConnections < 0 {
		return c.Errorf("max_connections", "must not be negative")
	}
	if err := c.checkSchedule("fetch.sweep", c.Fetch.Sweep); err != nil {
		return err
	}
	if c.Tickets.Rotate != "" {
		if err := c.checkSchedule("tickets.rotate", c.Tickets.Rotate); err != nil {
			return err
		}
	}
	if c.Fetch.PerHost < 0 || c.Fetch.Concurrency < 0 || c.Fetch.MaxResponseBytes < 0 {
		return c.Errorf("fetch", "per_host, concurrency and max_response_bytes must not be negative")
	}
	for from, to := range c.Fetch.Overrides {
		key := "fetch.overrides." + ocspfetch.RedactURL(from)
		if err := checkHTTPURL(from); err != nil {
			return c.Errorf(key, "%v", err)
		}
		if to != "" {
			if err := checkHTTPURL(to); err != nil {
				return c.Errorf(key, "%v", err)
			}
		}
	}
	defaults := 0
	for i := range c.Sites {
		if err := c.checkSite(i, &defaults); err != nil {
			return err
		}
	}
	for i := range c.Exports {
		if err := c.checkExport(i); err != nil {
			return err
		}
	}
	return c.checkFleet()
}

func (c *Config) checkFleet() error {
	f := &c.Fleet
	if !f.Enabled() {
		return nil
	}
	for _, e := range f.Endpoints {
		if err := checkHTTPURL(e); err != nil {
			return c.Errorf("fleet.endpoints", "%v", err)
		}
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return c.Errorf("fleet.cert_file", "cert_file and key_file go together")
	}
	if f.LeaseTTL.Duration != 0 && f.LeaseTTL.Duration < 2*time.Second {
		return c.Errorf("fleet.lease_ttl", "%v is shorter than etcd's minimum lease of 2s", f.LeaseTTL.Duration)
	}
	if d := f.UnservedAfter.Duration; d != 0 && d < time.Minute {
		return c.Errorf("fleet.unserved_after", "%v is shorter than 1m: a node's restart would lose its certificates from the fleet", d)
	}
	return nil
}

func (c *Config) checkSite(i int, defaults *int) error {
	s := &c.Sites[i]
	key := fmt.Sprintf("site[%d]", i+1)
	if s.Cert == "" {
		return c.Errorf(key, "cert is missing")
	}
	if len(s.Names) == 0 {
		*defaults++
		if *defaults > 1 {
			return c.Errorf(key, "a second site without names: only one site can be the default")
		}
	}
	for _, n := range s.Names {
		if err := checkPattern(n); err != nil {
			return c.Errorf(key+".names", "%v", err)
		}
	}
	if s.Upstream != "" && s.Forward != "" {
		return c.Errorf(key+".forward", "a site has upstream or forward, not both")
	}
	if s.Upstream != "" {
		if err := checkHTTPURL(s.Upstream); err != nil {
			return c.Errorf(key+".upstream", "%v", err)
		}
	}
	if s.Forward != "" {
		if _, _, err := net.SplitHostPort(s.Forward); err != nil {
			return c.Errorf(key+".forward", "%q is not HOST:PORT", s.Forward)
		}
	}
	if s.RejectUnauthorized && s.ClientCA == "" {
		return c.Errorf(key+".reject_unauthorized", "needs client_ca to verify client certificates against")
	}
	if s.ClientCA != "" {
		s.RequestCert = true
	}
	return nil
}

func (c *Config) checkExport(i int) error {
	e := &c.Exports[i]
	key := fmt.Sprintf("export[%d]", i+1)
	switch e.Format {
	case "der", "base64":
	default:
		return c.Errorf(key+".format", "%q is not der or base64", e.Format)
	}
	if strings.Count(e.Path, "{")+strings.Count(e.Path, "}") > 0 && !strings.Contains(e.Path, "{cert}") && !strings.Contains(e.Path, "{key}") {
		return c.Errorf(key+".path", "%q: the only placeholders are {cert} and {key}", e.Path)
	}
	if e.Cert == "" && !strings.Contains(e.Path, "{") {
		return c.Errorf(key+".path", "%q: exporting every certificate needs {cert} or {key} in the path", e.Path)
	}
	if e.Cert != "" && !c.hasSiteCert(e.Cert) {
		return c.Errorf(key+".cert", "%q is not the cert of any [[site]]", e.Cert)
	}
	if len(e.Reload) > 0 && e.Reload[0] == "" {
		return c.Errorf(key+".reload", "the command is empty")
	}
	return nil
}

func (c *Config) hasSiteCert(p string) bool {
	for _, s := range c.Sites {
		if s.Cert == p {
			return true
		}
	}
	return false
}

// checkSchedule checks spec with the scheduler's own parser, so that what the configuration accepts runs.
func (c *Config) checkSchedule(key, spec string) error {
	if _, err := stapler.ParseSchedule(spec); err != nil {
		return c.Errorf(key, "%q is not a cron spec (\"@every 30s\", \"*/5 * * * *\"): %v", spec, errors.Unwrap(err))
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", ocspfetch.RedactURL(s))
	}
	return nil
}

// checkPattern accepts SNI patterns as Node's addContext does: labels of a DNS name where * stands for any
// run of characters within one label.
func checkPattern(p string) error {
	if p == "" || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..") {
		return fmt.Errorf("%q is not a host name pattern", p)
	}
	for _, r := range p {
		if !(r == '*' || r == '.' || r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("%q has %q: a pattern holds letters, digits, '-', '.' and '*'", p, r)
		}
	}
	return nil
}
