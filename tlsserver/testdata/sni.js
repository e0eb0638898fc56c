// sni.js evaluates Node's own addContext patterns over a table, for tlsserver's SNI tests. argv[2] is a JSON
// list of cases {patterns: [...], name: "..."}; it prints, per case, the index of the context Node's
// SNICallback picks (the most recently added whose RegExp matches; -1 for the default), or "error: …" when
// addContext throws. The RegExps are the ones tls.Server.addContext builds; the scan order is
// SNICallback's (lib/_tls_wrap.js: for (let i = contexts.length - 1; i >= 0; --i)).
'use strict';
const tls = require('tls');

const cases = JSON.parse(process.argv[2]);
const out = cases.map(({ patterns, name }) => {
  const server = tls.createServer({});
  try {
    for (const p of patterns) server.addContext(p, {});
  } catch (e) {
    return 'error: ' + (e.code || e.name);
  }
  const contexts = server._contexts;
  for (let i = contexts.length - 1; i >= 0; --i) {
    if (contexts[i][0].exec(name) !== null) return i;
  }
  return -1;
});
process.stdout.write(JSON.stringify(out) + '\n');
