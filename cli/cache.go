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
	"staple/atomicfile"
	"staple/certs"
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
    import, rm and refresh (which then fetches itself). A command that fetches with no service running uses
    the [fetch] settings of --config, the service's file, and the defaults without it. Either way the answer
    is the same, but for rm of a certificate a running service serves (see rm) and the time of the next
    retry after a failed fetch (a service keeps it in memory; the cache file keeps the planned refresh).

    KEY is ISSUERHASH:SERIAL as 'staple cache ls' prints it; a shorter issuer hash prefix is enough when it is
    unambiguous. A certificate file stands for its own key (its issuer from the file or --issuer).

    ls       one line per certificate: key, status, nextUpdate, next refresh, Must-Staple, names, last error
    show     everything about one: times, responder, history of fetches, the response decoded, and in
             a fleet the nodes that serve it
    export   the DER response, for nginx's ssl_stapling_file and HAProxy's .ocsp files; base64 for
             HAProxy's "set ssl ocsp-response" (echo "set ssl ocsp-response $(staple cache export K
             --format base64)" | socat stdio /run/haproxy.sock)
    import   verify a response obtained elsewhere (an air-gapped site) and store it
    rm       forget a certificate, its response and its history; one that the running service serves
             keeps its certificate and has a fresh response fetched at once, its stapling paused
             until it arrives (in a fleet, the other nodes that serve it write it back)
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

// cacheArgs is what every cache subcommand starts with: its flags (--data-dir, --config, and --issuer for the
// ones that take a KEY|CERT operand), the operand, and the backend that answers: the running service's, or
// the engine over the cache file when no service runs.
type cacheArgs struct {
	name   string
	fs     *flagSet
	target storeTarget
	issuer *string
	ref    refArity
}

// refArity says whether a subcommand takes a KEY|CERT operand.
type refArity int

const (
	noRef       refArity = iota // ls, import: operands are the subcommand's own
	oneRef                      // show, export, rm
	optionalRef                 // refresh: one, or none for every certificate
)

func newCacheArgs(env Env, name string, ref refArity) *cacheArgs {
	c := &cacheArgs{name: name, fs: newFlagSet(env, name, cacheManual), ref: ref}
	c.target = storeFlags(c.fs)
	if ref != noRef {
		c.issuer = c.fs.String("issuer", "", "issuer certificate, when CERT.pem lacks it")
	}
	return c
}

// cacheSession is a parsed cache subcommand with its backend open; close releases the backend.
type cacheSession struct {
	b        admin.Backend
	ref      *certs.KeyRef // the KEY|CERT operand resolved; nil when none was given
	operands []string      // the operands of a noRef subcommand
	close    func()
}

// open parses args and opens the backend with mode. check, when not nil, validates the flags and operands
// before anything is opened.
func (c *cacheArgs) open(ctx context.Context, env Env, args []string, mode access, check func(ops []string) error) (*cacheSession, error) {
	ops, err := c.fs.parse(args)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(ops); err != nil {
			return nil, err
		}
	}
	s := &cacheSession{}
	switch {
	case c.ref == noRef:
		s.operands = ops
	case len(ops) > 1, c.ref == oneRef && len(ops) != 1:
		if c.ref == optionalRef {
			return nil, usageError("%s: give at most one KEY or certificate file", c.name)
		}
		return nil, usageError("%s: give exactly one KEY or certificate file", c.name)
	case len(ops) == 1:
		ref, err := resolveRef(ops[0], *c.issuer)
		if err != nil {
			return nil, err
		}
		s.ref = &ref
	}
	if s.b, s.close, err = openBackend(ctx, env, c.target, mode); err != nil {
		return nil, err
	}
	return s, nil
}

func cacheLs(ctx context.Context, env Env, args []string) error {
	c := newCacheArgs(env, "cache ls", noRef)
	asJSON := c.fs.Bool("json", false, "print JSON")
	s, err := c.open(ctx, env, args, readCache, func(ops []string) error {
		if len(ops) > 0 {
			return usageError("cache ls: unexpected argument %q", ops[0])
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer s.close()
	es, err := s.b.Entries(ctx)
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

func cacheShow(ctx context.Context, env Env, args []string) error {
	c := newCacheArgs(env, "cache show", oneRef)
	asJSON := c.fs.Bool("json", false, "print JSON")
	s, err := c.open(ctx, env, args, readCache, nil)
	if err != nil {
		return err
	}
	defer s.close()
	d, err := s.b.Entry(ctx, *s.ref)
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
	c := newCacheArgs(env, "cache export", oneRef)
	out := c.fs.String("out", "", "write to this file (atomically) instead of standard output")
	format := c.fs.String("format", "der", "der or base64")
	s, err := c.open(ctx, env, args, readCache, func([]string) error {
		if *format != "der" && *format != "base64" {
			return usageError("cache export: --format %q: want der or base64", *format)
		}
		if *out == "" && *format == "der" && isTerminal(env.Stdout) {
			return usageError("cache export: not writing DER to a terminal: use --out FILE or --format base64")
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer s.close()
	d, err := s.b.Entry(ctx, *s.ref)
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
		return atomicfile.Write(*out, data, 0o644)
	}
	_, err = env.Stdout.Write(data)
	return err
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// maxImportDER bounds the response cache import reads: OCSP responses are a few KiB.
const maxImportDER = 1 << 20

func cacheImport(ctx context.Context, env Env, args []string) error {
	c := newCacheArgs(env, "cache import", noRef)
	certFile := c.fs.String("cert", "", "the certificate the response is for (PEM, may hold the chain); required")
	issuer := c.fs.String("issuer", "", "issuer certificate, when --cert lacks it")
	var req admin.ImportRequest
	s, err := c.open(ctx, env, args, writeCache, func(ops []string) (err error) {
		if len(ops) != 1 || *certFile == "" {
			return usageError("cache import: give one RESP.der and --cert CERT.pem")
		}
		if req.DER, err = atomicfile.Read(ops[0], maxImportDER); err == nil {
			req.Chain, err = atomicfile.Read(*certFile, certs.MaxFileSize)
		}
		if err == nil && *issuer != "" {
			req.Issuer, err = atomicfile.Read(*issuer, certs.MaxFileSize)
		}
		if err != nil {
			return fmt.Errorf("cache import: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer s.close()
	e, err := s.b.Import(ctx, req)
	if err != nil {
		return fmt.Errorf("import %s: %w", s.operands[0], err)
	}
	fmt.Fprintf(env.Stdout, "imported %s: %s, nextUpdate %s\n", e.Key, e.Status, stamp(e.NextUpdate))
	return nil
}

func cacheRm(ctx context.Context, env Env, args []string) error {
	c := newCacheArgs(env, "cache rm", oneRef)
	s, err := c.open(ctx, env, args, writeCache, nil)
	if err != nil {
		return err
	}
	defer s.close()
	d, err := s.b.Entry(ctx, *s.ref)
	if err != nil {
		return err
	}
	es, err := s.b.Remove(ctx, *s.ref)
	if len(es) == 0 {
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "removed %s\n", d.Key)
		return nil
	}
	// A site of the running service serves it: it keeps the certificate and has fetched a fresh response.
	fmt.Fprintf(env.Stdout, "removed the response of %s; the running service serves it, so it fetched a fresh one:\n", d.Key)
	writeEntryTable(env.Stdout, es)
	if err != nil {
		return fmt.Errorf("rm: the fresh fetch failed: %w", err)
	}
	return nil
}

func cacheRefresh(ctx context.Context, env Env, args []string) error {
	c := newCacheArgs(env, "cache refresh", optionalRef)
	asJSON := c.fs.Bool("json", false, "print JSON")
	s, err := c.open(ctx, env, args, writeCache, nil)
	if err != nil {
		return err
	}
	defer s.close()
	es, err := s.b.Refresh(ctx, s.ref)
	if *asJSON {
		if jerr := writeJSON(env.Stdout, es); jerr != nil {
			return jerr
		}
	} else if es != nil {
		writeEntryTable(env.Stdout, es)
	}
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	return nil
}
