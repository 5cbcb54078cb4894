// Fine-tuning: upload a training file, create a job, follow its events and loss curve, cancel.
import { api, get, listAll, seg, canWrite, hasScope } from './api.js';
import { h, clear, table, badge, fmtDate, fmtInt, fmtBytes, fmtNum, notice, busy, field, section, confirmDialog, chart, problemMessage, newId, props } from './ui.js';

const ACTIVE = new Set(['validating_files', 'queued', 'running', 'paused']);
let selectedJob = null; // in memory only

export function render(root, ctx) {
  root.append(h('p', { class: 'view-intro', text: 'Fine-tune a registry model on your own chat examples. Upload a JSONL file, start a job, and follow its loss as it trains.' }));
  const writable = canWrite('training');
  const listStatus = notice();
  const listArea = h('div');
  const detail = h('div');
  let files = [];
  const fileSelects = [];

  if (writable) {
    root.append(h('div', { class: 'grid' }, uploadForm(), jobForm()));
  }
  root.append(section('Jobs', listStatus, listArea), detail);

  function uploadForm() {
    const status = notice();
    const file = field('Training file (JSONL)', 'file', { name: 'file', accept: '.jsonl,application/jsonl,application/x-ndjson,text/plain', required: true },
      { hint: 'One {"messages": [...]} example per line. Checked line by line while it uploads.' });
    const submit = h('button', { type: 'submit', class: 'button', text: 'Upload' });
    const form = h('form', { 'aria-label': 'Upload a training file' }, file.wrap, h('div', { class: 'form-actions' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      status.clearMsg();
      const f = file.input.files[0];
      if (!f) { status.error({ detail: 'Choose a file.' }); file.input.focus(); return; }
      const fd = new FormData();
      fd.append('purpose', 'fine-tune');
      fd.append('file', f, f.name);
      await busy(submit, async () => {
        try {
          const up = await api('POST', '/v1/files', { form: fd });
          status.ok(`${up.filename} uploaded: ${fmtInt(up.stats.examples)} examples, about ${fmtInt(up.stats.estimated_tokens)} tokens.`);
          form.reset();
          await loadFiles();
        } catch (err) { status.error(err); }
      }, 'Uploading…');
    });
    return section('Upload a training file', form, status);
  }

  function jobForm() {
    const status = notice();
    const listId = newId('bases');
    const base = field('Base model', 'text', { name: 'model', required: true, list: listId, autocomplete: 'off' }, { hint: 'A registry version: name@alias, name@3 or mv_… (GGUF).' });
    const datalist = h('datalist', { id: listId });
    const trainFile = field('Training file', 'select', { name: 'training_file', required: true });
    const validFile = field('Validation file', 'select', { name: 'validation_file' }, { hint: 'Optional.' });
    fileSelects.push({ el: trainFile.input, optional: false }, { el: validFile.input, optional: true });
    const epochs = field('Epochs', 'text', { name: 'n_epochs', value: 'auto', autocomplete: 'off', inputmode: 'numeric' }, { hint: '1 to 50, or auto.' });
    const suffix = field('Suffix', 'text', { name: 'suffix', pattern: '[A-Za-z0-9._\\-]{1,40}', autocomplete: 'off' }, { hint: 'Optional; added to the output model\'s name.' });
    const submit = h('button', { type: 'submit', class: 'button', text: 'Start job' });
    const form = h('form', { class: 'form-grid', 'aria-label': 'Create a fine-tuning job' }, base.wrap, datalist, trainFile.wrap, validFile.wrap, epochs.wrap, suffix.wrap,
      h('div', { class: 'form-actions' }, submit));
    if (hasScope('registry')) {
      listAll('/v1/registry/models', {}, 200, { signal: ctx.signal }).then((models) => {
        for (const m of models) {
          for (const a of Object.keys(m.aliases || {})) datalist.append(h('option', { value: `${m.name}@${a}` }));
          if (m.latest_version) datalist.append(h('option', { value: `${m.name}@${m.latest_version}` }));
        }
      }).catch(() => {});
    }
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      status.clearMsg();
      const body = { model: base.input.value.trim(), training_file: trainFile.input.value };
      if (validFile.input.value) body.validation_file = validFile.input.value;
      const ep = epochs.input.value.trim();
      if (ep && ep !== 'auto') body.hyperparameters = { n_epochs: Number(ep) };
      if (suffix.input.value.trim()) body.suffix = suffix.input.value.trim();
      await busy(submit, async () => {
        try {
          const job = await api('POST', '/v1/fine_tuning/jobs', { body });
          status.ok(`Job queued (${job.status}).`);
          selectedJob = job.id;
          await loadJobs();
          showJob();
        } catch (err) { status.error(err); }
      }, 'Starting…');
    });
    return section('Start a fine-tuning job', form, status);
  }

  async function loadFiles() {
    try {
      files = await listAll('/v1/files', { purpose: 'fine-tune' }, 200, { signal: ctx.signal });
    } catch (e) { if (e.name !== 'AbortError') listStatus.error(e); return; }
    for (const { el, optional } of fileSelects) {
      const v = el.value;
      clear(el);
      if (optional || !files.length) el.append(h('option', { value: '', text: files.length ? 'None' : 'Upload a file first' }));
      for (const f of files) el.append(h('option', { value: f.id, text: `${f.filename} (${fmtInt(f.stats.examples)} examples, ${fmtBytes(f.bytes)})` }));
      if (v && files.some((f) => f.id === v)) el.value = v;
    }
  }

  let jobs = [];
  async function loadJobs() {
    try {
      jobs = await listAll('/v1/fine_tuning/jobs', {}, 200, { signal: ctx.signal });
      if (!ctx.alive) return;
      clear(listArea).append(table({
        caption: `Fine-tuning jobs (${jobs.length}), newest first`,
        columns: [
          { label: 'Job', header: true, value: (j) => h('button', { type: 'button', class: 'link-button', text: `${j.kind.replace('_', '-')} of ${j.model}`, onclick: () => { selectedJob = j.id; showJob(); } }) },
          { label: 'Status', value: (j) => [badge(j.status), j.wait_reason ? h('div', { class: 'hint', text: `waiting for ${j.wait_reason}` }) : null] },
          { label: 'Output model', value: (j) => j.fine_tuned_model || '—' },
          { label: 'Trained tokens', num: true, value: (j) => (j.trained_tokens ? fmtInt(j.trained_tokens) : '—') },
          { label: 'Created', value: (j) => fmtDate(j.created_at) },
          { label: 'Finished', value: (j) => fmtDate(j.finished_at) },
        ],
        rows: jobs,
        rowClass: (j) => (j.id === selectedJob ? 'selected' : undefined),
        empty: 'no jobs yet.',
      }));
    } catch (e) { if (e.name !== 'AbortError') listStatus.error(e); }
  }

  let jobChart = null;
  let pollTimer = null;
  async function showJob(focus = true) {
    const id = selectedJob;
    if (!id) return;
    const headId = newId('job');
    const heading = h('h2', { id: headId, tabindex: '-1', text: 'Job' });
    const card = h('section', { class: 'card', 'aria-labelledby': headId }, heading, h('p', { class: 'muted', text: 'Loading…' }));
    clear(detail).append(card);
    if (focus) heading.focus();
    await drawJob(card, heading, id);
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = ctx.every(5000, async () => {
      const j = jobs.find((x) => x.id === selectedJob);
      if (!j || !ACTIVE.has(j.status)) return;
      await loadJobs();
      await drawJob(card, heading, selectedJob);
    });
  }

  async function drawJob(card, heading, id) {
    try {
      const [job, events, ckpts] = await Promise.all([
        get(`/v1/fine_tuning/jobs/${seg(id)}`, undefined, { signal: ctx.signal }),
        listAll(`/v1/fine_tuning/jobs/${seg(id)}/events`, {}, 1000, { signal: ctx.signal }),
        listAll(`/v1/fine_tuning/jobs/${seg(id)}/checkpoints`, {}, 200, { signal: ctx.signal }),
      ]);
      if (!ctx.alive || selectedJob !== id) return;
      heading.textContent = `Job ${job.id}`;
      if (jobChart) { jobChart.destroy(); jobChart = null; }
      const status = notice();
      clear(card).append(heading);
      card.append(props([
        ['Status', badge(job.status)],
        ['Kind', job.kind],
        ['Base model', job.model],
        ['Output model', job.fine_tuned_model || '—'],
        ['Training file', h('code', { text: job.training_file })],
        ['Hyperparameters', `${job.hyperparameters.n_epochs} epochs, batch ${job.hyperparameters.batch_size}, learning-rate × ${fmtNum(job.hyperparameters.learning_rate_multiplier, 4)}`],
        ['Method', job.peft ? job.peft.type : '—'],
        ['Attempt', `${job.attempt} of ${job.max_attempts}`],
        job.error ? ['Error', `${job.error.code}: ${job.error.message}`] : null,
        ['Created', fmtDate(job.created_at)],
        ['Finished', fmtDate(job.finished_at)],
      ]));
      if (canWrite('training') && ACTIVE.has(job.status)) {
        card.append(h('div', { class: 'form-actions' }, h('button', {
          type: 'button', class: 'button danger', text: 'Cancel job',
          onclick: async (e) => {
            if (!await confirmDialog('Cancel this job? A running attempt stops within a heartbeat; it cannot be resumed.', { confirm: 'Cancel job', title: 'Cancel this job?' })) return;
            await busy(e.target, async () => {
              try {
                const j = await api('POST', `/v1/fine_tuning/jobs/${seg(id)}/cancel`);
                status.ok(`Job ${j.status}.`);
                await loadJobs();
                await drawJob(card, heading, id);
              } catch (err) { status.error(err); }
            });
          },
        })));
      }
      card.append(status);
      // Loss curve: metrics events (oldest first) and checkpoints' metrics.
      const points = new Map();
      const add = (step, k, v) => {
        if (typeof v !== 'number' || typeof step !== 'number') return;
        const p = points.get(step) || {};
        p[k] = v;
        points.set(step, p);
      };
      for (const ev of events) {
        if (ev.type === 'metrics' && ev.data) {
          add(ev.data.step, 'train_loss', ev.data.train_loss ?? ev.data.loss);
          add(ev.data.step, 'valid_loss', ev.data.valid_loss);
        }
      }
      for (const c of ckpts) {
        add(c.step_number, 'train_loss', points.get(c.step_number)?.train_loss ?? c.metrics.train_loss);
        add(c.step_number, 'valid_loss', points.get(c.step_number)?.valid_loss ?? c.metrics.valid_loss);
      }
      const steps = [...points.keys()].sort((a, b) => a - b);
      const datasets = [{ label: 'Training loss', data: steps.map((s) => points.get(s).train_loss ?? null) }];
      if (steps.some((s) => points.get(s).valid_loss !== undefined)) datasets.push({ label: 'Validation loss', data: steps.map((s) => points.get(s).valid_loss ?? null) });
      const c = chart({ title: 'Loss by step', type: 'line', labels: steps.map(String), datasets, format: (v) => fmtNum(v, 4), xLabel: 'Step', cumulative: false }, ctx);
      jobChart = c.chart;
      card.append(h('h3', { text: 'Loss curve' }), c.el);
      card.append(h('h3', { text: 'Checkpoints' }), table({
        caption: 'Checkpoints', hideCaption: true,
        columns: [
          { label: 'Step', header: true, num: true, value: (k) => fmtInt(k.step_number) },
          { label: 'Registry version', value: (k) => k.fine_tuned_model_checkpoint },
          { label: 'Metrics', value: (k) => Object.entries(k.metrics).filter(([m]) => m !== 'step').map(([m, v]) => `${m} ${fmtNum(v, 4)}`).join(', ') },
          { label: 'Created', value: (k) => fmtDate(k.created_at) },
        ],
        rows: ckpts,
        empty: 'none yet.',
      }));
      card.append(h('h3', { text: 'Events' }), events.length > 50 ? h('p', { class: 'hint', text: `The latest 50 of ${events.length} events.` }) : null, table({
        caption: 'Job events, newest first', hideCaption: true,
        columns: [
          { label: 'When', header: true, value: (ev) => fmtDate(ev.created_at) },
          { label: 'Level', value: (ev) => badge(ev.level, ev.level === 'error' ? 'bad' : ev.level === 'warn' ? 'warn' : '') },
          { label: 'Message', value: (ev) => ev.message },
        ],
        rows: events.slice(0, 50),
        empty: 'no events yet.',
      }));
    } catch (e) {
      if (e.name === 'AbortError') return;
      clear(card).append(heading, problemMessage(e));
    }
  }

  loadFiles();
  loadJobs().then(() => { if (selectedJob && jobs.some((j) => j.id === selectedJob)) showJob(false); });
}
