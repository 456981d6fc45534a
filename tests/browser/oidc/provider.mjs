// A real OpenID provider for tests/browser/test_sso.py: the certified `oidc-provider` package
// with its development login and consent pages (any login name, any password), one registered
// client, a `groups` claim per account (changed between sign-ins with /__test/groups), and a
// test switch that makes the token endpoint answer
// with a forged ID token (each kind Lookout must refuse), signed where needed with the
// provider's own key so that only the one property under test is wrong.
//
// node provider.mjs PORT REDIRECT_URI POST_LOGOUT_URI
import Provider from 'oidc-provider';
import * as jose from 'jose';

const [port, redirectUri, postLogoutUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const CLIENT_ID = 'lookout';
const CLIENT_SECRET = 'lookout-test-secret-0123456789';
const GROUPS = { alice: ['sre-leads', 'engineers', 'grp-payments'], bob: ['engineers', 'grp-search'] };

const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
const publicPem = await jose.exportSPKI(publicKey);
const other = await jose.generateKeyPair('RS256', { extractable: true });

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: [postLogoutUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  jwks: { keys: [jwk] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      // A login with an @ is its own address (another domain); any other is at example.com.
      email: id.includes('@') ? id : `${id}@example.com`,
      email_verified: true,
      name: id.charAt(0).toUpperCase() + id.slice(1),
      groups: GROUPS[id] ?? [],
    }),
  }),
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
});

// The forgery the next token answers carry: `ok` for none.
let mode = 'ok';
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
async function forge(idToken) {
  const [header, payload, signature] = idToken.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  const now = Math.floor(Date.now() / 1000);
  const sign = (c, key = privateKey, kid = 'k1') =>
    new jose.SignJWT(c).setProtectedHeader({ alg: 'RS256', kid }).sign(key);
  switch (mode) {
    case 'tampered': // a claim changed after signing
      return `${header}.${b64({ ...claims, email: 'mallory@example.com' })}.${signature}`;
    case 'audience':
      return sign({ ...claims, aud: 'another-client' });
    case 'expired':
      return sign({ ...claims, iat: now - 7200, exp: now - 3600 });
    case 'nonce':
      return sign({ ...claims, nonce: 'not-the-one-lookout-sent' });
    case 'none':
      return `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`;
    case 'hs256': // the public key used as an HMAC secret (algorithm confusion)
      return new jose.SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
        .sign(new TextEncoder().encode(publicPem));
    case 'unknown-key':
      return sign(claims, other.privateKey, 'k2');
    default:
      return idToken;
  }
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/mode') {
    mode = ctx.query.m || 'ok';
    ctx.body = { mode };
    return;
  }
  if (ctx.path === '/__test/groups') { // ?user=bob&g=a,b: bob's groups from the next sign-in
    GROUPS[ctx.query.user] = (ctx.query.g || '').split(',').filter(Boolean);
    ctx.body = { user: ctx.query.user, groups: GROUPS[ctx.query.user] };
    return;
  }
  await next();
  if (ctx.path === '/token' && mode !== 'ok' && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: await forge(ctx.body.id_token) };
  }
});

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider ready at ${issuer}`);
});
