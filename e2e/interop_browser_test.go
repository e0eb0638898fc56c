//go:build interop

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"staple/e2e/harness"
)

// TestInteropStatusPageInChromium loads the embedded default's status page over HTTPS in headless Chromium
// (Debian's chromium), which trusts the lab CA through an NSS database of its own, as a person who imported
// root.pem would, and checks that the page it rendered shows the certificate as good and this connection
// as stapled (Chromium asks for status).
func TestInteropStatusPageInChromium(t *testing.T) {
	harness.RequireTool(t, "chromium")
	harness.RequireTool(t, "certutil")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "staple-data")
	port := harness.FreePort(t)
	conf := filepath.Join(dir, "ports.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf("listen = \"127.0.0.1:%d\"\nlab_responder_url = \"http://127.0.0.1:%d\"\n", port, harness.FreePort(t))), 0o600)
	srv := harness.Start(t, binary, "serve", "--config", conf, "--data-dir", dataDir, "--log-format", "json")
	srv.WaitLog("staple serving", harness.Timeout)
	row := outcome(t, "renders the status page over HTTPS, lab CA trusted", "Chromium (headless)")

	home := filepath.Join(dir, "home")
	nss := filepath.Join(home, ".pki", "nssdb")
	os.MkdirAll(nss, 0o700)
	for _, args := range [][]string{
		{"-d", "sql:" + nss, "-N", "--empty-password"},
		{"-d", "sql:" + nss, "-A", "-t", "C,,", "-n", "staple lab", "-i", filepath.Join(dataDir, "lab", "root.pem")},
	} {
		if out, code := runTool(t, 20*time.Second, "certutil", args...); code != 0 {
			t.Fatalf("certutil %v: exit %d\n%s", args, code, out)
		}
	}
	t.Setenv("HOME", home) // chromium reads its NSS database from $HOME/.pki/nssdb
	url := "https://localhost:" + strconv.Itoa(port) + "/"
	var dom string
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmd := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + filepath.Join(dir, "profile"), "--dump-dom", url}
		out, _ := runToolStdout(t, 60*time.Second, "chromium", cmd...)
		dom = out
		if strings.Contains(dom, `class="status good"`) && strings.Contains(dom, "stapled: good") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Chromium did not render a good, stapled status page within 30 s:\n%s", dom)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(dom, "<title>staple status</title>") || !strings.Contains(dom, "localhost") {
		t.Errorf("not the status page:\n%s", dom)
	}
	row.Note("certificate good, connection stapled")
}
