// A real OpenID provider (the certified `oidc-provider` package) on loopback, for the stagepass
// tests. It is started by `OidcTestProvider` in the stagepass-testkit crate; it can also be run by
// hand: `npm ci && node server.js --port 3001`.
//
// Once listening it prints one line of JSON on stdout and nothing else:
//   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// (with a path prefix the issuer ends in that prefix). Warnings go to stderr.
//
// Options (each also read from the environment variable in brackets; argv wins):
//   --port N                  [OIDC_PORT]           port on 127.0.0.1; 0 or absent picks a free one
//   --prefix /PATH            [OIDC_PATH_PREFIX]    serve under a path: issuer http://127.0.0.1:PORT/PATH
//   --redirect-uri URI        [OIDC_REDIRECT_URIS]  a redirect URI both clients accept; repeat the
//                                                   option, or separate with spaces or commas in the
//                                                   variable. Without any, both clients accept every
//                                                   http(s)://127.0.0.1:*, http(s)://localhost:*,
//                                                   http(s)://*.localhost:* and http(s)://[::1]:*
//                                                   redirect and post-logout URI.
//   --client-id ID            [OIDC_CLIENT_ID]      client_secret_basic client (stagepass-basic)
//   --client-secret S         [OIDC_CLIENT_SECRET]  its secret (stagepass-basic-secret)
//   --post-client-id ID       [OIDC_POST_CLIENT_ID]     client_secret_post client (stagepass-post)
//   --post-client-secret S    [OIDC_POST_CLIENT_SECRET] its secret (stagepass-post-secret)
//   --exit-with-stdin                               exit when stdin closes (so that a killed parent
//                                                   leaves no server behind)
//
// Accounts: any login typed in the devInteractions form, with any password, is an account whose
// id is that login. Its claims: sub = login, email = login@example.com (the login itself when it
// holds an @), email_verified = true, name = "Test User <login>", preferred_username = nickname
// = login, picture = https://example.com/avatars/<login>.png. The ID token carries only the
// protocol claims; the profile comes from userinfo (/me).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    prefix: { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'post-client-id': { type: 'string' },
    'post-client-secret': { type: 'string' },
    'exit-with-stdin': { type: 'boolean', default: false },
  },
  strict: true,
});

const env = process.env;
const port = Number.parseInt(args.port ?? env.OIDC_PORT ?? '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  fail(`invalid port: ${args.port ?? env.OIDC_PORT}`);
}

let prefix = (args.prefix ?? env.OIDC_PATH_PREFIX ?? '').trim();
if (prefix !== '' && !prefix.startsWith('/')) {
  prefix = `/${prefix}`;
}
prefix = prefix.replace(/\/+$/, '');

const redirectUris = args['redirect-uri']
  ?? (env.OIDC_REDIRECT_URIS ?? '').split(/[\s,]+/).filter(Boolean);
const anyLoopbackRedirect = redirectUris.length === 0;

const clients = [
  {
    client_id: args['client-id'] ?? env.OIDC_CLIENT_ID ?? 'stagepass-basic',
    client_secret: args['client-secret'] ?? env.OIDC_CLIENT_SECRET ?? 'stagepass-basic-secret',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    client_id: args['post-client-id'] ?? env.OIDC_POST_CLIENT_ID ?? 'stagepass-post',
    client_secret: args['post-client-secret'] ?? env.OIDC_POST_CLIENT_SECRET ?? 'stagepass-post-secret',
    token_endpoint_auth_method: 'client_secret_post',
  },
].map((client) => ({
  ...client,
  // A placeholder when any loopback redirect is accepted: the registration needs one.
  redirect_uris: anyLoopbackRedirect ? ['http://127.0.0.1/callback'] : redirectUris,
  post_logout_redirect_uris: anyLoopbackRedirect ? ['http://127.0.0.1/'] : redirectUris,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  scope: 'openid profile email offline_access',
  id_token_signed_response_alg: 'RS256',
}));

function fail(message) {
  process.stderr.write(`oidc test provider: ${message}\n`);
  process.exit(2);
}

function isLoopbackUrl(value) {
  let url;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (url.protocol === 'http:' || url.protocol === 'https:')
    && (['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) || url.hostname.endsWith('.localhost'))
    && url.username === '' && url.password === '' && url.hash === '';
}

function claimsOf(login) {
  return {
    sub: login,
    email: login.includes('@') ? login : `${login}@example.com`,
    email_verified: true,
    name: `Test User ${login}`,
    preferred_username: login,
    nickname: login,
    picture: `https://example.com/avatars/${encodeURIComponent(login)}.png`,
  };
}

// A fresh signing key per run: tests read it from /jwks like any relying party.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `test-${randomBytes(6).toString('hex')}`,
  use: 'sig',
  alg: 'RS256',
};

const server = createServer();
server.on('error', (error) => fail(error.message));
server.listen(port, '127.0.0.1', () => {
  const actualPort = server.address().port;
  const issuer = `http://127.0.0.1:${actualPort}${prefix}`;

  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return claimsOf(id);
        },
      };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'nickname', 'picture'],
    },
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    responseTypes: ['code'],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      userinfo: { enabled: true },
    },
    // Every token request of these clients gets a refresh token, offline_access or not.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Always rotate, so that tests see a new refresh token after each refresh.
    rotateRefreshToken: true,
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
  });

  if (anyLoopbackRedirect) {
    const { prototype } = provider.Client;
    const redirectUriAllowed = prototype.redirectUriAllowed;
    const postLogoutRedirectUriAllowed = prototype.postLogoutRedirectUriAllowed;
    prototype.redirectUriAllowed = function allowLoopback(value) {
      return redirectUriAllowed.call(this, value) || isLoopbackUrl(value);
    };
    prototype.postLogoutRedirectUriAllowed = function allowLoopback(value) {
      return postLogoutRedirectUriAllowed.call(this, value) || isLoopbackUrl(value);
    };
  }

  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (prefix !== '') {
      const url = req.url ?? '/';
      if (url !== prefix && !url.startsWith(`${prefix}/`) && !url.startsWith(`${prefix}?`)) {
        res.statusCode = 404;
        res.end('not found');
        return;
      }
      // Mounted the way a framework mounts it: the provider reads the prefix from originalUrl.
      req.originalUrl = url;
      req.url = url.slice(prefix.length) || '/';
      if (req.url.startsWith('?')) {
        req.url = `/${req.url}`;
      }
    }
    callback(req, res);
  });

  process.stdout.write(`${JSON.stringify({ issuer, port: actualPort })}\n`);
});

if (args['exit-with-stdin']) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
