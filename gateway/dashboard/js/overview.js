// Overview: requests, tokens, spend and cache savings over a day, week or month,
// by model (monitoring summary, usage ledger) and by key (recent call records).
import { get, listAll, hasScope } from './api.js';
import { h, clear, table, chart, stats, fmtInt, fmtMoney, fmtPct, problemMessage, section } from './ui.js';

export const RANGES = {
  day: { label: 'Day', hours: 24, interval: 'hour', text: 'the last 24 hours' },
  week: { label: 'Week', hours: 24 * 7, interval: 'hour', text: 'the last 7 days' },
  month: { label: 'Month', hours: 24 * 30, interval: 'day', text: 'the last 30 days' },
};
let chosen = 'day'; // remembered in memory while the page is open

export function rangeBounds(key) {
  const r = RANGES[key];
  const now = new Date();
  const end = new Date(now);
  // Whole buckets: the next boundary after now, so the current bucket is included.
  if (r.interval === 'hour') { end.setUTCMinutes(0, 0, 0); end.setUTCHours(end.getUTCHours() + 1); } else { end.setUTCHours(0, 0, 0, 0); end.setUTCDate(end.getUTCDate() + 1); }
  const start = new Date(end.getTime() - r.hours * 3600 * 1000);
  return { start: start.toISOString(), end: end.toISOString(), interval: r.interval };
}

const timeFmt = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit' });
const weekFmt = new Intl.DateTimeFormat('en-GB', { weekday: 'short', hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat('en-GB', { weekday: 'short', month: 'short', day: 'numeric' });
/** Short labels: the hour within a day, weekday and hour within a week, the date within a month. */
export const bucketLabel = (iso, interval, range) => {
  const d = new Date(iso);
  if (interval === 'day') return dayFmt.format(d);
  return (range === 'day' ? timeFmt : weekFmt).format(d);
};

export function rangeSwitch(onChange, current) {
  const group = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time range' });
  for (const [k, r] of Object.entries(RANGES)) {
    group.append(h('button', {
      type: 'button', 'aria-pressed': String(k === current), text: r.label,
      onclick: (e) => {
        for (const b of group.querySelectorAll('button')) b.setAttribute('aria-pressed', 'false');
        e.currentTarget.setAttribute('aria-pressed', 'true');
        onChange(k);
      },
    }));
  }
  return group;
}

export function render(root, ctx) {
  const head = root.parentElement.querySelector('.view-head');
  const status = h('p', { class: 'sr-only', role: 'status', 'aria-live': 'polite' });
  head.append(rangeSwitch((k) => { chosen = k; load(); }, chosen), status);
  root.append(h('p', { class: 'view-intro', text: 'How much this tenant used its models, what it cost, and what the response cache saved.' }));
  const body = h('div');
  root.append(body);
  let charts = [];

  async function load() {
    const r = RANGES[chosen];
    status.textContent = `Loading ${r.text}…`;
    charts.forEach((c) => c && c.destroy());
    charts = [];
    clear(body).append(h('p', { class: 'muted', text: 'Loading…' }));
    const { start, end, interval } = rangeBounds(chosen);
    const q = { start, end };
    const wantMon = hasScope('monitoring');
    const wantUsage = hasScope('billing:read');
    const metrics = ['requests', 'input_tokens', 'output_tokens', 'cached_tokens', 'cache_hits', 'cost'];
    const jobs = {
      summary: wantMon ? get('/v1/monitoring/summary', q, { signal: ctx.signal }) : null,
      series: wantMon ? Promise.all(metrics.map((m) => get('/v1/monitoring/timeseries', { ...q, metric: m, interval }, { signal: ctx.signal }))) : null,
      usage: wantUsage && !wantMon ? get('/v1/usage', { ...q, bucket: interval === 'day' ? 'day' : 'hour' }, { signal: ctx.signal }) : null,
      records: wantMon ? recentRecords(start, ctx) : null,
      keys: hasScope('admin') ? listAll('/v1/api_keys', {}, 500, { signal: ctx.signal }).catch(() => []) : Promise.resolve([]),
    };
    const out = {};
    const errors = [];
    await Promise.all(Object.entries(jobs).map(async ([k, p]) => {
      if (!p) return;
      try { out[k] = await p; } catch (e) { if (e.name !== 'AbortError') errors.push(e); }
    }));
    if (!ctx.alive) return;
    clear(body);
    errors.forEach((e) => body.append(problemMessage(e)));
    draw(out, interval, r);
    status.textContent = `Showing ${r.text}.`;
  }

  function draw(out, interval, r) {
    const s = out.summary;
    const cur = ((s && s.currency) || 'USD').toUpperCase();
    const label = (iso) => bucketLabel(iso, interval, chosen);
    if (s) {
      const hitRate = s.requests ? s.cache_hits / s.requests : null;
      body.append(stats([
        ['Requests', fmtInt(s.requests), `${fmtInt(s.errors)} errors`],
        ['Tokens', fmtInt(s.input_tokens + s.output_tokens), `${fmtInt(s.input_tokens)} in · ${fmtInt(s.output_tokens)} out`],
        ['Spend (list prices)', fmtMoney(s.cost_minor, s.currency)],
        ['Cache hits', fmtInt(s.cache_hits), hitRate === null ? '' : `${fmtPct(hitRate)} of requests`],
        ['Tokens from cache', fmtInt(s.cached_tokens), 'not generated again'],
      ]));
    }
    const grid = h('div', { class: 'grid' });
    body.append(grid);
    const add = (spec) => { const c = chart(spec, ctx); charts.push(c.chart); grid.append(h('div', { class: 'card' }, c.el)); };
    if (out.series) {
      const [req, inp, outp, cached, hits, cost] = out.series;
      const labels = req.data.map((p) => label(p.start));
      const vals = (sr) => sr.data.map((p) => p.value ?? 0);
      add({ title: `Requests per ${interval}`, type: 'bar', labels, datasets: [{ label: 'Requests', data: vals(req) }], format: fmtInt });
      add({
        title: `Tokens per ${interval}`, type: 'line', labels,
        datasets: [{ label: 'Input tokens', data: vals(inp) }, { label: 'Output tokens', data: vals(outp) }], format: fmtInt,
      });
      add({ title: `Spend per ${interval} (${cur})`, type: 'bar', labels, datasets: [{ label: 'Spend', data: vals(cost), color: '#047857' }], format: (v) => fmtMoney(v, cur) });
      add({
        title: `Cache savings per ${interval}`, type: 'line', labels,
        datasets: [{ label: 'Tokens answered from cache', data: vals(cached), color: '#7c3aed' }, { label: 'Cache hits', data: vals(hits), color: '#c2410c' }], format: fmtInt,
      });
    } else if (out.usage) {
      // Without the monitoring scope: the usage ledger's token meters.
      const buckets = [...new Set(out.usage.data.map((u) => u.bucket_start))].sort();
      const sum = (meter) => buckets.map((b) => out.usage.data.filter((u) => u.bucket_start === b && u.meter === meter).reduce((a, u) => a + u.quantity, 0));
      const labels = buckets.map(label);
      add({ title: `Tokens per ${interval}`, type: 'line', labels, datasets: [{ label: 'Input tokens', data: sum('input_tokens') }, { label: 'Output tokens', data: sum('output_tokens') }], format: fmtInt });
      add({ title: `Cache savings per ${interval}`, type: 'line', labels, datasets: [{ label: 'Cached input tokens', data: sum('cached_input_tokens') }, { label: 'Cached output tokens', data: sum('cached_output_tokens') }], format: fmtInt });
    }

    if (s && s.models) {
      body.append(section('By model',
        table({
          caption: `Usage by model, ${r.text}`,
          columns: [
            { label: 'Model', value: (m) => (m.model === '-' ? 'refused before a model' : m.model), header: true },
            { label: 'Requests', num: true, value: (m) => fmtInt(m.requests) },
            { label: 'Errors', num: true, value: (m) => `${fmtInt(m.errors)} (${fmtPct(m.error_rate)})` },
            { label: 'Input tokens', num: true, value: (m) => fmtInt(m.input_tokens) },
            { label: 'Output tokens', num: true, value: (m) => fmtInt(m.output_tokens) },
            { label: 'Cache hits', num: true, value: (m) => fmtInt(m.cache_hits) },
            { label: 'Tokens from cache', num: true, value: (m) => fmtInt(m.cached_tokens) },
            { label: 'Spend', num: true, value: (m) => fmtMoney(m.cost_minor, s.currency) },
          ],
          rows: s.models.slice().sort((a, b) => b.requests - a.requests),
          empty: 'no calls in this range.',
        })));
    } else if (out.usage) {
      const byModel = new Map();
      for (const u of out.usage.data) {
        const m = byModel.get(u.model) || {};
        m[u.meter] = (m[u.meter] || 0) + u.quantity;
        byModel.set(u.model, m);
      }
      const meters = [...new Set(out.usage.data.map((u) => u.meter))].sort();
      body.append(section('By model', table({
        caption: `Metered usage by model, ${r.text}`,
        columns: [{ label: 'Model', header: true, value: ([m]) => m || '(none)' }, ...meters.map((mt) => ({ label: mt.replaceAll('_', ' '), num: true, value: ([, v]) => fmtInt(v[mt] || 0) }))],
        rows: [...byModel.entries()],
        empty: 'no usage in this range.',
      })));
    }

    if (out.records) {
      const names = new Map((out.keys || []).map((k) => [k.id, k.name]));
      const by = new Map();
      for (const rec of out.records.list) {
        const a = by.get(rec.actor) || { actor: rec.actor, calls: 0, tokens: 0, cached: 0, hits: 0, cost: 0, currency: rec.currency };
        a.calls += 1;
        a.tokens += rec.input_tokens + rec.output_tokens;
        a.cached += rec.cached_tokens;
        if (rec.cache === 'hit' || rec.cache === 'semantic-hit') a.hits += 1;
        a.cost += rec.cost_minor || 0;
        a.currency = a.currency || rec.currency;
        by.set(rec.actor, a);
      }
      const who = (a) => {
        if (names.has(a)) return names.get(a);
        if (a.startsWith('usr_')) return 'a dashboard user';
        if (a.startsWith('key_')) return 'an API key';
        return a;
      };
      body.append(section('By key',
        h('p', { class: 'hint', text: out.records.truncated
          ? `From the latest ${out.records.list.length} calls of ${r.text} (older calls are not counted here).`
          : `From every call recorded in ${r.text}.` }),
        table({
          caption: `Calls by API key or user, ${r.text}`,
          columns: [
            { label: 'Key', header: true, value: (a) => who(a.actor) },
            { label: 'Calls', num: true, value: (a) => fmtInt(a.calls) },
            { label: 'Tokens', num: true, value: (a) => fmtInt(a.tokens) },
            { label: 'Cache hits', num: true, value: (a) => fmtInt(a.hits) },
            { label: 'Tokens from cache', num: true, value: (a) => fmtInt(a.cached) },
            { label: 'Spend', num: true, value: (a) => fmtMoney(a.cost, a.currency || cur) },
          ],
          rows: [...by.values()].sort((a, b) => b.calls - a.calls),
          empty: 'no calls in this range.',
        })));
    }
    if (!s && !out.usage && !out.series) {
      body.append(h('p', { class: 'muted', text: 'Your role includes neither usage nor monitoring figures.' }));
    }
  }

  load();
}

/** Up to 200 of the newest call records since `start` (the records endpoint has no time filter). */
async function recentRecords(start, ctx) {
  const t0 = new Date(start).getTime();
  const list = [];
  let after;
  for (let i = 0; i < 2; i += 1) {
    const page = await get('/v1/monitoring/requests', { limit: 100, after }, { signal: ctx.signal });
    for (const r of page.data) {
      if (new Date(r.started_at).getTime() < t0) return { list, truncated: false };
      list.push(r);
    }
    if (!page.has_more || !page.last_id) return { list, truncated: false };
    after = page.last_id;
  }
  return { list, truncated: true };
}
