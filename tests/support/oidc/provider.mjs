// Test fixture: a real OpenID provider (the certified `oidc-provider` package)
// for Clearance's integration tests. Loopback only, in-memory state.
//
// Environment:
//   PORT      port to listen on (127.0.0.1 only)
//   ISSUER    issuer identifier, e.g. http://127.0.0.1:PORT
//   CONFIG    path to a JSON file:
//     {
//       "clients":  [ { client_id, client_secret, redirect_uris, ... } ],
//                   (backchannel_logout_uri and backchannel_logout_session_required: the
//                   provider POSTs a logout token there when the person signs out)
//       "accounts": { "<login>": { sub, email, email_verified, name, groups,
//                                  employee_type, manager } },
//       "keys_seed": "any string",      // kid = "k-" + keys_seed
//       "access_token_ttl": 60,         // seconds
//       "id_token_ttl": 60,             // seconds
//       "api_audience": "https://api.clearance.test",   // optional, see below
//       "api_scope": "api",             // optional, the API's scopes (space-separated)
//       "api_token_scope": "email"      // optional, which claims JWT access tokens carry
//     }
//   Accounts may have "extra_claims": { "tid": "...", "hd": "..." }, added to every token
//   (only those two names are released: the provider filters claims by its claims config).
//   KEYS_OUT  optional path: the provider's PRIVATE signing JWK set ({"keys": [...]}) is
//             written there (mode 0600) before READY. Test-only: lets tests forge tokens
//             signed with the real key.
//
// JWT access tokens (RFC 9068 style, header typ "at+jwt", RS256 with the signing key): when
// api_audience is set, it is a resource indicator (RFC 8707) the provider knows. A token
// request with resource=<api_audience> (after an authorization request that also named it)
// gets a JWT access token with aud = api_audience, client_id, scope (the API scopes granted)
// and the account's claims (email, email_verified, name, employee_type, manager, groups).
// Clients whose grant_types include "client_credentials" get, from the client_credentials
// grant, a JWT for api_audience (no resource parameter needed) with sub = client_id = the
// client's id. Without resource, access tokens stay opaque (for userinfo), as before.
//
// Prints "READY <issuer>" on stdout once listening; errors go to stderr.

import './polyfills.mjs';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as querystring from 'node:querystring';

import Provider, { errors } from 'oidc-provider';

function fail(message) {
  process.stderr.write(`oidc fixture: ${message}\n`);
  process.exit(2);
}

const port = Number.parseInt(process.env.PORT ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail('PORT must be a TCP port number');
const issuer = process.env.ISSUER || `http://127.0.0.1:${port}`;
if (!process.env.CONFIG) fail('CONFIG must name a JSON configuration file');

let config;
try {
  config = JSON.parse(readFileSync(process.env.CONFIG, 'utf8'));
} catch (err) {
  fail(`cannot read CONFIG ${process.env.CONFIG}: ${err.message}`);
}

const clients = config.clients ?? [];
const accountsByLogin = new Map(Object.entries(config.accounts ?? {}));
// Sessions store the accountId (= sub); look accounts up by sub as well as by login.
const accountsBySub = new Map();
for (const [login, account] of accountsByLogin) {
  accountsBySub.set(account.sub ?? login, { login, ...account, sub: account.sub ?? login });
}
const keysSeed = String(config.keys_seed ?? 'default');
const accessTokenTtl = Number(config.access_token_ttl ?? 60);
const idTokenTtl = Number(config.id_token_ttl ?? 60);
const apiAudience = config.api_audience ? String(config.api_audience) : undefined;
const apiScope = String(config.api_scope ?? 'api');
// Which of the account's claims JWT access tokens carry (by scope name): all by default;
// "email" gives tokens with only the address, as many providers issue them.
const apiTokenScope = String(config.api_token_scope ?? 'email profile groups');
if (apiAudience && !URL.canParse(apiAudience)) fail('api_audience must be an absolute URI');

// A fresh RS256 signing key per process; a new keys_seed means a new kid, i.e. a rotation.
// KEYS_IN (a file KEYS_OUT wrote) keeps the previous process's key: a restart, not a rotation.
function freshKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `k-${keysSeed}`, alg: 'RS256', use: 'sig' };
}
let signingKey;
if (process.env.KEYS_IN) {
  try {
    [signingKey] = JSON.parse(readFileSync(process.env.KEYS_IN, 'utf8')).keys;
  } catch (err) {
    fail(`cannot read KEYS_IN ${process.env.KEYS_IN}: ${err.message}`);
  }
} else {
  signingKey = freshKey();
}

if (process.env.KEYS_OUT) {
  try {
    writeFileSync(process.env.KEYS_OUT, JSON.stringify({ keys: [signingKey] }), { mode: 0o600 });
  } catch (err) {
    fail(`cannot write KEYS_OUT ${process.env.KEYS_OUT}: ${err.message}`);
  }
}

function claimsFor(account, scope) {
  const scopes = new Set(String(scope ?? '').split(' ').filter(Boolean));
  const claims = { sub: account.sub };
  if (scopes.has('email')) {
    claims.email = account.email;
    claims.email_verified = account.email_verified ?? true;
  }
  if (scopes.has('profile')) {
    claims.name = account.name;
    claims.employee_type = account.employee_type;
    claims.manager = account.manager;
  }
  if (scopes.has('groups')) {
    claims.groups = account.groups ?? [];
  }
  // Claims some providers add on their own (Entra ID's tid, Google's hd), in every token.
  Object.assign(claims, account.extra_claims ?? {});
  return claims;
}

const provider = new Provider(issuer, {
  clients,
  // Outgoing requests (back-channel logout tokens) go to Clearance on 127.0.0.1, which the
  // provider's SSRF guard refuses as a special-use address: loopback-only fixture, so drop it.
  fetch: (url, { dispatcher: _ssrfGuard, ...options }) => globalThis.fetch(url, options),
  jwks: { keys: [signingKey] },
  // Plain-http fixture: cookies are never Secure (ctx.secure is false); keys sign them.
  cookies: {
    keys: [`cookie-key-${keysSeed}`],
    long: { httpOnly: true, sameSite: 'lax' },
    short: { httpOnly: true, sameSite: 'lax' },
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: {
    // tid and hd: what Entra ID and Google add about the tenant (accounts' extra_claims).
    openid: ['sub', 'tid', 'hd'],
    email: ['email', 'email_verified'],
    profile: ['name', 'employee_type', 'manager'],
    groups: ['groups'],
  },
  // Keep the default: the ID token carries only what must be there; the rest comes from userinfo.
  conformIdTokenClaims: true,
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    // Clients with a backchannel_logout_uri get a logout token POSTed when the session ends.
    backchannelLogout: { enabled: true },
    userinfo: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // client_credentials without a resource parameter: the API (when configured).
      async defaultResource(ctx, _client, oneOf) {
        if (oneOf) return oneOf;
        if (apiAudience && ctx.oidc.route === 'token'
          && ctx.oidc.params?.grant_type === 'client_credentials') {
          return apiAudience;
        }
        return undefined;
      },
      async getResourceServerInfo(_ctx, resourceIndicator) {
        if (!apiAudience || resourceIndicator !== apiAudience) throw new errors.InvalidTarget();
        return {
          scope: apiScope,
          audience: apiAudience,
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
      // Without resource, a token request gets an opaque token for userinfo.
      useGrantedResource: async () => false,
    },
  },
  // JWT access tokens for the API carry the person's claims (not scope-limited, like a
  // directory-backed API gateway would see them). Opaque tokens carry nothing extra.
  async extraTokenClaims(_ctx, token) {
    if (!token.resourceServer || !token.accountId) return undefined;
    const account = accountsBySub.get(token.accountId);
    if (!account) return undefined;
    const { sub: _sub, ...claims } = claimsFor(account, apiTokenScope);
    return claims;
  },
  pkce: {
    // Optional for confidential clients, but S256 is accepted (and verified) when sent.
    required: () => false,
  },
  // Always hand out a refresh token for authorization_code when the client may use it.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  async findAccount(_ctx, id) {
    const account = accountsBySub.get(id);
    if (!account) return undefined;
    return {
      accountId: account.sub,
      async claims(_use, scope) {
        return claimsFor(account, scope);
      },
    };
  },
  ttl: {
    AccessToken: accessTokenTtl,
    IdToken: idTokenTtl,
    AuthorizationCode: 60,
    Interaction: 60 * 60,
    Session: 24 * 60 * 60,
    Grant: 24 * 60 * 60,
    RefreshToken: 24 * 60 * 60,
  },
  renderError(ctx, out, error) {
    process.stderr.write(`oidc fixture: ${ctx.method} ${ctx.path}: ${JSON.stringify(out)}${error?.stack ? `\n${error.stack}` : ''}\n`);
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body>${
      Object.entries(out).map(([k, v]) => `<pre class="error"><strong>${k}</strong>: ${String(v).replace(/[<>&"]/g, '')}</pre>`).join('')
    }</body></html>`;
  },
});

// Log server-side errors to stderr.
provider.on('server_error', (_ctx, err) => process.stderr.write(`oidc fixture: server_error ${err.stack ?? err}\n`));
provider.on('backchannel.error', (_ctx, err, client) => process.stderr.write(
  `oidc fixture: backchannel.error ${client?.clientId}: ${err.message ?? err} ${err.cause?.stack ?? err.cause ?? ""}\n`));
provider.on('backchannel.success', (_ctx, client) => process.stderr.write(
  `oidc fixture: backchannel.success ${client?.clientId}\n`));
for (const event of ['grant.error', 'userinfo.error', 'end_session.error', 'authorization.error']) {
  provider.on(event, (_ctx, err) => {
    if (!(err instanceof errors.OIDCProviderError) || err.statusCode >= 500) {
      process.stderr.write(`oidc fixture: ${event} ${err.stack ?? err}\n`);
    } else {
      const detail = err.error_detail ? ` (${err.error_detail})` : '';
      process.stderr.write(`oidc fixture: ${event} ${err.name}: ${err.error_description ?? err.message}${detail}\n`);
    }
  });
}

// devInteractions accept any login; reject logins that are not in the account map, the way a
// real provider would, by re-rendering the form with an error (HTTP 401) before the
// provider sees the submission. A known login is rewritten to its sub (the accountId).
provider.use(async (ctx, next) => {
  const isSubmit = ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path)
    && ctx.is('application/x-www-form-urlencoded');
  if (!isSubmit) return next();

  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  const body = querystring.parse(Buffer.concat(chunks).toString('utf8'));

  if (body.prompt === 'login') {
    const account = accountsByLogin.get(String(body.login ?? ''));
    if (!account) {
      process.stderr.write(`oidc fixture: rejected unknown login ${JSON.stringify(body.login)}\n`);
      ctx.status = 401;
      ctx.type = 'html';
      ctx.set('cache-control', 'no-store');
      ctx.body = `<!DOCTYPE html><html><head><title>Sign-in failed</title></head><body>
<h1>Sign-in failed</h1><p class="error" id="login-error">unknown account</p>
<form autocomplete="off" action="${ctx.path}" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login">
  <input required type="password" name="password" placeholder="and password">
  <button type="submit" class="login login-submit">Sign-in</button>
</form></body></html>`;
      return undefined;
    }
    body.login = account.sub ?? String(body.login);
  }
  // Hand the parsed body on; oidc-provider falls back to req.body when the stream is consumed.
  ctx.req.body = body;
  ctx.request.body = body;
  return next();
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});
server.on('error', (err) => fail(`listen failed: ${err.message}`));

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
