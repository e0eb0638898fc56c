package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"staple/atomicfile"
	"staple/stapler"
)

func TestParseConfigFull(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "[::]:443" || c.MaxConnections != 1000 || c.HandshakeTimeout.Duration != 30*time.Second {
		t.Errorf("top level: %+v", c)
	}
	if c.Fetch.PerHost != 2 || !c.Fetch.SHA256 || c.Fetch.Overrides["http://ocsp.dead.example"] != "" || len(c.Fetch.Overrides) != 2 {
		t.Errorf("fetch: %+v", c.Fetch)
	}
	if len(c.Sites) != 3 || c.Sites[0].Cert != filepath.Join("testdata", "certs", "example.pem") || c.Sites[1].Cert != "/etc/ssl/db.pem" {
		t.Errorf("sites (relative paths resolve against the file's directory): %+v", c.Sites)
	}
	if !c.Sites[1].RequestCert {
		t.Error("client_ca implies request_cert")
	}
	if len(c.Exports) != 2 || c.Exports[1].Format != "der" || c.Exports[0].ReloadTimeout.Duration != 5*time.Second {
		t.Errorf("exports: %+v", c.Exports)
	}
}

// TestSchedulesAgree: a six-field spec (seconds first) is accepted by the configuration's checks and runs in
// the scheduler; a bad one is refused by both.
func TestSchedulesAgree(t *testing.T) {
	for _, tt := range []struct {
		spec string
		ok   bool
	}{
		{"@every 30s", true}, {"*/5 * * * *", true}, {"30 */5 * * * *", true}, {"often", false}, {"* * *", false},
	} {
		doc := fmt.Sprintf("[fetch]\nsweep = %q\n[tickets]\nrotate = %q\n", tt.spec, tt.spec)
		c, err := Parse([]byte(doc), "s.toml")
		if (err == nil) != tt.ok {
			t.Errorf("%q: configuration %v, want ok=%v", tt.spec, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		sc := c.StaplerConfig("test", nil)
		if _, err := stapler.New(sc); err != nil {
			t.Errorf("%q: accepted by the configuration, refused by the stapler: %v", tt.spec, err)
		}
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := Parse(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != DefaultDataDir || c.Listen != DefaultListen || c.Fetch.Sweep != DefaultSweep ||
		c.Fetch.PerHost != 4 || c.Fetch.Concurrency != 16 || c.HandshakeTimeout.Duration != 10*time.Second ||
		c.SessionTTL.Duration != 300*time.Second || c.Fetch.MaxResponseBytes != 64<<10 {
		t.Errorf("defaults: %+v", c)
	}
}

// TestParseConfigErrors checks that each bad configuration gives one line naming file, line and key.
func TestParseConfigErrors(t *testing.T) {
	site := "[[site]]\ncert = \"a.pem\"\n"
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", "listen = \"127.0.0.1:1\"\nlisten_addr = \"x\"\n", "s.toml:2: listen_addr: unknown field"},
		{"unknown key in site", site + "certificate = \"b\"\n", "s.toml:3: site.certificate: unknown field"},
		{"wrong type", "max_connections = \"ten\"\n", "s.toml:1: max_connections: cannot decode TOML string"},
		{"bad duration", "\n\nhandshake_timeout = \"2 minutes\"\n", `s.toml:3: handshake_timeout: "2 minutes" is not a duration`},
		{"syntax", "listen = \n", "s.toml:1: unexpected character"},
		{"bad listen", "log_level = \"info\"\nlisten = \"8443\"\n", `s.toml:2: listen: "8443" is not HOST:PORT`},
		{"bad level", "log_level = \"loud\"\n", `s.toml:1: log_level: "loud" is not one of`},
		{"bad format", "log_format = \"xml\"\n", `s.toml:1: log_format: "xml" is not one of`},
		{"bad sweep", "[fetch]\nsweep = \"often\"\n", `s.toml:2: fetch.sweep: "often" is not a cron spec`},
		{"bad override", "[fetch.overrides]\n\"ftp://x\" = \"\"\n", `s.toml:2: fetch.overrides.ftp://x: "ftp://x" is not an http:// or https:// URL`},
		{"site without cert", "[[site]]\nnames = [\"a\"]\n", "s.toml:1: site[1]: cert is missing"},
		{"two defaults", site + site, "s.toml:3: site[2]: a second site without names"},
		{"bad pattern", site + "names = [\"a..b\"]\n", `s.toml:3: site[1].names: "a..b" is not a host name pattern`},
		{"bad pattern char", site + "names = [\"a b\"]\n", `s.toml:3: site[1].names: "a b" has ' '`},
		{"both actions", site + "upstream = \"http://x\"\nforward = \"x:1\"\n", "s.toml:4: site[1].forward: a site has upstream or forward, not both"},
		{"bad upstream", site + "upstream = \"x:1\"\n", `s.toml:3: site[1].upstream: "x:1" is not an http:// or https:// URL`},
		{"bad forward", site + "forward = \"x\"\n", `s.toml:3: site[1].forward: "x" is not HOST:PORT`},
		{"reject without ca", site + "reject_unauthorized = true\n", "s.toml:3: site[1].reject_unauthorized: needs client_ca"},
		{"export format", site + "[[export]]\npath = \"{cert}.ocsp\"\nformat = \"pem\"\n", `s.toml:5: export[1].format: "pem" is not der or base64`},
		{"export all without placeholder", site + "[[export]]\npath = \"/x.ocsp\"\n", `s.toml:4: export[1].path: "/x.ocsp": exporting every certificate needs {cert} or {key}`},
		{"export unknown cert", site + "[[export]]\ncert = \"/other.pem\"\n", `s.toml:4: export[1].cert: "/other.pem" is not the cert of any [[site]]`},
		{"export bad placeholder", site + "[[export]]\npath = \"{name}.ocsp\"\n", `s.toml:4: export[1].path: "{name}.ocsp": the only placeholders are {cert} and {key}`},
		{"bad rotate", "[tickets]\nrotate = \"daily\"\n", `s.toml:2: tickets.rotate: "daily" is not a cron spec`},
		{"negative connections", "max_connections = -1\n", "s.toml:1: max_connections: must not be negative"},
		{"fleet endpoint", "[fleet]\nendpoints = [\"127.0.0.1:2379\"]\n", `s.toml:2: fleet.endpoints: "127.0.0.1:2379" is not an http:// or https:// URL`},
		{"fleet short lease", "[fleet]\nendpoints = [\"http://e:2379\"]\nlease_ttl = \"1s\"\n", "s.toml:3: fleet.lease_ttl: 1s is shorter than etcd's minimum lease of 2s"},
		{"sessions", "sessions = \"redis\"\n", `s.toml:1: sessions: "redis" is not tickets or store`},
		{"fleet short unserved", "[fleet]\nendpoints = [\"http://e:2379\"]\nunserved_after = \"30s\"\n", "s.toml:3: fleet.unserved_after: 30s is shorter than 1m: a node's restart would lose its certificates from the fleet"},
		{"fleet key alone", "[fleet]\nendpoints = [\"http://e:2379\"]\ncert_file = \"c.pem\"\n", "s.toml:3: fleet.cert_file: cert_file and key_file go together"},
		{"lab url", "lab_responder_url = \"https://x\"\n", `s.toml:1: lab_responder_url: "https://x" is not an http:// URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "s.toml")
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error = %v, want ErrConfig", err)
			}
			msg := strings.TrimPrefix(err.Error(), ErrConfig.Error()+": ")
			if !strings.HasPrefix(msg, tt.want) {
				t.Errorf("error\n  %s\nwant prefix\n  %s", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, ErrConfig) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.toml") {
		t.Errorf("error = %v", err)
	}
	// A device without end is read no further than the bound.
	if _, err := Load("/dev/zero"); !errors.Is(err, ErrConfig) || !errors.Is(err, atomicfile.ErrTooLarge) {
		t.Errorf("Load(/dev/zero) = %v, want ErrConfig and atomicfile.ErrTooLarge", err)
	}
}

// FuzzParseConfig: no input may panic the parser, and an accepted configuration is internally consistent.
func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.toml"))
	if len(files) == 0 {
		f.Fatal("no configuration under testdata to seed from")
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// The configurations the end-to-end tests write: a lab site, the embedded default on other ports, the
	// load test's limits.
	f.Add([]byte("data_dir = \"/d\"\nlisten = \"127.0.0.1:1\"\nlog_format = \"json\"\ndrain_timeout = \"5s\"\n\n[fetch]\nsweep = \"@every 1s\"\n\n[[site]]\ncert = \"s.pem\"\nkey = \"s.key\"\n"))
	f.Add([]byte("listen = \"127.0.0.1:1\"\nlab_responder_url = \"http://127.0.0.1:2\"\nlog_level = \"debug\"\n\n[tickets]\nrotate = \"@every 2s\"\n"))
	f.Add([]byte("max_connections = 2000\nhandshake_timeout = \"90s\"\nmetrics_listen = \"127.0.0.1:3\"\n[fetch]\ntimeout = \"2s\"\nconnect_timeout = \"1s\"\n[[site]]\ncert = \"a\"\n"))
	f.Add([]byte("[[site]]\ncert = \"a\"\n[[export]]\npath=\"{cert}\"\n"))
	f.Add([]byte("[fetch.overrides]\n\"http://a\" = \"\"\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse(doc, "fuzz.toml")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error without ErrConfig: %v", err)
			}
			return
		}
		if c.Listen == "" || c.Fetch.Sweep == "" || c.Fetch.PerHost <= 0 {
			t.Fatalf("accepted config without defaults: %+v", c)
		}
	})
}

// TestFleetUnserved: unserved_after reaches the fleet's configuration, remove_unserved = false turns the
// removal off, and neither set means the fleet's default.
func TestFleetUnserved(t *testing.T) {
	for _, tt := range []struct {
		doc  string
		want time.Duration
	}{
		{"", 0},
		{"unserved_after = \"2h\"\n", 2 * time.Hour},
		{"unserved_after = \"2h\"\nremove_unserved = false\n", -1},
		{"remove_unserved = true\n", 0},
	} {
		c, err := Parse([]byte("[fleet]\nendpoints = [\"http://e:2379\"]\n"+tt.doc), "s.toml")
		if err != nil {
			t.Fatalf("%q: %v", tt.doc, err)
		}
		if got := c.FleetConfig(zerolog.Nop()).UnservedAfter; got != tt.want {
			t.Errorf("%q: UnservedAfter %v, want %v", tt.doc, got, tt.want)
		}
	}
}
