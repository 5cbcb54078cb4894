// Knowledge bases: create, upload documents, watch ingestion, ask and see the cited chunks.
import { api, get, listAll, seg, canWrite, hasScope } from './api.js';
import { h, clear, table, badge, fmtDate, fmtInt, fmtBytes, fmtNum, notice, busy, field, section, newId, problemMessage, props } from './ui.js';

let selectedKb = null; // in memory only
const INGESTING = new Set(['queued', 'processing', 'deleting']);

export function render(root, ctx) {
  root.append(h('p', { class: 'view-intro', text: 'Documents your models answer from. Upload text, Markdown, HTML or PDF; ask a question and see which chunks the answer cites.' }));
  const writable = canWrite('rag');
  const listStatus = notice();
  const listArea = h('div');
  const detail = h('div');
  let modelIds = [];
  const modelsReady = hasScope('inference') || hasScope('rag')
    ? get('/v1/models', undefined, { signal: ctx.signal }).then((l) => { modelIds = (l.data || []).map((m) => m.id).sort(); }).catch(() => {})
    : Promise.resolve();

  if (writable) root.append(createForm());
  root.append(section('Knowledge bases', listStatus, listArea), detail);

  function createForm() {
    const status = notice();
    const name = field('Name', 'text', { name: 'name', required: true, maxlength: '128', autocomplete: 'off' });
    const desc = field('Description', 'text', { name: 'description', maxlength: '2048', autocomplete: 'off' }, { hint: 'Optional.' });
    const emb = field('Embedding model', 'select', { name: 'embedding_model', required: true }, { options: [{ value: '', label: 'Loading…' }], hint: 'Fixed for the knowledge base\'s life.' });
    modelsReady.then(() => {
      clear(emb.input);
      const guess = modelIds.find((m) => /minilm|embed|bge|e5/i.test(m));
      for (const m of modelIds) emb.input.append(h('option', { value: m, text: m, selected: m === guess }));
    });
    const submit = h('button', { type: 'submit', class: 'button', text: 'Create knowledge base' });
    const form = h('form', { class: 'form-grid', 'aria-label': 'Create a knowledge base' }, name.wrap, desc.wrap, emb.wrap, h('div', { class: 'form-actions' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      status.clearMsg();
      const body = { name: name.input.value.trim(), embedding_model: emb.input.value };
      if (desc.input.value.trim()) body.description = desc.input.value.trim();
      await busy(submit, async () => {
        try {
          const kb = await api('POST', '/v1/rag/knowledge_bases', { body });
          status.ok(`Knowledge base “${kb.name}” created.`);
          form.reset();
          selectedKb = kb.id;
          await loadList();
          showKb();
        } catch (err) { status.error(err); }
      }, 'Creating…');
    });
    return section('Create a knowledge base', form, status);
  }

  let kbs = [];
  async function loadList() {
    try {
      kbs = await listAll('/v1/rag/knowledge_bases', {}, 500, { signal: ctx.signal });
      if (!ctx.alive) return;
      clear(listArea).append(table({
        caption: `Knowledge bases (${kbs.length})`,
        columns: [
          { label: 'Name', header: true, value: (k) => h('button', { type: 'button', class: 'link-button', text: k.name, 'aria-label': `Open knowledge base ${k.name}`, onclick: () => { selectedKb = k.id; showKb(); } }) },
          { label: 'Documents', num: true, value: (k) => fmtInt(k.document_count) },
          { label: 'Chunks', num: true, value: (k) => fmtInt(k.chunk_count) },
          { label: 'Embedding model', value: (k) => k.embedding_model },
          { label: 'Chunking', value: (k) => `${k.chunking.max_tokens} tokens, ${k.chunking.overlap_tokens} overlap` },
          { label: 'Created', value: (k) => fmtDate(k.created_at) },
        ],
        rows: kbs,
        rowClass: (k) => (k.id === selectedKb ? 'selected' : undefined),
        empty: 'none yet.',
      }));
    } catch (e) { if (e.name !== 'AbortError') listStatus.error(e); }
  }

  let poll = null;
  function showKb(focus = true) {
    const kb = kbs.find((k) => k.id === selectedKb);
    if (!kb) return;
    for (const tr of listArea.querySelectorAll('tbody tr')) tr.classList.toggle('selected', tr.querySelector('th')?.textContent === kb.name);
    const headId = newId('kb');
    const heading = h('h2', { id: headId, tabindex: '-1', text: `Knowledge base ${kb.name}` });
    const docsArea = h('div');
    const docsLive = h('p', { class: 'sr-only', role: 'status', 'aria-live': 'polite' });
    const card = h('section', { class: 'card', 'aria-labelledby': headId }, heading,
      props([['Description', kb.description || '—'], ['Embedding model', kb.embedding_model]]));
    if (writable) card.append(uploadForm(kb));
    card.append(h('h3', { text: 'Documents' }), docsLive, docsArea);
    if (canWrite('rag')) card.append(askForm(kb));
    clear(detail).append(card);
    if (focus) heading.focus();

    const seen = new Map();
    async function loadDocs() {
      try {
        const docs = await listAll(`/v1/rag/knowledge_bases/${seg(kb.id)}/documents`, {}, 500, { signal: ctx.signal });
        if (!ctx.alive || selectedKb !== kb.id) return;
        const changes = [];
        for (const d of docs) {
          const prev = seen.get(d.id);
          if (prev && prev !== d.status) changes.push(`${d.filename || d.external_id || 'A document'} is ${d.status}`);
          seen.set(d.id, d.status);
        }
        if (changes.length) docsLive.textContent = `${changes.join('. ')}.`;
        clear(docsArea).append(table({
          caption: `Documents of ${kb.name}`, hideCaption: true,
          columns: [
            { label: 'Document', header: true, value: (d) => d.filename || d.external_id || d.id },
            { label: 'Status', value: (d) => [badge(d.status), d.error ? h('div', { class: 'hint', text: d.error }) : null] },
            { label: 'Version', num: true, value: (d) => `${d.version}${d.pending_version ? ` (v${d.pending_version} ingesting)` : ''}` },
            { label: 'Chunks', num: true, value: (d) => fmtInt(d.chunk_count) },
            { label: 'Tokens', num: true, value: (d) => fmtInt(d.token_count) },
            { label: 'Size', num: true, value: (d) => fmtBytes(d.bytes) },
            { label: 'Type', value: (d) => d.content_type },
            { label: 'Updated', value: (d) => fmtDate(d.updated_at) },
          ],
          rows: docs,
          empty: 'no documents yet.',
        }));
        const busyNow = docs.some((d) => INGESTING.has(d.status) || d.pending_version);
        if (busyNow && !poll) poll = ctx.every(2000, loadDocs);
        if (!busyNow && poll) { clearInterval(poll); poll = null; loadList(); }
      } catch (e) { if (e.name !== 'AbortError') clear(docsArea).append(problemMessage(e)); }
    }
    if (poll) { clearInterval(poll); poll = null; }
    card.loadDocs = loadDocs;
    loadDocs();

    function uploadForm() {
      const status = notice();
      const file = field('Document', 'file', { name: 'file', required: true, accept: '.txt,.md,.markdown,.html,.htm,.pdf,text/plain,text/markdown,text/html,application/pdf' },
        { hint: 'Text, Markdown, HTML or PDF. Ingestion runs in the background.' });
      const ext = field('External id', 'text', { name: 'external_id', maxlength: '256', autocomplete: 'off' }, { hint: 'Optional: your own id; uploading it again replaces the document.' });
      const submit = h('button', { type: 'submit', class: 'button', text: 'Upload' });
      const form = h('form', { class: 'form-grid', 'aria-label': 'Upload a document' }, file.wrap, ext.wrap, h('div', { class: 'form-actions' }, submit));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        status.clearMsg();
        const f = file.input.files[0];
        if (!f) { status.error({ detail: 'Choose a file.' }); file.input.focus(); return; }
        const fd = new FormData();
        fd.append('file', f, f.name);
        if (ext.input.value.trim()) fd.append('external_id', ext.input.value.trim());
        await busy(submit, async () => {
          try {
            const d = await api('POST', `/v1/rag/knowledge_bases/${seg(kb.id)}/documents`, { form: fd });
            status.ok(`${d.filename || 'The document'} is ${d.status}; its status below updates until it is ready.`);
            form.reset();
            loadDocs();
          } catch (err) { status.error(err); }
        }, 'Uploading…');
      });
      return h('div', null, h('h3', { text: 'Upload a document' }), form, status);
    }
  }

  function askForm(kb) {
    const status = notice();
    const q = field('Question', 'textarea', { name: 'question', required: true, maxlength: '4096', rows: '2' }, { wide: true });
    const model = field('Chat model', 'select', { name: 'model', required: true }, { options: [{ value: '', label: 'Loading…' }] });
    modelsReady.then(() => {
      clear(model.input);
      for (const m of modelIds) if (m !== kb.embedding_model) model.input.append(h('option', { value: m, text: m }));
    });
    const topK = field('Chunks to retrieve', 'number', { name: 'top_k', min: '1', max: '20', value: '4', inputmode: 'numeric' });
    const submit = h('button', { type: 'submit', class: 'button', text: 'Ask' });
    const out = h('div');
    const form = h('form', { class: 'form-grid', 'aria-label': 'Ask the knowledge base' }, q.wrap, model.wrap, topK.wrap, h('div', { class: 'form-actions' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      status.clearMsg();
      clear(out);
      const question = q.input.value.trim();
      if (!question) { status.error({ detail: 'Write a question.' }); q.input.focus(); return; }
      const k = Number(topK.input.value) || 4;
      await busy(submit, async () => {
        status.info('Retrieving and answering…');
        try {
          const ans = await api('POST', `/v1/rag/knowledge_bases/${seg(kb.id)}/answer`, { body: { question, model: model.input.value, top_k: k } });
          // The answer's citations name chunks; their text comes from a query with the same question.
          let texts = new Map();
          if (ans.citations.length) {
            try {
              const hits = await api('POST', `/v1/rag/knowledge_bases/${seg(kb.id)}/query`, { body: { query: question, top_k: Math.min(50, Math.max(k, ans.citations.length) * 2) } });
              texts = new Map(hits.data.map((c) => [c.chunk_id, c]));
            } catch { /* the chunks' text is a nicety */ }
          }
          status.ok(ans.grounded ? `Answered from ${ans.citations.length} chunk(s).` : 'Nothing relevant was found; no answer was generated.');
          out.append(
            h('h4', { text: 'Answer' }),
            h('div', { class: 'answer', text: ans.answer }),
            h('p', { class: 'hint', text: `${fmtInt(ans.usage.embedding_tokens)} embedding, ${fmtInt(ans.usage.prompt_tokens)} prompt and ${fmtInt(ans.usage.completion_tokens)} completion tokens.` }),
            table({
              caption: 'Chunks given to the model',
              columns: [
                { label: 'Marker', header: true, value: (c) => `[${c.marker}]` },
                { label: 'Cited', value: (c) => (c.cited ? badge('cited', 'ok') : 'not cited') },
                { label: 'Score', num: true, value: (c) => fmtNum(c.score, 3) },
                { label: 'Document', value: (c) => c.external_id || c.document_id },
                { label: 'Section', value: (c) => texts.get(c.chunk_id)?.section || '' },
                { label: 'Text', value: (c) => texts.get(c.chunk_id)?.text || `characters ${c.start}–${c.end}` },
              ],
              rows: ans.citations,
              empty: 'no chunks were relevant enough.',
            }),
          );
        } catch (err) { status.error(err); }
      }, 'Asking…');
    });
    return h('div', null, h('h3', { text: 'Ask a question' }), form, status, out);
  }

  modelsReady.then(() => loadList()).then(() => { if (selectedKb && kbs.some((k) => k.id === selectedKb)) showKb(false); });
}
