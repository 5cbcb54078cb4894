// DOM helpers, formatting, accessible tables and charts. Never sets a `style` attribute
// (the CSP has no 'unsafe-inline' for styles): layout is classes in app.css.

/**
 * h('div', {class: 'card', onclick: fn, 'aria-label': '…'}, child, 'text', [children])
 * Attributes: `class`, `text`, `html` is NOT supported on purpose (all text goes in as text).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'style') throw new Error('no inline styles (CSP)');
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value' && 'value' in el) el.value = v;
      else if (k === 'checked' || k === 'selected' || k === 'disabled' || k === 'hidden' || k === 'required' || k === 'multiple' || k === 'open' || k === 'readOnly') {
        el[k] = !!v;
      } else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

let uid = 0;
export const newId = (p = 'id') => `${p}-${++uid}`;

// ---------- formatting ----------
const nf = new Intl.NumberFormat('en-US');
export const fmtInt = (n) => (n === null || n === undefined || Number.isNaN(n) ? '—' : nf.format(Math.round(n)));
export const fmtNum = (n, digits = 2) =>
  n === null || n === undefined || Number.isNaN(Number(n)) ? '—' : new Intl.NumberFormat('en-US', { maximumFractionDigits: digits }).format(n);
export const fmtMs = (n) => (n === null || n === undefined ? '—' : `${fmtNum(n, n < 10 ? 1 : 0)} ms`);
export const fmtPct = (x, digits = 1) => (x === null || x === undefined ? '—' : `${fmtNum(x * 100, digits)} %`);

function minorDigits(currency) {
  try {
    return new Intl.NumberFormat('en-US', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
  } catch { return 2; }
}
/** Minor units (cents) → "$12.34"; fractions of a minor unit are kept for tiny costs. */
export function fmtMoney(minor, currency) {
  if (minor === null || minor === undefined || Number.isNaN(Number(minor))) return '—';
  const cur = (currency || '').toUpperCase();
  if (!cur) return Number(minor) === 0 ? '0' : `${fmtNum(minor, 4)} minor units`; // nothing priced yet
  const d = minorDigits(cur);
  const major = Number(minor) / 10 ** d;
  const small = Math.abs(major) > 0 && Math.abs(major) < 0.01;
  try {
    return new Intl.NumberFormat('en-US', {
      style: 'currency', currency: cur, minimumFractionDigits: d, maximumFractionDigits: small ? 6 : d,
    }).format(major);
  } catch {
    return `${fmtNum(major, 4)} ${cur}`;
  }
}
export const toMajor = (minor, currency) => Number(minor) / 10 ** minorDigits((currency || 'USD').toUpperCase());

const dtf = new Intl.DateTimeFormat('en-GB', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const df = new Intl.DateTimeFormat('en-GB', { year: 'numeric', month: 'short', day: 'numeric' });
export function toDate(v) {
  if (v === null || v === undefined || v === '') return null;
  const d = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}
export const fmtDate = (v) => { const d = toDate(v); return d ? dtf.format(d) : '—'; };
export const fmtDay = (v) => { const d = toDate(v); return d ? df.format(d) : '—'; };
export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0; let x = Number(n);
  while (x >= 1024 && i < u.length - 1) { x /= 1024; i += 1; }
  return `${fmtNum(x, i ? 1 : 0)} ${u[i]}`;
}
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  const s = ms / 1000;
  if (s < 60) return `${fmtNum(s, 1)} s`;
  const m = s / 60;
  if (m < 60) return `${fmtNum(m, 1)} min`;
  return `${fmtNum(m / 60, 1)} h`;
}

const STATUS_KIND = {
  ready: 'ok', succeeded: 'ok', completed: 'ok', active: 'ok', processed: 'ok', paid: 'ok', delivered: 'ok', resolved: 'ok', finalized: 'info',
  failed: 'bad', cancelled: 'bad', revoked: 'bad', void: 'bad', firing: 'bad', stopped: '', expired: 'warn', archived: '',
  pending: 'warn', queued: 'warn', loading: 'warn', running: 'info', processing: 'info', validating_files: 'warn', paused: 'warn', draft: 'info',
};
export function badge(text, kind) {
  const k = kind === undefined ? STATUS_KIND[text] : kind;
  return h('span', { class: `badge${k ? ` ${k}` : ''}`, text: String(text).replaceAll('_', ' ') });
}

// ---------- messages ----------
/** A region near a form for its results: errors as role=alert, successes as status. */
export function notice() {
  const el = h('div', { class: 'notice', 'aria-live': 'polite' });
  el.clearMsg = () => clear(el);
  el.error = (err) => {
    clear(el);
    el.append(problemMessage(err));
  };
  el.ok = (text, ...extra) => {
    clear(el);
    el.append(h('div', { class: 'msg ok', role: 'status' }, text, ...extra));
  };
  el.info = (text, ...extra) => {
    clear(el);
    el.append(h('div', { class: 'msg info', role: 'status' }, text, ...extra));
  };
  return el;
}

export function problemMessage(err) {
  const box = h('div', { class: 'msg error', role: 'alert' });
  if (!err) return box;
  const text = err.detail || err.title || err.message || String(err);
  box.append(h('strong', { text: err.title && err.detail ? `${err.title}: ` : '' }), text);
  if (err.errors && err.errors.length) {
    box.append(h('ul', null, err.errors.map((e) => h('li', null, h('code', { text: e.field }), ` ${e.message}`))));
  }
  if (err.requestId) box.append(h('div', { class: 'hint', text: `Request id: ${err.requestId}` }));
  return box;
}

/** Shows "Loading…" in `el`, then replaces with the result of `fn`, or the problem. */
export async function loadInto(el, fn) {
  clear(el).append(h('p', { class: 'muted', text: 'Loading…' }));
  try {
    const content = await fn();
    clear(el);
    if (content) append(el, [content]);
  } catch (e) {
    if (e && e.name === 'AbortError') return;
    clear(el).append(problemMessage(e));
  }
}

// ---------- tables ----------
/**
 * An accessible table inside a focusable, labelled scroll container.
 * columns: [{label, value: row => Node|string, num?: bool, header?: bool}]
 */
export function table({ caption, columns, rows, empty = 'Nothing here yet.', rowClass, hideCaption = false }) {
  const label = caption;
  const wrap = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': label });
  if (!rows || rows.length === 0) {
    wrap.removeAttribute('tabindex');
    wrap.removeAttribute('role');
    wrap.removeAttribute('aria-label');
    wrap.append(h('p', { class: 'empty', text: `${caption}: ${empty}` }));
    return wrap;
  }
  const t = h('table', null,
    h('caption', { class: hideCaption ? 'sr-only' : undefined, text: caption }),
    h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : undefined, text: c.label })))),
    h('tbody', null, rows.map((r) => {
      const tr = h('tr', { class: rowClass ? rowClass(r) : undefined });
      for (const c of columns) {
        let v = c.value(r);
        if (v === undefined || v === null || v === '') v = '—';
        const cell = h(c.header ? 'th' : 'td', { class: c.num ? 'num' : undefined, scope: c.header ? 'row' : undefined });
        append(cell, [v]);
        tr.append(cell);
      }
      return tr;
    })),
  );
  wrap.append(t);
  return wrap;
}

export function props(pairs) {
  return h('dl', { class: 'props' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', { text: k }), append(h('dd'), [v ?? '—'])]));
}

export function stats(pairs) {
  return h('dl', { class: 'stats' }, pairs.map(([k, v, small]) =>
    h('div', { class: 'stat' }, h('dt', { text: k }), h('dd', null, v, small ? [' ', h('small', { text: small })] : null))));
}

// ---------- charts ----------
export const PALETTE = ['#1d4ed8', '#c2410c', '#047857', '#7c3aed', '#be123c', '#0e7490', '#a16207', '#475569'];

/**
 * A Chart.js chart with role="img", an aria-label summary and a "Show as table" disclosure.
 * spec: {title, type: 'line'|'bar', labels: string[], datasets: [{label, data: number[]}],
 *        format?: v => string, summary?: string, stacked?: bool, yTitle?: string}
 * Returns {el, chart}. Register chart.destroy with the view's cleanup.
 */
export function chart(spec, ctx) {
  const fmt = spec.format || ((v) => fmtNum(v));
  const summary = spec.summary || summarise(spec, fmt);
  const canvas = h('canvas', { role: 'img', 'aria-label': `${spec.title}. ${summary}` });
  canvas.textContent = summary;
  const fig = h('figure', { class: 'chart-figure' },
    h('figcaption', { text: spec.title }),
    h('div', { class: 'chart-box' }, canvas));
  const tableRows = spec.labels.map((l, i) => ({ l, i }));
  fig.append(h('details', { class: 'as-table' },
    h('summary', { text: 'Show as table' }),
    table({
      caption: spec.title,
      columns: [{ label: spec.xLabel || 'Time', value: (r) => r.l, header: true },
        ...spec.datasets.map((d) => ({ label: d.label, num: true, value: (r) => (d.data[r.i] === null || d.data[r.i] === undefined ? '—' : fmt(d.data[r.i])) }))],
      rows: tableRows,
      empty: 'no data in this range.',
    })));
  let instance = null;
  if (window.Chart && spec.labels.length) {
    const many = spec.labels.length > 40;
    instance = new window.Chart(canvas, {
      type: spec.type || 'line',
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map((d, i) => ({
          label: d.label,
          data: d.data,
          borderColor: d.color || PALETTE[i % PALETTE.length],
          backgroundColor: (spec.type === 'bar') ? (d.color || PALETTE[i % PALETTE.length]) : `${d.color || PALETTE[i % PALETTE.length]}22`,
          borderWidth: 2,
          pointRadius: many ? 0 : 2.5,
          pointHoverRadius: 4,
          tension: 0.25,
          spanGaps: true,
          fill: false,
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: window.matchMedia('(prefers-reduced-motion: reduce)').matches ? false : { duration: 300 },
        interaction: { mode: 'index', intersect: false },
        plugins: {
          legend: { display: spec.datasets.length > 1, labels: { color: '#161b26', boxWidth: 14 } },
          tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${fmt(c.parsed.y)}` } },
        },
        scales: {
          x: { stacked: !!spec.stacked, ticks: { color: '#4a5263', maxRotation: 0, autoSkip: true, autoSkipPadding: 16, maxTicksLimit: 8 }, grid: { display: false } },
          y: {
            stacked: !!spec.stacked, beginAtZero: true,
            ticks: { color: '#4a5263', callback: (v) => fmt(v), precision: spec.format === fmtInt ? 0 : undefined },
            title: spec.yTitle ? { display: true, text: spec.yTitle, color: '#4a5263' } : undefined,
          },
        },
      },
    });
    if (ctx) ctx.onCleanup(() => instance.destroy());
  } else if (!spec.labels.length) {
    fig.querySelector('.chart-box').replaceWith(h('p', { class: 'muted', text: 'No data in this range.' }));
  }
  return { el: fig, chart: instance };
}

function summarise(spec, fmt) {
  if (!spec.labels.length) return 'No data in this range.';
  const parts = spec.datasets.map((d) => {
    const vals = d.data.map((v, i) => [v, i]).filter(([v]) => v !== null && v !== undefined);
    if (!vals.length) return `${d.label}: no values`;
    const [maxV, maxI] = vals.reduce((a, b) => (b[0] > a[0] ? b : a));
    const total = vals.reduce((s, [v]) => s + v, 0);
    const last = vals[vals.length - 1][0];
    return spec.cumulative === false
      ? `${d.label}: peak ${fmt(maxV)} at ${spec.labels[maxI]}, latest ${fmt(last)}`
      : `${d.label}: total ${fmt(total)}, peak ${fmt(maxV)} at ${spec.labels[maxI]}`;
  });
  return `${spec.labels.length} points from ${spec.labels[0]} to ${spec.labels[spec.labels.length - 1]}. ${parts.join('; ')}.`;
}

// ---------- dialogs, copy ----------
/** A modal confirmation (<dialog>): resolves true when confirmed. Focus returns to the opener. */
export function confirmDialog(message, { confirm = 'Confirm', danger = true, title = 'Are you sure?' } = {}) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = newId('dlg');
    const dlg = h('dialog', { class: 'card', 'aria-labelledby': titleId },
      h('h2', { id: titleId, text: title }),
      h('p', { text: message }),
      h('div', { class: 'form-actions' },
        h('button', { type: 'button', class: `button${danger ? ' danger' : ''}`, value: 'yes', text: confirm, onclick: () => dlg.close('yes') }),
        h('button', { type: 'button', class: 'button secondary', value: 'no', text: 'Cancel', onclick: () => dlg.close('no') })));
    dlg.addEventListener('close', () => {
      resolve(dlg.returnValue === 'yes');
      dlg.remove();
      if (opener && opener.isConnected) opener.focus();
    });
    document.body.append(dlg);
    dlg.showModal();
    dlg.querySelector('button.secondary').focus();
  });
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { class: 'sr-only', readOnly: true, 'aria-hidden': 'true' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    ta.remove();
    return ok;
  }
}

/** A "Copy" button that announces its result through `status` (a live region). */
export function copyButton(getText, label = 'Copy', status) {
  const b = h('button', { type: 'button', class: 'button secondary small', text: label });
  b.addEventListener('click', async () => {
    const ok = await copyText(typeof getText === 'function' ? getText() : getText);
    const msg = ok ? 'Copied to the clipboard.' : 'Could not copy: select the text and copy it by hand.';
    if (status) status.textContent = msg;
    b.textContent = ok ? 'Copied' : label;
    setTimeout(() => { if (b.isConnected) b.textContent = label; }, 2000);
  });
  return b;
}

// ---------- forms ----------
/** A labelled field: returns {wrap, input}. kind: input type, 'select', 'textarea'. */
export function field(label, kind, attrs = {}, { hint, options, wide } = {}) {
  const id = attrs.id || newId('f');
  const hintId = hint ? `${id}-hint` : undefined;
  let input;
  if (kind === 'select') {
    input = h('select', { ...attrs, id, 'aria-describedby': hintId },
      (options || []).map((o) => (typeof o === 'string' ? h('option', { value: o, text: o }) : h('option', { value: o.value, text: o.label, selected: o.selected }))));
  } else if (kind === 'textarea') {
    input = h('textarea', { ...attrs, id, 'aria-describedby': hintId });
  } else {
    input = h('input', { type: kind, ...attrs, id, 'aria-describedby': hintId });
  }
  const wrap = h('div', { class: `field${wide ? ' wide' : ''}` },
    h('label', { for: id, text: label }), input, hint ? h('span', { class: 'hint', id: hintId, text: hint }) : null);
  return { wrap, input };
}

/** Disables a submit button while `fn` runs. */
export async function busy(button, fn, busyText) {
  const text = button.textContent;
  button.disabled = true;
  if (busyText) button.textContent = busyText;
  try { return await fn(); } finally {
    button.disabled = false;
    if (busyText) button.textContent = text;
  }
}

/** ISO string for an <input type="datetime-local"> value (local time) or null. */
export function localToIso(v) {
  if (!v) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

export function section(title, ...children) {
  const id = newId('sec');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id, text: title }), ...children);
}
