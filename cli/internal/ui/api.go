package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
)

// decode reads an API request's body into v (readJSON, up to maxBody).
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return readJSON(w, r, maxBody, v)
}

// readJSON reads a body of at most limit bytes into v. It must be exactly
// one JSON object in valid UTF-8 with no unknown field and nothing after
// it: a decoder that stopped after the first value would act on half of
// `{…} {…}`, and invalid UTF-8 would be stored as U+FFFD. Otherwise it
// answers 400 (413 when too large) and returns false; nothing has run.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, flmerr.New(flmerr.InvalidArgument, "the request is larger than %s; nothing changed", sizeText(tooBig.Limit)))
			return false
		}
		writeError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "the request could not be read: %v", err))
		return false
	}
	if err := decodeObject(b, v); err != nil {
		writeError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "the request is not the JSON this screen sends: %v; nothing changed", err))
		return false
	}
	return true
}

func decodeObject(b []byte, v any) error {
	if !utf8.Valid(b) {
		return errors.New("not valid UTF-8")
	}
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more follows the JSON object")
	}
	return nil
}

func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// warning is a message for the user, by catalog key, with its arguments.
type warning struct {
	Key  string   `json:"key"`
	Args []string `json:"args,omitempty"`
}

// proxyView is a handle as the UI shows it.
type proxyView struct {
	proxyctl.Handle
	Warnings []warning `json:"warnings"`
}

// expirySoon is when a certificate's expiry becomes a warning: https-acme
// renews 30 days ahead, so less than that means renewal is not happening.
const expirySoon = 30 * 24 * time.Hour

// handleWarnings says what about a running proxy deserves attention. The
// rules of what may start are proxyctl's (Preflight); these only describe
// the state of what runs.
func handleWarnings(h proxyctl.Handle, now time.Time) []warning {
	ws := []warning{}
	host, _, err := net.SplitHostPort(h.ListenAddr)
	if err == nil {
		cfg := proxyctl.Config{Mode: h.Mode, Bind: host}
		if !cfg.Loopback() && h.Mode == proxyctl.LocalHTTP {
			ws = append(ws, warning{Key: "warn.plain_http_lan", Args: []string{host}})
		}
	}
	if c := h.Certificate; c != nil {
		switch {
		case c.Expired || now.After(c.NotAfter):
			ws = append(ws, warning{Key: "warn.cert_expired", Args: []string{c.NotAfter.UTC().Format(time.RFC3339)}})
		case c.NotAfter.Sub(now) < expirySoon:
			ws = append(ws, warning{Key: "warn.cert_expires_soon", Args: []string{c.NotAfter.UTC().Format(time.RFC3339)}})
		}
		if c.LastError != "" {
			ws = append(ws, warning{Key: "warn.cert_renewal_failing", Args: []string{c.LastError}})
		}
	}
	if h.Egress.FellBack {
		ws = append(ws, warning{Key: "warn.egress_fell_back", Args: []string{h.Egress.SOCKS5Endpoint}})
	}
	if !h.Running {
		ws = append(ws, warning{Key: "warn.proxy_not_answering", Args: []string{h.LastError}})
	} else if h.LastError != "" {
		ws = append(ws, warning{Key: "warn.proxy_error", Args: []string{h.LastError}})
	}
	return ws
}

func (s *Server) proxyViews(ctx context.Context) ([]proxyView, error) {
	hs, err := s.svc.Proxies.Status(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]proxyView, 0, len(hs))
	for _, h := range hs {
		out = append(out, proxyView{Handle: h, Warnings: handleWarnings(h, now)})
	}
	return out, nil
}

type failure struct {
	Code    flmerr.Code `json:"code"`
	Message string      `json:"message"`
}

func failureOf(err error) *failure {
	if err == nil {
		return nil
	}
	return &failure{Code: flmerr.CodeOf(err), Message: err.Error()}
}

// apiStatus is the Status screen: engines, models, proxies, warnings.
func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	out := struct {
		Engines       []engine.State    `json:"engines"`
		EnginesError  *failure          `json:"engines_error,omitempty"`
		Models        []engine.Model    `json:"models"`
		ModelErrors   map[string]string `json:"model_errors"`
		Proxies       []proxyView       `json:"proxies"`
		ProxiesError  *failure          `json:"proxies_error,omitempty"`
		PolicyWarning []string          `json:"policy_warnings"`
		PolicyError   *failure          `json:"policy_error,omitempty"`
	}{Engines: []engine.State{}, Models: []engine.Model{}, ModelErrors: map[string]string{}, Proxies: []proxyView{}, PolicyWarning: []string{}}
	states, err := s.svc.Engines.Detect(r.Context(), engine.DetectOptions{Fresh: r.URL.Query().Get("fresh") == "1"})
	if err != nil {
		out.EnginesError = failureOf(err)
	} else if states != nil {
		out.Engines = states
		models, failed := s.svc.Engines.ListModels(r.Context(), states)
		if models != nil {
			out.Models = models
		}
		for id, e := range failed {
			out.ModelErrors[id] = e.Error()
		}
	}
	if ps, err := s.proxyViews(r.Context()); err != nil {
		out.ProxiesError = failureOf(err)
	} else {
		out.Proxies = ps
	}
	if st, err := s.svc.Policy.Show(r.Context()); err != nil {
		out.PolicyError = failureOf(err)
	} else if st.Warnings != nil {
		out.PolicyWarning = st.Warnings
	}
	writeJSON(w, http.StatusOK, out)
}

// apiModels lists every model of every running engine (the chat tester's
// picker).
func (s *Server) apiModels(w http.ResponseWriter, r *http.Request) {
	states, err := s.svc.Engines.Detect(r.Context(), engine.DetectOptions{})
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	models, _ := s.svc.Engines.ListModels(r.Context(), states)
	if models == nil {
		models = []engine.Model{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": models})
}

func (s *Server) apiKeys(w http.ResponseWriter, r *http.Request) {
	recs, err := s.svc.Keys.List(r.Context())
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	// core's view: never the key, never its hash.
	now := s.now()
	out := make([]apikey.View, 0, len(recs))
	for _, rec := range recs {
		out = append(out, rec.View(now))
	}
	writeJSON(w, http.StatusOK, map[string]any{"api_keys": out})
}

// apiCreateKey creates a key: its plaintext is in this answer and nowhere
// else.
func (s *Server) apiCreateKey(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Label     string `json:"label"`
		Models    string `json:"models"`
		RPM       string `json:"rpm"`
		ExpiresIn string `json:"expires_in"`
	}
	if !decode(w, r, &in) {
		return
	}
	o := apikey.CreateOptions{Label: in.Label}
	for _, m := range strings.FieldsFunc(in.Models, func(c rune) bool { return c == ',' || c == '\n' || c == '\r' }) {
		if m = strings.TrimSpace(m); m != "" {
			o.Models = append(o.Models, m)
		}
	}
	if v := strings.TrimSpace(in.RPM); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeFieldError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "rpm: %q is not a whole number", v), "rpm")
			return
		}
		if err := apikey.ValidateRPM(n); err != nil {
			writeFieldError(w, http.StatusBadRequest, err, "rpm")
			return
		}
		o.RPM = n
	}
	if v := strings.TrimSpace(in.ExpiresIn); v != "" {
		d, err := apikey.ParseLifetime(v)
		if err != nil {
			writeFieldError(w, http.StatusBadRequest, flmerr.Wrap(err, flmerr.InvalidArgument, "expires in"), "expires_in")
			return
		}
		o.ExpiresIn = d
	}
	if _, err := apikey.ValidateLabel(o.Label); err != nil {
		writeFieldError(w, http.StatusBadRequest, err, "label")
		return
	}
	if _, err := apikey.ValidateModels(o.Models); err != nil {
		writeFieldError(w, http.StatusBadRequest, err, "models")
		return
	}
	s.writes.Lock()
	defer s.writes.Unlock()
	iss, err := s.svc.Keys.CreateWith(r.Context(), o)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	s.log.Info("ui created an api key", "id", iss.ID)
	writeJSON(w, http.StatusOK, map[string]any{
		"id": iss.ID, "label": iss.Label, "plain_key": iss.Plain, "created_at": iss.CreatedAt,
		"models": iss.Models, "rpm": iss.RPM, "expires_at": iss.ExpiresAt,
		"proxies": s.svc.Apply(r.Context(), proxyctl.ReloadSecurity),
	})
}

func (s *Server) apiRevokeKey(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID string `json:"id"`
	}
	if !decode(w, r, &in) {
		return
	}
	s.writes.Lock()
	defer s.writes.Unlock()
	rec, err := s.svc.Keys.Revoke(r.Context(), in.ID)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	s.log.Info("ui revoked an api key", "id", rec.ID)
	writeJSON(w, http.StatusOK, map[string]any{"id": rec.ID, "revoked_at": rec.RevokedAt,
		"proxies": s.svc.Apply(r.Context(), proxyctl.ReloadSecurity)})
}

func (s *Server) apiProxies(w http.ResponseWriter, r *http.Request) {
	ps, err := s.proxyViews(r.Context())
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	port, err := s.svc.DefaultPort(r.Context())
	if err != nil {
		port = proxyctl.DefaultConfig().Port
	}
	writeJSON(w, http.StatusOK, map[string]any{"proxies": ps, "default_port": port})
}

// apiStartProxy is `flm proxy start` (background): Preflight, then
// StartBackground, as the CLI does.
func (s *Server) apiStartProxy(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Mode           string `json:"mode"`
		Port           string `json:"port"`
		Bind           string `json:"bind"`
		EgressMode     string `json:"egress_mode"`
		SOCKS5Endpoint string `json:"socks5_endpoint"`
		FailOpen       bool   `json:"fail_open"`
		ACMEDomain     string `json:"acme_domain"`
		ACMEEmail      string `json:"acme_email"`
		ACMEChallenge  string `json:"acme_challenge"`
		DNSProvider    string `json:"dns_provider"`
	}
	if !decode(w, r, &in) {
		return
	}
	cfg := proxyctl.DefaultConfig()
	if in.Mode != "" {
		cfg.Mode = proxyctl.Mode(in.Mode)
	}
	cfg.Bind = proxyctl.DefaultBind(cfg.Mode)
	if in.Bind = strings.TrimSpace(in.Bind); in.Bind != "" {
		cfg.Bind = in.Bind
	}
	if in.EgressMode != "" {
		cfg.Egress.Mode = proxyctl.EgressMode(in.EgressMode)
	}
	cfg.Egress.SOCKS5Endpoint = strings.TrimSpace(in.SOCKS5Endpoint)
	cfg.Egress.FailOpen = in.FailOpen
	if cfg.Mode == proxyctl.HTTPSACME {
		cfg.ACMEDomain = strings.TrimSpace(in.ACMEDomain)
		cfg.ACMEEmail = strings.TrimSpace(in.ACMEEmail)
		cfg.ACMEChallenge = strings.TrimSpace(in.ACMEChallenge)
		cfg.DNSProvider = strings.TrimSpace(in.DNSProvider)
		if cfg.ACMEDomain == "" {
			writeFieldError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "https-acme needs the domain this machine is reached at (its DNS A/AAAA record)"), "acme_domain")
			return
		}
		if cfg.ACMEChallenge == proxyctl.ChallengeDNS01 && cfg.DNSProvider == "" {
			writeFieldError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "dns-01 needs a DNS provider (see `flm security dns-providers`)"), "dns_provider")
			return
		}
	}
	if p := strings.TrimSpace(in.Port); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			writeFieldError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "port: %q is not a number (1-65535)", p), "port")
			return
		}
		cfg.Port = n
	} else {
		n, err := s.svc.DefaultPort(r.Context())
		if err != nil {
			writeError(w, statusOf(err), err)
			return
		}
		cfg.Port = n
	}
	s.writes.Lock()
	defer s.writes.Unlock()
	warnings, err := s.svc.Proxies.Preflight(r.Context(), cfg)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	h, err := s.svc.Proxies.StartBackground(r.Context(), cfg)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	if warnings == nil {
		warnings = []string{}
	}
	s.log.Info("ui started a proxy", "id", h.ID)
	writeJSON(w, http.StatusOK, map[string]any{"proxy": proxyView{Handle: h, Warnings: handleWarnings(h, s.now())}, "warnings": warnings})
}

type selectorIn struct {
	HandleID string `json:"handle_id"`
	All      bool   `json:"all"`
}

func (in selectorIn) sel() (proxyctl.Selector, error) {
	if in.All == (in.HandleID != "") {
		return proxyctl.Selector{}, flmerr.New(flmerr.InvalidArgument, "name one proxy (handle_id) or all of them")
	}
	return proxyctl.Selector{HandleID: in.HandleID, All: in.All}, nil
}

func (s *Server) apiStopProxy(w http.ResponseWriter, r *http.Request) {
	var in selectorIn
	if !decode(w, r, &in) {
		return
	}
	sel, err := in.sel()
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s.writes.Lock()
	defer s.writes.Unlock()
	stopped, err := s.svc.Proxies.Stop(r.Context(), sel)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"stopped": stopped})
}

func (s *Server) apiReloadProxy(w http.ResponseWriter, r *http.Request) {
	var in selectorIn
	if !decode(w, r, &in) {
		return
	}
	sel, err := in.sel()
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s.writes.Lock()
	defer s.writes.Unlock()
	res, err := s.svc.Proxies.Reload(r.Context(), sel, proxyctl.ReloadAll)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"proxies": res})
}

// loopbackHost reports whether a URL's host is a loopback IP: the chat
// relay only talks to proxies on this machine.
func loopbackHost(rawURL string) bool {
	rest, ok := strings.CutPrefix(rawURL, "http://")
	if !ok {
		rest, ok = strings.CutPrefix(rawURL, "https://")
	}
	if !ok {
		return false
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.Unmap().IsLoopback()
}

var errNoProxy = errors.New("no such proxy")
