package ui

import (
	"crypto/subtle"
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/unjuno/flm/core/flmerr"
)

// CSP is the Content-Security-Policy of every answer: scripts, styles,
// fetches and images from this origin only, no inline code, no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const (
	// sessionCookie is the prefix of the session cookie's name; the UI's
	// port follows (cookieName).
	sessionCookie = "flm_ui_session"
	langCookie    = "flm_lang"
	// sessionHeader carries the session secret on every API call: the
	// second half of the credential, and the CSRF token of changes.
	sessionHeader = "X-FLM-Session"
	maxBody       = 2 << 20
)

// cookieName is the session cookie's name for the UI on port.
func cookieName(port string) string { return sessionCookie + "_" + port }

// Handler is the UI's whole HTTP surface.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler()))
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("POST /session", s.login)
	api := http.NewServeMux()
	api.HandleFunc("GET /api/status", s.apiStatus)
	api.HandleFunc("GET /api/models", s.apiModels)
	api.HandleFunc("GET /api/keys", s.apiKeys)
	api.HandleFunc("POST /api/keys", s.apiCreateKey)
	api.HandleFunc("POST /api/keys/revoke", s.apiRevokeKey)
	api.HandleFunc("GET /api/policy", s.apiPolicy)
	api.HandleFunc("POST /api/policy", s.apiSetPolicy)
	api.HandleFunc("GET /api/proxies", s.apiProxies)
	api.HandleFunc("POST /api/proxies/start", s.apiStartProxy)
	api.HandleFunc("POST /api/proxies/stop", s.apiStopProxy)
	api.HandleFunc("POST /api/proxies/reload", s.apiReloadProxy)
	api.HandleFunc("POST /api/chat", s.apiChat)
	api.HandleFunc("GET /api/qr", s.apiQR)
	api.HandleFunc("GET /api/wizard", s.apiWizard)
	api.HandleFunc("POST /api/wizard/policy", s.apiWizardPolicy)
	api.HandleFunc("POST /api/wizard/firewall", s.apiWizardFirewall)
	api.HandleFunc("POST /api/wizard/firewall/apply", s.apiWizardFirewallApply)
	mux.Handle("/api/", s.requireSession(jsonMuxErrors(api)))
	return s.guard(jsonMuxErrors(mux))
}

// jsonMuxErrors makes the mux's own answers (no such path: 404, wrong
// method: 405) the API's error envelope, which the page shows, instead of
// net/http's plain text.
func jsonMuxErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		st := &statusOnly{h: http.Header{}}
		mux.ServeHTTP(st, r)
		msg := flmerr.New(flmerr.InvalidArgument, "no such page or API: %s", r.URL.Path)
		if allow := st.h.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
			msg = flmerr.New(flmerr.InvalidArgument, "%s does not take %s (only %s)", r.URL.Path, r.Method, allow)
		}
		if st.status == 0 {
			st.status = http.StatusNotFound
		}
		writeError(w, st.status, msg)
	})
}

// statusOnly keeps the status and headers of an answer and drops its body.
type statusOnly struct {
	h      http.Header
	status int
}

func (s *statusOnly) Header() http.Header         { return s.h }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusOnly) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

// guard runs before anything else: security headers on every answer, then
// the Host and Origin checks (DNS rebinding, cross-site requests).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		if !s.hosts[strings.ToLower(r.Host)] {
			writeError(w, http.StatusForbidden, flmerr.New(flmerr.InvalidArgument, "this UI answers only at its loopback address; the Host header names another (DNS rebinding?)"))
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !s.origins[strings.ToLower(o)] {
			writeError(w, http.StatusForbidden, flmerr.New(flmerr.InvalidArgument, "requests from another origin are refused"))
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
			// A top-level navigation from another site to the page itself
			// is harmless (it shows the sign-in page); nothing else may
			// come from elsewhere.
			if !(r.Method == http.MethodGet && r.URL.Path == "/" && r.Header.Get("Sec-Fetch-Mode") == "navigate") {
				writeError(w, http.StatusForbidden, flmerr.New(flmerr.InvalidArgument, "requests from another site are refused"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// sameOriginJSON checks what a state-changing request must carry beyond
// the session: its own Origin (browsers send it on every POST) and a JSON
// body, which no HTML form and no "simple" cross-site request can send.
func (s *Server) sameOriginJSON(r *http.Request) error {
	if !s.origins[strings.ToLower(r.Header.Get("Origin"))] {
		return flmerr.New(flmerr.InvalidArgument, "a change must come from the UI's own page (Origin missing or foreign)")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return flmerr.New(flmerr.InvalidArgument, "a change must be sent as application/json")
	}
	return nil
}

// login exchanges the one-time token from the URL fragment for a session:
// an HttpOnly cookie and, in the JSON answer, the session secret the page
// keeps in sessionStorage and sends with every API call.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := s.sameOriginJSON(r); err != nil {
		writeError(w, http.StatusForbidden, err)
		return
	}
	var body struct {
		Token string `json:"token"`
	}
	if !readJSON(w, r, 4096, &body) {
		return
	}
	s.mu.Lock()
	okTok := s.token != "" && subtle.ConstantTimeCompare([]byte(body.Token), []byte(s.token)) == 1
	if okTok {
		s.token = "" // single use: a copied link is worthless afterwards
	}
	s.mu.Unlock()
	if !okTok {
		writeError(w, http.StatusUnauthorized, flmerr.New(flmerr.InvalidArgument, "this sign-in link is not valid or was already used; run `flm ui` again for a new one"))
		return
	}
	sid, err1 := randomHex(32)
	secret, err2 := randomHex(32)
	if err1 != nil || err2 != nil {
		writeError(w, http.StatusInternalServerError, flmerr.New(flmerr.Internal, "no randomness for a session"))
		return
	}
	now := s.now()
	s.mu.Lock()
	s.sessions[sid] = &session{secret: secret, started: now, lastSeen: now}
	s.mu.Unlock()
	// No Max-Age: the cookie ends with the browser; the server ends the
	// session sooner (SessionIdle, SessionMaxAge, or when `flm ui` exits).
	http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: sid, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	s.log.Info("ui session started")
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "session": secret})
}

// maxSessionCookies is how many cookies of the session's name a request
// may carry before none is looked at.
const maxSessionCookies = 8

// sessionOf returns the live session a cookie of the request names, or
// nil. The cookie alone only earns the page's shell: every API call also
// needs the secret (authorized). Ended sessions are forgotten on the way.
//
// Every cookie of the name counts, not just the first: a page on another
// port of 127.0.0.1 can set a cookie of this name with a longer Path
// (cookies are not isolated by port), which browsers then send first;
// reading only the first would lock the signed-in tab out.
func (s *Server) sessionOf(r *http.Request) *session {
	cs := r.CookiesNamed(s.cookie)
	if len(cs) == 0 || len(cs) > maxSessionCookies {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	// Constant time over every stored id: no timing hint on a guess.
	var found *session
	for id, sess := range s.sessions {
		if now.Sub(sess.lastSeen) > SessionIdle || now.Sub(sess.started) > SessionMaxAge {
			delete(s.sessions, id)
			continue
		}
		for _, c := range cs {
			if subtle.ConstantTimeCompare([]byte(id), []byte(c.Value)) == 1 {
				found = sess
			}
		}
	}
	return found
}

// authorized returns the session of an API request: its cookie names a
// live session and its X-FLM-Session header is that session's secret.
// Only then does the session count as used (idle time restarts).
func (s *Server) authorized(r *http.Request) *session {
	sess := s.sessionOf(r)
	if sess == nil {
		return nil
	}
	got := r.Header.Get(sessionHeader)
	s.mu.Lock()
	defer s.mu.Unlock()
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.secret)) != 1 {
		return nil
	}
	sess.lastSeen = s.now()
	return sess
}

// requireSession lets through API requests of a session: the cookie and
// the session secret in X-FLM-Session, GETs included (the cookie reaches
// other local servers; the secret stays in this origin's sessionStorage).
// Changes also need the UI's Origin and a JSON body.
func (s *Server) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.authorized(r) == nil {
			writeError(w, http.StatusUnauthorized, flmerr.New(flmerr.InvalidArgument,
				"no UI session in this tab: open the link `flm ui` printed (each link works once; run `flm ui` again for a new one)"))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := s.sameOriginJSON(r); err != nil {
				writeError(w, http.StatusForbidden, err)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// errorBody is the API's error answer. Field names the form field the
// error belongs to, when it belongs to one.
type errorBody struct {
	Error struct {
		Code    flmerr.Code `json:"code"`
		Message string      `json:"message"`
		Field   string      `json:"field,omitempty"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeFieldError(w, status, err, "")
}

func writeFieldError(w http.ResponseWriter, status int, err error, field string) {
	var b errorBody
	b.Error.Code = flmerr.CodeOf(err)
	b.Error.Message = err.Error()
	b.Error.Field = field
	writeJSON(w, status, b)
}

// statusOf maps a core error to an HTTP status: user errors are 400 (or
// 409 / 404 where that says more), the rest 500.
func statusOf(err error) int {
	switch c := flmerr.CodeOf(err); {
	case c == flmerr.APIKeyNotFound || c == flmerr.ProxyNotRunning:
		return http.StatusNotFound
	case c == flmerr.ProxyAlreadyRun || c == flmerr.ProxyPortInUse:
		return http.StatusConflict
	case c.UserError():
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
