// Monitoring: latency and TTFT percentiles, errors, drift reports, alerts.
import { api, get, seg, canWrite } from './api.js';
import { h, clear, table, badge, fmtDate, fmtInt, fmtNum, fmtMs, fmtPct, notice, busy, field, section, chart, stats, problemMessage } from './ui.js';
import { RANGES, rangeBounds, rangeSwitch, bucketLabel } from './overview.js';

let chosen = 'day';

export function render(root, ctx) {
  const head = root.parentElement.querySelector('.view-head');
  const live = h('p', { class: 'sr-only', role: 'status', 'aria-live': 'polite' });
  head.append(rangeSwitch((k) => { chosen = k; loadPerf(); }, chosen), live);
  root.append(h('p', { class: 'view-intro', text: 'How fast and how reliably the models answered, whether their traffic drifted, and the alerts that fired.' }));
  const perf = h('div');
  const driftArea = h('div');
  const alertsArea = h('div');
  root.append(perf, driftArea, alertsArea);
  let charts = [];
  let modelNames = [];

  async function loadPerf() {
    const r = RANGES[chosen];
    live.textContent = `Loading ${r.text}…`;
    charts.forEach((c) => c && c.destroy());
    charts = [];
    clear(perf).append(h('p', { class: 'muted', text: 'Loading…' }));
    const { start, end, interval } = rangeBounds(chosen);
    const q = { start, end };
    const metrics = ['latency_p50', 'latency_p95', 'latency_p99', 'ttft_p50', 'ttft_p95', 'ttft_p99', 'errors', 'error_rate'];
    try {
      const [s, ...series] = await Promise.all([
        get('/v1/monitoring/summary', q, { signal: ctx.signal }),
        ...metrics.map((m) => get('/v1/monitoring/timeseries', { ...q, metric: m, interval }, { signal: ctx.signal })),
      ]);
      if (!ctx.alive) return;
      modelNames = s.models.map((m) => m.model).filter((m) => m && m !== '-');
      clear(perf);
      perf.append(stats([
        ['Latency p50', fmtMs(s.latency_ms.p50)],
        ['Latency p95', fmtMs(s.latency_ms.p95)],
        ['Latency p99', fmtMs(s.latency_ms.p99)],
        ['TTFT p50', fmtMs(s.ttft_ms.p50), 'streams'],
        ['TTFT p95', fmtMs(s.ttft_ms.p95), 'streams'],
        ['Errors', fmtInt(s.errors), `${fmtPct(s.error_rate)} of ${fmtInt(s.requests)}`],
      ]));
      const byName = Object.fromEntries(metrics.map((m, i) => [m, series[i]]));
      const labels = byName.latency_p50.data.map((p) => bucketLabel(p.start, interval, chosen));
      const vals = (m) => byName[m].data.map((p) => (p.value === undefined ? null : p.value));
      const grid = h('div', { class: 'grid' });
      const add = (spec) => { const c = chart({ cumulative: false, ...spec }, ctx); charts.push(c.chart); grid.append(h('div', { class: 'card' }, c.el)); };
      add({ title: `Latency per ${interval} (ms)`, labels, datasets: [{ label: 'p50', data: vals('latency_p50') }, { label: 'p95', data: vals('latency_p95') }, { label: 'p99', data: vals('latency_p99') }], format: (v) => fmtMs(v) });
      add({ title: `Time to first token per ${interval} (ms)`, labels, datasets: [{ label: 'p50', data: vals('ttft_p50') }, { label: 'p95', data: vals('ttft_p95') }, { label: 'p99', data: vals('ttft_p99') }], format: (v) => fmtMs(v) });
      add({ title: `Errors per ${interval}`, type: 'bar', labels, datasets: [{ label: 'Errors', data: vals('errors'), color: '#be123c' }], format: fmtInt, cumulative: true });
      add({ title: `Error rate per ${interval}`, labels, datasets: [{ label: 'Error rate', data: vals('error_rate'), color: '#be123c' }], format: (v) => fmtPct(v) });
      perf.append(grid);
      perf.append(h('p', { class: 'hint', text: `Percentiles are within ${fmtPct(s.relative_error, 1)} of the exact value.` }));
      perf.append(section('By model', table({
        caption: `Latency and errors by model, ${r.text}`,
        columns: [
          { label: 'Model', header: true, value: (m) => (m.model === '-' ? 'refused before a model' : m.model) },
          { label: 'Requests', num: true, value: (m) => fmtInt(m.requests) },
          { label: 'p50', num: true, value: (m) => fmtMs(m.latency_ms.p50) },
          { label: 'p95', num: true, value: (m) => fmtMs(m.latency_ms.p95) },
          { label: 'p99', num: true, value: (m) => fmtMs(m.latency_ms.p99) },
          { label: 'TTFT p50', num: true, value: (m) => fmtMs(m.ttft_ms.p50) },
          { label: 'TTFT p95', num: true, value: (m) => fmtMs(m.ttft_ms.p95) },
          { label: 'Error rate', num: true, value: (m) => fmtPct(m.error_rate) },
          { label: 'Truncated / refusals / empty', num: true, value: (m) => `${fmtInt(m.quality.truncated)} / ${fmtInt(m.quality.refusals)} / ${fmtInt(m.quality.empty)}` },
        ],
        rows: s.models,
        empty: 'no calls in this range.',
      })));
      live.textContent = `Showing ${r.text}.`;
    } catch (e) {
      if (e.name !== 'AbortError') clear(perf).append(problemMessage(e));
    }
  }

  // ----- drift reports
  const driftStatus = notice();
  const driftList = h('div');
  let driftPoll = null;
  async function loadDrift() {
    try {
      const page = await get('/v1/monitoring/drift_reports', { limit: 50 }, { signal: ctx.signal });
      if (!ctx.alive) return;
      const reports = page.data;
      clear(driftList).append(table({
        caption: 'Drift reports, newest first',
        columns: [
          { label: 'Model', header: true, value: (d) => d.model },
          { label: 'Status', value: (d) => [badge(d.status), d.error ? h('div', { class: 'hint', text: d.error }) : null] },
          { label: 'Drifted', value: (d) => (d.drifted === null || d.drifted === undefined ? '—' : d.drifted ? badge('drifted', 'bad') : badge('no drift', 'ok')) },
          { label: 'Reference window', value: (d) => `${fmtDate(d.reference.start)} – ${fmtDate(d.reference.end)}` },
          { label: 'Current window', value: (d) => `${fmtDate(d.current.start)} – ${fmtDate(d.current.end)}` },
          { label: 'Trigger', value: (d) => d.trigger },
          { label: 'Details', value: (d) => driftDetails(d) },
        ],
        rows: reports,
        empty: 'no reports yet.',
      }));
      const running = reports.some((d) => d.status === 'queued' || d.status === 'running');
      if (running && !driftPoll) driftPoll = ctx.every(4000, loadDrift);
      if (!running && driftPoll) { clearInterval(driftPoll); driftPoll = null; }
    } catch (e) { if (e.name !== 'AbortError') clear(driftList).append(problemMessage(e)); }
  }

  function driftForm() {
    const model = field('Model', 'text', { name: 'model', required: true, list: 'drift-models', autocomplete: 'off', pattern: '[A-Za-z0-9._:/\\-]{1,128}' },
      { hint: 'Compares its last 24 hours with its first week of traffic.' });
    const dl = h('datalist', { id: 'drift-models' });
    get('/v1/models', undefined, { signal: ctx.signal }).then((l) => { for (const m of l.data || []) dl.append(h('option', { value: m.id })); }).catch(() => {});
    const submit = h('button', { type: 'submit', class: 'button', text: 'Request a report' });
    const form = h('form', { class: 'form-grid', 'aria-label': 'Request a drift report' }, model.wrap, dl, h('div', { class: 'form-actions' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      driftStatus.clearMsg();
      await busy(submit, async () => {
        try {
          const d = await api('POST', '/v1/monitoring/drift_reports', { body: { model: model.input.value.trim() } });
          driftStatus.ok(`Report for ${d.model} ${d.status}; the list updates when it completes.`);
          loadDrift();
        } catch (err) { driftStatus.error(err); }
      }, 'Requesting…');
    });
    return form;
  }

  // ----- alerts
  const alertStatus = notice();
  const alertList = h('div');
  async function loadAlerts() {
    try {
      const page = await get('/v1/monitoring/alerts', { limit: 50 }, { signal: ctx.signal });
      if (!ctx.alive) return;
      const writable = canWrite('monitoring');
      clear(alertList).append(table({
        caption: 'Alerts, newest first',
        columns: [
          { label: 'Metric', header: true, value: (a) => `${a.metric}${a.model ? ` (${a.model})` : ''}` },
          { label: 'Status', value: (a) => badge(a.status) },
          { label: 'Value / threshold', num: true, value: (a) => `${fmtNum(a.value, 3)} / ${fmtNum(a.threshold, 3)}` },
          { label: 'Started', value: (a) => fmtDate(a.started_at) },
          { label: 'Resolved', value: (a) => fmtDate(a.resolved_at) },
          { label: 'Webhooks', value: (a) => (a.deliveries.length ? a.deliveries.map((d) => `${d.event}: ${d.status}`).join(', ') : 'none') },
          {
            label: 'Acknowledged',
            value: (a) => (a.acknowledged_at
              ? `${fmtDate(a.acknowledged_at)}${a.acknowledged_by ? ` by ${a.acknowledged_by}` : ''}`
              : writable
                ? h('button', {
                  type: 'button', class: 'button secondary small', text: 'Acknowledge', 'aria-label': `Acknowledge alert on ${a.metric}`,
                  onclick: async (e) => {
                    await busy(e.target, async () => {
                      try {
                        await api('POST', `/v1/monitoring/alerts/${seg(a.id)}/acknowledge`);
                        alertStatus.ok(`Alert on ${a.metric} acknowledged.`);
                        loadAlerts();
                      } catch (err) { alertStatus.error(err); }
                    });
                  },
                })
                : 'no'),
          },
        ],
        rows: page.data,
        empty: 'no alerts.',
      }));
    } catch (e) { if (e.name !== 'AbortError') clear(alertList).append(problemMessage(e)); }
  }

  driftArea.append(section('Drift reports', canWrite('monitoring') ? driftForm() : null, driftStatus, driftList));
  alertsArea.append(section('Alerts', alertStatus, alertList));
  loadPerf();
  loadDrift();
  loadAlerts();
  ctx.every(30000, loadAlerts);
}

function driftDetails(d) {
  const a = d.analysis;
  if (!a) return '—';
  return h('details', null, h('summary', { text: 'Show analysis' }),
    h('p', { text: `${fmtInt(a.reference_requests)} reference and ${fmtInt(a.current_requests)} current calls.${a.embedding ? ` Embeddings: MMD² ${fmtNum(a.embedding.statistic, 4)}, p = ${fmtNum(a.embedding.p_value, 4)}${a.embedding.drifted ? ' (drifted)' : ''}.` : ''}` }),
    a.descriptors.length ? table({
      caption: 'Descriptors, most shifted first',
      columns: [
        { label: 'Descriptor', header: true, value: (x) => x.name.replaceAll('_', ' ') },
        { label: 'PSI', num: true, value: (x) => fmtNum(x.psi, 3) },
        { label: 'p-value', num: true, value: (x) => fmtNum(x.ks_p_value ?? x.chi2_p_value, 4) },
        { label: 'Drifted', value: (x) => (x.drifted ? 'yes' : 'no') },
      ],
      rows: a.descriptors,
    }) : null,
    a.notes.length ? h('ul', null, a.notes.map((n) => h('li', { text: n }))) : null);
}
