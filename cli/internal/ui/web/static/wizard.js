// Setup wizard: exposure → TLS mode → policy → firewall → first key →
// test chat → done. Every step calls the same API as its screen.
'use strict';
(function () {
  const { T, el, api, chatModels, clearErrors, clearOnInput, showError, say, copy, memory, screens } = window.FLM;
  const form = document.getElementById('wizard-form');
  // An error under a field goes as soon as the field changes.
  clearOnInput(form);
  const msg = document.getElementById('wizard-msg');
  const steps = ['exposure', 'tls', 'policy', 'firewall', 'key', 'chat', 'done'];
  const st = { i: 0, info: null, exposure: 'local', proxy: null, fwCommands: '' };
  const $ = (id) => document.getElementById(id);

  function val(name) {
    const e = form.elements[name];
    return e ? String(e.value).trim() : '';
  }
  function mode() {
    if (st.exposure === 'local') return 'local-http';
    if (st.exposure === 'internet') return 'https-acme';
    return form.elements.lan_mode.value;
  }
  function port() { return val('port') || String(st.info ? st.info.default_port : ''); }
  function httpsPort() { return mode() === 'local-http' ? 0 : Number(port()) + 1; }

  function render() {
    const name = steps[st.i];
    for (const f of form.querySelectorAll('.wz-step')) f.hidden = f.dataset.step !== name;
    for (const li of $('wz-progress').children) {
      const k = steps.indexOf(li.dataset.step);
      if (k === st.i) li.setAttribute('aria-current', 'step'); else li.removeAttribute('aria-current');
      li.classList.toggle('past', k < st.i);
    }
    for (const d of form.querySelectorAll('[data-exposure]')) d.hidden = !d.dataset.exposure.split(' ').includes(st.exposure);
    $('wz-back').disabled = st.i === 0;
    $('wz-next').hidden = name === 'done';
    $('wz-installca').hidden = mode() !== 'packaged-ca';
    say(msg, '');
  }

  function acmeTodo() {
    const p = port();
    const items = [T('wizard.tls.todo_dns', val('acme_domain') || 'example.com'),
      T('wizard.tls.todo_forward', '80', p), T('wizard.tls.todo_forward', '443', String(Number(p) + 1))];
    $('wz-acme-todo').replaceChildren(...items.map((t) => el('li', {}, t)));
  }

  async function enter(name) {
    if (name === 'tls') acmeTodo();
    if (name === 'policy') {
      const lan = st.info.lan_cidrs;
      $('wz-lan-seen').textContent = lan.length ? T('wizard.policy.seen', lan.join(', ')) : T('wizard.policy.seen_none');
      const base = ['127.0.0.1', '::1'];
      const list = st.exposure === 'lan' ? base.concat(lan) : st.exposure === 'internet' ? base.concat(['0.0.0.0/0', '::/0']) : base;
      form.elements.ip_whitelist.value = list.join('\n');
    }
    if (name === 'firewall') {
      const wl = val('ip_whitelist').split('\n').map((s) => s.trim()).filter((s) => s && s !== '127.0.0.1' && s !== '::1');
      if (!val('cidr')) form.elements.cidr.value = wl[0] || '';
      $('wz-fw-out').hidden = true;
    }
    if (name === 'chat') {
      if (st.bindFor !== st.exposure) { form.elements.bind.value = st.exposure === 'local' ? '127.0.0.1' : '0.0.0.0'; st.bindFor = st.exposure; }
      $('wz-chat-plan').textContent = T('wizard.chat.plan', T('mode.' + mode()), port());
      try {
        const m = await api('GET', '/api/models');
        form.elements.model.replaceChildren(...chatModels(m.models).map((x) => el('option', { value: x.id }, x.id)));
        if (m.models.length === 0) say($('wz-chat-msg'), T('chat.no_models'), true);
      } catch (e) { say($('wz-chat-msg'), T('common.error') + ': ' + e.message, true); }
    }
    if (name === 'done') {
      const items = [T('wizard.done.mode', T('mode.' + mode()))];
      if (st.proxy) items.push(T('wizard.done.proxy', st.proxy.id, st.proxy.urls.lan || st.proxy.urls.local));
      $('wz-summary').replaceChildren(...items.map((t) => el('li', {}, t)));
    }
  }

  // leave checks the current step; false keeps the user on it.
  async function leave(name) {
    if (name === 'exposure') { st.exposure = form.elements.exposure.value; return true; }
    if (name === 'tls') {
      const p = Number(port());
      if (!/^\d+$/.test(port()) || p < 1 || p > (mode() === 'local-http' ? 65535 : 65534)) {
        showError(form, msg, { field: 'port', message: T('wizard.tls.bad_port'), code: '' });
        return false;
      }
      if (mode() === 'https-acme' && !val('acme_domain')) {
        showError(form, msg, { field: 'acme_domain', message: T('wizard.tls.domain_needed'), code: '' });
        return false;
      }
      if (mode() === 'https-acme' && form.elements.acme_challenge.value === 'dns-01' && !val('dns_provider')) {
        showError(form, msg, { field: 'dns_provider', message: T('wizard.tls.provider_needed'), code: '' });
        return false;
      }
      return true;
    }
    if (name === 'policy') {
      try {
        await api('POST', '/api/wizard/policy', { ip_whitelist: form.elements.ip_whitelist.value });
        return true;
      } catch (e) {
        showError(form, msg, e);
        if (e.field) say(msg, T('policy.invalid'), true);
        return false;
      }
    }
    return true;
  }

  async function next() {
    clearErrors(form);
    const name = steps[st.i];
    if (!(await leave(name))) return;
    st.i++;
    render();
    await enter(steps[st.i]);
    const first = form.querySelector('.wz-step:not([hidden]) input:not([type=hidden]), .wz-step:not([hidden]) select, .wz-step:not([hidden]) textarea, .wz-step:not([hidden]) button');
    if (first) first.focus();
  }

  function fwBody(consent) {
    return { tool: val('tool'), mode: mode(), port: port(), cidr: val('cidr'), consent };
  }

  async function preview() {
    clearErrors(form);
    const m = $('wz-fw-msg');
    say(m, '');
    try {
      const d = await api('POST', '/api/wizard/firewall', fwBody(false));
      st.fwCommands = d.apply.join('\n');
      $('wz-fw-apply').textContent = st.fwCommands;
      $('wz-fw-rollback').textContent = d.rollback.join('\n');
      $('wz-fw-out').hidden = false;
      $('wz-fw-applybtn').disabled = !d.can_apply;
      $('wz-fw-noroot').hidden = d.can_apply;
      say(m, T('wizard.firewall.previewed', d.ports.join(', '), d.cidr));
    } catch (e) {
      $('wz-fw-out').hidden = true;
      showError(form, m, e);
    }
  }

  async function applyRules() {
    clearErrors(form);
    const m = $('wz-fw-msg');
    try {
      const d = await api('POST', '/api/wizard/firewall/apply', fwBody(form.elements.consent.checked));
      say(m, T('wizard.firewall.applied', d.ran, d.rollback_script, d.log));
    } catch (e) {
      showError(form, m, e);
    }
  }

  async function createKey() {
    clearErrors(form);
    const m = $('wz-key-msg');
    try {
      const d = await api('POST', '/api/keys', { label: val('label'), models: '', rpm: '', expires_in: '' });
      memory.key = d.plain_key;
      $('wz-key-plain').textContent = d.plain_key;
      $('wz-key-created').hidden = false;
      say(m, T('wizard.key.created', d.id));
    } catch (e) { showError(form, m, e); }
  }

  async function startProxy() {
    const m = $('wz-chat-msg');
    say(m, T('proxies.starting'));
    const body = { mode: mode(), port: port(), bind: val('bind'), egress_mode: 'direct', socks5_endpoint: '', fail_open: false };
    if (mode() === 'https-acme') Object.assign(body, { acme_domain: val('acme_domain'), acme_email: val('acme_email'), acme_challenge: form.elements.acme_challenge.value, dns_provider: val('dns_provider') });
    try {
      const d = await api('POST', '/api/proxies/start', body);
      st.proxy = d.proxy;
      $('wz-chat-send').disabled = false;
      say(m, [T('proxies.started', d.proxy.id), ...d.warnings.map((w) => T('common.warning') + ': ' + w)].join(' '));
    } catch (e) { showError(null, m, e); }
  }

  async function chat() {
    const m = $('wz-chat-msg');
    const out = $('wz-chat-out');
    out.textContent = '';
    if (!memory.key) { say(m, T('wizard.chat.no_key'), true); return; }
    say(m, T('chat.streaming'));
    try {
      const resp = await api('POST', '/api/chat', { handle_id: st.proxy.id, model: val('model'), prompt: T('wizard.chat.prompt'), api_key: memory.key });
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = '', done = false;
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') { done = true; continue; }
          let ch;
          try { ch = JSON.parse(data); } catch (e) { continue; }
          if (ch.error) throw new Error(T('chat.stream_error', ch.error.message || ''));
          for (const c of ch.choices || []) if (c.delta && c.delta.content) out.append(c.delta.content);
        }
      }
      if (!done) throw new Error(T('chat.stream_error', 'no [DONE]'));
      say(m, T('wizard.chat.ok'));
    } catch (e) { showError(null, m, e); }
  }

  async function load(first) {
    if (!first) return;
    try {
      st.info = await api('GET', '/api/wizard');
      $('wz-port-help').textContent = T('proxies.port_help', st.info.default_port);
      $('wz-installca-cmd').textContent = st.info.install_ca_command;
      const tools = st.info.tools.length ? st.info.tools : ['ufw', 'firewalld', 'nftables', 'pf', 'netsh'];
      form.elements.tool.replaceChildren(...tools.map((t) => el('option', { value: t }, T('fw.' + t) + (st.info.detected.includes(t) ? ' — ' + T('wizard.firewall.detected') : ''))));
      if (st.info.detected.length) form.elements.tool.value = st.info.detected[0];
      $('wz-tool-help').textContent = st.info.detected.length ? T('wizard.firewall.found', st.info.detected.join(', ')) : T('wizard.firewall.none_found');
    } catch (e) { say(msg, T('common.error') + ': ' + e.message, true); }
    render();
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); next(); });
  $('wz-back').addEventListener('click', () => { clearErrors(form); if (st.i > 0) { st.i--; render(); enter(steps[st.i]); } });
  form.addEventListener('change', (ev) => { if (ev.target.name === 'exposure' || ev.target.name === 'lan_mode') { st.exposure = form.elements.exposure.value; render(); } });
  form.elements.acme_domain.addEventListener('input', acmeTodo);
  form.elements.port.addEventListener('input', acmeTodo);
  $('wz-fw-preview').addEventListener('click', preview);
  $('wz-fw-copy').addEventListener('click', (ev) => copy(st.fwCommands, ev.target));
  $('wz-installca-copy').addEventListener('click', (ev) => copy(st.info.install_ca_command, ev.target));
  $('wz-fw-applybtn').addEventListener('click', applyRules);
  $('wz-key-create').addEventListener('click', createKey);
  $('wz-key-copy').addEventListener('click', (ev) => copy(memory.key, ev.target));
  $('wz-start').addEventListener('click', startProxy);
  $('wz-chat-send').addEventListener('click', chat);
  screens.wizard = { show: load };
})();
