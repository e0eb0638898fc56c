// client.js is Node's tls.connect for the side-by-side suite: one connection as argv[2] (JSON) describes it:
// {port, ca, version, servername, alpn, cert, key, requestOCSP, ciphers, ecdhCurve, sessIn, sessOut}; sessIn
// and sessOut are files holding a session (the 'session' event's bytes). It reads until the server closes
// and prints one JSON line: connected, protocol, alpn, reused, authorized, cn, ocsp ("none" with no
// OCSPResponse event, null, or the response's SHA-256), data, error.
'use strict';
const tls = require('tls');
const fs = require('fs');
const crypto = require('crypto');

const c = JSON.parse(process.argv[2]);
const opts = {
  host: '127.0.0.1', port: c.port, ca: fs.readFileSync(c.ca), checkServerIdentity: () => undefined,
  minVersion: c.version || 'TLSv1.2', maxVersion: c.version || 'TLSv1.3', requestOCSP: !!c.requestOCSP,
};
if (c.servername !== undefined) opts.servername = c.servername;
if (c.alpn) opts.ALPNProtocols = c.alpn;
if (c.cert) opts.cert = fs.readFileSync(c.cert);
if (c.key) opts.key = fs.readFileSync(c.key);
if (c.ciphers) opts.ciphers = c.ciphers;
if (c.ecdhCurve) opts.ecdhCurve = c.ecdhCurve;
if (c.sessIn && fs.existsSync(c.sessIn)) opts.session = fs.readFileSync(c.sessIn);
const out = { connected: false, ocsp: 'none', data: '' };
let done = false;
const finish = () => {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
};
setTimeout(() => { out.error = out.error || 'client timeout'; finish(); }, 8000);
const sock = tls.connect(opts);
sock.on('OCSPResponse', (r) => { out.ocsp = r ? crypto.createHash('sha256').update(r).digest('hex').slice(0, 16) : null; });
sock.on('session', (s) => { if (c.sessOut) fs.writeFileSync(c.sessOut, s); });
sock.on('secureConnect', () => {
  Object.assign(out, {
    connected: true, protocol: sock.getProtocol(), alpn: sock.alpnProtocol, reused: sock.isSessionReused(),
    authorized: sock.authorized, cn: (sock.getPeerCertificate().subject || {}).CN,
  });
});
sock.on('data', (d) => { out.data += d.toString(); });
sock.on('error', (e) => { out.error = e.code || e.message; });
sock.on('close', finish);
