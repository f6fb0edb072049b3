// A tiny OAuth server for the device-flow answers oidc-provider never gives (it never sends
// `interval` or `slow_down`): discovery, a device authorization endpoint, and a token endpoint
// that replays a script of answers, recording when each poll arrived.
//
//   STUB_SCRIPT="slow_down,authorization_pending,access_denied" STUB_INTERVAL=1 \
//   STUB_EXPIRES_IN=30 node stub.js
//
// Script entries are OAuth error codes; the last one repeats. Prints {"issuer", "port"}.
// GET /test/polls → seconds since the device authorization for each poll.

import http from 'node:http';

const script = (process.env.STUB_SCRIPT || 'authorization_pending').split(',');
const polls = [];
let started = 0;

const server = http.createServer((req, res) => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const json = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  req.resume();
  req.on('end', () => {
    if (req.url === '/.well-known/openid-configuration') {
      return json(200, {
        issuer, device_authorization_endpoint: `${issuer}/device/auth`, token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
      });
    }
    if (req.url === '/device/auth') {
      started = Date.now();
      const body = {
        device_code: 'stub-device-code', user_code: 'STUB-CODE', verification_uri: `${issuer}/device`,
        expires_in: Number(process.env.STUB_EXPIRES_IN || 30),
      };
      if (process.env.STUB_INTERVAL) body.interval = Number(process.env.STUB_INTERVAL);
      return json(200, body);
    }
    if (req.url === '/token') {
      polls.push((Date.now() - started) / 1000);
      const answer = script[Math.min(polls.length - 1, script.length - 1)];
      return json(400, { error: answer, error_description: `stub answer ${polls.length}` });
    }
    if (req.url === '/test/polls') return json(200, polls);
    return json(404, { error: 'not_found' });
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ issuer: `http://127.0.0.1:${server.address().port}`, port: server.address().port })}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
