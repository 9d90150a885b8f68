package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/gateway"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
)

// Context keys.
const (
	ctxRequestID = "flm.request_id"
	ctxClientIP  = "flm.client_ip"
	ctxKey       = "flm.key"
)

func requestID(c *echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

func clientIP(c *echo.Context) netip.Addr {
	ip, _ := c.Get(ctxClientIP).(netip.Addr)
	return ip
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// withRequestID gives every request an id, in the X-Request-Id header and
// in every error body. A client-sent id is not trusted (it would let a
// client forge log correlation).
func (s *Server) withRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		id := newRequestID()
		c.Set(ctxRequestID, id)
		c.Response().Header().Set("X-Request-Id", id)
		return next(c)
	}
}

// accessLog writes one JSON line per request to Options.AccessLog: no
// query string, no headers, no body; the key id, never the key. "ip" is
// the client as resolved (empty when a trusted proxy named none) and
// "peer" the socket peer, so a refused request is always identifiable.
// The line is built by hand into a pooled buffer: with slog it cost a
// third of FLM's own per-request time. A request whose response was
// aborted (a broken engine answer) is logged too, then the abort goes on.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		start := time.Now()
		aborted := true
		defer func() {
			if aborted {
				s.logRequest(c, start)
			}
		}()
		err := next(c)
		aborted = false
		if err != nil {
			s.errorHandler(c, err)
		}
		s.logRequest(c, start)
		return nil
	}
}

func (s *Server) logRequest(c *echo.Context, start time.Time) {
	status := 0
	if r, _ := echo.UnwrapResponse(c.Response()); r != nil {
		status = r.Status
	}
	path := c.Path()
	if path == "" { // refused before routing (allowlist, Host, CORS, limits)
		path = c.Request().URL.Path
	}
	route := routeName(path)
	el := time.Since(start)
	s.metrics.observe(route, status, el)
	if s.opts.AccessLog == nil {
		return
	}
	keyID := ""
	if rec, ok := c.Get(ctxKey).(apikey.Record); ok {
		keyID = rec.ID
	}
	bp := linePool.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = start.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","msg":"request","request_id":"`...)
	b = append(b, requestID(c)...)
	b = append(b, `","ip":"`...)
	// Zones dropped: an interface name is not JSON-safe.
	b = clientIP(c).WithZone("").AppendTo(b)
	b = append(b, `","peer":"`...)
	b = peerAddr(c.Request()).WithZone("").AppendTo(b)
	b = append(b, `","method":`...)
	b = strconv.AppendQuote(b, c.Request().Method)
	b = append(b, `,"route":"`...)
	b = append(b, route...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"ms":`...)
	b = strconv.AppendFloat(b, float64(el.Microseconds())/1000, 'f', 3, 64)
	b = append(b, `,"key_id":"`...)
	b = append(b, keyID...)
	b = append(b, "\"}\n"...)
	_, _ = s.opts.AccessLog.Write(b)
	*bp = b
	linePool.Put(bp)
}

// routeName is the label of a matched route (also when a middleware
// refused the request before its handler ran).
func routeName(path string) string {
	switch path {
	case "/v1/chat/completions":
		return "chat"
	case "/v1/completions":
		return "completions"
	case "/v1/embeddings":
		return "embeddings"
	case "/v1/models":
		return "models"
	case "/health":
		return "health"
	case "/metrics":
		return "metrics"
	case "/api/chat":
		return "ollama_chat"
	case "/api/generate":
		return "ollama_generate"
	case "/api/embed":
		return "ollama_embed"
	case "/api/embeddings":
		return "ollama_embeddings"
	case "/api/show":
		return "ollama_show"
	case "/api/tags":
		return "ollama_tags"
	case "/api/version":
		return "ollama_version"
	case "/v1/messages":
		return "messages"
	case "/v1/messages/count_tokens":
		return "count_tokens"
	case "/v1/responses":
		return "responses"
	}
	return "other"
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// recoverPanics turns a panic in any later handler into a 500.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.Error("panic", "request_id", requestID(c), "panic", sprintPanic(r))
				err = newError(http.StatusInternalServerError, typeServer, "internal_error", "internal error")
			}
		}()
		return next(c)
	}
}

func sprintPanic(r any) string {
	if e, ok := r.(error); ok {
		return e.Error()
	}
	if s, ok := r.(string); ok {
		return s
	}
	return "non-error panic"
}

// peerAddr is the socket peer, unmapped.
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// resolveClientIP is who a request comes from (PRODUCT.md §6). Headers
// are read only when the socket peer is in trusted_proxy_ips; any other
// peer is the client, whatever it sends. Behind a trusted proxy:
//
//   - with client_ip_header "X-Real-IP", that header alone names the
//     client (X-Forwarded-For is ignored): it must be one address;
//   - otherwise X-Forwarded-For (all its lines, in order) is walked from
//     the right, skipping trusted hops: the first untrusted address is the
//     client. X-Real-IP is ignored: reverse proxies such as Caddy pass a
//     client's own X-Real-IP through untouched.
//
// When the headers name no client — none sent, an element that does not
// parse before an untrusted one is reached, or every hop trusted — or
// name one that cannot be a forwarded client — a loopback address (a
// client on the proxy's host is the proxy's loopback, not FLM's; anyone
// can send the claim) or, in X-Real-IP, a trusted proxy — the result is
// the invalid address: the client is unknown, never taken to be
// the proxy (often loopback) itself. An unknown client fails every
// non-empty allowlist, is not loopback for /metrics, and shares one
// per-IP bucket with the other unknown clients.
//
// Echo's ExtractIPFromXFFHeader is not used: it trusts private and
// loopback ranges by default, answers the peer itself when an element is
// malformed, the left-most hop when all are trusted, and cannot parse
// zoned addresses.
func resolveClientIP(r *http.Request, pol *policy.Compiled) netip.Addr {
	peer := peerAddr(r)
	if !peer.IsValid() || !pol.IsTrustedProxy(peer) {
		return peer
	}
	if pol.RealIPHeader() {
		v := r.Header["X-Real-Ip"]
		if len(v) != 1 {
			return netip.Addr{} // none, or several: no single client named
		}
		a := parseHop(v[0])
		if a.IsLoopback() || pol.IsTrustedProxy(a) {
			return netip.Addr{}
		}
		return a
	}
	xff := r.Header["X-Forwarded-For"]
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for {
			j := strings.LastIndexByte(line, ',')
			a := parseHop(line[j+1:])
			if !a.IsValid() {
				return netip.Addr{}
			}
			if !pol.IsTrustedProxy(a) {
				if a.IsLoopback() {
					return netip.Addr{}
				}
				return a
			}
			if j < 0 {
				break
			}
			line = line[:j]
		}
	}
	return netip.Addr{}
}

// parseHop parses one X-Forwarded-For element or an X-Real-IP value: an
// IPv4 or IPv6 address, IPv6 optionally in brackets, either optionally
// with a port (some proxies add one). A zone is dropped (it names an
// interface of the host that wrote it) and an IPv4-mapped IPv6 address is
// unmapped. Anything else — empty, "unknown", obfuscated identifiers,
// garbage — is the invalid address.
func parseHop(s string) netip.Addr {
	s = strings.Trim(s, " \t")
	if s == "" || len(s) > 64 { // the longest address with a zone and a port is far shorter
		return netip.Addr{}
	}
	var a netip.Addr
	var err error
	switch {
	case s[0] == '[':
		end := strings.IndexByte(s, ']')
		if end < 0 || !portSuffix(s[end+1:]) {
			return netip.Addr{}
		}
		if a, err = netip.ParseAddr(s[1:end]); err != nil || !a.Is6() {
			return netip.Addr{}
		}
	case strings.Count(s, ":") == 1: // IPv4 with a port; an IPv6 address has at least two colons
		host, port, _ := strings.Cut(s, ":")
		if a, err = netip.ParseAddr(host); err != nil || !a.Is4() || !portSuffix(":"+port) {
			return netip.Addr{}
		}
	default:
		if a, err = netip.ParseAddr(s); err != nil {
			return netip.Addr{}
		}
	}
	return a.Unmap().WithZone("")
}

// portSuffix accepts "" or ":" followed by a port number.
func portSuffix(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != ':' || len(s) < 2 || len(s) > 6 {
		return false
	}
	n := 0
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// ipFilter resolves the client IP and applies the allowlist. /health is
// exempt so local tools can check the process whatever the policy.
func (s *Server) ipFilter(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		snap := s.snap.Load()
		ip := resolveClientIP(c.Request(), snap.policy)
		c.Set(ctxClientIP, ip)
		if c.Request().URL.Path == "/health" {
			return next(c)
		}
		if !snap.policy.AllowsIP(ip) {
			s.block(c, "ip_blocked", "not in ip_whitelist")
			return newError(http.StatusForbidden, typeForbidden, "ip_not_allowed", "your address is not allowed by this gateway's policy")
		}
		return next(c)
	}
}

func (s *Server) block(c *echo.Context, event, detail string) {
	s.metrics.blocked.WithLabelValues(event).Inc()
	ip, detail := auditWho(c, detail)
	s.audit.record(AuditEvent{Type: event, Severity: "medium", IP: ip, Endpoint: auditPath(c),
		RequestID: requestID(c), Status: http.StatusForbidden, At: time.Now(), Detail: detail})
}

// auditWho is the audit row's ip and detail: the client, or — when a
// trusted proxy named no valid client — an empty ip and the proxy's
// address in the detail, so the row still says where the request came
// from.
func auditWho(c *echo.Context, detail string) (string, string) {
	if ip := clientIP(c); ip.IsValid() {
		return ip.String(), detail
	}
	peer := "unknown"
	if p := peerAddr(c.Request()); p.IsValid() {
		peer = p.String()
	}
	return "", detail + "; client unknown: trusted proxy " + peer + " named no valid client address"
}

// auditPath is the request's path when it is one of FLM's routes, else
// "other": a client must not be able to write arbitrary bytes (or 64 KiB
// paths) into the audit log.
func auditPath(c *echo.Context) string {
	switch p := c.Request().URL.Path; p {
	case "/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings",
		"/api/chat", "/api/generate", "/api/embed", "/api/embeddings", "/api/show", "/api/tags", "/api/version",
		"/v1/messages", "/v1/messages/count_tokens", "/v1/responses":
		return p
	}
	return "other"
}

// hostCheck refuses Host headers other than loopback names while the proxy
// is bound to loopback: a DNS-rebinding page would send its own host name.
// In https-acme mode the certified domain is the proxy's own name (a local
// tunnel forwards it to loopback): it is accepted too; a rebinding page
// cannot send it without a certificate for it.
func (s *Server) hostCheck(next echo.HandlerFunc) echo.HandlerFunc {
	cfg := s.opts.Config
	if !cfg.Loopback() {
		return next
	}
	own := ""
	if cfg.Mode == proxyctl.HTTPSACME {
		own = strings.TrimSuffix(cfg.ACMEDomain, ".")
	}
	return func(c *echo.Context) error {
		host := c.Request().Host
		if own != "" {
			h := host
			if hh, _, err := net.SplitHostPort(h); err == nil {
				h = hh
			}
			if strings.EqualFold(strings.TrimSuffix(h, "."), own) {
				return next(c)
			}
		}
		if !loopbackHost(host) {
			s.block(c, "host_blocked", "non-loopback Host while bound to loopback")
			return newError(http.StatusForbidden, typeForbidden, "host_not_allowed", "this gateway only answers to localhost, 127.0.0.1 or [::1]")
		}
		return next(c)
	}
}

func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// cors answers preflights before auth and marks allowed origins on actual
// requests. Requests from an origin the policy does not allow are refused:
// a page must not be able to use the gateway even blind.
func (s *Server) cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		req := c.Request()
		origin := req.Header.Get("Origin")
		h := c.Response().Header()
		if origin == "" {
			if req.Method == http.MethodOptions {
				return c.NoContent(http.StatusNoContent)
			}
			return next(c)
		}
		h.Add("Vary", "Origin")
		pol := s.snap.Load().policy
		if !pol.AllowsOrigin(origin) {
			s.block(c, "origin_blocked", "origin not in cors.allowed_origins")
			return newError(http.StatusForbidden, typeForbidden, "origin_not_allowed", "this origin is not allowed by the gateway's CORS policy")
		}
		allowed := origin
		if pol.AllowsAnyOrigin() {
			allowed = "*"
		}
		h.Set("Access-Control-Allow-Origin", allowed)
		if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			if rh := req.Header.Get("Access-Control-Request-Headers"); rh != "" && len(rh) < 2048 {
				h.Set("Access-Control-Allow-Headers", rh)
			}
			h.Set("Access-Control-Max-Age", "600")
			return c.NoContent(http.StatusNoContent)
		}
		h.Set("Access-Control-Expose-Headers", "X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After")
		return next(c)
	}
}

// bodyLimit refuses bodies over the limit before reading them when the
// length is declared, and while reading them when it is not.
func (s *Server) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	limit := s.opts.BodyLimit
	return func(c *echo.Context) error {
		req := c.Request()
		if req.ContentLength > limit {
			return tooLarge(limit)
		}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
		}
		return next(c)
	}
}

func tooLarge(limit int64) *apiError {
	return newError(http.StatusRequestEntityTooLarge, typeInvalid, "payload_too_large", "the request body is larger than the %d-byte limit", limit)
}

func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// defaultIPLimit applies to non-loopback clients when the policy sets no
// ip_rate_limit: an exposed gateway is never unlimited by default.
var defaultIPLimit = policy.RateLimit{RPM: 600, Burst: 100}

// ipLimiter is the per-IP token bucket: an IPv4 address's, or an IPv6
// client's /64, /56 and /48 together, so rotating addresses or subnets
// of one site buys no budget (gateway.Limiter.AllowIP). It runs before
// authentication, so its memory is bounded: when its table is full, new
// clients share one bucket (they are refused first, not the clients it
// knows).
func (s *Server) ipLimiter(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		ip := clientIP(c)
		lim, ok := s.snap.Load().policy.IPLimit()
		if !ok {
			if ip.IsLoopback() {
				return next(c)
			}
			lim = defaultIPLimit
		}
		d := s.ipLimit.AllowIP(ip, lim)
		if !d.Allowed {
			return s.limited(c, "ip", "", d, "too many requests from your address")
		}
		return next(c)
	}
}

// bearer extracts the presented key: Authorization: Bearer …, or
// x-api-key (Anthropic-style clients).
func bearer(r *http.Request) (key, problem string) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, rest, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", "invalid_authorization_format"
		}
		return strings.TrimSpace(rest), ""
	}
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return strings.TrimSpace(k), ""
	}
	return "", "missing_authorization_header"
}

// requireKey verifies the API key against the in-memory key ring. An
// expired key is told so, and when; the refusal is audited with its key
// id (the holder proved they have the key, so the id is theirs).
func (s *Server) requireKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		key, problem := bearer(c.Request())
		var rec apikey.Record
		if problem == "" {
			var err error
			rec, err = s.snap.Load().keys.Check(key, time.Now())
			switch {
			case err == nil:
				c.Set(ctxKey, rec)
				return next(c)
			case errors.Is(err, apikey.ErrExpired) && rec.ExpiresAt != nil:
				problem = "expired_api_key"
			default:
				problem, rec = "invalid_or_revoked_api_key", apikey.Record{}
			}
		}
		s.metrics.authFailures.WithLabelValues(problem).Inc()
		ip, detail := auditWho(c, problem)
		s.audit.record(AuditEvent{Type: "auth_failure", Severity: "medium", IP: ip, KeyID: rec.ID, Endpoint: auditPath(c), RequestID: requestID(c), Status: http.StatusUnauthorized, At: time.Now(), Detail: detail})
		e := newError(http.StatusUnauthorized, typeAuth, "invalid_api_key", "a valid FLM API key is required: send Authorization: Bearer <key>")
		if problem == "expired_api_key" {
			e = newError(http.StatusUnauthorized, typeAuth, "expired_api_key", "this API key expired at %s; ask the gateway's owner for a new one (flm api-keys rotate, or api-keys update --expires-in)",
				rec.ExpiresAt.UTC().Format(time.RFC3339))
		}
		e.Header = http.Header{"Www-Authenticate": {`Bearer realm="flm"`}}
		return e
	}
}

// keyLimiter applies the policy's per-key token bucket and the key's own
// (apikey.Record.RPM), independently: a request needs a token from both.
// While a limit is set, every response carries the X-RateLimit-* headers
// of the tighter bucket (fewer requests left), a 429 those of the bucket
// that refused it.
func (s *Server) keyLimiter(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		lim, ok := s.snap.Load().policy.KeyLimit()
		rec, _ := c.Get(ctxKey).(apikey.Record)
		if !ok && rec.RPM <= 0 {
			return next(c)
		}
		var d gateway.Decision
		if ok {
			d = s.keyLimit.Allow(rec.ID, lim)
			if !d.Allowed {
				return s.limited(c, "key", rec.ID, d, "rate limit of this API key reached")
			}
		}
		if rec.RPM > 0 {
			own := s.ownLimit.Allow(rec.ID, policy.RateLimit{RPM: rec.RPM})
			if !own.Allowed {
				return s.limited(c, "key", rec.ID, own, "this API key's own rate limit reached")
			}
			if !ok || tighter(own, d) {
				d = own
			}
		}
		setRateHeaders(c.Response().Header(), d)
		return next(c)
	}
}

// tighter reports whether a leaves fewer requests than b (at the same
// count, the smaller bucket).
func tighter(a, b gateway.Decision) bool {
	if a.Remaining != b.Remaining {
		return a.Remaining < b.Remaining
	}
	return a.Limit < b.Limit
}

// setRateHeaders describes the bucket that decided d.
func setRateHeaders(h http.Header, d gateway.Decision) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("X-RateLimit-Reset", strconv.Itoa(int(d.Reset.Seconds()+0.999)))
}

// limited records a refused request (metric, collapsed audit row) and
// returns the 429 with Retry-After and the X-RateLimit-* headers of the
// bucket that refused it (PRODUCT.md §6: on every 429); scope is "ip" or
// "key".
func (s *Server) limited(c *echo.Context, scope, keyID string, d gateway.Decision, what string) *apiError {
	s.metrics.rateLimited.WithLabelValues(scope).Inc()
	detail := "rate_limit"
	if scope == "ip" {
		detail = "ip_rate_limit"
	}
	ip, detail := auditWho(c, detail)
	s.audit.record(AuditEvent{Type: "rate_limited", Severity: "low", IP: ip, KeyID: keyID, Endpoint: auditPath(c),
		RequestID: requestID(c), Status: http.StatusTooManyRequests, At: time.Now(), Detail: detail})
	secs := int(d.RetryAfter.Seconds() + 0.999)
	e := newError(http.StatusTooManyRequests, typeRate, "rate_limit_exceeded", "%s; retry after %d s", what, secs)
	e.Header = retryAfter(secs)
	setRateHeaders(e.Header, d)
	return e
}
