package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"

	"staple/admin"
	"staple/certs"
	"staple/service"
)

const cacheManual = `NAME
    staple cache - inspect and edit the cache of OCSP responses

SYNOPSIS
    staple cache ls      [--json]
    staple cache show    KEY|CERT.pem [--issuer F] [--json]
    staple cache export  KEY|CERT.pem [--issuer F] [--out F] [--format der|base64]
    staple cache import  RESP.der --cert CERT.pem [--issuer F]
    staple cache rm      KEY|CERT.pem [--issuer F]
    staple cache refresh [KEY|CERT.pem] [--issuer F]

DESCRIPTION
    Every subcommand works whether staple serve runs or not. When a service answers on the admin socket of
    --data-dir, the command goes through it (and a refresh fetches at once, a removal drops the staple from
    memory too). When none does, it opens the cache file: read-only for ls, show and export; for writing for
    import, rm and refresh (which then fetches itself).

    KEY is ISSUERHASH:SERIAL as 'staple cache ls' prints it; a shorter issuer hash prefix is enough when it is
    unambiguous. A certificate file stands for its own key (its issuer from the file or --issuer).

    ls       one line per certificate: key, status, nextUpdate, next refresh, Must-Staple, names, last error
    show     everything about one: times, responder, history of fetches, the response decoded, and in
             a fleet the nodes that serve it
    export   the DER response, for nginx's ssl_stapling_file and HAProxy's .ocsp files; base64 for
             HAProxy's "set ssl ocsp-response" (echo "set ssl ocsp-response $(staple cache export K
             --format base64)" | socat stdio /run/haproxy.sock)
    import   verify a response obtained elsewhere (an air-gapped site) and store it
    rm       forget a certificate and its response (in a fleet, a node that serves it writes it back)
    refresh  fetch now: one certificate, or every watched one

EXIT STATUS
    0 on success, 1 on failure (not found, verification failed), 2 on bad usage.
`

func cacheCommand() command {
	return command{name: "cache", summary: "list, show, export, import, remove and refresh cached responses", run: runCache}
}

func runCache(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		return usageError("cache: a subcommand is needed: ls, show, export, import, rm or refresh (run 'staple cache -h')")
	}
	sub := map[string]func(context.Context, Env, []string) error{
		"ls": cacheLs, "show": cacheShow, "export": cacheExport, "import": cacheImport, "rm": cacheRm, "refresh": cacheRefresh,
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(env.Stdout, cacheManual)
		return nil
	}
	run, ok := sub[args[0]]
	if !ok {
		return usageError("cache: unknown subcommand %q (ls, show, export, import, rm, refresh)", args[0])
	}
	return run(ctx, env, args[1:])
}

func cacheLs(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "cache ls", cacheManual)
	target := storeFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(ops) > 0 {
		return usageError("cache ls: unexpected argument %q", ops[0])
	}
	b, done, err := openBackend(ctx, env, target, readCache)
	if err != nil {
		return err
	}
	defer done()
	es, err := b.Entries(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, es)
	}
	writeEntryTable(env.Stdout, es)
	return nil
}

// writeEntryTable prints entries as an aligned table.
func writeEntryTable(w io.Writer, es []admin.Entry) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tSTATUS\tNEXT UPDATE\tNEXT REFRESH\tMUST-STAPLE\tNAMES\tLAST ERROR")
	for _, e := range es {
		must := "no"
		if e.MustStaple {
			must = "yes"
		}
		last := e.LastError
		if last == "" {
			last = "-"
		}
		names := strings.Join(e.Names, ",")
		if names == "" {
			names = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Key, e.Status, stamp(e.NextUpdate), stamp(e.NextRefresh), must, names, oneLine(last, 60))
	}
	tw.Flush()
	if len(es) == 0 {
		fmt.Fprintln(w, "(the cache is empty)")
	}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		return s[:max-1] + "…"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// oneRef returns the single KEY|CERT operand of show, export, rm.
func oneRef(name string, ops []string) (string, error) {
	if len(ops) != 1 {
		return "", usageError("%s: give exactly one KEY or certificate file", name)
	}
	return ops[0], nil
}

func cacheShow(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "cache show", cacheManual)
	target := storeFlags(fs)
	issuer := fs.String("issuer", "", "issuer certificate, when CERT.pem lacks it")
	asJSON := fs.Bool("json", false, "print JSON")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	arg, err := oneRef("cache show", ops)
	if err != nil {
		return err
	}
	ref, err := resolveRef(arg, *issuer)
	if err != nil {
		return err
	}
	b, done, err := openBackend(ctx, env, target, readCache)
	if err != nil {
		return err
	}
	defer done()
	d, err := b.Entry(ctx, ref)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, d)
	}
	writeDetail(env.Stdout, d)
	return nil
}

func cacheExport(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "cache export", cacheManual)
	target := storeFlags(fs)
	issuer := fs.String("issuer", "", "issuer certificate, when CERT.pem lacks it")
	out := fs.String("out", "", "write to this file (atomically) instead of standard output")
	format := fs.String("format", "der", "der or base64")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *format != "der" && *format != "base64" {
		return usageError("cache export: --format %q: want der or base64", *format)
	}
	arg, err := oneRef("cache export", ops)
	if err != nil {
		return err
	}
	ref, err := resolveRef(arg, *issuer)
	if err != nil {
		return err
	}
	b, done, err := openBackend(ctx, env, target, readCache)
	if err != nil {
		return err
	}
	defer done()
	d, err := b.Entry(ctx, ref)
	if err != nil {
		return err
	}
	if len(d.DER) == 0 {
		return fmt.Errorf("%s has no cached response to export", d.Key)
	}
	data := d.DER
	if *format == "base64" {
		data = []byte(base64.StdEncoding.EncodeToString(d.DER) + "\n")
	}
	if *out != "" {
		return service.WriteFileAtomic(*out, data, 0o644)
	}
	if *format == "der" && isTerminal(env.Stdout) {
		return usageError("cache export: not writing DER to a terminal: use --out FILE or --format base64")
	}
	_, err = env.Stdout.Write(data)
	return err
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

func cacheImport(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "cache import", cacheManual)
	target := storeFlags(fs)
	certFile := fs.String("cert", "", "the certificate the response is for (PEM, may hold the chain); required")
	issuer := fs.String("issuer", "", "issuer certificate, when --cert lacks it")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(ops) != 1 || *certFile == "" {
		return usageError("cache import: give one RESP.der and --cert CERT.pem")
	}
	der, err := readSmallFile(ops[0], 1<<20)
	if err != nil {
		return err
	}
	chain, err := readSmallFile(*certFile, 8<<20)
	if err != nil {
		return err
	}
	req := admin.ImportRequest{DER: der, Chain: chain}
	if *issuer != "" {
		if req.Issuer, err = readSmallFile(*issuer, 8<<20); err != nil {
			return err
		}
	}
	b, done, err := openBackend(ctx, env, target, writeCache)
	if err != nil {
		return err
	}
	defer done()
	e, err := b.Import(ctx, req)
	if err != nil {
		return fmt.Errorf("import %s: %w", ops[0], err)
	}
	fmt.Fprintf(env.Stdout, "imported %s: %s, nextUpdate %s\n", e.Key, e.Status, stamp(e.NextUpdate))
	return nil
}

func cacheRm(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "cache rm", cacheManual)
	target := storeFlags(fs)
	issuer := fs.String("issuer", "", "issuer certificate, when CERT.pem lacks it")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	arg, err := oneRef("cache rm", ops)
	if err != nil {
		return err
	}
	ref, err := resolveRef(arg, *issuer)
	if err != nil {
		return err
	}
	b, done, err := openBackend(ctx, env, target, writeCache)
	if err != nil {
		return err
	}
	defer done()
	d, err := b.Entry(ctx, ref)
	if err != nil {
		return err
	}
	if err := b.Remove(ctx, ref); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "removed %s\n", d.Key)
	return nil
}

func cacheRefresh(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "cache refresh", cacheManual)
	target := storeFlags(fs)
	issuer := fs.String("issuer", "", "issuer certificate, when CERT.pem lacks it")
	asJSON := fs.Bool("json", false, "print JSON")
	ops, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(ops) > 1 {
		return usageError("cache refresh: give at most one KEY or certificate file")
	}
	var refp *certs.KeyRef
	if len(ops) == 1 {
		ref, err := resolveRef(ops[0], *issuer)
		if err != nil {
			return err
		}
		refp = &ref
	}
	b, done, err := openBackend(ctx, env, target, writeCache)
	if err != nil {
		return err
	}
	defer done()
	es, err := b.Refresh(ctx, refp)
	if *asJSON {
		if jerr := writeJSON(env.Stdout, es); jerr != nil {
			return jerr
		}
	} else {
		writeEntryTable(env.Stdout, es)
	}
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	return nil
}

func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
