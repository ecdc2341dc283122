// The stagepass sign-in page: lists the configured providers, signs in with the same popup
// protocol the Backstage frontend uses, and shows the resulting identity.

const state = { config: null, provider: null, timer: null };

const $ = (id) => document.getElementById(id);

function showError(message) {
  const el = $('error');
  el.textContent = message;
  el.hidden = !message;
}

function authUrl(provider, path, params = {}) {
  // Same-origin: this page is served by the auth backend itself.
  const base = new URL(state.config.authBaseUrl).pathname.replace(/\/$/, '');
  const url = new URL(`${base}/${encodeURIComponent(provider)}${path}`, window.location.origin);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  url.searchParams.set('env', state.config.environment);
  return url.toString();
}

function showSession(provider, response) {
  const identity = response.backstageIdentity;
  if (!identity) {
    showError('This provider is configured for delegated access only: it signed you in at the provider but issued no Backstage identity.');
    return;
  }
  state.provider = provider;
  $('session-provider').textContent = provider;
  $('session-user').textContent = identity.identity.userEntityRef;
  const list = $('session-ownership');
  list.replaceChildren(...identity.identity.ownershipEntityRefs.map((ref) => {
    const li = document.createElement('li');
    li.textContent = ref;
    return li;
  }));
  const expires = new Date(Date.now() + identity.expiresInSeconds * 1000);
  $('session-expiry').textContent = `${expires.toLocaleString()} (in ${Math.round(identity.expiresInSeconds / 60)} min)`;
  const profile = response.profile || {};
  $('session-profile').textContent = [profile.displayName, profile.email].filter(Boolean).join(' · ') || '—';
  $('session').hidden = false;
  $('session').dataset.user = identity.identity.userEntityRef;
  showError('');
}

function clearSession() {
  state.provider = null;
  $('session').hidden = true;
  delete $('session').dataset.user;
}

async function refresh(provider) {
  const res = await fetch(authUrl(provider, '/refresh', { optional: '' }), {
    credentials: 'include',
    headers: { 'x-requested-with': 'XMLHttpRequest' },
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || body.error) {
    throw new Error(body.error?.message || `Refresh failed with status ${res.status}`);
  }
  return body;
}

function popupLogin(provider) {
  return new Promise((resolve, reject) => {
    const url = authUrl(provider, '/start', { origin: window.location.origin, flow: 'popup', scope: '' });
    const width = 450, height = 730;
    const left = window.screenX + (window.outerWidth - width) / 2;
    const top = window.screenY + (window.outerHeight - height) / 2;
    const popup = window.open(url, `${provider} Login`, `menubar=no,location=no,resizable=no,scrollbars=no,status=no,width=${width},height=${height},top=${top},left=${left}`);
    if (!popup) {
      reject(new Error('The login popup was blocked'));
      return;
    }
    let targetOrigin = '';
    const done = () => {
      window.removeEventListener('message', onMessage);
      clearInterval(closed);
    };
    const onMessage = (event) => {
      if (event.source !== popup) return;
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
      }
    }, 100);
    window.addEventListener('message', onMessage);
  });
}

async function signIn(provider) {
  showError('');
  try {
    const response = provider.kind === 'proxy'
      ? await refresh(provider.id)
      : await popupLogin(provider.id);
    showSession(provider.id, response);
  } catch (err) {
    showError(err.message);
  }
}

async function signOut() {
  const provider = state.config.providers.find((p) => p.id === state.provider);
  if (provider && provider.kind === 'oauth') {
    const res = await fetch(authUrl(provider.id, '/logout'), {
      method: 'POST',
      credentials: 'include',
      headers: { 'x-requested-with': 'XMLHttpRequest' },
    });
    const body = res.headers.get('content-type')?.includes('json') ? await res.json() : {};
    if (body.logoutUrl) window.open(body.logoutUrl, '_blank', 'noopener');
  }
  clearSession();
}

async function main() {
  const res = await fetch('/.stagepass/config.json');
  state.config = await res.json();
  const list = $('providers');
  $('loading').remove();
  const home = new URL(state.config.authBaseUrl).origin;
  if (home !== window.location.origin) {
    // Cookies and callbacks live on the configured backend URL: sign in there.
    const p = document.createElement('p');
    p.className = 'muted';
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
    button.textContent = `Sign in with ${provider.title}`;
    button.addEventListener('click', () => signIn(provider));
    list.append(button);
  }
  $('refresh').addEventListener('click', async () => {
    try {
      showSession(state.provider, await refresh(state.provider));
    } catch (err) {
      showError(err.message);
    }
  });
  $('signout').addEventListener('click', () => signOut().catch((err) => showError(err.message)));
}

main().catch((err) => showError(`Could not load the configuration: ${err.message}`));
