// Exchanges the one-time token in the URL fragment for a session: an
// HttpOnly cookie and a secret kept in this tab's sessionStorage (scoped to
// this origin, port included; it survives a reload of the tab, not a new
// tab), then loads the app. The fragment is removed from the address bar
// and history first, so the token does not linger there.
'use strict';
(function () {
  const catalog = JSON.parse(document.body.dataset.i18n || '{}');
  const msg = document.getElementById('signin-msg');
  const m = /(?:^#|&)token=([0-9a-f]{64})(?:&|$)/.exec(location.hash);
  if (!m) { msg.textContent = catalog['signin.no_token']; return; }
  history.replaceState(null, '', location.pathname + location.search);
  fetch('/session', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token: m[1] }),
  }).then(async (resp) => {
    if (resp.ok) {
      const data = await resp.json();
      sessionStorage.setItem('flm-ui-session', data.session);
      // Same path: only a reload brings the app (a fragment change would not).
      history.replaceState(null, '', location.pathname + location.search + '#status');
      location.reload();
      return;
    }
    let text = 'HTTP ' + resp.status;
    try { text = (await resp.json()).error.message; } catch (e) { /* keep the status */ }
    msg.textContent = (catalog['signin.failed'] || '{0}').replace('{0}', text);
  }).catch((e) => { msg.textContent = (catalog['signin.failed'] || '{0}').replace('{0}', e.message); });
})();
