// Proxies: start (mode, port, bind, egress), stop, reload.
'use strict';
(function () {
  const { T, el, api, formData, clearErrors, clearOnInput, showError, say, screens } = window.FLM;
  const form = document.getElementById('proxy-form');
  // An error under a field goes as soon as the field changes.
  clearOnInput(form);
  const msg = document.getElementById('proxies-msg');

  async function act(path, body, done) {
    say(msg, T('common.loading'));
    try {
      const d = await api('POST', path, body);
      say(msg, done(d));
    } catch (e) {
      say(msg, T('common.error') + ': ' + e.message + (e.code ? ' (' + e.code + ')' : ''), true);
    }
    load();
  }

  async function load() {
    const list = document.getElementById('proxies-list');
    try {
      const d = await api('GET', '/api/proxies');
      document.getElementById('px-port-help').textContent = T('proxies.port_help', d.default_port);
      list.replaceChildren(...(d.proxies.length === 0 ? [el('p', {}, T('proxies.none'))] : d.proxies.map((p) =>
        window.FLM.proxyCard(p, el('p', { class: 'actions' },
          el('button', { type: 'button', 'data-stop': p.id, on: { click: () => act('/api/proxies/stop', { handle_id: p.id }, (r) => T('proxies.stopped', r.stopped.join(', '))) } }, T('proxies.stop') + ' ' + p.id),
          ' ',
          el('button', { type: 'button', 'data-reload': p.id, on: { click: () => act('/api/proxies/reload', { handle_id: p.id }, (r) => T('proxies.reloaded', r.proxies.map((x) => x.handle_id + (x.code ? ' (' + x.code + ': ' + x.error + ')' : '')).join(', '))) } }, T('proxies.reload') + ' ' + p.id))))));
    } catch (e) {
      say(msg, T('common.error') + ': ' + e.message, true);
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const btn = document.getElementById('px-start');
    btn.disabled = true;
    say(msg, T('proxies.starting'));
    try {
      const d = await api('POST', '/api/proxies/start', formData(form));
      say(msg, [T('proxies.started', d.proxy.id), ...d.warnings.map((w) => T('common.warning') + ': ' + w)].join(' '));
    } catch (e) {
      showError(form, msg, e);
    } finally {
      btn.disabled = false;
    }
    load();
  });
  // https-acme needs a domain, an e-mail, a challenge (and, for dns-01, a
  // DNS provider): shown only for that mode.
  const acme = () => { document.getElementById('px-acme').hidden = form.elements.mode.value !== 'https-acme'; };
  form.elements.mode.addEventListener('change', acme);
  acme();
  document.getElementById('px-reload-all').addEventListener('click', () =>
    act('/api/proxies/reload', { all: true }, (r) => T('proxies.reloaded', r.proxies.map((x) => x.handle_id).join(', '))));
  screens.proxies = { show: load };
})();
