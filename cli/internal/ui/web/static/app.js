// The router: one section per screen, chosen by the URL fragment.
'use strict';
(function () {
  const { screens } = window.FLM;
  const names = ['status', 'keys', 'policy', 'chat', 'proxies', 'wizard'];
  const loaded = {};
  function show() {
    let name = location.hash.slice(1);
    if (!names.includes(name)) name = 'status';
    for (const n of names) {
      document.getElementById(n).hidden = n !== name;
      const link = document.querySelector('[data-nav="' + n + '"]');
      if (n === name) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
    }
    const sw = document.getElementById('lang-switch');
    sw.href = sw.href.split('#')[0] + '#' + name;
    if (screens[name] && screens[name].show) screens[name].show(!loaded[name]);
    loaded[name] = true;
    return name;
  }
  window.addEventListener('hashchange', () => {
    const name = show();
    document.getElementById(name + '-h').focus();
  });
  show();
})();
