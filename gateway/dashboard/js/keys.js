// API keys (admin): create (secret shown once), list with last use, revoke.
import { api, get, listAll, seg, state, canWrite } from './api.js';
import { h, clear, field, notice, busy, table, badge, fmtDate, localToIso, confirmDialog, copyButton, section, newId } from './ui.js';

// The Scope enum of the OpenAPI document.
const SCOPES = ['inference', 'rag', 'training', 'registry', 'billing:read', 'monitoring', 'admin'];

export function render(root, ctx) {
  root.append(h('p', { class: 'view-intro', text: 'Keys let programs call the API as this tenant. A key\'s secret is shown once, when it is created.' }));
  const writable = canWrite('admin');
  const listBox = h('div');
  const listStatus = notice();

  if (writable) root.append(createForm(ctx, () => refresh()));
  root.append(section('Keys', listStatus, listBox));

  async function refresh() {
    try {
      const keys = await listAll('/v1/api_keys', {}, 500, { signal: ctx.signal });
      clear(listBox).append(keyTable(keys));
    } catch (e) {
      if (e.name !== 'AbortError') listStatus.error(e);
    }
  }

  function keyTable(keys) {
    const now = Date.now();
    const state = (k) => {
      if (k.revoked_at) return badge('revoked');
      if (k.expires_at && new Date(k.expires_at).getTime() <= now) return badge('expired');
      return badge('active', 'ok');
    };
    return table({
      caption: `API keys (${keys.length})`,
      columns: [
        { label: 'Name', value: (k) => k.name, header: true },
        { label: 'Key', value: (k) => h('code', { text: k.redacted_value }) },
        { label: 'Status', value: state },
        { label: 'Scopes', value: (k) => k.scopes.join(', ') },
        { label: 'Per-minute limit', num: true, value: (k) => (k.requests_per_minute ? String(k.requests_per_minute) : 'plan') },
        { label: 'Last used', value: (k) => (k.last_used_at ? fmtDate(k.last_used_at) : 'never') },
        { label: 'Created', value: (k) => fmtDate(k.created_at) },
        { label: 'Expires', value: (k) => (k.expires_at ? fmtDate(k.expires_at) : 'never') },
        {
          label: 'Actions',
          value: (k) => (writable && !k.revoked_at
            ? h('button', {
              type: 'button', class: 'button danger small', text: 'Revoke', 'aria-label': `Revoke key ${k.name}`,
              onclick: async (e) => {
                const ok = await confirmDialog(`Revoke the key “${k.name}” (${k.redacted_value})? Programs using it stop working within seconds. This cannot be undone.`, { confirm: 'Revoke key', title: 'Revoke this key?' });
                if (!ok) return;
                await busy(e.target, async () => {
                  try {
                    await api('DELETE', `/v1/api_keys/${seg(k.id)}`);
                    listStatus.ok(`Key “${k.name}” revoked.`);
                    await refresh();
                  } catch (err) { listStatus.error(err); }
                });
              },
            })
            : ''),
        },
      ],
      rows: keys.slice().reverse(),
      empty: 'no keys yet.',
    });
  }

  refresh();
}

function createForm(ctx, onCreated) {
  const held = new Set(state.session.scopes);
  const name = field('Name', 'text', { name: 'name', required: true, maxlength: '200', autocomplete: 'off' }, { hint: 'What the key is for, e.g. “billing-service prod”.' });
  const expires = field('Expires', 'datetime-local', { name: 'expires_at' }, { hint: 'Optional; leave empty for no expiry. Your local time.' });
  const rpm = field('Requests per minute', 'number', { name: 'requests_per_minute', min: '1', max: '10000000', step: '1', inputmode: 'numeric' }, { hint: 'Optional cap below the plan\'s limit.' });
  const legendId = newId('scopes');
  const boxes = SCOPES.map((s) => {
    const id = newId('scope');
    const input = h('input', { type: 'checkbox', id, name: 'scopes', value: s, checked: s === 'inference' && held.has(s), disabled: !held.has(s) });
    return { s, input, el: h('label', { class: 'check', for: id }, input, s) };
  });
  const scopes = h('fieldset', { class: 'field wide', 'aria-describedby': `${legendId}-hint` },
    h('legend', { text: 'Scopes' }),
    h('div', { class: 'checks' }, boxes.map((b) => b.el)),
    h('span', { class: 'hint', id: `${legendId}-hint`, text: 'At least one. You can only grant scopes you hold yourself.' }));
  const status = notice();
  const secretArea = h('div');
  const submit = h('button', { type: 'submit', class: 'button', text: 'Create key' });
  const form = h('form', { class: 'form-grid', 'aria-label': 'Create an API key' }, name.wrap, expires.wrap, rpm.wrap, scopes,
    h('div', { class: 'form-actions' }, submit));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.clearMsg();
    clear(secretArea);
    const chosen = boxes.filter((b) => b.input.checked).map((b) => b.s);
    if (!name.input.value.trim()) { status.error({ detail: 'Give the key a name.' }); name.input.focus(); return; }
    if (!chosen.length) { status.error({ detail: 'Choose at least one scope.' }); boxes[0].input.focus(); return; }
    const body = { name: name.input.value.trim(), scopes: chosen };
    const exp = localToIso(expires.input.value);
    if (exp) body.expires_at = exp;
    if (rpm.input.value) body.requests_per_minute = Number(rpm.input.value);
    await busy(submit, async () => {
      try {
        const key = await api('POST', '/v1/api_keys', { body });
        showSecret(secretArea, key);
        status.ok(`Key “${key.name}” created. Copy its secret now.`);
        form.reset();
        boxes.forEach((b) => { b.input.checked = b.s === 'inference' && held.has(b.s); });
        onCreated();
      } catch (err) { status.error(err); }
    }, 'Creating…');
  });
  return section('Create a key', form, status, secretArea);
}

/** The secret, once. It lives only in this element: leaving the page drops it. */
function showSecret(area, key) {
  const copyStatus = h('span', { class: 'hint', role: 'status', 'aria-live': 'polite' });
  const secretId = newId('secret');
  area.append(h('div', { class: 'secret-box', role: 'group', 'aria-labelledby': `${secretId}-title` },
    h('h3', { id: `${secretId}-title`, text: `Secret of “${key.name}”` }),
    h('p', null, h('strong', { text: 'This secret will not be shown again.' }), ' Store it in your secret manager now; if you lose it, revoke the key and create another.'),
    h('code', { class: 'secret', id: secretId, 'data-secret': '', text: key.secret }),
    h('div', { class: 'row' }, copyButton(() => key.secret, 'Copy secret', copyStatus), copyStatus)));
}
