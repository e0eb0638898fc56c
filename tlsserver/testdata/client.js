// client.js drives Node's tls.connect for tlsserver's tests: one connection after another, as a JSON plan
// (argv[2]) describes, printing one JSON line per connection. Usage:
//
//   node client.js '{"port":N,"ca":"root.pem","conns":[{"version":"TLSv1.3","servername":"x","requestOCSP":true,
//                    "alpn":["h2"],"cert":"c.pem","key":"k.pem","reuse":0}]}'
//
// host and port may be set per connection. reuse is the index of an earlier connection whose last session (the 'session' event) is offered.
// Each connection reads until the server closes it, so that TLS 1.3 session tickets have arrived.
'use strict';
const tls = require('tls');
const fs = require('fs');

const plan = JSON.parse(process.argv[2]);
const sessions = [];

function connect(spec) {
  return new Promise((resolve) => {
    const opts = {
      host: spec.host || plan.host || '127.0.0.1',
      port: spec.port || plan.port,
      ca: fs.readFileSync(plan.ca),
      minVersion: spec.version || 'TLSv1.2',
      maxVersion: spec.version || 'TLSv1.3',
      requestOCSP: !!spec.requestOCSP,
      rejectUnauthorized: spec.rejectUnauthorized !== false,
      checkServerIdentity: () => undefined,
    };
    if (spec.servername !== undefined) opts.servername = spec.servername;
    if (spec.alpn) opts.ALPNProtocols = spec.alpn;
    if (spec.cert) opts.cert = fs.readFileSync(spec.cert);
    if (spec.key) opts.key = fs.readFileSync(spec.key);
    if (spec.reuse !== undefined && sessions[spec.reuse]) opts.session = sessions[spec.reuse];
    const out = { ocsp: 'none', data: '' };
    let session = null;
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sessions.push(session);
      resolve(out);
    };
    const timer = setTimeout(() => { out.error = 'client timeout'; sock.destroy(); done(); }, spec.timeoutMs || 10000);
    const sock = tls.connect(opts);
    sock.on('OCSPResponse', (resp) => { out.ocsp = resp ? resp.toString('base64') : null; });
    sock.on('session', (s) => { session = s; });
    sock.on('secureConnect', () => {
      out.connected = true;
      out.protocol = sock.getProtocol();
      out.alpn = sock.alpnProtocol;
      out.reused = sock.isSessionReused();
      out.authorized = sock.authorized;
      out.subject = (sock.getPeerCertificate().subject || {}).CN;
    });
    sock.on('data', (d) => { out.data += d.toString(); });
    sock.on('error', (e) => { out.error = e.code || e.message; });
    sock.on('close', done);
  });
}

(async () => {
  for (const spec of plan.conns) {
    const r = await connect(spec);
    process.stdout.write(JSON.stringify(r) + '\n');
  }
})();
