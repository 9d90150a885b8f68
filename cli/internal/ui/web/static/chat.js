// Chat tester: one streamed chat turn through a running proxy; shows the
// answer as it comes, the time to first token and tokens per second.
'use strict';
(function () {
  const { T, el, api, chatModels, formData, clearErrors, clearOnInput, showError, say, memory, screens } = window.FLM;
  const form = document.getElementById('chat-form');
  // An error under a field goes as soon as the field changes.
  clearOnInput(form);
  const msg = document.getElementById('chat-msg');
  const out = document.getElementById('chat-out');
  const send = document.getElementById('chat-send');
  const stop = document.getElementById('chat-stop');
  let controller = null;

  async function load() {
    const keyInput = form.elements.api_key;
    if (!keyInput.value && memory.key) keyInput.value = memory.key;
    try {
      const [p, m] = await Promise.all([api('GET', '/api/proxies'), api('GET', '/api/models')]);
      const running = p.proxies.filter((x) => x.running);
      form.elements.handle_id.replaceChildren(...running.map((x) => el('option', { value: x.id }, x.id + ' — ' + x.urls.local)));
      form.elements.model.replaceChildren(...chatModels(m.models).map((x) => el('option', { value: x.id }, x.id)));
      const notes = [];
      if (running.length === 0) notes.push(T('chat.no_proxy'));
      if (m.models.length === 0) notes.push(T('chat.no_models'));
      say(msg, notes.join(' '), notes.length > 0);
    } catch (e) {
      say(msg, T('common.error') + ': ' + e.message, true);
    }
  }

  function metric(id, text) { document.getElementById(id).textContent = text; }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    out.textContent = '';
    for (const id of ['chat-ttft', 'chat-tokens', 'chat-tps']) metric(id, '—');
    controller = new AbortController();
    send.disabled = true; stop.disabled = false;
    say(msg, T('chat.streaming'));
    const t0 = performance.now();
    let tFirst = 0, tLast = 0, usage = null, done = false;
    try {
      const resp = await api('POST', '/api/chat', formData(form), controller.signal);
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).replace(/\r$/, '');
          buf = buf.slice(i + 1);
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') { done = true; continue; }
          let ch;
          try { ch = JSON.parse(data); } catch (e) { continue; }
          if (ch.error) throw new Error(T('chat.stream_error', ch.error.message || ''));
          if (ch.usage) usage = ch.usage;
          for (const c of ch.choices || []) {
            const piece = (c.delta && c.delta.content) || '';
            if (!piece) continue;
            const now = performance.now();
            if (!tFirst) { tFirst = now; metric('chat-ttft', Math.round(tFirst - t0) + ' ms'); }
            tLast = now;
            out.append(piece);
          }
        }
      }
      if (!done) throw new Error(T('chat.stream_error', 'no [DONE]'));
      if (usage && usage.completion_tokens != null) {
        metric('chat-tokens', String(usage.completion_tokens));
        const secs = (tLast - tFirst) / 1000;
        metric('chat-tps', secs > 0 ? (usage.completion_tokens / secs).toFixed(1) : '—');
      } else {
        metric('chat-tokens', T('chat.no_usage'));
        metric('chat-tps', T('chat.no_usage'));
      }
      say(msg, T('chat.done'));
    } catch (e) {
      if (e.name === 'AbortError') say(msg, T('chat.stop'));
      else showError(form, msg, e);
    } finally {
      send.disabled = false; stop.disabled = true; controller = null;
    }
  });
  stop.addEventListener('click', () => { if (controller) controller.abort(); });
  screens.chat = { show: load };
})();
