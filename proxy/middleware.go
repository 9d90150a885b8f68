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
// query string, no headers, no body; the key id, never the key. The line is
// built by hand into a pooled buffer: with slog it cost a third of FLM's
// own per-request time.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			s.errorHandler(c, err)
		}
		status := 0
		if r, _ := echo.UnwrapResponse(c.Response()); r != nil {
			status = r.Status
		}
		route := routeName(c.Path())
		el := time.Since(start)
		s.metrics.observe(route, status, el)
		if s.opts.AccessLog == nil {
			return nil
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
		b = clientIP(c).AppendTo(b)
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
		return nil
	}
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

// resolveClientIP is the socket peer, unless the peer is a trusted proxy.
// Then it is X-Real-IP when the proxy set one, else the right-most
// X-Forwarded-For entry that is not itself a trusted proxy. A proxied
// request whose headers do not name a valid client gets the invalid
// address: it is never mistaken for the proxy (often loopback) itself.
// Headers from any other peer are ignored.
func resolveClientIP(r *http.Request, pol *policy.Compiled) netip.Addr {
	peer := peerAddr(r)
	if !peer.IsValid() || !pol.IsTrustedProxy(peer) {
		return peer
	}
	if v := r.Header.Values("X-Real-Ip"); len(v) > 0 {
		if len(v) == 1 {
			if a, err := netip.ParseAddr(strings.TrimSpace(v[0])); err == nil {
				return a.Unmap().WithZone("")
			}
		}
		return netip.Addr{}
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return netip.Addr{}
	}
	parts := strings.Split(strings.Join(xff, ","), ",")
	for i := len(parts) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(parts[i]))
		if err != nil {
			return netip.Addr{}
		}
		a = a.Unmap().WithZone("")
		if !pol.IsTrustedProxy(a) {
			return a
		}
	}
	return netip.Addr{}
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
	s.audit.record(AuditEvent{Type: event, Severity: "medium", IP: clientIP(c).String(), Endpoint: auditPath(c),
		RequestID: requestID(c), Status: http.StatusForbidden, At: time.Now(), Detail: detail})
}

// auditPath is the request's path when it is one of FLM's routes, else
// "other": a client must not be able to write arbitrary bytes (or 64 KiB
// paths) into the audit log.
func auditPath(c *echo.Context) string {
	switch p := c.Request().URL.Path; p {
	case "/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings":
		return p
	}
	return "other"
}

// limiterKey groups IPv6 clients by /64: one host usually owns a whole
// /64 and could otherwise rotate addresses past the limit.
func limiterKey(ip netip.Addr) string {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// hostCheck refuses Host headers other than loopback names while the proxy
// is bound to loopback: a DNS-rebinding page would send its own host name.
func (s *Server) hostCheck(next echo.HandlerFunc) echo.HandlerFunc {
	if !s.opts.Config.Loopback() {
		return next
	}
	return func(c *echo.Context) error {
		if !loopbackHost(c.Request().Host) {
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

// ipLimiter is the per-IP token bucket.
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
		d := s.ipLimit.Allow(limiterKey(ip), lim)
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

// requireKey verifies the API key against the in-memory key ring.
func (s *Server) requireKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		key, problem := bearer(c.Request())
		if problem == "" {
			rec, ok := s.snap.Load().keys.Verify(key)
			if ok {
				c.Set(ctxKey, rec)
				return next(c)
			}
			problem = "invalid_or_revoked_api_key"
		}
		s.metrics.authFailures.WithLabelValues(problem).Inc()
		s.audit.record(AuditEvent{Type: "auth_failure", Severity: "medium", IP: clientIP(c).String(), Endpoint: auditPath(c), RequestID: requestID(c), Status: http.StatusUnauthorized, At: time.Now(), Detail: problem})
		e := newError(http.StatusUnauthorized, typeAuth, "invalid_api_key", "a valid FLM API key is required: send Authorization: Bearer <key>")
		e.Header = http.Header{"Www-Authenticate": {`Bearer realm="flm"`}}
		return e
	}
}

// keyLimiter is the per-key token bucket, with X-RateLimit-* headers on
// every response while a limit is set.
func (s *Server) keyLimiter(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		lim, ok := s.snap.Load().policy.KeyLimit()
		rec, _ := c.Get(ctxKey).(apikey.Record)
		if !ok {
			return next(c)
		}
		d := s.keyLimit.Allow(rec.ID, lim)
		h := c.Response().Header()
		h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
		h.Set("X-RateLimit-Reset", strconv.Itoa(int(d.Reset.Seconds()+0.999)))
		if !d.Allowed {
			return s.limited(c, "key", rec.ID, d, "rate limit of this API key reached")
		}
		return next(c)
	}
}

// limited records a refused request (metric, collapsed audit row) and
// returns the 429 with Retry-After; scope is "ip" or "key".
func (s *Server) limited(c *echo.Context, scope, keyID string, d gateway.Decision, what string) *apiError {
	s.metrics.rateLimited.WithLabelValues(scope).Inc()
	detail := "rate_limit"
	if scope == "ip" {
		detail = "ip_rate_limit"
	}
	s.audit.record(AuditEvent{Type: "rate_limited", Severity: "low", IP: clientIP(c).String(), KeyID: keyID, Endpoint: auditPath(c),
		RequestID: requestID(c), Status: http.StatusTooManyRequests, At: time.Now(), Detail: detail})
	secs := int(d.RetryAfter.Seconds() + 0.999)
	e := newError(http.StatusTooManyRequests, typeRate, "rate_limit_exceeded", "%s; retry after %d s", what, secs)
	e.Header = retryAfter(secs)
	return e
}
