// The stagepass sign-in page: lists the configured providers, signs in with the same popup (or
// redirect) protocol the Backstage frontend uses, shows the resulting identity, restores it after
// a reload through the session cookie, and refreshes it shortly before it expires.
//
// Only the id of the last used provider and the popup/redirect choice are kept in localStorage;
// tokens live in this page's memory only.

const LAST_PROVIDER = 'stagepass.lastProvider';
const USE_REDIRECT = 'stagepass.useRedirect';

// Like Backstage's frontend: refresh when less than five minutes of the token remain.
const REFRESH_MARGIN_SECONDS = 5 * 60;

const state = { config: null, provider: null, expiresAt: 0, refreshTimer: null, countdown: null, refreshes: 0 };

const $ = (id) => document.getElementById(id);

function storageGet(key) {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

function storageSet(key, value) {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, value);
  } catch {
    // Storage may be disabled: the page still works, it only forgets.
  }
}

function homeOrigin() {
  return new URL(state.config.authBaseUrl).origin;
}

// The URL to open after signing out, if `value` is an absolute http(s) URL; anything else
// (`javascript:`, `data:`, a relative path, not a string) is never navigated to.
function safeLogoutUrl(value) {
  if (typeof value !== 'string') return null;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

// A sentence a person understands for the errors people meet most, or null.
function friendly(message, name) {
  const m = message || '';
  if (/popup was closed/i.test(m)) {
    return 'The sign-in window was closed before signing in finished. Try again, and keep the window open until it closes by itself.';
  }
  if (/popup was blocked/i.test(m)) {
    return 'Your browser blocked the sign-in window. Allow pop-ups for this page, or switch on "Use redirect instead of popup".';
  }
  if (/Incorrect app origin|Origin '.*' is not allowed|Origin is invalid/i.test(m)
    || (name === 'NotAllowedError' && /origin/i.test(m))) {
    return `This page's address is not one the server accepts sign-ins from. Open the page at ${homeOrigin()}/ and sign in there.`;
  }
  if (/login_required|End-User authentication is required/i.test(m)) {
    return 'The identity provider wants you to sign in there first, but it was asked not to show its login page. Sign in at the identity provider, then try again.';
  }
  if (/unable to resolve user identity/i.test(m)) {
    return 'You signed in at the identity provider, but this server found no matching user for you. Ask an administrator to add you to the catalog, or to allow sign-in without a catalog user.';
  }
  if (/invalid_grant/i.test(m)) {
    return 'Your session at the identity provider has ended or was replaced. Sign in again.';
  }
  if (/consent_required|access_denied/i.test(m)) {
    return 'The identity provider did not grant access. Sign in again and allow this application when asked.';
  }
  if (/missing cookie nonce/i.test(m)) {
    // The cookie set at /start did not come back with the identity provider's answer. Over
    // http that is what browsers do with a POST from another site (SAML): SameSite=None needs
    // Secure, so the cookies are Lax and stay behind.
    return window.location.protocol === 'https:'
      ? 'The answer from the identity provider could not be matched to a sign-in started in this browser. Start again from this page, in the same browser.'
      : 'The answer from the identity provider could not be matched to a sign-in started in this browser: it came back as a form posted from another site, and browsers only send the sign-in cookie with such a post over https. Reach this server over https.';
  }
  if (/Failed to fetch|NetworkError/i.test(m)) {
    return 'The server could not be reached. Check your connection and try again.';
  }
  return null;
}

// Shows `error` (an Error, a message, or '' to clear): the friendly sentence, with the original
// message in the detail line.
function showError(error) {
  const message = typeof error === 'string' ? error : error?.message || String(error);
  const name = typeof error === 'string' ? '' : error?.name || '';
  const el = $('error');
  if (!message) {
    el.hidden = true;
    $('error-message').textContent = '';
    $('error-detail').textContent = '';
    return;
  }
  const sentence = friendly(message, name);
  $('error-message').textContent = sentence || message;
  $('error-detail').textContent = sentence ? message : '';
  $('error-detail').hidden = !sentence;
  el.hidden = false;
}

function authUrl(provider, path, params = {}) {
  // Same-origin: this page is served by the auth backend itself.
  const base = new URL(state.config.authBaseUrl).pathname.replace(/\/$/, '');
  const url = new URL(`${base}/${encodeURIComponent(provider)}${path}`, window.location.origin);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  url.searchParams.set('env', state.config.environment);
  return url.toString();
}

function formatLeft(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h} h ${m} min ${rest} s` : `${m} min ${rest} s`;
}

function tick() {
  const left = (state.expiresAt - Date.now()) / 1000;
  $('session-countdown').textContent = left > 0 ? `(in ${formatLeft(left)})` : '(expired)';
}

function scheduleRefresh(expiresInSeconds) {
  clearTimeout(state.refreshTimer);
  // Shortly before expiry; for short-lived tokens, halfway through.
  const delay = Math.max(expiresInSeconds - REFRESH_MARGIN_SECONDS, expiresInSeconds / 2, 5);
  const provider = state.provider;
  state.refreshTimer = setTimeout(async () => {
    if (state.provider !== provider) return;
    try {
      showSession(provider, await refresh(provider));
    } catch (err) {
      showError(err);
    }
  }, delay * 1000);
}

function showSession(provider, response) {
  const identity = response.backstageIdentity;
  if (!identity) {
    showError('This provider is configured for delegated access only: it signed you in at the provider but issued no Backstage identity.');
    return;
  }
  state.provider = provider;
  storageSet(LAST_PROVIDER, provider);
  $('session-provider').textContent = provider;
  $('session-user').textContent = identity.identity.userEntityRef;
  const list = $('session-ownership');
  list.replaceChildren(...identity.identity.ownershipEntityRefs.map((ref) => {
    const li = document.createElement('li');
    li.textContent = ref;
    return li;
  }));
  state.expiresAt = Date.now() + identity.expiresInSeconds * 1000;
  $('session-expiry').textContent = new Date(state.expiresAt).toLocaleString();
  tick();
  clearInterval(state.countdown);
  state.countdown = setInterval(tick, 1000);
  scheduleRefresh(identity.expiresInSeconds);

  const profile = response.profile || {};
  $('session-profile').textContent = [profile.displayName, profile.email].filter(Boolean).join(' · ') || '—';
  $('session-name').textContent = profile.displayName || identity.identity.userEntityRef;
  $('session-email').textContent = profile.email || '';
  // The picture when there is one and it loads (the CSP may refuse it, the host may be down);
  // else the first letter of the name.
  const picture = $('session-picture');
  const initial = $('session-initial');
  const name = profile.displayName || profile.email || identity.identity.userEntityRef.replace(/^[^:]*:([^/]*\/)?/, '');
  initial.textContent = (name.trim()[0] || '?').toUpperCase();
  initial.hidden = Boolean(profile.picture);
  picture.hidden = true;
  if (profile.picture) {
    picture.onload = () => {
      picture.hidden = false;
      initial.hidden = true;
    };
    picture.onerror = () => {
      picture.hidden = true;
      initial.hidden = false;
    };
    picture.src = profile.picture;
  } else {
    picture.removeAttribute('src');
  }
  const session = $('session');
  session.hidden = false;
  session.dataset.user = identity.identity.userEntityRef;
  state.refreshes += 1;
  session.dataset.refreshes = String(state.refreshes);
  showError('');
}

function clearSession() {
  state.provider = null;
  clearTimeout(state.refreshTimer);
  clearInterval(state.countdown);
  $('session').hidden = true;
  delete $('session').dataset.user;
}

// One refresh at a time per provider across all tabs of this origin (Web Locks): providers that
// rotate refresh tokens refuse the older token once another tab used it, so a tab waits for the
// other's refresh and then refreshes with the cookie that one set.
function refresh(provider) {
  if (!navigator.locks) return refreshNow(provider);
  return navigator.locks.request(`stagepass-refresh:${provider}`, () => refreshNow(provider));
}

async function refreshNow(provider) {
  const res = await fetch(authUrl(provider, '/refresh', { optional: '' }), {
    credentials: 'include',
    headers: { 'x-requested-with': 'XMLHttpRequest' },
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || body.error) {
    const err = new Error(body.error?.message || `Refresh failed with status ${res.status}`);
    err.name = body.error?.name || 'Error';
    err.status = res.status;
    throw err;
  }
  return body;
}

// Reads a Backstage error the popup shows instead of leaving for the IdP (e.g. a refused
// origin at /start): the popup is then still on this origin, so its text is readable.
function errorShownIn(popup) {
  try {
    if (popup.location.origin !== window.location.origin) return null;
    if (popup.document.contentType !== 'application/json') return null;
    const body = JSON.parse(popup.document.body.textContent);
    if (!body.error?.message) return null;
    const err = new Error(body.error.message);
    err.name = body.error.name || 'Error';
    return err;
  } catch {
    // Cross-origin (at the IdP), or still loading: nothing to read.
    return null;
  }
}

function popupLogin(provider) {
  return new Promise((resolve, reject) => {
    const url = authUrl(provider, '/start', { origin: window.location.origin, flow: 'popup', scope: '' });
    const width = 450, height = 730;
    const left = window.screenX + (window.outerWidth - width) / 2;
    const top = window.screenY + (window.outerHeight - height) / 2;
    const popup = window.open(url, `${provider} Login`, `menubar=no,location=no,resizable=no,scrollbars=no,status=no,width=${width},height=${height},top=${top},left=${left}`);
    if (!popup) {
      reject(new Error('Login failed, popup was blocked'));
      return;
    }
    let targetOrigin = '';
    // As in Backstage's showLoginPopup: a message counts only when it comes from the popup and
    // from the auth backend, the origin its sign-in started at (or the configured backend
    // origin, where the callback answers). Once the popup is at the identity provider, or at
    // any other site, whatever that site posts is ignored.
    const trustedOrigins = new Set([new URL(url).origin, homeOrigin()]);
    const done = () => {
      window.removeEventListener('message', onMessage);
      clearInterval(closed);
    };
    const onMessage = (event) => {
      if (event.source !== popup) return;
      if (!trustedOrigins.has(event.origin)) return;
      const data = event.data || {};
      if (data.type === 'config_info') {
        targetOrigin = data.targetOrigin;
        return;
      }
      if (data.type !== 'authorization_response') return;
      done();
      if (data.error) {
        const err = new Error(data.error.message);
        err.name = data.error.name;
        reject(err);
      } else {
        resolve(data.response);
      }
    };
    const closed = setInterval(() => {
      if (popup.closed) {
        done();
        reject(new Error(targetOrigin && targetOrigin !== window.location.origin
          ? `Login failed, Incorrect app origin, expected ${targetOrigin}`
          : 'Login failed, popup was closed'));
        return;
      }
      const shown = errorShownIn(popup);
      if (shown) {
        done();
        popup.close();
        reject(shown);
      }
    }, 100);
    window.addEventListener('message', onMessage);
  });
}

function redirectLogin(provider) {
  const here = new URL(window.location.href);
  here.search = '';
  here.hash = '';
  storageSet(LAST_PROVIDER, provider);
  window.location.assign(authUrl(provider, '/start', {
    origin: window.location.origin,
    flow: 'redirect',
    redirectUrl: here.toString(),
    scope: '',
  }));
}

async function signIn(provider) {
  showError('');
  try {
    if (provider.kind === 'proxy') {
      showSession(provider.id, await refresh(provider.id));
    } else if ($('use-redirect').checked) {
      redirectLogin(provider.id);
    } else {
      showSession(provider.id, await popupLogin(provider.id));
    }
  } catch (err) {
    showError(err);
  }
}

async function signOut() {
  const provider = state.config.providers.find((p) => p.id === state.provider);
  storageSet(LAST_PROVIDER, null);
  if (provider && provider.kind === 'oauth') {
    const res = await fetch(authUrl(provider.id, '/logout'), {
      method: 'POST',
      credentials: 'include',
      headers: { 'x-requested-with': 'XMLHttpRequest' },
    });
    const body = res.headers.get('content-type')?.includes('json') ? await res.json() : {};
    const logoutUrl = safeLogoutUrl(body.logoutUrl);
    if (logoutUrl) window.open(logoutUrl, '_blank', 'noopener');
  }
  clearSession();
}

// After a reload or a redirect back: the session cookie of the last used provider, then of
// each OAuth provider, answers /refresh with the identity. The first that does wins.
async function restoreSession() {
  const last = storageGet(LAST_PROVIDER);
  const candidates = state.config.providers
    .filter((p) => p.id === last || p.kind === 'oauth')
    .sort((a, b) => (b.id === last) - (a.id === last));
  if (candidates.length === 0) return;
  $('restoring').hidden = false;
  try {
    for (const provider of candidates) {
      if (state.provider) return; // signed in meanwhile
      try {
        const response = await refresh(provider.id);
        if (response.backstageIdentity && !state.provider) {
          showSession(provider.id, response);
          return;
        }
      } catch {
        // No session with this provider: try the next.
      }
    }
  } finally {
    $('restoring').hidden = true;
  }
}

// An error the redirect flow brought back (`?error=`): shown once, then taken off the URL.
function takeRedirectError() {
  const url = new URL(window.location.href);
  const error = url.searchParams.get('error');
  if (error === null) return null;
  url.searchParams.delete('error');
  window.history.replaceState(window.history.state, '', url.toString());
  return error;
}

// The page's own icons: a glyph for each kind of sign-in, and a badge with the initial (drawn by
// the style sheet, so that it is not part of the button's text) for a named service.
const SVG_NS = 'http://www.w3.org/2000/svg';
const KEY = [
  'M7.5 8a4 4 0 1 0 3.87 5H14v2.5h2V13h1.5v2h2v-2H21v-2h-9.63A4 4 0 0 0 7.5 8z'
    + 'M7.5 10.2a1.8 1.8 0 1 1 0 3.6a1.8 1.8 0 1 1 0-3.6z',
];
const GLYPHS = {
  guest: [
    'M12 3a4.25 4.25 0 1 1 0 8.5a4.25 4.25 0 1 1 0-8.5z',
    'M3.75 21a8.25 7 0 0 1 16.5 0z',
  ],
  oidc: KEY,
  oauth2: KEY,
  saml: ['M12 2.5 19.5 5.5v5.6c0 4.6-3.1 8.6-7.5 10.4-4.4-1.8-7.5-5.8-7.5-10.4V5.5z'],
};

function providerIcon(provider) {
  const glyph = GLYPHS[provider.type];
  if (!glyph) {
    const badge = document.createElement('span');
    badge.className = 'icon badge';
    badge.dataset.type = provider.type;
    badge.dataset.initial = provider.title.charAt(0).toUpperCase();
    badge.setAttribute('aria-hidden', 'true');
    return badge;
  }
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  for (const d of glyph) {
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', d);
    path.setAttribute('fill-rule', 'evenodd');
    svg.append(path);
  }
  return svg;
}

async function main() {
  const redirectError = takeRedirectError();
  const res = await fetch('/.stagepass/config.json');
  state.config = await res.json();
  const list = $('providers');
  $('loading').remove();
  const home = homeOrigin();
  if (home !== window.location.origin) {
    // Cookies and callbacks live on the configured backend URL: sign in there.
    const p = document.createElement('p');
    p.className = 'muted';
    p.id = 'origin-hint';
    p.append('This server is configured as ');
    const a = document.createElement('a');
    a.href = `${home}/`;
    a.textContent = home;
    p.append(a, '; sign in from there so that its cookies and callbacks match.');
    list.append(p);
  }
  if (state.config.providers.length === 0) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = 'No providers are configured.';
    list.append(p);
  }
  for (const provider of state.config.providers) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'provider';
    button.dataset.provider = provider.id;
    button.dataset.kind = provider.kind;
    const label = document.createElement('span');
    label.textContent = `Sign in with ${provider.title}`;
    button.append(providerIcon(provider), label);
    button.addEventListener('click', () => signIn(provider));
    list.append(button);
  }
  const useRedirect = $('use-redirect');
  useRedirect.checked = storageGet(USE_REDIRECT) === 'true';
  useRedirect.addEventListener('change', () => storageSet(USE_REDIRECT, String(useRedirect.checked)));
  $('refresh').addEventListener('click', async () => {
    try {
      showSession(state.provider, await refresh(state.provider));
    } catch (err) {
      showError(err);
    }
  });
  $('signout').addEventListener('click', () => signOut().catch((err) => showError(err)));
  await restoreSession();
  if (redirectError) showError(redirectError);
  document.body.dataset.ready = 'true';
}

main().catch((err) => showError(`Could not load the configuration: ${err.message}`));
