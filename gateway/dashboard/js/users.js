// Users (admin): roles, removal, invitations (the link is shown once), pending invitations.
import { api, get, seg, state, canWrite } from './api.js';
import { h, clear, table, badge, fmtDate, notice, busy, field, section, confirmDialog, copyButton, problemMessage, newId } from './ui.js';

const ROLES = [
  { value: 'admin', label: 'Admin: everything, including keys, users and the budget' },
  { value: 'member', label: 'Member: use and change everything except keys, users and the budget' },
  { value: 'read_only', label: 'Read-only: look, change nothing' },
];
const roleName = (r) => r.replace('_', '-');

export function render(root, ctx) {
  root.append(h('p', { class: 'view-intro', text: `The people who can sign in to ${state.session.tenant.name}, and invitations not yet accepted.` }));
  const writable = canWrite('admin');
  const usersStatus = notice();
  const usersArea = h('div');
  const invStatus = notice();
  const invArea = h('div');
  if (writable) root.append(inviteForm(() => loadInvitations()));
  root.append(section('Users', usersStatus, usersArea), section('Pending invitations', invStatus, invArea));

  async function loadUsers() {
    try {
      const list = await get('/v1/users', undefined, { signal: ctx.signal });
      if (!ctx.alive) return;
      const me = state.session.user.id;
      clear(usersArea).append(table({
        caption: `Users (${list.data.length})`,
        columns: [
          { label: 'Email', header: true, value: (u) => [u.email, u.id === me ? ' ' : '', u.id === me ? badge('you', 'info') : ''] },
          {
            label: 'Role',
            value: (u) => {
              if (!writable || u.id === me) return roleName(u.role);
              const id = newId('role');
              const sel = h('select', { id, 'aria-label': `Role of ${u.email}` }, ROLES.map((r) => h('option', { value: r.value, text: roleName(r.value), selected: r.value === u.role })));
              const save = h('button', {
                type: 'button', class: 'button secondary small', text: 'Change role', 'aria-label': `Change role of ${u.email}`,
                onclick: async (e) => {
                  if (sel.value === u.role) { usersStatus.info(`${u.email} is already ${roleName(u.role)}.`); return; }
                  await busy(e.target, async () => {
                    try {
                      const nu = await api('PATCH', `/v1/users/${seg(u.id)}`, { body: { role: sel.value } });
                      usersStatus.ok(`${nu.email} is now ${roleName(nu.role)}.`);
                      loadUsers();
                    } catch (err) { usersStatus.error(err); sel.value = u.role; }
                  });
                },
              });
              return h('div', { class: 'row' }, sel, save);
            },
          },
          { label: 'Joined', value: (u) => fmtDate(u.created_at) },
          { label: 'Last sign-in', value: (u) => (u.last_login_at ? fmtDate(u.last_login_at) : 'never') },
          {
            label: 'Actions',
            value: (u) => (writable && u.id !== me
              ? h('button', {
                type: 'button', class: 'button danger small', text: 'Remove', 'aria-label': `Remove ${u.email}`,
                onclick: async (e) => {
                  if (!await confirmDialog(`Remove ${u.email}? They are signed out and can no longer sign in to ${state.session.tenant.name}.`, { confirm: 'Remove user', title: 'Remove this user?' })) return;
                  await busy(e.target, async () => {
                    try {
                      await api('DELETE', `/v1/users/${seg(u.id)}`);
                      usersStatus.ok(`${u.email} removed.`);
                      loadUsers();
                    } catch (err) { usersStatus.error(err); }
                  });
                },
              })
              : ''),
          },
        ],
        rows: list.data,
        empty: 'no users.',
      }));
    } catch (e) { if (e.name !== 'AbortError') clear(usersArea).append(problemMessage(e)); }
  }

  async function loadInvitations() {
    try {
      const list = await get('/v1/invitations', undefined, { signal: ctx.signal });
      if (!ctx.alive) return;
      clear(invArea).append(table({
        caption: `Pending invitations (${list.data.length})`,
        columns: [
          { label: 'Email', header: true, value: (i) => i.email },
          { label: 'Role', value: (i) => roleName(i.role) },
          { label: 'Sent', value: (i) => fmtDate(i.created_at) },
          { label: 'Expires', value: (i) => fmtDate(i.expires_at) },
          {
            label: 'Actions',
            value: (i) => (writable
              ? h('button', {
                type: 'button', class: 'button danger small', text: 'Revoke', 'aria-label': `Revoke the invitation of ${i.email}`,
                onclick: async (e) => {
                  if (!await confirmDialog(`Revoke the invitation of ${i.email}? Its link stops working.`, { confirm: 'Revoke invitation', title: 'Revoke this invitation?' })) return;
                  await busy(e.target, async () => {
                    try {
                      await api('DELETE', `/v1/invitations/${seg(i.id)}`);
                      invStatus.ok(`Invitation of ${i.email} revoked.`);
                      loadInvitations();
                    } catch (err) { invStatus.error(err); }
                  });
                },
              })
              : ''),
          },
        ],
        rows: list.data,
        empty: 'none.',
      }));
    } catch (e) { if (e.name !== 'AbortError') clear(invArea).append(problemMessage(e)); }
  }

  loadUsers();
  loadInvitations();
}

function inviteForm(onInvited) {
  const status = notice();
  const linkArea = h('div');
  const email = field('Email', 'email', { name: 'email', required: true, maxlength: '320', autocomplete: 'off' });
  const role = field('Role', 'select', { name: 'role' }, {
    options: ROLES.map((r) => ({ value: r.value, label: roleName(r.value), selected: r.value === 'member' })),
    hint: ROLES.map((r) => r.label).join('. ') + '.',
  });
  const submit = h('button', { type: 'submit', class: 'button', text: 'Create invitation' });
  const form = h('form', { class: 'form-grid', 'aria-label': 'Invite a user' }, email.wrap, role.wrap, h('div', { class: 'form-actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.clearMsg();
    clear(linkArea);
    if (!email.input.value.trim()) { status.error({ detail: 'Enter an email address.' }); email.input.focus(); return; }
    await busy(submit, async () => {
      try {
        const inv = await api('POST', '/v1/invitations', { body: { email: email.input.value.trim(), role: role.input.value } });
        const link = `${location.origin}${inv.accept_path}`;
        const copyStatus = h('span', { class: 'hint', role: 'status', 'aria-live': 'polite' });
        const titleId = newId('inv');
        // The link lives only in this element: leaving the page drops it.
        linkArea.append(h('div', { class: 'secret-box', role: 'group', 'aria-labelledby': titleId },
          h('h3', { id: titleId, text: `Invitation link for ${inv.email}` }),
          h('p', null, h('strong', { text: 'This link will not be shown again.' }), ` Send it to ${inv.email} yourself; it works once, until ${fmtDate(inv.expires_at)}.`),
          h('code', { class: 'secret', 'data-invite-link': '', text: link }),
          h('div', { class: 'row' }, copyButton(link, 'Copy link', copyStatus), copyStatus)));
        status.ok(`Invitation for ${inv.email} created.`);
        form.reset();
        onInvited();
      } catch (err) { status.error(err); }
    }, 'Creating…');
  });
  return section('Invite a user', form, status, linkArea);
}
