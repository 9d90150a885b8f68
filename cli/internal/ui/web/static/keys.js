// API keys: create (shown once), list, revoke.
'use strict';
(function () {
  const { T, el, table, api, formData, clearErrors, clearOnInput, showError, say, copy, when, applied, memory, screens } = window.FLM;
  const form = document.getElementById('key-form');
  // An error under a field goes as soon as the field changes.
  clearOnInput(form);
  const msg = document.getElementById('keys-msg');
  const box = document.getElementById('key-created');
  const plain = document.getElementById('key-plain');

  function status(k) {
    if (k.revoked_at) return T('keys.revoked') + ' ' + when(k.revoked_at);
    if (k.expired) return T('keys.expired');
    if (k.expires_soon) return T('keys.expires_soon');
    return T('keys.active');
  }

  async function load() {
    const list = document.getElementById('keys-list');
    try {
      const d = await api('GET', '/api/keys');
      list.replaceChildren(d.api_keys.length === 0 ? el('p', {}, T('keys.none')) :
        table([T('keys.id'), T('keys.label'), T('keys.created'), T('keys.models_col'), T('keys.expires'), T('keys.status'), ''],
          d.api_keys.map((k) => [el('code', {}, k.id), k.label, when(k.created_at),
            k.models && k.models.length ? k.models.join(', ') : T('keys.all_models'),
            k.expires_at ? when(k.expires_at) : T('keys.never'),
            status(k) + (k.legacy ? ' (' + T('keys.legacy') + ')' : ''),
            k.revoked_at ? '' : el('button', { type: 'button', class: 'small danger', 'data-revoke': k.id,
              'aria-label': T('keys.revoke') + ' ' + k.label, on: { click: () => revoke(k) } }, T('keys.revoke'))])));
    } catch (e) {
      say(msg, T('common.error') + ': ' + e.message, true);
    }
  }

  async function revoke(k) {
    if (!window.confirm(T('keys.revoke_confirm', k.id, k.label))) return;
    try {
      const d = await api('POST', '/api/keys/revoke', { id: k.id });
      say(msg, T('keys.revoked_done', d.id) + ' ' + applied(d.proxies));
      load();
    } catch (e) {
      say(msg, T('common.error') + ': ' + e.message, true);
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    say(msg, '');
    try {
      const d = await api('POST', '/api/keys', formData(form));
      memory.key = d.plain_key;
      plain.textContent = d.plain_key;
      box.hidden = false;
      form.reset();
      say(msg, applied(d.proxies));
      document.getElementById('key-copy').focus();
      load();
    } catch (e) {
      showError(form, msg, e);
    }
  });
  document.getElementById('key-copy').addEventListener('click', (ev) => copy(plain.textContent, ev.target));
  document.getElementById('key-use-chat').addEventListener('click', () => { location.hash = 'chat'; });
  // Leaving the screen hides the key: it was shown once.
  window.addEventListener('hashchange', () => { if (location.hash !== '#keys') { box.hidden = true; plain.textContent = ''; } });
  screens.keys = { show: load };
})();
