// ocsp-client.js connects with Node's tls.connect({requestOCSP: true}) and prints one JSON line: whether the
// handshake verified, the protocol, and the stapled OCSP response in base64 (null when none was sent).
// Usage: node ocsp-client.js HOST PORT SERVERNAME CA.pem TLSv1.2|TLSv1.3
'use strict';
const tls = require('tls');
const fs = require('fs');

const [host, port, servername, caFile, version] = process.argv.slice(2);
const out = { ocsp: null };
const sock = tls.connect({
  host, port: Number(port), servername, ca: fs.readFileSync(caFile),
  minVersion: version, maxVersion: version, requestOCSP: true,
});
const timer = setTimeout(() => { out.error = 'timeout'; finish(); }, 10000);
function finish() {
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(out) + '\n');
  sock.destroy();
}
sock.on('OCSPResponse', (resp) => { out.ocsp = resp ? resp.toString('base64') : null; });
sock.on('secureConnect', () => {
  out.authorized = sock.authorized;
  out.protocol = sock.getProtocol();
  finish();
});
sock.on('error', (err) => { out.error = String(err); finish(); });
