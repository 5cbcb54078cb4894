// Sign in, and accepting an invitation (choose a password; signs the new user in).
import { api } from './api.js';
import { h, field, notice, busy, problemMessage } from './ui.js';

function flashMessage(ctx) {
  const f = ctx.takeFlash();
  if (!f) return null;
  if (f.problem) return problemMessage(f.problem);
  return h('div', { class: `msg ${f.kind}`, role: 'status', text: f.text });
}

export function renderSignIn(root, ctx) {
  const email = field('Email', 'email', { name: 'email', autocomplete: 'username', required: true, maxlength: '320' });
  const password = field('Password', 'password', { name: 'password', autocomplete: 'current-password', required: true, maxlength: '1024' });
  const status = notice();
  const submit = h('button', { type: 'submit', class: 'button', text: 'Sign in' });
  const form = h('form', { class: 'card auth-card', novalidate: false, 'aria-label': 'Sign in' },
    flashMessage(ctx),
    h('p', { class: 'muted', text: 'Sign in with the email and password of your LLMOps account.' }),
    email.wrap, password.wrap,
    h('div', { class: 'form-actions' }, submit),
    status);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.clearMsg();
    await busy(submit, async () => {
      try {
        const session = await api('POST', '/v1/auth/sessions', {
          body: { email: email.input.value.trim(), password: password.input.value }, handle401: true,
        });
        password.input.value = '';
        ctx.signedIn(session);
      } catch (err) {
        password.input.value = '';
        if (err.status === 401) err.detail = err.detail || 'Wrong email or password.';
        status.error(err);
        password.input.focus();
      }
    }, 'Signing in…');
  });
  root.append(form);
  if (!document.activeElement || document.activeElement === document.body) email.input.focus();
}

export function renderAccept(root, ctx) {
  const token = ctx.invitationToken();
  if (!token) {
    root.append(h('div', { class: 'card auth-card' },
      h('p', null, 'This page needs the invitation link your admin gave you. The link works once: open it again exactly as you received it, or ask for a new invitation.'),
      h('p', null, h('a', { href: '#/sign-in', text: 'Sign in' }), ' if you already have an account.')));
    return;
  }
  const pw = field('Choose a password', 'password', { name: 'new-password', autocomplete: 'new-password', required: true, minlength: '12', maxlength: '1024' },
    { hint: '12 to 1024 characters.' });
  const pw2 = field('Repeat the password', 'password', { name: 'repeat-password', autocomplete: 'new-password', required: true, minlength: '12', maxlength: '1024' });
  const status = notice();
  const submit = h('button', { type: 'submit', class: 'button', text: 'Accept and sign in' });
  const form = h('form', { class: 'card auth-card', 'aria-label': 'Accept invitation' },
    h('p', { class: 'muted', text: 'You were invited to an LLMOps tenant. Choose a password to create your account.' }),
    pw.wrap, pw2.wrap,
    h('div', { class: 'form-actions' }, submit),
    status);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.clearMsg();
    const a = pw.input.value;
    if ([...a].length < 12) { status.error({ detail: 'The password needs at least 12 characters.' }); pw.input.focus(); return; }
    if (a !== pw2.input.value) { status.error({ detail: 'The two passwords differ.' }); pw2.input.focus(); return; }
    await busy(submit, async () => {
      try {
        const session = await api('POST', '/v1/auth/invitations/accept', { body: { token, password: a }, handle401: true });
        ctx.signedIn(session);
      } catch (err) {
        status.error(err);
      }
    }, 'Creating your account…');
  });
  root.append(form);
}
