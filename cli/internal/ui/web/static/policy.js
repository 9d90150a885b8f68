// Security policy form: validated by the server (core's policy rules), the
// error shown next to its field.
'use strict';
(function () {
  const { T, api, formData, clearErrors, clearOnInput, showError, say, when, applied, screens } = window.FLM;
  const form = document.getElementById('policy-form');
  // An error under a field goes as soon as the field changes.
  clearOnInput(form);
  const msg = document.getElementById('policy-msg');

  function fill(d) {
    for (const [k, v] of Object.entries(d.form)) if (form.elements[k]) form.elements[k].value = v;
  }
  // The form is disabled while the stored policy loads: what someone types
  // meanwhile would be overwritten by it (and the stored one saved instead).
  function busy(on) {
    for (const el of form.elements) el.disabled = on;
    form.setAttribute('aria-busy', on ? 'true' : 'false');
  }
  async function load() {
    clearErrors(form);
    busy(true);
    try {
      const d = await api('GET', '/api/policy');
      fill(d);
      say(msg, T('policy.updated_at', when(d.updated_at)) + (d.warnings.length ? ' ' + T('common.warning') + ': ' + d.warnings.join('; ') : ''));
    } catch (e) {
      showError(form, msg, e);
    } finally {
      busy(false);
    }
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    say(msg, '');
    try {
      const d = await api('POST', '/api/policy', formData(form));
      fill(d);
      say(msg, T('policy.saved') + ' ' + applied(d.proxies));
    } catch (e) {
      showError(form, msg, e);
      if (e.field) say(msg, T('policy.invalid'), true);
    }
  });
  screens.policy = { show: (first) => { if (first) load(); } };
})();
