package proxyctl

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/unjuno/flm/core/flmerr"
)

// The control channel makes a running proxy apply the stored state (keys,
// policy, engines) now and say what it applied, so a command that changed
// that state can return only once the proxies enforce it. It is plain HTTP
// on a listener of its own bound to 127.0.0.1 on a random port (never the
// public port, so neither the IP allowlist nor a LAN client is involved),
// authenticated by a random 256-bit token that the proxy keeps in memory and
// the HandleStore keeps with the handle. It works the same on every OS
// (Windows has no SIGHUP).
//
// Requests carry "Authorization: Bearer <token>".
//
//   - POST ControlPath?parts=all|security: the reload runs before the
//     answer: 200 with Applied, or an error status with
//     {"error":{"code":"DB_ERROR","message":"…"}}.
//   - GET IdentifyPath: 204 and nothing else. A right answer to the token
//     proves the process is that proxy, where the OS cannot tell from the
//     pid (command lines are read only on Linux).

// ControlPath is the control channel's reload endpoint.
const ControlPath = "/flm/control/reload"

// IdentifyPath is the control channel's endpoint that only proves who
// answers.
const IdentifyPath = "/flm/control/identify"

// TokenBytes is the size of a control token's random part (256 bits).
const TokenBytes = 32

// Parts says what a reload re-reads.
type Parts string

// The parts.
const (
	// ReloadAll re-reads keys and policy and re-detects engines (fresh).
	ReloadAll Parts = "all"
	// ReloadSecurity re-reads keys and policy only: what api-keys and
	// policy changes need, without the cost of a detection.
	ReloadSecurity Parts = "security"
)

func (p Parts) valid() bool { return p == ReloadAll || p == ReloadSecurity }

// Applied is what a proxy enforces after a reload.
type Applied struct {
	// Generation counts the proxy's snapshots since it started; it only
	// grows.
	Generation uint64    `json:"generation"`
	AppliedAt  time.Time `json:"applied_at"`
	Parts      Parts     `json:"parts"`
	ActiveKeys int       `json:"active_keys"`
	// PolicySHA256 is the SHA-256 of the normalized policy document in
	// force (policy.Policy.Document), to compare with `policy show`.
	PolicySHA256 string `json:"policy_sha256"`
	// Engines and Models count the running engines and their models in
	// the routing catalog.
	Engines int `json:"engines"`
	Models  int `json:"models"`
}

// NewToken returns a fresh control token.
func NewToken() (string, error) {
	b := make([]byte, TokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", flmerr.Wrap(err, flmerr.Internal, "make a control token")
	}
	return hex.EncodeToString(b), nil
}

// ReloadFunc applies the stored state and reports what is in force.
type ReloadFunc func(ctx context.Context, parts Parts) (Applied, error)

// ControlHandler serves the control channel. Every request must carry
// token; a request without it, with another one, from a browser (Origin)
// or for a host name (DNS rebinding) is refused before reload runs. An
// empty token refuses everything.
func ControlHandler(token string, reload ReloadFunc) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path != ControlPath && r.URL.Path != IdentifyPath {
			writeControlError(w, http.StatusNotFound, flmerr.New(flmerr.InvalidArgument, "unknown control path"))
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Hashing first makes the comparison independent of the length.
		sum := sha256.Sum256([]byte(got))
		if !ok || token == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			writeControlError(w, http.StatusUnauthorized, flmerr.New(flmerr.InvalidArgument, "control token missing or wrong"))
			return
		}
		if r.Header.Get("Origin") != "" || !loopbackHost(r.Host) {
			writeControlError(w, http.StatusForbidden, flmerr.New(flmerr.InvalidArgument, "the control channel answers loopback clients only"))
			return
		}
		if r.URL.Path == IdentifyPath {
			if r.Method != http.MethodGet {
				w.Header().Set("Allow", http.MethodGet)
				writeControlError(w, http.StatusMethodNotAllowed, flmerr.New(flmerr.InvalidArgument, "use GET"))
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeControlError(w, http.StatusMethodNotAllowed, flmerr.New(flmerr.InvalidArgument, "use POST"))
			return
		}
		parts := Parts(r.URL.Query().Get("parts"))
		if parts == "" {
			parts = ReloadAll
		}
		if !parts.valid() {
			writeControlError(w, http.StatusBadRequest, flmerr.New(flmerr.InvalidArgument, "parts must be all or security"))
			return
		}
		applied, err := reload(r.Context(), parts)
		if err != nil {
			writeControlError(w, http.StatusInternalServerError, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(applied)
	})
}

// ControlError is the control channel's error body.
type ControlError struct {
	Error struct {
		Code    flmerr.Code `json:"code"`
		Message string      `json:"message"`
	} `json:"error"`
}

func writeControlError(w http.ResponseWriter, status int, err error) {
	var body ControlError
	body.Error.Code, body.Error.Message = flmerr.CodeOf(err), err.Error()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// loopbackHost reports whether hostport names a loopback IP literal.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}

// LoopbackAddr reports whether addr is "ip:port" with a loopback IP: the
// only place a control token may be sent.
func LoopbackAddr(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().IsLoopback() && ap.Port() != 0
}
