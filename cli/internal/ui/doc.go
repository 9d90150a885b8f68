// Package ui is the local web UI that `flm ui` serves (PRODUCT.md §9): one
// page with the Status, API keys, Security policy, Chat tester, Proxies and
// Setup wizard screens, calling the same core services as the CLI in-process (Services).
// It never runs the CLI and holds no rule of its own: keys, policy and
// proxies go through apikey.Service, policy.Service and proxyctl.Service,
// and every change reaches the running proxies through Services.Apply, the
// function the CLI's commands call.
//
// # Security notes
//
// The UI can create keys and open the gateway to the network, so it treats
// every request as hostile until proven otherwise:
//
//   - It listens on a loopback IP only; Listen refuses any other address.
//   - Access needs a session. `flm ui` prints a URL whose fragment carries a
//     random token (fragments are never sent to servers, proxies or logs);
//     the page posts it once to /session and gets two halves of a session:
//     an HttpOnly, SameSite=Strict cookie named after the port
//     (flm_ui_session_<port>) and, in the JSON answer, a secret the page
//     keeps in sessionStorage. The token is single-use.
//   - Browsers send cookies to every port of 127.0.0.1, so the cookie alone
//     opens nothing: every /api/ call, GETs included, needs the secret in
//     the X-FLM-Session header (sessionStorage is scoped to the origin,
//     port included; it survives a reload, not a new tab). The page's HTML
//     holds no secret. A session ends after SessionIdle without an API
//     call, after SessionMaxAge in any case, and when `flm ui` exits.
//     Every cookie of the session's name counts: another local port can
//     add ones with a longer Path, which browsers send first.
//   - Host must name the loopback address and port the UI listens on, so a
//     DNS-rebinding page (evil.example resolving to 127.0.0.1) gets 403; an
//     Origin header, when present, must be the UI's own origin.
//   - Every state-changing request must be a POST with Content-Type
//     application/json and the UI's own Origin, besides the session secret
//     in X-FLM-Session (which a cross-site page cannot read or send): a
//     cross-site form post or a text/plain "simple request" is refused
//     before anything runs. A body is exactly one JSON object (readJSON):
//     nothing after it, valid UTF-8, size-limited.
//   - Every answer carries a strict Content-Security-Policy (no inline
//     script or style, frame-ancestors 'none'), X-Frame-Options DENY,
//     X-Content-Type-Options nosniff and Referrer-Policy no-referrer; API
//     answers are Cache-Control: no-store. Assets are embedded: nothing is
//     fetched from a network at run time.
//   - Nothing logs a key, a prompt or the session token. A new key is in
//     one API answer only; the chat tester's key stays in page memory and is
//     sent only to a running proxy of this data dir, chosen by handle id
//     (the UI never relays to a URL the browser names).
//   - The setup wizard's firewall rules come from cli/internal/firewall
//     (validated CIDR and ports only, argv commands). The UI runs no
//     program itself: applying goes through the Runner the CLI wires, only
//     with consent in the request and a root process (it never escalates),
//     after saving a rollback script; install-ca is shown, never run.
package ui
