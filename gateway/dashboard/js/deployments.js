// Deployments: deploy a registry version, watch it load, stop it, GPU-hours.
import { api, get, listAll, seg, canWrite, hasScope } from './api.js';
import { h, clear, table, badge, fmtDate, fmtNum, notice, busy, field, section, confirmDialog, problemMessage, stats, newId } from './ui.js';

const LIVE = new Set(['pending', 'loading']);

function gpuHours(d, now = Date.now()) {
  if (!d.ready_at) return 0;
  const end = d.stopped_at ? new Date(d.stopped_at).getTime() : now;
  return Math.max(0, end - new Date(d.ready_at).getTime()) * (d.replicas || 1) / 3_600_000;
}

export function render(root, ctx) {
  root.append(h('p', { class: 'view-intro', text: 'Dedicated deployments of registry versions. A deployment answers as its own model name once ready; its GPU time is metered until it is stopped.' }));
  const writable = canWrite('inference');
  const listStatus = notice();
  const totals = h('div');
  const listArea = h('div');
  const live = h('p', { class: 'sr-only', role: 'status', 'aria-live': 'polite' });
  if (writable) root.append(deployForm(() => refresh()));
  root.append(totals, section('Deployments', live, listStatus, listArea));
  let poll = null;
  const lastStatus = new Map();

  async function refresh() {
    try {
      const deps = await listAll('/v1/deployments', {}, 500, { signal: ctx.signal });
      if (!ctx.alive) return;
      const changes = [];
      for (const d of deps) {
        const prev = lastStatus.get(d.id);
        if (prev && prev !== d.status) changes.push(`${d.name} is ${d.status}`);
        lastStatus.set(d.id, d.status);
      }
      if (changes.length) live.textContent = `${changes.join('. ')}.`;
      clear(listArea).append(depTable(deps));
      const anyLive = deps.some((d) => LIVE.has(d.status));
      if (anyLive && !poll) poll = ctx.every(3000, refresh);
      if (!anyLive && poll) { clearInterval(poll); poll = null; }
    } catch (e) {
      if (e.name !== 'AbortError') listStatus.error(e);
    }
  }

  function depTable(deps) {
    return table({
      caption: `Deployments (${deps.length})`,
      columns: [
        { label: 'Name', header: true, value: (d) => h('code', { text: d.name }) },
        { label: 'Model', value: (d) => d.model },
        { label: 'Status', value: (d) => [badge(d.status), d.error ? h('div', { class: 'hint', text: d.error }) : null] },
        { label: 'GPU', value: (d) => `${d.gpu_type} × ${d.replicas}` },
        { label: 'GPU-hours (est.)', num: true, value: (d) => fmtNum(gpuHours(d), 3) },
        { label: 'Created', value: (d) => fmtDate(d.created_at) },
        { label: 'Ready', value: (d) => fmtDate(d.ready_at) },
        { label: 'Stopped', value: (d) => fmtDate(d.stopped_at) },
        {
          label: 'Actions',
          value: (d) => (writable && !['stopped', 'failed'].includes(d.status)
            ? h('button', {
              type: 'button', class: 'button danger small', text: 'Stop', 'aria-label': `Stop deployment ${d.name}`,
              onclick: async (e) => {
                if (!await confirmDialog(`Stop ${d.name}? It unloads now and stops answering; its GPU time is metered up to this moment.`, { confirm: 'Stop deployment', title: 'Stop this deployment?' })) return;
                await busy(e.target, async () => {
                  try {
                    await api('DELETE', `/v1/deployments/${seg(d.id)}`);
                    listStatus.ok(`${d.name} stopped.`);
                    refresh();
                  } catch (err) { listStatus.error(err); }
                });
              },
            })
            : ''),
        },
      ],
      rows: deps.slice().reverse(),
      empty: 'nothing deployed.',
    });
  }

  async function meteredGpu() {
    if (!hasScope('billing:read')) return;
    try {
      const u = await get('/v1/usage', { meter: 'gpu_milliseconds', bucket: 'day' }, { signal: ctx.signal });
      const ms = u.data.reduce((a, r) => a + r.quantity, 0);
      clear(totals).append(stats([['Metered GPU-hours, last 30 days', fmtNum(ms / 3_600_000, 3), 'from the usage ledger']]));
    } catch (e) {
      if (e.name !== 'AbortError') clear(totals).append(problemMessage(e));
    }
  }

  refresh();
  meteredGpu();
}

function deployForm(onDone) {
  const status = notice();
  const name = field('Name', 'text', { name: 'name', required: true, pattern: '[a-z][a-z0-9\\-]{0,62}', maxlength: '63', autocomplete: 'off' },
    { hint: 'The model id it will answer to: a-z, 0-9 and -, starting with a letter.' });
  const listId = newId('refs');
  const ref = field('Registry version', 'text', { name: 'model', required: true, list: listId, autocomplete: 'off' },
    { hint: 'name@alias, name@3 or mv_… (GGUF on the local backend).' });
  const datalist = h('datalist', { id: listId });
  const gpu = field('GPU type', 'text', { name: 'gpu_type', pattern: '[a-z0-9_\\-]{1,32}', autocomplete: 'off' }, { hint: 'Optional; cpu on the local backend.' });
  const replicas = field('Replicas', 'number', { name: 'replicas', min: '1', max: '16', value: '1', inputmode: 'numeric' });
  const submit = h('button', { type: 'submit', class: 'button', text: 'Deploy' });
  const form = h('form', { class: 'form-grid', 'aria-label': 'Deploy a version' }, name.wrap, ref.wrap, datalist, gpu.wrap, replicas.wrap,
    h('div', { class: 'form-actions' }, submit));
  if (hasScope('registry')) {
    listAll('/v1/registry/models', {}, 200).then((models) => {
      for (const m of models) {
        for (const a of Object.keys(m.aliases || {})) datalist.append(h('option', { value: `${m.name}@${a}` }));
        if (m.latest_version) datalist.append(h('option', { value: `${m.name}@${m.latest_version}` }));
      }
    }).catch(() => {});
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.clearMsg();
    const body = { name: name.input.value.trim(), model: ref.input.value.trim() };
    if (gpu.input.value.trim()) body.gpu_type = gpu.input.value.trim();
    if (replicas.input.value) body.replicas = Number(replicas.input.value);
    await busy(submit, async () => {
      try {
        const d = await api('POST', '/v1/deployments', { body });
        status.ok(`${d.name} is ${d.status}; this page follows it until it is ready.`);
        form.reset();
        onDone();
      } catch (err) { status.error(err); }
    }, 'Deploying…');
  });
  return section('Deploy a version', form, status);
}
