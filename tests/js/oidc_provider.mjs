// A real OpenID provider (npm oidc-provider) for the sign-in tests
// (tests/auth/test_oidc_*.py, driven by tests/support/oidc_provider.py).
//
//   node oidc_provider.mjs PORT
//
// Clients register themselves (dynamic client registration, POST /reg).
// Logins are scripted, not typed: GET /interaction/:uid signs in the
// account named by the authorization request's login_hint and grants what
// the client asked for, so a test drives the whole flow over HTTP.
// Test hooks (loopback only, this process only):
//   POST /test/accounts {sub, email, email_verified, name, default}  add or replace an
//        account (default: signed in when the request has no login_hint, as in a browser)
//   POST /test/tamper {claims: {...}, exp_offset, foreign_key}  the next ID token
//        issued is re-signed with these changes (by the provider's own key,
//        or by a key that is not in its JWKS when foreign_key is true)
import http from 'node:http';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const KID = 'test-signing-key';

const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: KID, alg: 'RS256', use: 'sig' };
const foreign = (await jose.generateKeyPair('RS256')).privateKey;

const accounts = new Map();
let defaultSub = null;
let tamper = null;

const provider = new Provider(issuer, {
  jwks: { keys: [signingJwk] },
  cookies: { keys: ['skillshare-test-provider-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  findAccount: async (ctx, sub) => {
    const claims = accounts.get(sub);
    if (!claims) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...claims }) };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});

// Re-sign the next ID token with the changes a test asked for.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== '/token' || !tamper || !ctx.body || !ctx.body.id_token) return;
  const change = tamper;
  tamper = null;
  const payload = { ...jose.decodeJwt(ctx.body.id_token), ...(change.claims || {}) };
  if (change.exp_offset !== undefined) {
    const now = Math.floor(Date.now() / 1000);
    payload.exp = now + change.exp_offset;
    payload.iat = Math.min(payload.iat, payload.exp - 60);
  }
  const key = change.foreign_key ? foreign : privateKey;
  ctx.body = {
    ...ctx.body,
    id_token: await new jose.SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: KID }).sign(key),
  };
});

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString() || '{}');
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  if (prompt.name === 'login') {
    const sub = params.login_hint || defaultSub;
    if (!accounts.has(sub)) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`unknown test account ${sub}`);
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: sub } },
      { mergeWithLastSubmission: false });
    return;
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } },
    { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  try {
    if (req.url.startsWith('/interaction/')) return await interaction(req, res);
    if (req.method === 'POST' && req.url === '/test/accounts') {
      const { sub, default: isDefault, ...claims } = await readJson(req);
      accounts.set(sub, claims);
      if (isDefault) defaultSub = sub;
      res.writeHead(204).end();
      return;
    }
    if (req.method === 'POST' && req.url === '/test/tamper') {
      tamper = await readJson(req);
      res.writeHead(204).end();
      return;
    }
    return callback(req, res);
  } catch (err) {
    console.error(err);
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(err));
  }
});
server.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
