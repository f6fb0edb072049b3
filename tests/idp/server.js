// The identity provider of lpexec's system tests: the real `oidc-provider` package on
// 127.0.0.1 (never a mock), with the device flow and its development login/consent pages.
//
//   node server.js            prints one JSON line {"issuer": ..., "port": ...} when ready,
//                             exits when its standard input closes (the test process died)
//
// Environment (all optional):
//   IDP_HOST              host in the issuer URL (127.0.0.1; "localhost" exercises DNS)
//   IDP_ID_TOKEN_TTL      ID token lifetime, seconds (3600)
//   IDP_DEVICE_CODE_TTL   device code lifetime, seconds (600)
//   IDP_DEVICE_INTERVAL   add "interval" to the device authorization response (oidc-provider
//                         sends none, which means 5 s); lets tests poll every second
//   IDP_ID_TOKEN_ALG      RS256 (default) or EdDSA
//   IDP_TLS_CERT, IDP_TLS_KEY   serve https with this certificate chain and key (PEM files)
//
// Accounts: any login name; alice is in groups sre and dev, bob in ops, others in none;
// email <login>@example.com.
//
// Test-only endpoints (a real provider has none of these):
//   POST /test/mint   {"alg", "kid"?, "header"?, "claims"?, "omit"?: [...]} → a token signed
//                     with this provider's own keys (alg RS256, PS256, EdDSA), or forged
//                     ("none"; "HS256-pubkey": HMAC keyed with the RSA public key PEM)
//   GET  /test/stats  how often discovery and the JWK set were fetched

import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const env = process.env;
const host = env.IDP_HOST || '127.0.0.1';
const num = (v, d) => (v ? Number(v) : d);

// Keys are generated as PEM and imported as new key objects. Exporting (as JWK) a key object
// that generateKeyPairSync returned can deadlock Node.js 20: a garbage collection during the
// export runs the key generation job's destructor, which waits for the lock the export holds
// (seen as a provider that never prints its first line).
const pem = { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } };
const keyPair = (type, options) => {
  const { publicKey, privateKey } = crypto.generateKeyPairSync(type, { ...options, ...pem });
  return { publicKey: crypto.createPublicKey(publicKey), privateKey: crypto.createPrivateKey(privateKey) };
};
const rsa = keyPair('rsa', { modulusLength: 2048 });
const ed = keyPair('ed25519', {});
const rsaJwk = { ...rsa.privateKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' };
const edJwk = { ...ed.privateKey.export({ format: 'jwk' }), kid: 'ed-1', alg: 'EdDSA', use: 'sig' };
const rsaPss = { ...rsa.privateKey.export({ format: 'jwk' }), kid: 'rsa-pss', alg: 'PS256', use: 'sig' };

const groups = { alice: ['sre', 'dev'], bob: ['ops'] };
const stats = { discovery: 0, jwks: 0, device: 0, token: 0 };

const tls = env.IDP_TLS_CERT
  ? { cert: fs.readFileSync(env.IDP_TLS_CERT), key: fs.readFileSync(env.IDP_TLS_KEY) } : null;
const server = tls ? https.createServer(tls) : http.createServer();
server.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  const issuer = `${tls ? 'https' : 'http'}://${host}:${port}`;
  const clientId = 'lpexec';

  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      application_type: 'native',
      id_token_signed_response_alg: env.IDP_ID_TOKEN_ALG || 'RS256',
    }],
    jwks: { keys: [rsaJwk, edJwk, rsaPss] },
    features: {
      deviceFlow: { enabled: true },
      devInteractions: { enabled: true },
      revocation: { enabled: true },
    },
    scopes: ['openid', 'offline_access', 'email', 'groups', 'profile'],
    claims: { email: ['email', 'email_verified'], groups: ['groups'], profile: ['name'] },
    conformIdTokenClaims: false,
    ttl: {
      IdToken: num(env.IDP_ID_TOKEN_TTL, 3600),
      DeviceCode: num(env.IDP_DEVICE_CODE_TTL, 600),
      AccessToken: 3600,
      RefreshToken: 86400,
      Grant: 86400,
      Session: 86400,
      Interaction: 3600,
    },
    cookies: { keys: ['lpexec-test-idp'] },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id, email: `${id}@example.com`, email_verified: true, name: id, groups: groups[id] || [],
          };
        },
      };
    },
  });

  provider.use(async (ctx, next) => {
    if (ctx.path === '/.well-known/openid-configuration') stats.discovery += 1;
    if (ctx.path === '/jwks') stats.jwks += 1;
    if (ctx.path === '/device/auth') stats.device += 1;
    if (ctx.path === '/token') stats.token += 1;
    if (ctx.path === '/test/stats') {
      ctx.body = stats;
      return;
    }
    if (ctx.path === '/test/mint' && ctx.method === 'POST') {
      ctx.body = { token: mint(JSON.parse(await readBody(ctx.req)), issuer, clientId) };
      return;
    }
    await next();
    if (ctx.path === '/device/auth' && ctx.status === 200 && env.IDP_DEVICE_INTERVAL && ctx.body) {
      ctx.body = { ...ctx.body, interval: Number(env.IDP_DEVICE_INTERVAL) };
    }
  });

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { data += c; });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

function mint(spec, issuer, clientId) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer, aud: clientId, sub: 'alice', email: 'alice@example.com', email_verified: true,
    groups: groups.alice, iat: now, exp: now + 300, ...(spec.claims || {}),
  };
  for (const k of spec.omit || []) delete claims[k];
  const alg = spec.alg || 'RS256';
  const kids = { RS256: 'rsa-1', PS256: 'rsa-pss', EdDSA: 'ed-1' };
  const header = { alg: alg === 'HS256-pubkey' ? 'HS256' : alg, typ: 'JWT', ...(spec.header || {}) };
  if (spec.kid !== null) header.kid = spec.kid || kids[alg] || 'rsa-1';
  const input = `${b64(header)}.${b64(claims)}`;
  let sig;
  switch (alg) {
    case 'RS256': sig = crypto.sign('sha256', Buffer.from(input), rsa.privateKey); break;
    case 'PS256':
      sig = crypto.sign('sha256', Buffer.from(input), {
        key: rsa.privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32,
      });
      break;
    case 'EdDSA': sig = crypto.sign(null, Buffer.from(input), ed.privateKey); break;
    case 'none': return `${input}.`;
    case 'HS256-pubkey': {
      const secret = rsa.publicKey.export({ format: 'pem', type: 'spki' });
      sig = crypto.createHmac('sha256', secret).update(input).digest();
      break;
    }
    default: throw new Error(`cannot mint ${alg}`);
  }
  return `${input}.${sig.toString('base64url')}`;
}

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
