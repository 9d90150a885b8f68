// Drives `flm ui` in the Debian Chromium package (never a downloaded
// browser) through the main flows, saving a screenshot of each screen in
// English and Japanese. Run by cli/internal/ui/browser_test.go, which
// starts `flm ui` and a fake engine and passes:
//   FLM_UI_URL     the URL flm ui printed (with #token=…)
//   PROXY_PORT     a free port for the proxy the test starts
//   WIZARD_PORT    a free port (and port+1) for the wizard's proxy
//   ARTIFACTS      where screenshots go
//   CHROMIUM       the browser executable (default /usr/bin/chromium)
// It prints one JSON line with what it saw, and exits 1 on any failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const url = process.env.FLM_UI_URL;
const proxyPort = process.env.PROXY_PORT;
const wizardPort = process.env.WIZARD_PORT;
const out = process.env.ARTIFACTS;
const exe = process.env.CHROMIUM || '/usr/bin/chromium';
if (!url || !proxyPort || !wizardPort || !out) { console.error('FLM_UI_URL, PROXY_PORT, WIZARD_PORT and ARTIFACTS are required'); process.exit(2); }
mkdirSync(out, { recursive: true });
const base = new URL(url).origin;
const profile = mkdtempSync(join(tmpdir(), 'flm-uitest-'));
const seen = { csp: [], console: [], steps: [] };
const T = 15000;

function check(cond, what) { if (!cond) throw new Error('check failed: ' + what); }
function step(s) { seen.steps.push(s); }

const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: exe, headless: true, locale: 'en-US', viewport: { width: 1100, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let code = 0;
try {
  await ctx.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
  });
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', (m) => {
    const t = m.text();
    seen.console.push(m.type() + ': ' + t);
    if (/Content Security Policy|Refused to/i.test(t)) seen.csp.push(t);
  });
  page.on('pageerror', (e) => seen.console.push('pageerror: ' + e.message));
  page.on('dialog', (d) => d.accept());
  const shot = (name) => page.screenshot({ path: join(out, name + '.png'), fullPage: true });
  const cspCheck = async () => { seen.csp.push(...await page.evaluate(() => window.__csp || [])); };

  // Sign in with the one-time token; the token leaves the address bar.
  await page.goto(url);
  await page.locator('#status-h').waitFor({ state: 'visible', timeout: T });
  check(!page.url().includes('token='), 'token removed from the URL: ' + page.url());
  await page.locator('#status-engines td', { hasText: 'Running (healthy)' }).first().waitFor({ timeout: T });
  await page.locator('#status-models code', { hasText: 'flm://ollama/' }).first().waitFor({ timeout: T });
  await shot('en-status'); step('status');

  // The session: the secret is in this tab's sessionStorage, never in the
  // page; the cookie alone (a fetch without the header) opens no API; a
  // reload keeps the session; a new tab has none and says so.
  const secret = await page.evaluate(() => sessionStorage.getItem('flm-ui-session'));
  check(/^[0-9a-f]{64}$/.test(secret || ''), 'session secret in sessionStorage');
  check(!(await page.content()).includes(secret), 'the secret is not in the page');
  const bare = await page.evaluate(async () => [(await fetch('/api/keys')).status,
    (await fetch('/api/keys', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"label":"x"}' })).status]);
  check(bare[0] === 401 && bare[1] === 401, 'the cookie alone is refused: ' + bare);
  await page.reload();
  await page.locator('#status-engines td', { hasText: 'Running (healthy)' }).first().waitFor({ timeout: T });
  check(await page.isHidden('#session-gone'), 'a reload keeps the session');
  const tab = await ctx.newPage();
  await tab.goto(base + '/#status');
  await tab.locator('#session-gone').waitFor({ state: 'visible', timeout: T });
  check((await tab.textContent('#session-gone')).includes('flm ui'), 'a new tab says to run flm ui again');
  await tab.locator('text=No session: see the note at the top').first().waitFor({ timeout: T });
  check((await tab.textContent('body')).split('again and open the new link').length === 2, 'the no-session advice is shown once, not again under each screen');
  await tab.screenshot({ path: join(out, 'en-new-tab.png'), fullPage: true });
  seen.csp.push(...await tab.evaluate(() => window.__csp || []));
  await tab.close();
  step('session');

  // Keys: create one, see it once, revoke it.
  await page.goto(base + '/#keys');
  await page.locator('#keys-h').waitFor({ state: 'visible' });
  await page.fill('#key-label', 'old-laptop');
  await page.click('#key-form button[type=submit]');
  await page.locator('#key-created').waitFor({ state: 'visible', timeout: T });
  const first = (await page.textContent('#key-plain')).trim();
  check(/^flm_[A-Za-z0-9_-]{43}$/.test(first), 'key shown: ' + first);
  await page.locator('#keys-list td', { hasText: 'old-laptop' }).waitFor({ timeout: T });
  await shot('en-keys-created'); step('key created');
  await page.goto(base + '/#status');
  await page.goto(base + '/#keys');
  await page.locator('#keys-list td', { hasText: 'old-laptop' }).waitFor({ timeout: T });
  check(!(await page.content()).includes(first), 'the key is shown once only');
  check(await page.locator('#key-created').isHidden(), 'the key box is hidden after leaving');
  await page.click('#keys-list button[aria-label="Revoke old-laptop"]');
  await page.locator('#keys-list td', { hasText: /^revoked/ }).waitFor({ timeout: T });
  step('key revoked');

  // A second key, for the chat tester (kept in page memory only).
  await page.fill('#key-label', 'chat-test');
  await page.click('#key-form button[type=submit]');
  await page.locator('#key-created').waitFor({ state: 'visible', timeout: T });
  const chatKey = (await page.textContent('#key-plain')).trim();
  check(chatKey.startsWith('flm_') && chatKey !== first, 'second key');
  await page.click('#key-copy');
  await page.locator('#key-copy', { hasText: 'Copied' }).waitFor({ timeout: T });
  await shot('en-keys'); step('second key');

  // Policy: an invalid entry gets core's message next to its field; then
  // a valid policy is saved.
  // The stored policy arrives late (held back 1 s here): until it has, the
  // form is disabled, so what the user types is neither overwritten by it
  // nor replaced by it on save (this once saved the stored policy instead).
  const slowPolicy = async (route) => {
    if (route.request().method() === 'GET') await new Promise((r) => setTimeout(r, 1000));
    await route.continue();
  };
  await page.route('**/api/policy', slowPolicy);
  await page.click('a[data-nav=policy]');
  await page.locator('#policy-h').waitFor({ state: 'visible' });
  check(await page.isDisabled('#pol-ip_whitelist'), 'the policy form is disabled while the stored policy loads');
  await page.fill('#pol-ip_whitelist', '127.0.0.1\nnot-an-ip');
  await page.unroute('**/api/policy', slowPolicy);
  await page.click('#policy-form button[type=submit]');
  await page.locator('#err-ip_whitelist', { hasText: 'ip_whitelist[1]' }).waitFor({ timeout: T });
  check(await page.getAttribute('#pol-ip_whitelist', 'aria-invalid') === 'true', 'field marked invalid');
  await shot('en-policy-error'); step('policy error');
  await page.fill('#pol-ip_whitelist', '127.0.0.1\n::1');
  await page.fill('#pol-rate_limit_rpm', '120');
  await page.click('#policy-form button[type=submit]');
  await page.locator('#policy-msg', { hasText: 'Policy saved.' }).waitFor({ timeout: T });
  check((await page.textContent('#err-ip_whitelist')).trim() === '', 'error cleared');
  await shot('en-policy'); step('policy saved');

  // Proxies: start one on the test's port.
  await page.click('a[data-nav=proxies]');
  await page.locator('#proxies-h').waitFor({ state: 'visible' });
  await page.fill('#px-port', proxyPort);
  await page.click('#px-start');
  await page.locator('#proxies-msg', { hasText: 'started' }).waitFor({ timeout: 40000 });
  await page.locator('#proxies-list article[data-proxy]').first().waitFor({ timeout: T });
  check((await page.textContent('#proxies-list')).includes('http://127.0.0.1:' + proxyPort), 'proxy URL listed');
  await shot('en-proxies'); step('proxy started');

  // Chat: through the proxy, with the key from this page; watch it stream.
  await page.click('a[data-nav=chat]');
  await page.locator('#chat-h').waitFor({ state: 'visible' });
  await page.locator('#chat-model option', { hasText: 'flm://ollama/' }).first().waitFor({ state: 'attached', timeout: T });
  await page.locator('#chat-proxy option').first().waitFor({ state: 'attached', timeout: T });
  check(await page.inputValue('#chat-key') === chatKey, 'the key created in this page is prefilled');
  await page.fill('#chat-prompt', 'Say hello');
  await page.evaluate(() => {
    window.__grew = [];
    new MutationObserver(() => window.__grew.push(document.getElementById('chat-out').textContent.length))
      .observe(document.getElementById('chat-out'), { childList: true, characterData: true, subtree: true });
  });
  await page.click('#chat-send');
  await page.locator('#chat-msg', { hasText: /^Done\.|^Error/ }).waitFor({ timeout: 30000 });
  const msg = await page.textContent('#chat-msg');
  check(msg.startsWith('Done.'), 'chat finished: ' + msg);
  const grew = await page.evaluate(() => window.__grew);
  const answer = await page.textContent('#chat-out');
  const ttft = await page.textContent('#chat-ttft');
  const tps = await page.textContent('#chat-tps');
  check(answer.length > 0 && grew.length >= 3, 'the answer streamed in parts: ' + JSON.stringify(grew));
  check(/^\d+ ms$/.test(ttft), 'TTFT shown: ' + ttft);
  await shot('en-chat'); step('chat streamed');
  Object.assign(seen, { answer, ttft, tps, parts: grew.length });

  // The setup wizard: LAN → dev-selfsigned → policy (the test's CIDR) →
  // firewall preview for each tool (never applied) → first key → a proxy
  // started by the wizard → a test chat through it.
  await page.click('a[data-nav=wizard]');
  await page.locator('#wizard-h').waitFor({ state: 'visible' });
  await page.locator('#wz-tool option').first().waitFor({ state: 'attached', timeout: T });
  await shot('en-wizard-exposure');
  await page.check('#wz-exp-lan');
  await page.click('#wz-next');
  await page.locator('fieldset[data-step=tls]').waitFor({ state: 'visible', timeout: T });
  await page.fill('#wz-port', 'x');
  await page.click('#wz-next');
  await page.locator('#err-wz-port', { hasText: 'port' }).waitFor({ timeout: T });
  check(await page.getAttribute('#wz-port', 'aria-invalid') === 'true', 'wizard port marked invalid');
  await page.fill('#wz-port', '8');
  check((await page.textContent('#err-wz-port')).trim() === '' && await page.getAttribute('#wz-port', 'aria-invalid') === null,
    'the wizard error goes when the field is corrected');
  await page.check('#wz-mode-self');
  check(await page.isHidden('#wz-installca'), 'no install-ca for dev-selfsigned');
  await page.fill('#wz-port', wizardPort);
  await shot('en-wizard-tls');
  await page.click('#wz-next');
  await page.locator('fieldset[data-step=policy]').waitFor({ state: 'visible', timeout: T });
  check((await page.inputValue('#wz-ip_whitelist')).startsWith('127.0.0.1\n::1'), 'allowlist suggested');
  await page.fill('#wz-ip_whitelist', '127.0.0.1\n::1\n192.168.77.0/33');
  await page.click('#wz-next');
  await page.locator('#err-wz-ip_whitelist', { hasText: 'ip_whitelist[2]' }).waitFor({ timeout: T });
  await shot('en-wizard-policy-error');
  await page.fill('#wz-ip_whitelist', '127.0.0.1\n::1\n192.168.77.0/24');
  await page.click('#wz-next');
  await page.locator('fieldset[data-step=firewall]').waitFor({ state: 'visible', timeout: T });
  check(await page.inputValue('#wz-cidr') === '192.168.77.0/24', 'CIDR from the policy step');
  const p1 = String(Number(wizardPort) + 1);
  const expect = {
    ufw: 'ufw allow proto tcp from 192.168.77.0/24 to any port ' + p1 + ' comment flm-proxy',
    firewalld: 'rule family="ipv4" source address="192.168.77.0/24" port port="' + wizardPort + '" protocol="tcp" accept',
    nftables: 'ip saddr 192.168.77.0/24 tcp dport \'{ ' + wizardPort + ', ' + p1 + ' }\' accept',
  };
  for (const [tool, text] of Object.entries(expect)) {
    await page.selectOption('#wz-tool', tool);
    await page.click('#wz-fw-preview');
    await page.locator('#wz-fw-apply', { hasText: text }).waitFor({ timeout: T });
    await shot('en-wizard-firewall-' + tool);
  }
  await page.fill('#wz-cidr', '192.168.77.0/24; reboot');
  await page.click('#wz-fw-preview');
  await page.locator('#err-wz-cidr', { hasText: 'CIDR' }).waitFor({ timeout: T });
  check(await page.isHidden('#wz-fw-out'), 'no commands for a hostile CIDR');
  await page.fill('#wz-cidr', '192.168.77.0/24');
  await page.click('#wz-fw-preview');
  await page.locator('#wz-fw-out').waitFor({ state: 'visible', timeout: T });
  // Apply without consent is refused (and nothing runs).
  if (await page.isEnabled('#wz-fw-applybtn')) {
    await page.click('#wz-fw-applybtn');
    await page.locator('#err-wz-consent', { hasText: 'agree' }).waitFor({ timeout: T });
  } else {
    check(await page.isVisible('#wz-fw-noroot'), 'the no-root note is shown');
  }
  step('wizard firewall preview');
  await page.click('#wz-next');
  await page.locator('fieldset[data-step=key]').waitFor({ state: 'visible', timeout: T });
  await page.fill('#wz-key-label', 'wizard-key');
  await page.click('#wz-key-create');
  await page.locator('#wz-key-created').waitFor({ state: 'visible', timeout: T });
  check(/^flm_/.test((await page.textContent('#wz-key-plain')).trim()), 'wizard key shown');
  await shot('en-wizard-key');
  await page.click('#wz-next');
  await page.locator('fieldset[data-step=chat]').waitFor({ state: 'visible', timeout: T });
  // Tests listen on loopback only: the LAN bind the wizard suggests is
  // replaced by 127.0.0.1.
  check(await page.inputValue('#wz-bind') === '0.0.0.0', 'LAN bind suggested');
  await page.fill('#wz-bind', '127.0.0.1');
  await page.click('#wz-start');
  await page.locator('#wz-chat-msg', { hasText: /started|Error/ }).waitFor({ timeout: 40000 });
  check((await page.textContent('#wz-chat-msg')).includes('started'), 'wizard proxy: ' + await page.textContent('#wz-chat-msg'));
  await page.locator('#wz-model option', { hasText: 'flm://ollama/' }).first().waitFor({ state: 'attached', timeout: T });
  // The picker offers chat models only: the fake Ollama's embeddings model
  // (tiny-embed) would answer a chat with an error.
  check(await page.locator('#wz-model option', { hasText: 'embed' }).count() === 0, 'no embeddings-only model in the wizard picker');
  await page.click('#wz-chat-send');
  await page.locator('#wz-chat-msg', { hasText: /It works|Error/ }).waitFor({ timeout: 30000 });
  check((await page.textContent('#wz-chat-msg')).startsWith('It works'), 'wizard chat: ' + await page.textContent('#wz-chat-msg'));
  check((await page.textContent('#wz-chat-out')).length > 0, 'wizard chat answer');
  await shot('en-wizard-chat');
  await page.click('#wz-next');
  await page.locator('fieldset[data-step=done]').waitFor({ state: 'visible', timeout: T });
  await shot('en-wizard-done');
  step('wizard chat');

  // Status: the wizard's proxy (a QR code of its LAN URL would show for
  // a LAN bind; TestQRCode checks the image).
  await page.click('a[data-nav=status]');
  await page.locator('#status-proxies article[data-proxy="proxy-' + wizardPort + '"]').waitFor({ timeout: T });
  const qr = page.locator('#status-proxies article[data-proxy="proxy-' + wizardPort + '"] figure.qr img');
  if (await qr.count() > 0) {
    await page.waitForFunction((sel) => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0; },
      '#status-proxies article[data-proxy="proxy-' + wizardPort + '"] figure.qr img', { timeout: T });
    seen.qr = true;
  }
  await shot('en-status-qr');
  // A QR image needs the session header too: loaded by fetch into a data:
  // URL (allowed by the CSP's img-src), here for the proxy's local URL.
  const qrWidth = await page.evaluate(async (id) => {
    const img = new Image();
    const loaded = new Promise((res, rej) => { img.onload = res; img.onerror = rej; });
    await window.FLM.svgImage(img, '/api/qr?proxy=' + id + '&which=local');
    await loaded;
    return img.naturalWidth;
  }, 'proxy-' + wizardPort);
  check(qrWidth > 0, 'QR image loaded with the session header');
  seen.qr = true;

  // Phone-sized screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('a[data-nav=status]');
  await page.locator('#status-proxies article').first().waitFor({ timeout: T });
  await shot('en-status-phone');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, 'no horizontal scrolling of the page on a phone: ' + overflow);
  await page.setViewportSize({ width: 1100, height: 900 });

  // Japanese: the switch, then every screen.
  await page.click('#lang-switch');
  await page.locator('#status-h', { hasText: '状態' }).waitFor({ timeout: T });
  check(await page.getAttribute('html', 'lang') === 'ja', 'html lang=ja');
  await page.locator('#status-engines td', { hasText: '実行中' }).first().waitFor({ timeout: T });
  await shot('ja-status');
  for (const s of ['keys', 'policy', 'chat', 'proxies']) {
    await page.click('a[data-nav=' + s + ']');
    await page.locator('#' + s + '-h').waitFor({ state: 'visible' });
    await page.waitForLoadState('networkidle');
    await shot('ja-' + s);
  }
  await page.fill('#px-port', 'x');
  await page.click('a[data-nav=policy]');
  await page.fill('#pol-cors_origins', 'ftp://example.com');
  await page.click('#policy-form button[type=submit]');
  await page.locator('#err-cors_origins', { hasText: 'cors.allowed_origins[0]' }).waitFor({ timeout: T });
  await shot('ja-policy-error');
  step('ja');

  // The setup wizard in Japanese, to the firewall preview (nothing is
  // applied: the test never changes this machine's firewall).
  await page.click('a[data-nav=wizard]');
  await page.locator('#wizard-h', { hasText: 'セットアップ' }).waitFor({ state: 'visible', timeout: T });
  await page.locator('#wz-tool option').first().waitFor({ state: 'attached', timeout: T });
  await page.check('#wz-exp-lan');
  await shot('ja-wizard-exposure');
  await page.click('#wz-next');
  await page.locator('fieldset[data-step=tls]').waitFor({ state: 'visible', timeout: T });
  check(await page.isVisible('#wz-installca-cmd'), 'install-ca command shown for packaged-ca');
  await page.fill('#wz-port', wizardPort);
  await shot('ja-wizard-tls');
  await page.click('#wz-next');
  await page.locator('fieldset[data-step=policy]').waitFor({ state: 'visible', timeout: T });
  await page.fill('#wz-ip_whitelist', '127.0.0.1\n::1\n192.168.77.0/24');
  await page.click('#wz-next');
  await page.locator('fieldset[data-step=firewall]').waitFor({ state: 'visible', timeout: T });
  check(await page.inputValue('#wz-cidr') === '192.168.77.0/24', 'CIDR from the policy step');
  await page.selectOption('#wz-tool', 'firewalld');
  await page.click('#wz-fw-preview');
  await page.locator('#wz-fw-apply', { hasText: 'firewall-cmd' }).waitFor({ timeout: T });
  await shot('ja-wizard-firewall');
  step('ja wizard');

  // Keyboard: a nav link works with Enter and moves focus to the screen.
  await page.focus('a[data-nav=keys]');
  await page.keyboard.press('Enter');
  await page.locator('#keys-h').waitFor({ state: 'visible', timeout: T });
  check(await page.evaluate(() => document.activeElement && document.activeElement.id) === 'keys-h', 'focus moved to the screen heading');
  await cspCheck();
  check(seen.csp.length === 0, 'no CSP violation: ' + JSON.stringify(seen.csp));
  check(!seen.console.some((c) => c.startsWith('pageerror')), 'no page error: ' + JSON.stringify(seen.console));
} catch (e) {
  code = 1;
  seen.error = String(e && e.stack || e);
  try { await ctx.pages()[0].screenshot({ path: join(out, 'failure.png'), fullPage: true }); } catch (e2) { /* best effort */ }
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(seen));
process.exit(code);
