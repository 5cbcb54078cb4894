// The dashboard's shell: session, hash router (views only, never ids), navigation.
import { state, api, get, hasScope, setUnauthorizedHandler } from './js/api.js';
import { h, clear, problemMessage } from './js/ui.js';
import * as auth from './js/auth.js';
import * as overview from './js/overview.js';
import * as keys from './js/keys.js';
import * as models from './js/models.js';
import * as deployments from './js/deployments.js';
import * as playground from './js/playground.js';
import * as training from './js/training.js';
import * as knowledge from './js/knowledge.js';
import * as monitoring from './js/monitoring.js';
import * as billing from './js/billing.js';
import * as users from './js/users.js';

const VIEWS = [
  { route: 'overview', title: 'Overview', allowed: () => hasScope('billing:read') || hasScope('monitoring'), mod: overview },
  { route: 'keys', title: 'API keys', allowed: () => hasScope('admin'), mod: keys },
  { route: 'models', title: 'Models', allowed: () => hasScope('registry'), mod: models },
  { route: 'deployments', title: 'Deployments', allowed: () => hasScope('inference'), mod: deployments },
  { route: 'playground', title: 'Playground', allowed: () => hasScope('inference'), mod: playground },
  { route: 'training', title: 'Fine-tuning', allowed: () => hasScope('training'), mod: training },
  { route: 'knowledge', title: 'Knowledge bases', allowed: () => hasScope('rag'), mod: knowledge },
  { route: 'monitoring', title: 'Monitoring', allowed: () => hasScope('monitoring'), mod: monitoring },
  { route: 'billing', title: 'Billing', allowed: () => hasScope('billing:read'), mod: billing },
  { route: 'users', title: 'Users', allowed: () => hasScope('admin'), mod: users },
];
const PUBLIC = {
  'sign-in': { route: 'sign-in', title: 'Sign in', mod: { render: auth.renderSignIn } },
  accept: { route: 'accept', title: 'Accept invitation', mod: { render: auth.renderAccept } },
};

const $ = (id) => document.getElementById(id);
const viewEl = $('view');
const nav = $('site-nav');
const menuButton = $('menu-button');

let current = null; // {route, controller, cleanups}
let firstRender = true;
let afterSignIn = null; // the view asked for before signing in (a view name, never data)
let flash = null; // a message for the next sign-in view

// ----- invitation token: read once from the fragment, then removed from the URL and history entry.
let invitationToken = null;
(function takeInvitationToken() {
  const m = location.hash.match(/^#\/accept\?(.*)$/);
  if (!m) return;
  const t = new URLSearchParams(m[1]).get('token');
  if (t) invitationToken = t;
  history.replaceState(null, '', `${location.pathname}#/accept`);
})();

function routeName() {
  const m = location.hash.match(/^#\/([a-z-]+)/);
  return m ? m[1] : '';
}

export function navigate(route) {
  if (routeName() === route) render();
  else location.hash = `#/${route}`;
}

function allowedViews() { return VIEWS.filter((v) => v.allowed()); }
function defaultRoute() { const v = allowedViews()[0]; return v ? v.route : 'overview'; }

function updateShell() {
  const s = state.session;
  $('account').hidden = !s;
  nav.hidden = !s;
  menuButton.hidden = !s;
  $('tenant-name').textContent = s ? s.tenant.name : '';
  $('account-email').textContent = s ? s.user.email : '';
  $('account-role').textContent = s ? s.user.role.replace('_', '-') : '';
  const list = clear($('nav-list'));
  if (s) {
    for (const v of allowedViews()) {
      list.append(h('li', null, h('a', { href: `#/${v.route}`, 'data-route': v.route, text: v.title })));
    }
  }
}

function markNav(route) {
  for (const a of nav.querySelectorAll('a[data-route]')) {
    if (a.dataset.route === route) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function closeMenu() {
  nav.classList.remove('open');
  menuButton.setAttribute('aria-expanded', 'false');
}

function teardown() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.cleanups.splice(0)) { try { fn(); } catch { /* already gone */ } }
  current = null;
}

function render() {
  teardown();
  closeMenu();
  let name = routeName();
  const signedIn = !!state.session;
  if (!signedIn && !PUBLIC[name]) {
    if (name && VIEWS.some((v) => v.route === name)) afterSignIn = name;
    if (name !== 'sign-in') { history.replaceState(null, '', `${location.pathname}#/sign-in`); name = 'sign-in'; }
  }
  if (signedIn && (name === 'sign-in' || name === '')) {
    name = defaultRoute();
    history.replaceState(null, '', `${location.pathname}#/${name}`);
  }
  const view = PUBLIC[name] || VIEWS.find((v) => v.route === name);
  const controller = new AbortController();
  const cleanups = [];
  current = { route: name, controller, cleanups };
  const ctx = {
    signal: controller.signal,
    onCleanup: (fn) => cleanups.push(fn),
    every: (ms, fn) => { const t = setInterval(() => { if (!controller.signal.aborted) fn(); }, ms); cleanups.push(() => clearInterval(t)); return t; },
    after: (ms, fn) => { const t = setTimeout(() => { if (!controller.signal.aborted) fn(); }, ms); cleanups.push(() => clearTimeout(t)); return t; },
    navigate,
    signedIn: onSignedIn,
    invitationToken: () => invitationToken,
    takeFlash: () => { const f = flash; flash = null; return f; },
    get alive() { return !controller.signal.aborted; },
  };

  clear(viewEl);
  const title = view ? view.title : 'Page not found';
  const h1 = h('h1', { tabindex: '-1', text: title });
  viewEl.append(h('div', { class: 'view-head' }, h1));
  const body = h('div', { class: 'view-body' });
  viewEl.append(body);
  document.title = `${title} · LLMOps`;
  markNav(name);

  if (!view) {
    body.append(h('p', null, 'There is no such page. ', h('a', { href: `#/${defaultRoute()}`, text: 'Go to the dashboard' }), '.'));
  } else if (view.allowed && !view.allowed()) {
    body.append(h('div', { class: 'msg info', role: 'status' },
      `Your role (${state.session.user.role.replace('_', '-')}) does not include this page. Ask an admin of ${state.session.tenant.name} if you need it.`));
  } else {
    try {
      const r = view.mod.render(body, ctx);
      if (r && typeof r.catch === 'function') r.catch((e) => { if (e.name !== 'AbortError') body.prepend(problemMessage(e)); });
    } catch (e) {
      body.prepend(problemMessage(e));
    }
  }
  if (!firstRender || name !== 'sign-in') h1.focus({ preventScroll: false });
  if (!firstRender) $('route-announcer').textContent = `${title} page`;
  firstRender = false;
  window.scrollTo(0, 0);
}

function onSignedIn(session) {
  state.session = session;
  invitationToken = null;
  updateShell();
  const target = afterSignIn && VIEWS.find((v) => v.route === afterSignIn && v.allowed()) ? afterSignIn : defaultRoute();
  afterSignIn = null;
  navigate(target);
}

async function signOut() {
  try {
    await api('DELETE', '/v1/auth/session', { handle401: true });
  } catch (e) {
    if (e.status && e.status !== 401) { viewEl.prepend(problemMessage(e)); return; }
  }
  state.session = null;
  afterSignIn = null;
  flash = { kind: 'ok', text: 'You are signed out.' };
  updateShell();
  teardown();
  navigate('sign-in');
}

setUnauthorizedHandler(() => {
  if (!state.session) return;
  state.session = null;
  flash = { kind: 'info', text: 'Your session has ended. Sign in again to continue.' };
  updateShell();
  const r = routeName();
  if (VIEWS.some((v) => v.route === r)) afterSignIn = r;
  navigate('sign-in');
});

menuButton.addEventListener('click', () => {
  const open = !nav.classList.contains('open');
  nav.classList.toggle('open', open);
  menuButton.setAttribute('aria-expanded', String(open));
  if (open) { const a = nav.querySelector('a'); if (a) a.focus(); }
});
nav.classList.add('collapsible');
nav.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && nav.classList.contains('open')) { closeMenu(); menuButton.focus(); }
});
$('sign-out').addEventListener('click', signOut);
// The skip link must not change the hash (the router owns it): move focus instead.
document.querySelector('.skip-link').addEventListener('click', (e) => {
  e.preventDefault();
  const main = $('main');
  main.focus();
  main.scrollIntoView();
});
window.addEventListener('hashchange', (e) => {
  if (!/^#\/[a-z-]+/.test(location.hash) && location.hash !== '' && current) {
    // An in-page anchor (e.g. #main): keep the current view's route.
    history.replaceState(null, '', `${location.pathname}#/${current.route}`);
    const target = document.getElementById(decodeURIComponent(new URL(e.newURL).hash.slice(1)));
    if (target) target.focus();
    return;
  }
  if (/^#\/accept\?/.test(location.hash)) {
    // An invitation link opened while the page was already loaded.
    const t = new URLSearchParams(location.hash.split('?')[1]).get('token');
    if (t) invitationToken = t;
    history.replaceState(null, '', `${location.pathname}#/accept`);
  }
  render();
});

async function boot() {
  try {
    const s = await get('/v1/auth/session', undefined, { handle401: true });
    state.session = s;
  } catch (e) {
    state.session = null;
    if (e.status && e.status !== 401) flash = { kind: 'error', problem: e };
  }
  updateShell();
  render();
}

boot();
