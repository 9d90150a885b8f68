// Status: engines, models, proxies (URLs to copy, TLS, certificate,
// egress) and warnings.
'use strict';
(function () {
  const { T, el, table, api, svgImage, say, copyButton, when, screens } = window.FLM;

  function stateText(s) { return T('state.' + s); }

  // proxyCard describes one running proxy; actions are extra buttons.
  function proxyCard(p, actions) {
    const urls = [['proxy.url_local', p.urls.local], ['proxy.url_lan', p.urls.lan], ['proxy.url_external', p.urls.external]]
      .filter(([, u]) => u)
      .map(([k, u]) => el('li', {}, T(k) + ': ', el('code', {}, u), ' ', copyButton(u)));
    // A QR code of the LAN / external URL, so a phone can connect: an SVG
    // drawn by the UI server (same origin), fetched with the session header.
    const qrs = [['lan', p.urls.lan], ['external', p.urls.external]].filter(([, u]) => u).map(([w, u]) => {
      const img = el('img', { width: 160, height: 160, alt: T('proxy.qr_alt', u) });
      svgImage(img, '/api/qr?proxy=' + encodeURIComponent(p.id) + '&which=' + w).catch(() => { img.alt = T('proxy.qr_failed', u); });
      return el('figure', { class: 'qr' }, img,
        el('figcaption', {}, w === 'lan' ? T('proxy.qr_lan') : T('proxy.qr_external')));
    });
    const cert = p.certificate ? when(p.certificate.not_after) : T('common.none');
    const egress = T('egress.' + p.egress.mode) + (p.egress.socks5_endpoint ? ' (' + p.egress.socks5_endpoint + ')' : '');
    const warnings = (p.warnings || []).map((w) => el('li', {}, el('strong', {}, T('common.warning') + ': '), T(w.key, ...(w.args || []))));
    return el('article', { class: 'card', 'data-proxy': p.id },
      el('h4', {}, p.id),
      el('dl', { class: 'props' },
        el('dt', {}, T('proxy.mode')), el('dd', {}, T('mode.' + p.mode)),
        el('dt', {}, T('proxy.listen')), el('dd', {}, p.listen_addr),
        el('dt', {}, T('proxy.pid')), el('dd', {}, String(p.pid)),
        el('dt', {}, T('proxy.running')), el('dd', {}, p.running ? T('common.yes') : T('common.no')),
        el('dt', {}, T('proxy.cert_expires')), el('dd', {}, cert),
        el('dt', {}, T('proxy.egress')), el('dd', {}, egress)),
      el('p', {}, T('proxy.urls')),
      el('ul', { class: 'urls' }, urls),
      qrs.length ? el('div', { class: 'qrs' }, qrs) : null,
      warnings.length ? el('ul', { class: 'warnings' }, warnings) : null,
      actions || null);
  }
  window.FLM.proxyCard = proxyCard;

  async function load(fresh) {
    const msg = document.getElementById('status-msg');
    say(msg, T('common.loading'));
    try {
      const d = await api('GET', '/api/status' + (fresh ? '?fresh=1' : ''));
      const eng = document.getElementById('status-engines');
      eng.replaceChildren(d.engines.length === 0 ? el('p', {}, T('status.no_engines')) :
        table([T('status.engine_id'), T('status.kind'), T('status.state'), T('status.latency'), T('status.version'), T('status.url'), T('status.reason')],
          d.engines.map((e) => [e.id, e.kind, stateText(e.status.state),
            e.status.state.startsWith('running') ? e.status.latency_ms + ' ms' : '', e.version || '', e.base_url || '', e.status.reason || ''])));
      if (d.engines_error) eng.append(el('p', { class: 'error' }, T('common.error') + ': ' + d.engines_error.message));
      const mod = document.getElementById('status-models');
      mod.replaceChildren(d.models.length === 0 ? el('p', {}, T('status.no_models')) :
        table([T('status.model_id'), T('status.model_engine'), T('status.context')],
          d.models.map((m) => [el('code', {}, m.id), m.engine_id, m.context_length == null ? '' : String(m.context_length)])));
      for (const [id, e] of Object.entries(d.model_errors || {})) mod.append(el('p', { class: 'error' }, id + ': ' + e));
      const px = document.getElementById('status-proxies');
      px.replaceChildren(...(d.proxies.length === 0 ? [el('p', {}, T('proxies.none'))] : d.proxies.map((p) => proxyCard(p))));
      if (d.proxies_error) px.append(el('p', { class: 'error' }, T('common.error') + ': ' + d.proxies_error.message));
      const warn = document.getElementById('status-warnings');
      const pw = (d.policy_warnings || []).map((w) => el('li', {}, el('strong', {}, T('common.warning') + ': '), T('status.policy_warnings') + ': ' + w));
      if (d.policy_error) pw.push(el('li', {}, el('strong', {}, T('common.error') + ': '), d.policy_error.message));
      warn.replaceChildren(...(pw.length ? [el('ul', { class: 'warnings' }, pw)] : []));
      say(msg, '');
    } catch (e) {
      say(msg, T('common.error') + ': ' + e.message, true);
    }
  }
  document.getElementById('status-refresh').addEventListener('click', () => load(true));
  screens.status = { show: () => load(false) };
})();
