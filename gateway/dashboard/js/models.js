// Registry models: versions with lineage, metrics and checksums; aliases and the audit
// trail; promotion, with the gates' results when they refuse. The selected model is kept
// in memory, never in the URL.
import { api, get, listAll, seg, canWrite, hasScope } from './api.js';
import { h, clear, table, badge, fmtDate, fmtBytes, fmtInt, fmtNum, props, notice, busy, field, section, newId, problemMessage } from './ui.js';

let selected = null; // model name, in memory only

export function render(root, ctx) {
  root.append(h('p', { class: 'view-intro', text: 'The model registry: every version with where it came from, its metrics and checksum, the aliases that point at versions, and who moved them.' }));
  const listArea = h('div');
  const detail = h('div');
  root.append(section('Registry models', listArea), detail);

  async function loadList() {
    clear(listArea).append(h('p', { class: 'muted', text: 'Loading…' }));
    try {
      const models = await listAll('/v1/registry/models', {}, 500, { signal: ctx.signal });
      clear(listArea).append(table({
        caption: `Models (${models.length})`,
        columns: [
          { label: 'Name', header: true, value: (m) => h('button', { type: 'button', class: 'link-button', text: m.name, 'aria-label': `Show model ${m.name}`, onclick: () => { selected = m.name; showModel(); } }) },
          { label: 'Latest version', num: true, value: (m) => (m.latest_version ? String(m.latest_version) : '—') },
          { label: 'Aliases', value: (m) => aliasText(m.aliases) },
          { label: 'Tags', value: (m) => Object.entries(m.tags || {}).map(([k, v]) => (v ? `${k}=${v}` : k)).join(', ') },
          { label: 'Updated', value: (m) => fmtDate(m.updated_at) },
        ],
        rows: models,
        rowClass: (m) => (m.name === selected ? 'selected' : undefined),
        empty: 'no models registered yet.',
      }));
      if (selected && !models.some((m) => m.name === selected)) selected = null;
      if (!selected && models.length) selected = models[0].name;
      if (selected) showModel(false);
    } catch (e) {
      if (e.name !== 'AbortError') clear(listArea).append(problemMessage(e));
    }
  }

  async function showModel(focus = true) {
    for (const tr of listArea.querySelectorAll('tbody tr')) {
      tr.classList.toggle('selected', tr.querySelector('th')?.textContent === selected);
    }
    const name = selected;
    const headingId = newId('model');
    const card = h('section', { class: 'card', 'aria-labelledby': headingId });
    const heading = h('h2', { id: headingId, tabindex: '-1', text: `Model ${name}` });
    card.append(heading, h('p', { class: 'muted', text: 'Loading…' }));
    clear(detail).append(card);
    if (focus) heading.focus();
    try {
      const [model, versions, events] = await Promise.all([
        get(`/v1/registry/models/${seg(name)}`, undefined, { signal: ctx.signal }),
        listAll(`/v1/registry/models/${seg(name)}/versions`, {}, 500, { signal: ctx.signal }),
        listAll(`/v1/registry/models/${seg(name)}/events`, {}, 500, { signal: ctx.signal }),
      ]);
      if (!ctx.alive || selected !== name) return;
      clear(card).append(heading);
      const byId = new Map(versions.map((v) => [v.id, v]));
      card.append(props([
        ['Description', model.description || '—'],
        ['Aliases', aliasText(model.aliases) || 'none'],
        ['Promotion gates (production)', model.promotion_gates.length ? model.promotion_gates.map((g) => `${g.metric} ${g.op} ${g.value}`).join('; ') : 'none'],
        ['Created', fmtDate(model.created_at)],
      ]));
      card.append(h('h3', { text: 'Versions' }), table({
        caption: `Versions of ${name}`,
        hideCaption: true,
        columns: [
          { label: 'Version', header: true, value: (v) => `v${v.version}` },
          { label: 'Status', value: (v) => badge(v.status) },
          { label: 'Aliases', value: (v) => v.aliases.join(', ') },
          { label: 'Format', value: (v) => `${v.format}${v.quantization && v.quantization !== 'none' ? ` · ${v.quantization}` : ''}` },
          { label: 'Parameters', num: true, value: (v) => (v.parameter_count ? fmtInt(v.parameter_count) : '—') },
          { label: 'Size', num: true, value: (v) => fmtBytes(v.size_bytes) },
          { label: 'Lineage', value: (v) => lineage(v, byId) },
          { label: 'Metrics', value: (v) => metricsText({ ...v.metrics, ...v.evaluated_metrics }) },
          { label: 'SHA-256', value: (v) => (v.sha256 ? h('code', { class: 'mono', title: v.sha256, text: `${v.sha256.slice(0, 12)}…` }, h('span', { class: 'sr-only', text: ` full checksum ${v.sha256}` })) : '—') },
          { label: 'Created', value: (v) => fmtDate(v.created_at) },
        ],
        rows: versions.slice().reverse(),
        empty: 'no versions yet.',
      }));
      if (canWrite('registry')) card.append(promoteForm(name, versions, () => { loadList(); }));
      card.append(h('h3', { text: 'Audit trail' }), table({
        caption: `Events of ${name}, newest first`,
        hideCaption: true,
        columns: [
          { label: 'When', header: true, value: (e) => fmtDate(e.created_at) },
          { label: 'Event', value: (e) => e.kind.replaceAll('_', ' ') },
          { label: 'Alias', value: (e) => e.alias || '' },
          { label: 'From → to', value: (e) => (e.from_version || e.to_version ? `${e.from_version ? `v${e.from_version}` : '—'} → ${e.to_version ? `v${e.to_version}` : '—'}` : '') },
          { label: 'Forced', value: (e) => (e.forced ? badge('forced', 'warn') : '') },
          { label: 'By', value: (e) => (e.actor ? h('code', { text: e.actor }) : 'operator') },
        ],
        rows: events.slice().reverse(),
        empty: 'no events.',
      }));
    } catch (e) {
      if (e.name === 'AbortError') return;
      clear(card).append(heading, problemMessage(e));
    }
  }

  loadList();
}

function aliasText(aliases) {
  return Object.entries(aliases || {}).map(([a, v]) => `${a} → v${v}`).join(', ');
}

function metricsText(m) {
  const e = Object.entries(m || {});
  if (!e.length) return '—';
  return e.map(([k, v]) => `${k} ${fmtNum(v, 4)}`).join(', ');
}

function lineage(v, byId) {
  const parts = [];
  const src = v.source || {};
  if (src.type === 'fine_tuning_job') parts.push(`fine-tuned by ${src.job_id}`);
  else if (src.type) parts.push(src.type === 'upload' ? 'uploaded' : 'imported');
  if (v.base_model) parts.push(`base ${v.base_model}`);
  if (v.is_adapter) {
    const of = v.adapter_of && byId.get(v.adapter_of);
    parts.push(`adapter of ${of ? `v${of.version}` : (v.adapter_of || 'a base')}`);
  }
  return parts.join('; ') || '—';
}

function promoteForm(name, versions, onDone) {
  const ready = versions.filter((v) => v.status === 'ready').sort((a, b) => b.version - a.version);
  const status = notice();
  const alias = field('Alias', 'text', { name: 'alias', value: 'production', required: true, pattern: '[a-z][a-z0-9_\\-]{0,63}', autocomplete: 'off' },
    { hint: 'production is guarded by the promotion gates.' });
  const version = field('Version', 'select', { name: 'version' }, {
    options: ready.length ? ready.map((v) => ({ value: String(v.version), label: `v${v.version}${v.aliases.length ? ` (${v.aliases.join(', ')})` : ''}` })) : [{ value: '', label: 'No ready version' }],
  });
  let force = null;
  if (hasScope('admin')) {
    const id = newId('force');
    const input = h('input', { type: 'checkbox', id, name: 'force' });
    force = { input, el: h('div', { class: 'field' }, h('label', { class: 'check', for: id }, input, 'Force past failing gates'), h('span', { class: 'hint', text: 'Admins only; the move is audited as forced.' })) };
  }
  const submit = h('button', { type: 'submit', class: 'button', text: 'Move alias', disabled: !ready.length });
  const form = h('form', { class: 'form-grid', 'aria-label': `Promote a version of ${name}` }, alias.wrap, version.wrap, force && force.el,
    h('div', { class: 'form-actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.clearMsg();
    const body = { version: Number(version.input.value) };
    if (force && force.input.checked) body.force = true;
    await busy(submit, async () => {
      try {
        const m = await api('PUT', `/v1/registry/models/${seg(name)}/aliases/${seg(alias.input.value.trim())}`, { body });
        status.ok(`${alias.input.value.trim()} now points at v${m.aliases[alias.input.value.trim()] ?? body.version}.`);
        onDone();
      } catch (err) {
        clear(status).append(gateProblem(err));
      }
    }, 'Moving…');
  });
  return h('div', null, h('h3', { text: 'Promote' }), form, status);
}

/** A refused promotion: the problem and, for promotion_gate_failed, each failed gate. */
export function gateProblem(err) {
  const box = problemMessage(err);
  if (err.code === 'promotion_gate_failed' && Array.isArray(err.checks)) {
    box.append(table({
      caption: 'Failed promotion gates',
      columns: [
        { label: 'Metric', header: true, value: (c) => c.gate?.metric ?? '' },
        { label: 'Required', value: (c) => (c.gate ? `${c.gate.op} ${c.gate.value}` : '') },
        { label: 'Actual', num: true, value: (c) => (c.actual === null || c.actual === undefined ? 'not measured' : fmtNum(c.actual, 4)) },
        { label: 'Notes', value: (c) => (c.alerts && c.alerts.length ? `${c.alerts.length} open drift alert(s)` : '') },
      ],
      rows: err.checks,
    }));
  }
  return box;
}
