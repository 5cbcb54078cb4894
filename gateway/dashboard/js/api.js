// Same-origin calls to the public API. The session cookie is HttpOnly; the CSRF token
// lives only here, in memory, and goes on every state-changing request.

export const state = {
  /** @type {null | {csrf_token: string, expires_at: string, user: {id: string, email: string, role: string}, tenant: {id: string, name: string}, scopes: string[]}} */
  session: null,
};

let onUnauthorized = () => {};
/** Called on any 401 (except where the caller handles it, e.g. the sign-in form). */
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

/** An RFC 9457 problem (or a network failure dressed as one). */
export class Problem extends Error {
  constructor(status, body) {
    const b = body && typeof body === 'object' ? body : {};
    super(b.detail || b.title || `HTTP ${status}`);
    this.status = status;
    this.title = b.title || '';
    this.detail = b.detail || '';
    this.code = b.code || '';
    this.errors = Array.isArray(b.errors) ? b.errors : [];
    this.checks = b.checks;
    this.requestId = b.request_id || '';
  }
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

// The tenant's plan limits concurrent requests (the free plan: 4), and a view loads several
// things at once: at most 3 calls are in flight, the rest wait their turn. (The playground's
// stream goes around the queue, so it always has the fourth slot.)
const MAX_IN_FLIGHT = 3;
let inFlight = 0;
const waiting = [];
function acquire(signal) {
  if (inFlight < MAX_IN_FLIGHT) { inFlight += 1; return Promise.resolve(); }
  return new Promise((resolve, reject) => {
    const entry = { resolve, reject };
    waiting.push(entry);
    if (signal) {
      signal.addEventListener('abort', () => {
        const i = waiting.indexOf(entry);
        if (i >= 0) { waiting.splice(i, 1); reject(new DOMException('Aborted', 'AbortError')); }
      }, { once: true });
    }
  });
}
function release() {
  const next = waiting.shift();
  if (next) next.resolve(); // the slot passes straight to the next caller
  else inFlight -= 1;
}
const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const t = setTimeout(resolve, ms);
  if (signal) signal.addEventListener('abort', () => { clearTimeout(t); reject(new DOMException('Aborted', 'AbortError')); }, { once: true });
});

function buildUrl(path, query) {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** Reads a problem body (or makes one up for a non-JSON error). */
export async function readProblem(res) {
  let body = null;
  try {
    const text = await res.text();
    body = text ? JSON.parse(text) : null;
  } catch { body = null; }
  if (!body || typeof body !== 'object') body = { title: res.statusText || `HTTP ${res.status}`, status: res.status };
  return new Problem(res.status, body);
}

/**
 * fetch() against the API.
 * opts: body (JSON), form (FormData), query, signal, headers, raw (return the Response),
 *       handle401 (do not send the user to sign-in on 401).
 */
export async function api(method, path, opts = {}) {
  const headers = { accept: 'application/json', ...(opts.headers || {}) };
  if (UNSAFE.has(method) && state.session) headers['x-csrf-token'] = state.session.csrf_token;
  let body;
  if (opts.form) body = opts.form;
  else if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const queued = !opts.stream;
  for (let attempt = 0; ; attempt += 1) {
    if (queued) await acquire(opts.signal);
    let res;
    let queuedReleased = false;
    try {
      try {
        res = await fetch(buildUrl(path, opts.query), {
          method, headers, body, credentials: 'same-origin', signal: opts.signal, cache: 'no-store',
        });
      } catch (e) {
        if (e && e.name === 'AbortError') throw e;
        throw new Problem(0, { title: 'Network error', detail: 'The server could not be reached. Check your connection and try again.' });
      }
      // A read refused by the rate or concurrency limit is tried again after `retry-after`.
      if (res.status === 429 && method === 'GET' && attempt < 3) {
        await res.body?.cancel().catch(() => {});
        const after = Number(res.headers.get('retry-after'));
        if (queued) { release(); }
        await sleep(Math.min(Number.isFinite(after) && after > 0 ? after * 1000 : 1000, 10000) + Math.random() * 300, opts.signal);
        continue;
      }
      if (res.status === 401 && !opts.handle401) {
        const p = await readProblem(res);
        onUnauthorized(p);
        throw p;
      }
      if (!res.ok) {
        const p = await readProblem(res);
        // The CSRF token changed (a sign-in in another tab rotates the session): take the
        // current one from the session and try once more.
        if (p.code === 'csrf_token_invalid' && UNSAFE.has(method) && state.session && !opts.retriedCsrf) {
          try {
            const r = await fetch('/v1/auth/session', { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } });
            if (r.ok) {
              const s = await r.json();
              const same = s.user && s.tenant && s.user.id === state.session.user.id && s.tenant.id === state.session.tenant.id;
              if (!same) {
                // Never replay a change as someone else: the other tab signed in as another user.
                throw new Problem(403, { title: 'Signed in elsewhere', detail: 'This browser is now signed in as another user (in another tab). Reload the page to continue as that user.', code: 'session_changed' });
              }
              if (s.csrf_token && s.csrf_token !== headers['x-csrf-token']) {
                state.session = s;
                if (queued) { release(); }
                queuedReleased = true;
                return api(method, path, { ...opts, retriedCsrf: true });
              }
            }
          } catch (e) { if (e instanceof Problem && e.code === 'session_changed') throw e; /* else: the original problem */ }
        }
        throw p;
      }
      if (opts.raw) return res;
      if (res.status === 204) return null;
      const text = await res.text();
      return text ? JSON.parse(text) : null;
    } finally {
      if (queued && !queuedReleased && !(res && res.status === 429 && method === 'GET' && attempt < 3)) release();
    }
  }
}

export const get = (path, query, opts = {}) => api('GET', path, { ...opts, query });
export const post = (path, body, opts = {}) => api('POST', path, { ...opts, body });
export const put = (path, body, opts = {}) => api('PUT', path, { ...opts, body });
export const patch = (path, body, opts = {}) => api('PATCH', path, { ...opts, body });
export const del = (path, opts = {}) => api('DELETE', path, opts);

/** Fetches up to `max` items of a cursor-paginated list (`has_more` / `last_id`). */
export async function listAll(path, query = {}, max = 200, opts = {}) {
  const out = [];
  let after;
  for (;;) {
    const page = await get(path, { ...query, limit: Math.min(100, max - out.length), after }, opts);
    out.push(...(page.data || []));
    if (!page.has_more || out.length >= max || !page.last_id) break;
    after = page.last_id;
  }
  return out;
}

/** Percent-encodes one path segment (ids and names from the API go into API paths only). */
export const seg = (s) => encodeURIComponent(String(s));

export function hasScope(scope) {
  return !!state.session && state.session.scopes.includes(scope);
}
export function isReadOnly() {
  return !!state.session && state.session.user.role === 'read_only';
}
/** Whether the signed-in user may make changes needing `scope`. */
export function canWrite(scope) {
  return hasScope(scope) && !isReadOnly();
}
