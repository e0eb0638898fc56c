//go:build interop

package e2e

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/e2e/harness"
)

// The servers in this file staple with responses that staple fetched: nginx from a file [[export]] writes or
// from staple's caching responder, HAProxy from an .ocsp file or from "set ssl ocsp-response" on its stats
// socket. A client (openssl s_client -status) checks that each one staples, then, after a revocation and a
// refresh in staple, that each staples revoked.

// nginxConf writes an nginx configuration with the given server blocks, foreground, one worker, files under
// dir, and returns its path.
func nginxConf(t *testing.T, dir string, servers string) string {
	t.Helper()
	for _, d := range []string{"logs", "tmp"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	conf := fmt.Sprintf(`user root root;
worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log info;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
%[2]s
}
`, dir, servers)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startNginx(t *testing.T, dir, conf string, port int) *harness.Process {
	t.Helper()
	p := harness.Start(t, "nginx", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "logs", "error.log"))
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
			t.Fatalf("nginx does not listen on %d after 15 s:\n%s\n%s", port, p.Output(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitServerStaple polls a server with s_client until its staple says want.
func waitServerStaple(t *testing.T, addr string, l *interopLab, want string, within time.Duration) sClientResult {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := sClient(t, addr, l.root, l.name)
		if r.Status == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q staple within %v; last:\n%s", addr, want, within, r.Out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestInteropNginx runs nginx two ways beside staple serve: ssl_stapling_file pointed at the file an
// [[export]] writes (with nginx -s reload as the export's reload command), and ssl_stapling_responder pointed
// at staple's caching responder (with ssl_stapling_verify). Both staple good, then revoked.
func TestInteropNginx(t *testing.T) {
	harness.RequireTool(t, "nginx")
	harness.RequireTool(t, "openssl")
	base := t.TempDir()
	fileLab := newInteropLab(t, base, "ecdsa", "file.nginx.test")
	respLab := newInteropLab(t, base, "rsa", "responder.nginx.test")
	ngx := filepath.Join(base, "nginx")
	os.MkdirAll(ngx, 0o700)
	filePort, respPort, cachingPort := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	stapleFile := filepath.Join(ngx, "file.nginx.test.ocsp")
	trusted := filepath.Join(ngx, "trusted.pem")
	writeConcat(t, trusted, respLab.ca, respLab.root)
	conf := nginxConf(t, ngx, fmt.Sprintf(`
    server {
        listen 127.0.0.1:%d ssl;
        server_name file.nginx.test;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_stapling on;
        ssl_stapling_file %s;
        location / { return 200 "file\n"; }
    }
    server {
        listen 127.0.0.1:%d ssl;
        server_name responder.nginx.test;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_stapling on;
        ssl_stapling_verify on;
        ssl_trusted_certificate %s;
        ssl_stapling_responder http://127.0.0.1:%d/;
        location / { return 200 "responder\n"; }
    }`, filePort, fileLab.cert, fileLab.key, stapleFile, respPort, respLab.cert, respLab.key, trusted, cachingPort))

	extra := fmt.Sprintf(`responder_listen = "127.0.0.1:%d"

[[export]]
cert = %q
path = %q
reload = ["nginx", "-p", %q, "-c", %q, "-e", %q, "-s", "reload"]
`, cachingPort, fileLab.cert, stapleFile, ngx, conf, filepath.Join(ngx, "logs", "error.log"))
	w := newServedWorld(t, extra, fileLab, respLab)
	harness.WaitFor(t, 10*time.Second, func() bool { _, err := os.Stat(stapleFile); return err == nil }, "the exported staple file")

	startNginx(t, ngx, conf, filePort)
	fileAddr, respAddr := "127.0.0.1:"+strconv.Itoa(filePort), "127.0.0.1:"+strconv.Itoa(respPort)

	t.Run("ssl_stapling_file", func(t *testing.T) {
		row := outcome(t, "staples the file [[export]] writes, then revoked after reload", "nginx ssl_stapling_file")
		waitServerStaple(t, fileAddr, fileLab, "good", 15*time.Second)
		mustStaple(t, "lab", "revoke", fileLab.dir, fileLab.cert, "--reason", "keyCompromise")
		mustStaple(t, "cache", "refresh", "--data-dir", w.dataDir)
		w.waitStaple(t, fileLab, ocsp.Revoked)
		waitServerStaple(t, fileAddr, fileLab, "revoked", 20*time.Second)
		row.Note("good, then revoked via export + nginx -s reload")
	})
	t.Run("ssl_stapling_responder", func(t *testing.T) {
		row := outcome(t, "fetches from staple's caching responder and staples it", "nginx ssl_stapling_responder")
		// nginx asks its responder on the first handshake and staples from the next ones.
		waitServerStaple(t, respAddr, respLab, "good", 20*time.Second)
		row.Note("good (verified by nginx: ssl_stapling_verify on)")
	})
}

// TestInteropHAProxy runs HAProxy with the .ocsp file next to its certificate (written by an [[export]]
// before HAProxy starts), and updates it at run time with "set ssl ocsp-response" on the stats socket, which
// a base64 [[export]]'s reload command sends through socat.
func TestInteropHAProxy(t *testing.T) {
	harness.RequireTool(t, "haproxy")
	harness.RequireTool(t, "socat")
	harness.RequireTool(t, "openssl")
	base := t.TempDir()
	l := newInteropLab(t, base, "ecdsa", "haproxy.test")
	hdir := filepath.Join(base, "haproxy")
	os.MkdirAll(hdir, 0o700)
	crt := filepath.Join(hdir, "haproxy.test.pem") // HAProxy's crt: the chain and the key in one file
	writeConcat(t, crt, l.cert, l.key)
	sock := filepath.Join(hdir, "admin.sock")
	b64 := filepath.Join(hdir, "haproxy.test.ocsp.b64")
	port := harness.FreePort(t)
	push := fmt.Sprintf(`printf 'set ssl ocsp-response %%s\n' "$(cat %s)" | socat stdio UNIX-CONNECT:%s`, b64, sock)
	extra := fmt.Sprintf(`
[[export]]
cert = %q
path = %q

[[export]]
cert = %q
path = %q
format = "base64"
reload = ["sh", "-c", %q]
`, l.cert, crt+".ocsp", l.cert, b64, push)
	w := newServedWorld(t, extra, l)
	harness.WaitFor(t, 10*time.Second, func() bool { _, err := os.Stat(crt + ".ocsp"); return err == nil }, "the exported .ocsp file")

	cfg := filepath.Join(hdir, "haproxy.cfg")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global
    stats socket %s mode 600 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:%d ssl crt %s
    http-request return status 200 content-type text/plain string ok
`, sock, port, crt)), 0o600)
	hp := harness.Start(t, "haproxy", "-db", "-f", cfg)
	_ = hp
	harness.WaitFor(t, 15*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "HAProxy listening")
	addr := "127.0.0.1:" + strconv.Itoa(port)

	t.Run(".ocsp file", func(t *testing.T) {
		row := outcome(t, "staples the .ocsp file [[export]] writes", "HAProxy crt + .ocsp")
		waitServerStaple(t, addr, l, "good", 15*time.Second)
		row.Note("good at start")
	})
	t.Run("set ssl ocsp-response", func(t *testing.T) {
		row := outcome(t, "takes a revoked staple over its stats socket", "HAProxy set ssl ocsp-response")
		mustStaple(t, "lab", "revoke", l.dir, l.cert, "--reason", "keyCompromise")
		mustStaple(t, "cache", "refresh", "--data-dir", w.dataDir)
		w.waitStaple(t, l, ocsp.Revoked)
		waitServerStaple(t, addr, l, "revoked", 20*time.Second)
		data, _ := os.ReadFile(b64)
		if _, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data))); err != nil {
			t.Errorf("the base64 export does not decode: %v", err)
		}
		row.Note("revoked without a restart")
	})
}

// writeConcat writes the files' contents, one after the other, to path.
func writeConcat(t *testing.T, path string, files ...string) {
	t.Helper()
	var all []byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			all = append(all, '\n')
		}
	}
	if err := os.WriteFile(path, all, 0o600); err != nil {
		t.Fatal(err)
	}
}
