// Playground: a streamed chat completion, token by token, with usage, latency (measured
// here), the cache outcome, and the same request as curl and OpenAI-SDK code.
import { api, get, isReadOnly } from './api.js';
import { h, clear, field, notice, props, fmtInt, fmtMs, fmtMoney, fmtNum, copyButton, section, newId } from './ui.js';

// Kept in memory while the page is open, so coming back keeps the draft (never in the URL).
const draft = { model: '', system: 'You are a helpful assistant.', message: '', temperature: '0.7', max_tokens: '256' };

export function render(root, ctx) {
  root.append(h('p', { class: 'view-intro', text: 'Try any model this tenant may call. The answer streams in as the model writes it; the code below sends the same request.' }));
  const model = field('Model', 'select', { name: 'model', required: true, id: 'pg-model' }, { options: [{ value: '', label: 'Loading models…' }] });
  const system = field('System prompt', 'textarea', { name: 'system', rows: '2', id: 'pg-system' }, { wide: true });
  const message = field('Message', 'textarea', { name: 'message', rows: '4', required: true, id: 'pg-message' }, { wide: true });
  const temperature = field('Temperature', 'number', { name: 'temperature', min: '0', max: '2', step: '0.1', id: 'pg-temperature', inputmode: 'decimal' }, { hint: '0 to 2; 0 makes answers cacheable.' });
  const maxTokens = field('Max tokens', 'number', { name: 'max_tokens', min: '1', step: '1', id: 'pg-max-tokens', inputmode: 'numeric' });
  system.input.value = draft.system;
  message.input.value = draft.message;
  temperature.input.value = draft.temperature;
  maxTokens.input.value = draft.max_tokens;

  const send = h('button', { type: 'submit', class: 'button', text: 'Send', id: 'pg-send' });
  const stop = h('button', { type: 'button', class: 'button secondary', text: 'Stop', disabled: true, id: 'pg-stop' });
  const formStatus = notice();
  const form = h('form', { class: 'form-grid', 'aria-label': 'Chat request' },
    model.wrap, temperature.wrap, maxTokens.wrap, system.wrap, message.wrap,
    h('div', { class: 'form-actions' }, send, stop));

  // The answer grows token by token; only the status line below is a live region.
  const answerLabel = newId('answer');
  const answer = h('div', { class: 'answer', id: 'pg-answer', 'aria-label': 'Answer text', role: 'region', tabindex: '0' });
  const streamStatus = h('p', { id: 'pg-status', role: 'status', 'aria-live': 'polite', class: 'muted', text: 'Nothing sent yet.' });
  const results = h('div', { id: 'pg-results' });
  const snippets = h('div');

  if (isReadOnly()) {
    send.disabled = true;
    formStatus.info('Your role is read-only: it cannot send requests. The code below shows how to send this one with an API key.');
  }
  root.append(
    section('Request', form, formStatus),
    h('section', { class: 'card', 'aria-labelledby': answerLabel },
      h('h2', { id: answerLabel, text: 'Answer' }), streamStatus, answer, results),
    section('The same request in code', snippets),
  );

  function requestBody() {
    const messages = [];
    if (system.input.value.trim()) messages.push({ role: 'system', content: system.input.value });
    messages.push({ role: 'user', content: message.input.value });
    const body = { model: model.input.value, messages, stream: true, stream_options: { include_usage: true } };
    if (temperature.input.value !== '') body.temperature = Number(temperature.input.value);
    if (maxTokens.input.value !== '') body.max_tokens = Number(maxTokens.input.value);
    return body;
  }

  function updateSnippets() {
    Object.assign(draft, {
      model: model.input.value, system: system.input.value, message: message.input.value,
      temperature: temperature.input.value, max_tokens: maxTokens.input.value,
    });
    const body = requestBody();
    clear(snippets).append(
      snippet('curl', curlSnippet(body), 'pg-curl'),
      snippet('Python (OpenAI SDK)', pythonSnippet(body), 'pg-python'),
      h('p', { class: 'hint', text: 'Set LLMOPS_API_KEY to an API key with the inference scope. The dashboard never puts a real secret in these snippets.' }),
    );
  }
  form.addEventListener('input', updateSnippets);
  form.addEventListener('change', updateSnippets);

  get('/v1/models', undefined, { signal: ctx.signal }).then((list) => {
    const ids = (list.data || []).map((m) => m.id).sort();
    clear(model.input);
    if (!ids.length) model.input.append(h('option', { value: '', text: 'No models available' }));
    for (const id of ids) model.input.append(h('option', { value: id, text: id }));
    if (draft.model && ids.includes(draft.model)) model.input.value = draft.model;
    updateSnippets();
  }).catch((e) => { if (e.name !== 'AbortError') formStatus.error(e); });
  updateSnippets();

  let controller = null;
  stop.addEventListener('click', () => { if (controller) controller.abort(); });
  ctx.onCleanup(() => { if (controller) controller.abort(); });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formStatus.clearMsg();
    if (!model.input.value) { formStatus.error({ detail: 'Choose a model.' }); model.input.focus(); return; }
    if (!message.input.value.trim()) { formStatus.error({ detail: 'Write a message.' }); message.input.focus(); return; }
    const body = requestBody();
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    clear(answer);
    clear(results);
    answer.classList.add('streaming');
    answer.setAttribute('aria-busy', 'true');
    streamStatus.textContent = 'Sent; waiting for the first token…';
    const text = document.createTextNode('');
    answer.append(text);
    const t0 = performance.now();
    let ttft = null;
    let usage = null;
    let finish = null;
    let cacheHeader = null;
    let similarity = null;
    let chunks = 0;
    try {
      const res = await api('POST', '/v1/chat/completions', { body, raw: true, stream: true, signal: controller.signal, headers: { accept: 'text/event-stream' } });
      cacheHeader = res.headers.get('x-llmops-cache');
      similarity = res.headers.get('x-llmops-cache-similarity');
      const ctype = res.headers.get('content-type') || '';
      if (!ctype.includes('text/event-stream')) {
        // A server that answered in one piece.
        const j = await res.json();
        ttft = performance.now() - t0;
        text.appendData(j.choices?.[0]?.message?.content || '');
        usage = j.usage || null;
        finish = j.choices?.[0]?.finish_reason || null;
      } else {
        streamStatus.textContent = 'Streaming…';
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = '';
        let done = false;
        while (!done) {
          const { value, done: end } = await reader.read();
          if (end) break;
          buf += decoder.decode(value, { stream: true });
          let m;
          while ((m = /\r?\n\r?\n/.exec(buf))) {
            const raw = buf.slice(0, m.index);
            buf = buf.slice(m.index + m[0].length);
            const data = raw.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
            if (!data) continue;
            if (data === '[DONE]') { done = true; break; }
            let obj;
            try { obj = JSON.parse(data); } catch { continue; }
            if (obj.error) {
              const err = new Error(obj.error.message || 'The stream ended with an error.');
              err.title = 'Stream error';
              err.detail = obj.error.message;
              throw err;
            }
            const choice = obj.choices && obj.choices[0];
            const delta = choice && choice.delta && choice.delta.content;
            if (delta) {
              if (ttft === null) { ttft = performance.now() - t0; streamStatus.textContent = `Streaming… first token after ${fmtMs(ttft)}.`; }
              text.appendData(delta);
              chunks += 1;
            }
            if (choice && choice.finish_reason) finish = choice.finish_reason;
            if (obj.usage) usage = obj.usage;
          }
        }
        reader.releaseLock?.();
      }
      const total = performance.now() - t0;
      streamStatus.textContent = `Done in ${fmtMs(total)}${finish ? ` (finish reason: ${finish})` : ''}.`;
      showResults({ ttft, total, usage, cacheHeader, similarity, finish, chunks });
    } catch (err) {
      if (err.name === 'AbortError') {
        streamStatus.textContent = `Stopped after ${fmtMs(performance.now() - t0)}.`;
        if (ctx.alive) showResults({ ttft, total: performance.now() - t0, usage, cacheHeader, similarity, finish: 'stopped', chunks });
      } else {
        streamStatus.textContent = 'The request failed.';
        formStatus.error(err);
      }
    } finally {
      answer.classList.remove('streaming');
      answer.removeAttribute('aria-busy');
      send.disabled = isReadOnly();
      stop.disabled = true;
      controller = null;
    }
  });

  function showResults({ ttft, total, usage, cacheHeader, similarity, finish, chunks }) {
    const lc = usage && usage.llmops_cache;
    const cacheText = cacheHeader
      ? `${cacheHeader}${similarity ? ` (similarity ${fmtNum(Number(similarity), 3)})` : ''}`
      : 'no cache configured';
    clear(results).append(h('h3', { text: 'This request' }), props([
      ['Time to first token', h('span', { id: 'pg-ttft', text: fmtMs(ttft) })],
      ['Total time', h('span', { id: 'pg-total', text: fmtMs(total) })],
      ['Usage', h('span', { id: 'pg-usage', text: usage
        ? `${fmtInt(usage.prompt_tokens)} prompt + ${fmtInt(usage.completion_tokens)} completion = ${fmtInt(usage.total_tokens)} tokens`
        : 'not reported' })],
      usage && usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens
        ? ['Cached prompt tokens', fmtInt(usage.prompt_tokens_details.cached_tokens)] : null,
      ['Cache', h('span', { id: 'pg-cache', text: cacheText })],
      lc && lc.saved_minor !== null && lc.saved_minor !== undefined ? ['Saved by the cache', fmtMoney(lc.saved_minor, lc.currency)] : null,
      ['Chunks received', fmtInt(chunks)],
      finish ? ['Finish reason', finish] : null,
    ]));
  }
}

function snippet(title, code, id) {
  const status = h('span', { class: 'hint', role: 'status', 'aria-live': 'polite' });
  const headId = `${id}-title`;
  return h('div', null,
    h('div', { class: 'snippet-head' }, h('h3', { id: headId, text: title }), h('div', { class: 'row' }, status, copyButton(code, `Copy ${title.split(' ')[0]}`, status))),
    h('div', { class: 'code-block', tabindex: '0', role: 'region', 'aria-labelledby': headId },
      h('pre', null, h('code', { id, text: code }))));
}

function curlSnippet(body) {
  const json = JSON.stringify(body, null, 2).replaceAll("'", "'\\''");
  return [
    `curl -sS -N ${location.origin}/v1/chat/completions \\`,
    '  -H "Authorization: Bearer $LLMOPS_API_KEY" \\',
    '  -H "Content-Type: application/json" \\',
    `  -d '${json}'`,
  ].join('\n');
}

function py(v) {
  // JSON strings are valid Python string literals; only the constants differ.
  return JSON.stringify(v, null, 4).replace(/\btrue\b/g, 'True').replace(/\bfalse\b/g, 'False').replace(/\bnull\b/g, 'None');
}

function pythonSnippet(body) {
  const lines = [
    'import os',
    'from openai import OpenAI',
    '',
    'client = OpenAI(',
    `    base_url=${JSON.stringify(`${location.origin}/v1`)},`,
    '    api_key=os.environ["LLMOPS_API_KEY"],',
    ')',
    'stream = client.chat.completions.create(',
    `    model=${JSON.stringify(body.model)},`,
    `    messages=${py(body.messages).replace(/\n/g, '\n    ')},`,
  ];
  if (body.temperature !== undefined) lines.push(`    temperature=${body.temperature},`);
  if (body.max_tokens !== undefined) lines.push(`    max_tokens=${body.max_tokens},`);
  lines.push(
    '    stream=True,',
    '    stream_options={"include_usage": True},',
    ')',
    'for chunk in stream:',
    '    if chunk.choices and chunk.choices[0].delta.content:',
    '        print(chunk.choices[0].delta.content, end="", flush=True)',
    '    if chunk.usage:',
    '        print("\\n", chunk.usage)',
  );
  return lines.join('\n');
}

