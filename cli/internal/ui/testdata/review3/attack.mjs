// Review 3: drives Chromium as a user who signed in to the FLM UI and then
// opens a hostile page on another port of 127.0.0.1 (attack.js), a
// DNS-rebinding name for the UI's port, and a page that tosses cookies.
// Run by cli/internal/ui/review3_browser_test.go with:
//   PLAYWRIGHT  path of playwright-core's index.mjs (tools/uitest)
//   CHROMIUM    the browser
//   UI_URL      the UI's sign-in URL (#token=…)
//   ATTACKER    the hostile server's base URL
//   CHANGES     JSON list of {path, body}
// Prints one JSON line.
const { chromium } = await import(process.env.PLAYWRIGHT);
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ui = new URL(process.env.UI_URL);
const base = ui.origin;
const attacker = process.env.ATTACKER.replace(/\/$/, '');
const seen = { steps: [] };
const T = 15000;
const profile = mkdtempSync(join(tmpdir(), 'flm-review3-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let code = 0;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  await page.goto(process.env.UI_URL);
  await page.locator('#status-h').waitFor({ state: 'visible', timeout: T });
  seen.steps.push('signed in');
  const apiStatus = () => page.evaluate(async () => (await fetch('/api/keys', { headers: { 'X-FLM-Session': sessionStorage.getItem('flm-ui-session') || '' } })).status);
  seen.before = await apiStatus();
  // Not an attack: an element marked hidden (the https-acme fields of the
  // Proxies form while another mode is chosen) must not show.
  seen.hidden_shown = await page.evaluate(() => [...document.querySelectorAll('[hidden]')]
    .filter((e) => getComputedStyle(e).display !== 'none').map((e) => e.id || e.tagName));

  // The hostile page, in another tab of the same browser.
  const evil = await ctx.newPage();
  await evil.goto(attacker + '/toss');
  const q = new URLSearchParams({ ui: base, changes: process.env.CHANGES });
  await evil.goto(attacker + '/attack.html?' + q.toString());
  await evil.waitForFunction(() => window.__done === true, null, { timeout: 90000 });
  seen.steps.push('attacked');

  // DNS rebinding: Chromium resolves *.localhost to loopback itself, so
  // evil.localhost:PORT reaches the UI under a foreign name.
  for (const host of ['evil.localhost', 'flm.localhost']) {
    try {
      const resp = await evil.goto('http://' + host + ':' + ui.port + '/');
      seen['rebind_' + host] = resp ? resp.status() : 0;
    } catch (e) { seen['rebind_' + host] = 'error ' + e.message.split('\n')[0]; }
  }

  // Back in the UI's tab: the tossed cookies must not lock it out, and a
  // reload keeps the session.
  seen.after = await apiStatus();
  await page.reload();
  await page.locator('#status-h').waitFor({ state: 'visible', timeout: T });
  seen.session_gone_shown = await page.locator('#session-gone').isVisible();
  seen.cookies = (await ctx.cookies(base)).map((c) => c.name + ' path=' + c.path + ' httpOnly=' + c.httpOnly + ' sameSite=' + c.sameSite);
} catch (e) {
  seen.error = String(e && e.stack || e);
  code = 1;
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(seen));
process.exit(code);
