// End-to-end test of the tenant dashboard in a real Chromium (Debian's), driven by
// playwright-core, with axe-core on every view. A plain Node script: one line per check,
// a summary line, exit code 0 only when every check passed.
//
// Environment: BASE_URL, TENANT_A_EMAIL, TENANT_A_PASSWORD, TENANT_B_EMAIL,
// TENANT_B_PASSWORD, CHAT_MODEL, OUT_DIR (screenshots and report.json, axe.json),
// CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const need = (k) => {
  const v = process.env[k];
  if (!v) { console.error(`missing environment variable ${k}`); process.exit(2); }
  return v;
};
const BASE = need('BASE_URL').replace(/\/+$/, '');
const A = { email: need('TENANT_A_EMAIL'), password: need('TENANT_A_PASSWORD') };
const B = { email: need('TENANT_B_EMAIL'), password: need('TENANT_B_PASSWORD') };
const CHAT_MODEL = process.env.CHAT_MODEL || '';
const OUT = path.resolve(process.env.OUT_DIR || path.join(here, 'out'));
const SHOTS = path.join(OUT, 'screenshots');
fs.mkdirSync(SHOTS, { recursive: true });
const DASH = `${BASE}/dashboard/`;
const AXE = fs.readFileSync(path.join(here, 'node_modules/axe-core/axe.min.js'), 'utf8');
const RUN = Date.now().toString(36);
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

const results = [];
const axeResults = [];
const problems = []; // console errors, CSP violations, page errors
const urls = new Set();
const started = Date.now();

async function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    results.push({ name, ok: true, detail: detail || '', ms: Date.now() - t0 });
    console.log(`ok   ${name}${detail ? ` — ${detail}` : ''}`);
    return true;
  } catch (e) {
    const msg = (e && e.message ? e.message : String(e)).split('\n')[0];
    results.push({ name, ok: false, error: msg, ms: Date.now() - t0 });
    console.log(`FAIL ${name} — ${msg}`);
    return false;
  }
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }

// ---------------------------------------------------------------- browser plumbing
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function newPage(label) {
  const context = await browser.newContext({ viewport: DESKTOP, baseURL: BASE });
  const page = await context.newPage();
  page.label = label;
  page.inflight = 0;
  page.on('request', () => { page.inflight += 1; });
  const done = () => { page.inflight = Math.max(0, page.inflight - 1); };
  page.on('requestfinished', done);
  page.on('requestfailed', done);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const t = m.text();
    // Expected HTTP errors (the 401 of the session probe, 404s the views handle) are not problems.
    if (/Failed to load resource: the server responded with a status of (401|403|404|409|422)/.test(t)) return;
    problems.push(`${label}: console: ${t}`);
  });
  page.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) urls.add(f.url()); });
  return { context, page };
}

/** Waits until no request is in flight for 400 ms and no "Loading…" is shown (at most 15 s). */
async function settle(page, ms = 15000) {
  const end = Date.now() + ms;
  let quietSince = 0;
  while (Date.now() < end) {
    const loading = await page.locator('#view :text-is("Loading…")').count().catch(() => 0);
    if (page.inflight === 0 && loading === 0) {
      if (!quietSince) quietSince = Date.now();
      if (Date.now() - quietSince >= 400) break;
    } else quietSince = 0;
    await page.waitForTimeout(100);
  }
  await page.waitForTimeout(350); // chart animations
}

async function go(page, view) {
  await page.evaluate((v) => { location.hash = `#/${v}`; }, view);
  await page.waitForFunction((v) => location.hash === `#/${v}` && document.querySelector('#view h1'), view, { timeout: 10000 });
  await settle(page);
}

async function h1(page) { return (await page.locator('#view h1').first().textContent() || '').trim(); }

async function signIn(page, who) {
  await page.goto(DASH);
  await page.waitForSelector('#view h1');
  await page.waitForFunction(() => location.hash === '#/sign-in', null, { timeout: 10000 });
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  const resp = page.waitForResponse((r) => r.url().endsWith('/v1/auth/sessions') && r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const r = await resp;
  assert(r.status() === 201, `POST /v1/auth/sessions answered ${r.status()}`);
  await page.waitForFunction(() => !/sign-in/.test(location.hash) && document.querySelector('#account-email')?.textContent, null, { timeout: 10000 });
  await settle(page);
  return r.json();
}

async function axeCheck(page, view, width) {
  if (!await page.evaluate(() => typeof window.axe === 'object')) {
    // page.evaluate runs through DevTools, which the page's CSP does not govern (an injected
    // <script> would be refused by script-src 'self').
    await page.evaluate(AXE);
  }
  const res = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
      nodes: v.nodes.slice(0, 10).map((n) => ({ target: n.target, summary: n.failureSummary, html: n.html.slice(0, 300) })),
    }));
  });
  axeResults.push({ view, width, user: page.label, violations: res });
  const bad = res.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert(!bad.length, `${bad.length} serious/critical: ${bad.map((v) => `${v.id} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')})`).join('; ')}`);
  return res.length ? `${res.length} minor/moderate (see axe.json)` : 'no violations';
}

async function shoot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** axe and screenshots of the current view at desktop and phone widths. */
async function tourView(page, view) {
  await page.setViewportSize(DESKTOP);
  await settle(page, 5000);
  await check(`axe ${view} (desktop)`, () => axeCheck(page, view, 'desktop'));
  await shoot(page, `${view}-desktop`);
  await page.setViewportSize(PHONE);
  await page.waitForTimeout(400);
  await check(`axe ${view} (phone)`, () => axeCheck(page, view, 'phone'));
  await check(`${view} fits a phone's width`, async () => {
    const over = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert(over <= 1, `the page scrolls sideways by ${over} px at 390 px`);
  });
  await shoot(page, `${view}-phone`);
  await page.setViewportSize(DESKTOP);
}

const apiJson = (page, url, init) => page.evaluate(async ([u, i]) => {
  const r = await fetch(u, { credentials: 'same-origin', ...(i || {}) });
  let body = null;
  try { body = await r.json(); } catch { body = null; }
  return { status: r.status, body };
}, [url, init || null]);

// ---------------------------------------------------------------- the run
const ctxA = await newPage('A');
const pageA = ctxA.page;
const created = { keyName: `e2e-key-${RUN}`, keyId: null, secret: null, invite: `e2e-invitee-${RUN}@example.com`, inviteLink: null };
const aObjects = { keyNames: [], keyIds: [], models: [], deployments: [], invoices: [], kbs: [], jobs: [] };
let signedInA = false;

await check('sign-in view loads (CSP, no inline code)', async () => {
  await pageA.goto(DASH);
  await pageA.waitForFunction(() => location.hash === '#/sign-in' && document.querySelector('#view h1'), null, { timeout: 15000 });
  assert(await h1(pageA) === 'Sign in', `h1 is “${await h1(pageA)}”`);
  const csp = (await pageA.request.get(DASH)).headers()['content-security-policy'] || '';
  return csp ? `CSP: ${csp.slice(0, 60)}…` : 'no CSP header on /dashboard/ (the Rust side should send one)';
});
await tourView(pageA, 'sign-in');

await check('1. sign in as tenant A', async () => {
  const s = await signIn(pageA, A);
  signedInA = true;
  const shown = await pageA.locator('#account-email').textContent();
  assert(shown === A.email, `header shows ${shown}`);
  assert((await pageA.locator('#tenant-name').textContent()) === s.tenant.name, 'tenant name not in the header');
  return `${s.user.email} (${s.user.role}) of ${s.tenant.name}; view “${await h1(pageA)}”`;
});

await check('2. create an API key; its secret is shown exactly once', async () => {
  assert(signedInA, 'not signed in');
  await go(pageA, 'keys');
  assert(await h1(pageA) === 'API keys', 'no API keys view');
  await pageA.getByLabel('Name', { exact: true }).fill(created.keyName);
  const resp = pageA.waitForResponse((r) => r.url().endsWith('/v1/api_keys') && r.request().method() === 'POST');
  await pageA.getByRole('button', { name: 'Create key' }).click();
  const r = await resp;
  assert(r.status() === 201, `POST /v1/api_keys answered ${r.status()}`);
  const key = await r.json();
  created.keyId = key.id;
  created.secret = key.secret;
  assert(key.secret && key.secret.length > 10, 'no secret in the response');
  await pageA.waitForSelector('[data-secret]');
  const shown = (await pageA.locator('[data-secret]').textContent()).trim();
  assert(shown === key.secret, 'the secret on the page differs from the response');
  assert(await pageA.getByText('will not be shown again').count() > 0, 'no “will not be shown again” note');
  await pageA.getByRole('button', { name: 'Copy secret' }).isVisible();
  await settle(pageA);
  await shoot(pageA, 'keys-secret-once-desktop');
  const count = await pageA.evaluate((s) => document.documentElement.outerHTML.split(s).length - 1, key.secret);
  assert(count === 1, `the secret appears ${count} times on the page`);
  await go(pageA, 'overview');
  await go(pageA, 'keys');
  const html = await pageA.evaluate(() => document.documentElement.outerHTML + document.body.innerText);
  assert(!html.includes(key.secret), 'the secret is still on the page after navigating away and back');
  assert(html.includes(created.keyName), 'the new key is not in the list');
  return `${key.id} created; secret gone after navigating away and back`;
});

await check('3. playground streams a chat answer, with usage and cache outcome', async () => {
  assert(signedInA, 'not signed in');
  assert(CHAT_MODEL, 'CHAT_MODEL is not set');
  await go(pageA, 'playground');
  await pageA.waitForFunction((m) => [...document.querySelectorAll('#pg-model option')].some((o) => o.value === m), CHAT_MODEL, { timeout: 10000 })
    .catch(() => { throw new Error(`model ${CHAT_MODEL} is not offered by GET /v1/models`); });
  await pageA.selectOption('#pg-model', CHAT_MODEL);
  await pageA.fill('#pg-message', `Count from one to twenty in words, separated by commas. (run ${RUN})`);
  await pageA.fill('#pg-temperature', '0.7');
  await pageA.fill('#pg-max-tokens', '96');
  const curl = await pageA.locator('#pg-curl').textContent();
  assert(curl.includes(`${BASE}/v1/chat/completions`) && curl.includes('$LLMOPS_API_KEY') && curl.includes(CHAT_MODEL), 'the curl snippet is not the request');
  const py = await pageA.locator('#pg-python').textContent();
  assert(py.includes(`base_url="${BASE}/v1"`) && py.includes('LLMOPS_API_KEY'), 'the Python snippet is not the request');
  assert(!curl.includes(created.secret || '\u0000') && !py.includes(created.secret || '\u0000'), 'a real secret is in a snippet');
  const obs = await pageA.evaluate(() => new Promise((resolve) => {
    const a = document.getElementById('pg-answer');
    const s = document.getElementById('pg-status');
    const seen = [];
    const t0 = performance.now();
    const mo = new MutationObserver(() => { seen.push({ len: a.textContent.length, t: Math.round(performance.now() - t0), status: s.textContent }); });
    mo.observe(a, { characterData: true, childList: true, subtree: true });
    const finish = () => { mo.disconnect(); so.disconnect(); resolve({ seen, status: s.textContent, final: a.textContent }); };
    const so = new MutationObserver(() => { if (/^(Done|The request failed|Stopped)/.test(s.textContent)) finish(); });
    so.observe(s, { childList: true, characterData: true, subtree: true });
    setTimeout(finish, 180000);
    document.getElementById('pg-send').click();
  }));
  assert(/^Done/.test(obs.status), `the stream did not complete: “${obs.status}” ${await pageA.locator('#view .msg.error').allTextContents()}`);
  const growing = obs.seen.filter((o) => !/^Done/.test(o.status) && o.len > 0).map((o) => o.len);
  const distinct = [...new Set(growing)];
  assert(distinct.length >= 2, `the answer grew in ${distinct.length} step(s) before completion (lengths ${distinct.join(', ')})`);
  assert(distinct.every((v, i) => i === 0 || v > distinct[i - 1]), 'the answer did not only grow');
  assert(obs.final.length > 0, 'empty answer');
  const usage = await pageA.locator('#pg-usage').textContent();
  assert(/\d+ prompt \+ \d+ completion = \d+ tokens/.test(usage), `usage shown as “${usage}”`);
  const cache = await pageA.locator('#pg-cache').textContent();
  assert(cache && cache.trim().length > 0, 'no cache outcome');
  const ttft = await pageA.locator('#pg-ttft').textContent();
  const total = await pageA.locator('#pg-total').textContent();
  await settle(pageA);
  await shoot(pageA, 'playground-answer-desktop');
  return `${distinct.length} growth steps before completion, ${obs.final.length} chars; usage “${usage}”; cache “${cache}”; TTFT ${ttft}, total ${total}`;
});

await check('4. billing: upcoming invoice and a past invoice\'s printable rendering', async () => {
  assert(signedInA, 'not signed in');
  await go(pageA, 'billing');
  const up = await pageA.locator('#upcoming-invoice').innerText();
  assert(/Total/.test(up) || /already invoiced/.test(up), `upcoming invoice not shown: ${up.slice(0, 200)}`);
  const buttons = pageA.locator('button[data-invoice]');
  const n = await buttons.count();
  assert(n > 0, 'no past invoice listed (the test setup should close a billing period first)');
  const id = await buttons.first().getAttribute('data-invoice');
  const popupP = ctxA.context.waitForEvent('page', { timeout: 15000 });
  await buttons.first().click();
  const popup = await popupP;
  const resp = await popup.waitForResponse((r) => r.url().includes(`/v1/invoices/${id}/html`), { timeout: 15000 }).catch(() => null);
  await popup.waitForLoadState('load');
  const status = resp ? resp.status() : 0;
  const text = await popup.locator('body').innerText().catch(() => '');
  await popup.screenshot({ path: path.join(SHOTS, 'invoice-printable.png'), fullPage: true });
  await popup.close();
  assert(popup.url().endsWith(`/v1/invoices/${id}/html`), `the new tab opened ${popup.url()}`);
  assert(status === 200 || status === 0, `the printable invoice answered ${status}`);
  assert(text.length > 20, 'the printable invoice is empty');
  return `upcoming shown; ${n} past invoice(s); printable ${id} opened (${text.length} chars)`;
});

await check('5. revoke the key', async () => {
  assert(created.keyId, 'no key was created');
  await go(pageA, 'keys');
  await pageA.getByRole('button', { name: `Revoke key ${created.keyName}` }).click();
  const dlg = pageA.getByRole('dialog');
  await dlg.waitFor();
  const resp = pageA.waitForResponse((r) => r.url().endsWith(`/v1/api_keys/${created.keyId}`) && r.request().method() === 'DELETE');
  await dlg.getByRole('button', { name: 'Revoke key' }).click();
  const r = await resp;
  assert(r.status() === 200, `DELETE answered ${r.status()}`);
  await settle(pageA);
  const k = await apiJson(pageA, `/v1/api_keys/${created.keyId}`);
  assert(k.status === 200 && k.body.revoked_at, 'the key is not revoked');
  const row = pageA.locator('tr', { hasText: created.keyName });
  assert(/revoked/.test(await row.innerText()), 'the list does not show it revoked');
  return `revoked at ${k.body.revoked_at}`;
});

// Every view of A: axe and screenshots (after the key's secret is gone), and A's objects.
await check('tour of tenant A\'s views', async () => {
  assert(signedInA, 'not signed in');
  const views = await pageA.$$eval('#nav-list a[data-route]', (as) => as.map((a) => a.dataset.route));
  assert(views.length >= 5, `only ${views.length} views in the navigation`);
  for (const v of views) {
    await go(pageA, v);
    const title = await h1(pageA);
    await check(`view ${v} renders (“${title}”)`, async () => {
      assert(await pageA.locator('#view h1').count() === 1, 'not exactly one h1');
      const focused = await pageA.evaluate(() => document.activeElement && document.activeElement.tagName);
      assert(focused === 'H1', `focus is on ${focused}, not the heading`);
      const errs = await pageA.locator('#view .msg.error').allTextContents();
      assert(!errs.length, `error shown: ${errs.join(' | ').slice(0, 300)}`);
    });
    await tourView(pageA, v);
  }
  return views.join(', ');
});

await check('keyboard: skip link and menu at phone width', async () => {
  await go(pageA, 'overview');
  await pageA.evaluate(() => { document.activeElement.blur(); window.scrollTo(0, 0); });
  await pageA.keyboard.press('Tab');
  const first = await pageA.evaluate(() => document.activeElement.textContent.trim());
  // Focus was on the h1; the next Tab goes after it. Check the skip link from the top instead.
  await pageA.evaluate(() => document.querySelector('.skip-link').focus());
  await pageA.keyboard.press('Enter');
  const target = await pageA.evaluate(() => document.activeElement.id || document.activeElement.tagName);
  assert(target === 'main', `the skip link moved focus to ${target}`);
  await pageA.setViewportSize(PHONE);
  const menu = pageA.getByRole('button', { name: 'Menu' });
  assert(await menu.isVisible(), 'no Menu button at phone width');
  assert(!(await pageA.locator('#site-nav').isVisible()), 'the navigation is not collapsed at phone width');
  await menu.focus();
  await pageA.keyboard.press('Enter');
  assert(await pageA.locator('#site-nav').isVisible(), 'the Menu button does not open the navigation');
  assert(await menu.getAttribute('aria-expanded') === 'true', 'aria-expanded not updated');
  await shoot(pageA, 'menu-open-phone');
  await pageA.keyboard.press('Escape');
  await pageA.setViewportSize(DESKTOP);
  return `first Tab from the top: “${first}”`;
});

await check('collect tenant A\'s objects', async () => {
  const take = async (u, f) => { const r = await apiJson(pageA, u); return r.status === 200 ? r.body.data.map(f) : []; };
  aObjects.keyNames = (await take('/v1/api_keys?limit=100', (k) => k.name)).filter((n) => n.startsWith('e2e-'));
  aObjects.keyIds = await take('/v1/api_keys?limit=100', (k) => k.id);
  aObjects.models = await take('/v1/registry/models?limit=100', (m) => m.name);
  aObjects.deployments = await take('/v1/deployments?limit=100', (d) => d.name);
  aObjects.invoices = await take('/v1/invoices?limit=100', (i) => i.id);
  aObjects.kbs = await take('/v1/rag/knowledge_bases?limit=100', (k) => k.name);
  aObjects.jobs = await take('/v1/fine_tuning/jobs?limit=100', (j) => j.id);
  return Object.entries(aObjects).map(([k, v]) => `${v.length} ${k}`).join(', ');
});

await check('6. invite a user (link shown once), then sign out', async () => {
  assert(signedInA, 'not signed in');
  await go(pageA, 'users');
  assert(await h1(pageA) === 'Users', 'no Users view');
  await pageA.getByLabel('Email', { exact: true }).fill(created.invite);
  await pageA.getByLabel('Role', { exact: true }).selectOption('member');
  const resp = pageA.waitForResponse((r) => r.url().endsWith('/v1/invitations') && r.request().method() === 'POST');
  await pageA.getByRole('button', { name: 'Create invitation' }).click();
  const r = await resp;
  assert(r.status() === 201, `POST /v1/invitations answered ${r.status()}`);
  const inv = await r.json();
  const link = (await pageA.locator('[data-invite-link]').textContent()).trim();
  assert(link === `${BASE}${inv.accept_path}`, `link shown: ${link}`);
  assert(/\/dashboard\/#\/accept\?token=./.test(link), 'the link is not an accept link');
  created.inviteLink = link;
  assert(await pageA.getByText('will not be shown again').count() > 0, 'no “will not be shown again” note');
  await settle(pageA);
  await shoot(pageA, 'users-invite-link-desktop');
  await go(pageA, 'overview');
  await go(pageA, 'users');
  const html = await pageA.evaluate(() => document.documentElement.outerHTML);
  assert(!html.includes(inv.token), 'the invitation token is still on the page after navigating away and back');
  assert(html.includes(created.invite), 'the pending invitation is not listed');
  await pageA.getByRole('button', { name: 'Sign out' }).click();
  await pageA.waitForFunction(() => location.hash === '#/sign-in', null, { timeout: 10000 });
  assert(await h1(pageA) === 'Sign in', 'not on the sign-in view after signing out');
  const s = await apiJson(pageA, '/v1/auth/session');
  assert(s.status === 401, `GET /v1/auth/session after sign-out answered ${s.status}`);
  signedInA = false;
  return `invitation ${inv.id} for ${inv.email}; signed out`;
});

await check('accept the invitation (token leaves the URL; the new member is signed in)', async () => {
  assert(created.inviteLink, 'no invitation link');
  const c = await newPage('invitee');
  try {
    await c.page.goto(created.inviteLink);
    await c.page.waitForFunction(() => document.querySelector('#view h1')?.textContent === 'Accept invitation', null, { timeout: 10000 });
    const url = c.page.url();
    assert(!url.includes('token='), `the token is still in the URL: ${url}`);
    const histLen = await c.page.evaluate(() => history.length);
    await tourView(c.page, 'accept');
    const pw = `e2e-${RUN}-correct-horse-battery`;
    await c.page.getByLabel('Choose a password').fill(pw);
    await c.page.getByLabel('Repeat the password').fill(pw);
    const resp = c.page.waitForResponse((r) => r.url().endsWith('/v1/auth/invitations/accept'));
    await c.page.getByRole('button', { name: 'Accept and sign in' }).click();
    const r = await resp;
    assert(r.status() === 201, `accept answered ${r.status()}`);
    await c.page.waitForFunction(() => document.querySelector('#account-email')?.textContent, null, { timeout: 10000 });
    await settle(c.page);
    const who = await c.page.locator('#account-email').textContent();
    const role = await c.page.locator('#account-role').textContent();
    const nav = await c.page.$$eval('#nav-list a', (as) => as.map((a) => a.dataset.route));
    assert(who === created.invite, `signed in as ${who}`);
    assert(!nav.includes('keys') && !nav.includes('users'), `a member sees ${nav.join(', ')}`);
    await shoot(c.page, 'member-overview-desktop');
    return `signed in as ${who} (${role}); history entries ${histLen}; views ${nav.join(', ')}`;
  } finally {
    await c.context.close();
  }
});

// ---------------------------------------------------------------- tenant B
const ctxB = await newPage('B');
const pageB = ctxB.page;
let signedInB = false;

await check('7. sign in as tenant B; none of A\'s objects appear', async () => {
  const s = await signIn(pageB, B);
  signedInB = true;
  // B's own objects may share a name with A's (both set up alike): those are not leaks.
  const mine = async (u, f) => { const r = await apiJson(pageB, u); return new Set(r.status === 200 ? r.body.data.map(f) : []); };
  const bModels = await mine('/v1/registry/models?limit=100', (m) => m.name);
  const bDeps = await mine('/v1/deployments?limit=100', (d) => d.name);
  const bKbs = await mine('/v1/rag/knowledge_bases?limit=100', (k) => k.name);
  const needles = [
    created.keyName, created.keyId, ...aObjects.keyIds, ...aObjects.invoices, ...aObjects.jobs,
    ...aObjects.models.filter((m) => !bModels.has(m)),
    ...aObjects.deployments.filter((d) => !bDeps.has(d)),
    ...aObjects.kbs.filter((k) => !bKbs.has(k)),
  ].filter((x) => x && String(x).length >= 4);
  const views = await pageB.$$eval('#nav-list a[data-route]', (as) => as.map((a) => a.dataset.route));
  const leaks = [];
  for (const v of views) {
    await go(pageB, v);
    // Open every disclosure so hidden tables are searched too.
    await pageB.evaluate(() => document.querySelectorAll('details').forEach((d) => { d.open = true; }));
    const text = await pageB.evaluate(() => document.documentElement.outerHTML + document.body.innerText);
    for (const n of needles) if (text.includes(n)) leaks.push(`${n} on ${v}`);
    await shoot(pageB, `tenant-b-${v}-desktop`);
  }
  assert(!leaks.length, `A's objects on B's pages: ${leaks.join(', ')}`);
  const k = await apiJson(pageB, `/v1/api_keys/${created.keyId}`);
  assert(k.status === 404, `B fetching A's key answered ${k.status}`);
  let inv = 'no invoice of A to try';
  if (aObjects.invoices.length) {
    const i = await apiJson(pageB, `/v1/invoices/${aObjects.invoices[0]}`);
    assert(i.status === 404, `B fetching A's invoice answered ${i.status}`);
    const ih = await pageB.evaluate(async (id) => (await fetch(`/v1/invoices/${id}/html`, { credentials: 'same-origin' })).status, aObjects.invoices[0]);
    assert(ih === 404, `B fetching A's printable invoice answered ${ih}`);
    inv = 'A\'s invoice: 404';
  }
  return `${s.user.email} of ${s.tenant.name}: ${needles.length} of A's identifiers searched on ${views.length} views, none found; A's key: 404; ${inv}`;
});

await check('8. a state-changing request without the CSRF token is refused', async () => {
  assert(signedInB, 'not signed in');
  const before = await apiJson(pageB, '/v1/api_keys?limit=100');
  const noToken = await apiJson(pageB, '/v1/api_keys', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: `csrf-${RUN}`, scopes: ['inference'] }),
  });
  assert(noToken.status === 403, `without the token: ${noToken.status}`);
  assert(noToken.body && noToken.body.code === 'csrf_token_invalid', `code ${noToken.body && noToken.body.code}`);
  const badToken = await apiJson(pageB, '/v1/api_keys', {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': 'not-the-token' }, body: JSON.stringify({ name: `csrf-${RUN}`, scopes: ['inference'] }),
  });
  assert(badToken.status === 403 && badToken.body?.code === 'csrf_token_invalid', `with a wrong token: ${badToken.status} ${badToken.body?.code}`);
  const del = await apiJson(pageB, '/v1/auth/session', { method: 'DELETE' });
  assert(del.status === 403, `DELETE /v1/auth/session without the token: ${del.status}`);
  // Plain HTML forms (what a cross-site page can send): they carry no token.
  for (const [action, fields] of [['/v1/auth/session', {}], ['/v1/api_keys', { name: `csrf-form-${RUN}`, scopes: 'admin' }]]) {
    await pageB.evaluate(([a, f]) => {
      const form = document.createElement('form');
      form.method = 'POST';
      form.action = a;
      for (const [k, v] of Object.entries(f)) { const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; form.append(i); }
      document.body.append(form);
      form.submit();
    }, [action, fields]);
    await pageB.waitForLoadState('load').catch(() => {});
    await pageB.waitForTimeout(300);
  }
  await pageB.goto(DASH);
  await pageB.waitForSelector('#view h1');
  const s = await apiJson(pageB, '/v1/auth/session');
  assert(s.status === 200, `the session was ended by a form post (${s.status})`);
  const after = await apiJson(pageB, '/v1/api_keys?limit=100');
  if (before.status === 200) assert(after.body.data.length === before.body.data.length, 'a key was created without the CSRF token');
  return 'fetch without/with a wrong token: 403 csrf_token_invalid; form posts changed nothing; still signed in';
});

await check('URLs carry only view names (no ids, names or tokens)', async () => {
  const bad = [...urls].filter((u) => {
    if (!u.startsWith(`${BASE}/dashboard/`)) return false; // the printable invoice tab, about:blank
    const rest = u.slice(`${BASE}/dashboard/`.length);
    return !(rest === '' || /^#\/[a-z-]+$/.test(rest) || u === created.inviteLink);
  });
  assert(!bad.length, bad.join(', '));
  return `${urls.size} URLs seen`;
});

await check('no console errors, CSP violations or page errors', async () => {
  assert(!problems.length, problems.slice(0, 8).join(' | '));
});

// ---------------------------------------------------------------- report
await browser.close();
const failed = results.filter((r) => !r.ok);
fs.writeFileSync(path.join(OUT, 'axe.json'), JSON.stringify(axeResults, null, 2));
fs.writeFileSync(path.join(OUT, 'report.json'), JSON.stringify({
  base_url: BASE, started_at: new Date(started).toISOString(), seconds: Math.round((Date.now() - started) / 1000),
  passed: results.length - failed.length, failed: failed.length, checks: results, problems, urls: [...urls],
}, null, 2));
console.log(`${failed.length ? 'FAILED' : 'PASSED'}: ${results.length - failed.length} of ${results.length} checks passed; screenshots in ${SHOTS}, axe.json and report.json in ${OUT}`);
process.exit(failed.length ? 1 : 0);
