// Billing: the upcoming invoice as it stands, past invoices (printable rendering), budget.
import { api, get, listAll, seg, canWrite } from './api.js';
import { h, clear, table, badge, fmtDate, fmtDay, fmtInt, fmtMoney, fmtPct, toMajor, notice, busy, field, section, props, problemMessage, newId } from './ui.js';

export function render(root, ctx) {
  root.append(h('p', { class: 'view-intro', text: 'What this period costs so far, the invoices of closed periods, and the monthly budget that stops spending when reached.' }));
  const upcoming = h('div');
  const budgetArea = h('div');
  const pastArea = h('div');
  root.append(
    h('section', { class: 'card', 'aria-labelledby': 'upcoming-title', id: 'upcoming-invoice' }, h('h2', { id: 'upcoming-title', text: 'Upcoming invoice' }), upcoming),
    h('section', { class: 'card', 'aria-labelledby': 'budget-title' }, h('h2', { id: 'budget-title', text: 'Budget' }), budgetArea),
    h('section', { class: 'card', 'aria-labelledby': 'past-title' }, h('h2', { id: 'past-title', text: 'Past invoices' }), pastArea),
  );

  // ----- upcoming
  (async () => {
    try {
      const inv = await get('/v1/invoices/upcoming', undefined, { signal: ctx.signal });
      clear(upcoming).append(
        props([
          ['Period', `${fmtDay(inv.period_start)} – ${fmtDay(inv.period_end)}`],
          ['Usage counted through', fmtDate(inv.usage_through)],
          ['Plan', inv.plan_id],
          ['Status', badge(inv.status)],
        ]),
        linesTable(inv, 'Upcoming invoice lines'),
      );
    } catch (e) {
      if (e.name === 'AbortError') return;
      clear(upcoming).append(e.status === 404
        ? h('p', { class: 'muted', text: 'The current period is already invoiced; the next one starts soon.' })
        : problemMessage(e));
    }
  })();

  // ----- budget
  const budgetInfo = h('div');
  let formShown = false;
  async function loadBudget() {
    let b = null;
    try {
      b = await get('/v1/billing/budget', undefined, { signal: ctx.signal });
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (e.status !== 404) { clear(budgetArea).append(problemMessage(e)); return; }
    }
    if (!budgetInfo.isConnected) clear(budgetArea).append(budgetInfo);
    clear(budgetInfo);
    if (b) {
      const used = b.limit_minor > 0 ? b.spend_minor / b.limit_minor : null;
      const meterId = newId('meter');
      budgetInfo.append(props([
        ['Monthly limit', fmtMoney(b.limit_minor, b.currency)],
        ['Spent this month', `${fmtMoney(b.spend_minor, b.currency)}${used !== null ? ` (${fmtPct(used, 0)})` : ''}`],
        ['Soft threshold', b.soft_percent ? `notify at ${b.soft_percent} % (${fmtMoney(b.limit_minor * b.soft_percent / 100, b.currency)})` : 'none'],
        ['Notification webhook', b.webhook_url || 'none'],
      ]));
      if (used !== null) {
        budgetInfo.append(h('div', { class: 'field' },
          h('label', { for: meterId, text: 'Budget used' }),
          h('meter', { id: meterId, min: '0', max: '1', low: String((b.soft_percent || 80) / 100), high: '0.95', optimum: '0', value: String(Math.min(1, used)), text: fmtPct(used, 0) })));
      }
    } else {
      budgetInfo.append(h('p', { class: 'muted', text: 'No budget is set: spending is not capped.' }));
    }
    if (canWrite('admin') && !formShown) { formShown = true; budgetArea.append(budgetForm(b, loadBudget)); }
  }
  loadBudget();

  // ----- past invoices
  (async () => {
    try {
      const invoices = await listAll('/v1/invoices', {}, 200, { signal: ctx.signal });
      clear(pastArea).append(table({
        caption: `Invoices (${invoices.length})`,
        columns: [
          { label: 'Period', header: true, value: (i) => `${fmtDay(i.period_start)} – ${fmtDay(i.period_end)}` },
          { label: 'Status', value: (i) => badge(i.status) },
          { label: 'Total', num: true, value: (i) => fmtMoney(i.total_minor, i.currency) },
          { label: 'Finalized', value: (i) => fmtDate(i.finalized_at) },
          { label: 'Lines', value: (i) => h('details', null, h('summary', { text: `${i.lines.length} line(s)` }), linesTable(i, `Lines of the invoice for ${fmtDay(i.period_start)} – ${fmtDay(i.period_end)}`)) },
          {
            label: 'Printable',
            value: (i) => h('button', {
              type: 'button', class: 'button secondary small', text: 'Open printable invoice',
              'aria-label': `Open printable invoice for ${fmtDay(i.period_start)} – ${fmtDay(i.period_end)} (new tab)`,
              'data-invoice': i.id,
              // The id goes into the API's URL, not the dashboard's; the cookie authenticates the GET.
              onclick: () => window.open(`/v1/invoices/${seg(i.id)}/html`, '_blank', 'noopener'),
            }),
          },
        ],
        rows: invoices,
        empty: 'no closed periods yet.',
      }));
    } catch (e) {
      if (e.name !== 'AbortError') clear(pastArea).append(problemMessage(e));
    }
  })();
}

function linesTable(inv, caption) {
  const rows = [...inv.lines, { total: true }];
  return table({
    caption,
    hideCaption: true,
    columns: [
      { label: 'Description', header: true, value: (l) => (l.total ? 'Total' : [l.description, l.adjustment ? ' ' : '', l.adjustment ? badge('late usage', 'warn') : '']) },
      { label: 'Quantity', num: true, value: (l) => (l.total ? h('span') : fmtInt(l.quantity)) },
      { label: 'Billable', num: true, value: (l) => (l.total ? h('span') : fmtInt(l.billable)) },
      { label: 'Amount', num: true, value: (l) => (l.total ? h('strong', { text: fmtMoney(inv.total_minor, inv.currency) }) : fmtMoney(l.amount_minor, inv.currency)) },
    ],
    rows,
    rowClass: (l) => (l.total ? 'invoice-total' : undefined),
  });
}

function budgetForm(b, onSaved) {
  const cur = (b && b.currency) || 'USD';
  const status = notice();
  const limit = field(`Monthly limit (${cur})`, 'number', { name: 'limit', min: '0', step: '0.01', required: true, inputmode: 'decimal', value: b ? String(toMajor(b.limit_minor, cur)) : '' });
  const soft = field('Soft threshold (%)', 'number', { name: 'soft_percent', min: '1', max: '100', step: '1', inputmode: 'numeric', value: b && b.soft_percent ? String(b.soft_percent) : '' }, { hint: 'Optional: notify once per period at this share.' });
  const hook = field('Webhook URL', 'url', { name: 'webhook_url', maxlength: '2048', value: b && b.webhook_url ? b.webhook_url : '', placeholder: 'https://…' }, { hint: 'Optional: where the notification goes.' });
  const submit = h('button', { type: 'submit', class: 'button', text: b ? 'Update budget' : 'Set budget' });
  const form = h('form', { class: 'form-grid', 'aria-label': 'Set the budget' }, limit.wrap, soft.wrap, hook.wrap, h('div', { class: 'form-actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    status.clearMsg();
    const major = Number(limit.input.value);
    if (!Number.isFinite(major) || major < 0) { status.error({ detail: 'The limit must be a number, 0 or more.' }); limit.input.focus(); return; }
    const body = { limit_minor: Math.round(major / toMajor(1, cur)) };
    if (soft.input.value) body.soft_percent = Number(soft.input.value);
    if (hook.input.value.trim()) body.webhook_url = hook.input.value.trim();
    await busy(submit, async () => {
      try {
        const nb = await api('PUT', '/v1/billing/budget', { body });
        status.ok(`Budget saved: ${fmtMoney(nb.limit_minor, nb.currency)} a month.`);
        onSaved();
      } catch (err) { status.error(err); }
    }, 'Saving…');
  });
  return h('div', null, h('h3', { text: b ? 'Change the budget' : 'Set a budget' }), form, status);
}
