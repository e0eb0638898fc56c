// server.js is the Node side of the side-by-side suite (e2e/interop_nodeside_test.go): a tls.Server built
// from a JSON spec (argv[2]), the same spec testdata/tlsnode builds a tlsserver.Server from. Both print one
// JSON line per event on stdout and read commands on stdin, so that the suite drives and observes them alike.
//
// Spec: key, cert, pfx, passphrase, ca (files); requestCert, rejectUnauthorized, ALPNProtocols;
// contexts [{hostname, key, cert, ca}] for addContext (none when hostname is empty: for the SNICallback alone); sni {name: context index, -1 for none, "error"} for an
// SNICallback; ocsp "staple"|"null"|"error" with staple (a DER file) for an OCSPRequest listener; store
// "memory"|"failing"|"hanging" for newSession/resumeSession listeners; ticketKeys (hex), sessionIdContext,
// sessionTimeout (s), handshakeTimeout (ms), maxConnections, hold (keep connections open until "release"); the port is $SIDE_PORT (0: any);
// ciphers, ecdhCurve, honorCipherOrder, dhparam, secureProtocol, secureOptions, minVersion, maxVersion,
// NPNProtocols as Node takes them.
// Commands: "sync N" (print sync once N connections are left), "setTicketKeys HEX", "getTicketKeys", "close",
// "release", "exit".
'use strict';
const tls = require('tls');
const fs = require('fs');
const readline = require('readline');

const spec = JSON.parse(process.argv[2]);
const emit = (ev, fields) => process.stdout.write(JSON.stringify({ ev, ...fields }) + '\n');
const file = (f) => (f ? fs.readFileSync(f) : undefined);
const files = (fs_) => (fs_ ? fs_.map((f) => fs.readFileSync(f)) : undefined);
const cn = (c) => (c && c.subject ? c.subject.CN : null);
const x509 = (der) => (der ? new (require('crypto').X509Certificate)(der) : null);
const derCN = (der) => { const c = x509(der); return c ? (c.subject.match(/CN=([^\n]*)/) || [])[1] : null; };

const opts = {};
for (const k of ['passphrase', 'requestCert', 'rejectUnauthorized', 'ALPNProtocols', 'sessionIdContext', 'sessionTimeout',
  'handshakeTimeout', 'ciphers', 'ecdhCurve', 'honorCipherOrder', 'secureProtocol', 'secureOptions', 'minVersion',
  'maxVersion', 'NPNProtocols']) {
  if (spec[k] !== undefined) opts[k] = spec[k];
}
opts.key = file(spec.key);
opts.cert = file(spec.cert);
opts.pfx = file(spec.pfx);
opts.ca = files(spec.ca);
if (spec.dhparam) opts.dhparam = spec.dhparam;
if (spec.ticketKeys) opts.ticketKeys = Buffer.from(spec.ticketKeys, 'hex');
const contexts = (spec.contexts || []).map((c) => tls.createSecureContext({ key: file(c.key), cert: file(c.cert), ca: files(c.ca) }));
if (spec.sni) {
  opts.SNICallback = (name, cb) => {
    emit('SNICallback', { servername: name });
    const v = spec.sni[name];
    if (v === 'error') return cb(new Error('hook failed'));
    cb(null, v === undefined || v < 0 ? undefined : contexts[v]);
  };
}

let server;
try {
  server = tls.createServer(opts);
} catch (e) {
  emit('createError', { code: e.code || e.message });
  process.exit(0);
}
(spec.contexts || []).forEach((c, i) => c.hostname && server.addContext(c.hostname, contexts[i]));
if (spec.maxConnections) server.maxConnections = spec.maxConnections;

const held = new Set();
server.on('secureConnection', (s) => {
  emit('secureConnection', {
    servername: s.servername || false, alpn: s.alpnProtocol || false, authorized: s.authorized,
    authorizationError: s.authorizationError || null, resumed: s.isSessionReused(), protocol: s.getProtocol(),
    cn: cn(s.getCertificate()),
  });
  s.on('error', () => {});
  if (spec.hold) {
    held.add(s);
    s.on('close', () => held.delete(s));
    return;
  }
  s.end('hello\n');
});
server.on('tlsClientError', (e) => emit('tlsClientError', { code: e.code || e.message }));

if (spec.ocsp) {
  const staple = file(spec.staple);
  server.on('OCSPRequest', (cert, issuer, cb) => {
    emit('OCSPRequest', { cert: derCN(cert), issuer: derCN(issuer) });
    if (spec.ocsp === 'error') return cb(new Error('hook failed'));
    cb(null, spec.ocsp === 'staple' ? staple : null);
  });
}

if (spec.store) {
  const store = new Map();
  server.on('newSession', (id, data, cb) => {
    emit('newSession', {});
    if (spec.store === 'hanging') return; // never calls back
    if (spec.store === 'failing') return cb(new Error('store failed'));
    store.set(id.toString('hex'), data);
    cb();
  });
  server.on('resumeSession', (id, cb) => {
    if (spec.store === 'hanging') return emit('resumeSession', { found: false });
    if (spec.store === 'failing') { emit('resumeSession', { found: false }); return cb(new Error('store failed')); }
    const data = store.get(id.toString('hex')) || null;
    emit('resumeSession', { found: !!data });
    cb(null, data);
  });
}

const sync = (n, deadline) => server.getConnections((err, count) => {
  // tlsClientError comes after the count drops: let it out first.
  if (count <= n || Date.now() > deadline) return setTimeout(() => emit('sync', { connections: count }), 50);
  setTimeout(() => sync(n, deadline), 5);
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.split(' ');
  switch (cmd) {
    case 'sync': return sync(Number(arg || 0), Date.now() + 5000);
    case 'setTicketKeys': server.setTicketKeys(Buffer.from(arg, 'hex')); return emit('ok', {});
    case 'getTicketKeys': emit('ticketKeys', { hex: server.getTicketKeys().toString('hex') }); return emit('ok', {});
    case 'close': server.close(() => emit('closed', {})); return emit('ok', {});
    case 'release': for (const s of held) s.end('hello\n'); return emit('ok', {});
    case 'exit': process.exit(0);
  }
  return undefined;
}).on('close', () => process.exit(0));

server.listen(Number(process.env.SIDE_PORT || 0), '127.0.0.1', () => emit('listening', { port: server.address().port }));
