// Shared helpers of the FLM UI: messages, API calls, DOM building.
// Every value reaches the page as text (DOM nodes), never parsed as HTML.
'use strict';
window.FLM = (function () {
  const catalog = JSON.parse(document.body.dataset.i18n || '{}');
  // The session secret (from sign-in, in this tab's sessionStorage): every
  // API call sends it; the cookie alone opens nothing.
  const secret = sessionStorage.getItem('flm-ui-session') || '';

  // noSession says, once, at the top of the page that this tab has no
  // session (a new tab, or the session ended): a new `flm ui` link is needed.
  function noSession() {
    const p = document.getElementById('session-gone');
    if (p) p.hidden = false;
  }

  // T returns the message for key with {0}, {1}… replaced.
  function T(key, ...args) {
    const s = Object.prototype.hasOwnProperty.call(catalog, key) ? catalog[key] : key;
    return s.replace(/\{(\d+)\}/g, (m, i) => (args[i] !== undefined ? String(args[i]) : m));
  }

  // el builds an element: el('td', {class: 'x'}, 'text', child…).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'on') { for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn); continue; }
      e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function table(headers, rows) {
    return el('table', {},
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c))))));
  }

  class APIError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || ('HTTP ' + status));
      this.status = status; this.code = e.code || ''; this.field = e.field || '';
    }
  }

  // request sends one API call with the session secret; changes as JSON.
  async function request(method, path, body, signal) {
    if (!secret) {
      noSession();
      throw new APIError(401, { error: { message: T('app.no_session_short') } });
    }
    const opts = { method, headers: { 'X-FLM-Session': secret }, credentials: 'same-origin', signal };
    if (method !== 'GET') {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body || {});
    }
    const resp = await fetch(path, opts);
    if (resp.status === 401) noSession();
    return resp;
  }

  // api calls the UI server and returns its JSON (the chat: the response).
  async function api(method, path, body, signal) {
    const resp = await request(method, path, body, signal);
    if (path === '/api/chat' && resp.ok) return resp;
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    // Without a session the note at the top says what to do; the screen's
    // own message only points to it.
    if (resp.status === 401) throw new APIError(401, { error: { message: T('app.no_session_short') } });
    if (!resp.ok) throw new APIError(resp.status, data);
    return data;
  }

  // svgImage loads an SVG of the API (it needs the session header, which
  // an <img src> cannot send) into img as a data: URL.
  async function svgImage(img, path) {
    const resp = await request('GET', path);
    if (!resp.ok) throw new APIError(resp.status, null);
    img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(await resp.text());
  }

  function formData(form) {
    const out = {};
    for (const e of form.elements) {
      if (!e.name) continue;
      out[e.name] = e.type === 'checkbox' ? e.checked : e.value;
    }
    return out;
  }

  function clearErrors(form) {
    for (const p of form.querySelectorAll('.field-error')) p.textContent = '';
    for (const e of form.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
  }

  // clearOnInput removes a field's error as soon as its value changes.
  function clearOnInput(form) {
    const clear = (ev) => {
      const name = ev.target && ev.target.name;
      if (!name) return;
      for (const p of form.querySelectorAll('.field-error[data-field="' + name + '"]')) p.textContent = '';
      for (const e of form.querySelectorAll('[name="' + name + '"][aria-invalid]')) e.removeAttribute('aria-invalid');
    };
    form.addEventListener('input', clear);
    form.addEventListener('change', clear);
  }

  // showError puts err next to its field when it names one, else in msg.
  function showError(form, msg, err) {
    const p = err.field && form ? form.querySelector('.field-error[data-field="' + err.field + '"]') : null;
    if (p) {
      p.textContent = T('common.error') + ': ' + err.message;
      const input = form.elements[err.field];
      if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
      return true;
    }
    say(msg, T('common.error') + ': ' + err.message + (err.code ? ' (' + err.code + ')' : ''), true);
    return false;
  }

  function say(msg, text, isError) {
    msg.textContent = text;
    msg.classList.toggle('error', !!isError);
  }

  async function copy(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      const old = button.textContent;
      button.textContent = T('common.copied');
      setTimeout(() => { button.textContent = old; }, 1500);
    } catch (e) {
      button.textContent = T('common.copy_failed');
    }
  }

  function copyButton(text) {
    const b = el('button', { type: 'button', class: 'small' }, T('common.copy'));
    b.addEventListener('click', () => copy(text, b));
    return b;
  }

  function when(t) {
    if (!t) return '';
    const d = new Date(t);
    return isNaN(d) ? String(t) : d.toLocaleString(document.documentElement.lang);
  }

  // applied describes the running proxies' answers to a change.
  function applied(results) {
    if (!results || results.length === 0) return '';
    if (!results[0].handle_id) return T('common.no_proxy_reached', results[0].error || '');
    const ok = results.filter((r) => !r.code);
    const parts = [T('common.applied', ok.length, results.length)];
    for (const r of results) if (r.code) parts.push(T('common.not_applied', r.handle_id, r.error));
    return parts.join(' ');
  }

  // Page memory shared by the screens: the key created in this page
  // (never stored anywhere).
  const memory = { key: '' };
  const screens = {};

  // Scripts are deferred: the page is parsed when this runs.
  if (!secret) noSession();

  // chatModels is what a chat picker offers: the models whose engine
  // reports chat (an embeddings-only model answers a chat with an error),
  // or every model when none does (an engine that reports no capabilities).
  function chatModels(models) {
    const chat = models.filter((m) => m.capabilities && m.capabilities.chat);
    return chat.length > 0 ? chat : models;
  }

  return { T, el, table, api, chatModels, svgImage, formData, clearErrors, clearOnInput, showError, say, copy, copyButton, when, applied, memory, screens };
})();
