package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unjuno/flm/core/flmerr"
)

// DefaultPort is each kind's default port (PRODUCT.md §5).
func DefaultPort(k Kind) int {
	switch k {
	case Ollama:
		return 11434
	case VLLM:
		return 8000
	case LMStudio:
		return 1234
	case LlamaCPP:
		return 8080
	}
	return 0
}

// DefaultEndpoints are the default local instance of each kind, with the
// engines' own environment overrides: OLLAMA_HOST; VLLM_HOST/VLLM_PORT;
// LMSTUDIO_API_HOST (host or host:port); LLAMA_ARG_HOST/LLAMA_ARG_PORT
// (llama-server's own variables). A wildcard listen address (0.0.0.0, ::)
// is reached through loopback.
func DefaultEndpoints(env func(string) string) []Endpoint {
	host := func(h string) string {
		h = strings.Trim(h, "[]")
		if h == "" || h == "0.0.0.0" || h == "::" {
			return "127.0.0.1"
		}
		return h
	}
	mk := func(k Kind, h string, port int) Endpoint {
		return Endpoint{ID: string(k), Kind: k, BaseURL: "http://" + net.JoinHostPort(host(h), strconv.Itoa(port))}
	}
	port := func(s string, def int) int {
		if p, err := strconv.Atoi(s); err == nil && p > 0 && p < 65536 {
			return p
		}
		return def
	}
	var eps []Endpoint
	// OLLAMA_HOST: "host", "host:port", ":port" or "scheme://host:port".
	oh := strings.TrimSpace(env("OLLAMA_HOST"))
	scheme := "http"
	if s, rest, ok := strings.Cut(oh, "://"); ok {
		scheme, oh = s, rest
	}
	oh, _, _ = strings.Cut(oh, "/")
	ohost, oport := oh, ""
	if h, p, err := net.SplitHostPort(oh); err == nil {
		ohost, oport = h, p
	}
	ollama := mk(Ollama, ohost, port(oport, DefaultPort(Ollama)))
	if scheme == "https" {
		ollama.BaseURL = "https" + strings.TrimPrefix(ollama.BaseURL, "http")
	}
	eps = append(eps, ollama)
	eps = append(eps, mk(VLLM, env("VLLM_HOST"), port(env("VLLM_PORT"), DefaultPort(VLLM))))
	lh, lp := env("LMSTUDIO_API_HOST"), ""
	if h, p, err := net.SplitHostPort(lh); err == nil {
		lh, lp = h, p
	}
	eps = append(eps, mk(LMStudio, lh, port(lp, DefaultPort(LMStudio))))
	eps = append(eps, mk(LlamaCPP, env("LLAMA_ARG_HOST"), port(env("LLAMA_ARG_PORT"), DefaultPort(LlamaCPP))))
	return eps
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// NormalizeURL checks an engine base URL: http or https, a host, an
// optional port and path prefix; no credentials, query or fragment. The
// result has no trailing slash.
func NormalizeURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not a URL", clip(raw))
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("URL %q must start with http:// or https://", clip(raw))
	case u.User != nil:
		return "", fmt.Errorf("URL must not contain credentials; pass the engine's key with --api-key-env VAR")
	case u.Hostname() == "":
		return "", fmt.Errorf("URL %q has no host", clip(raw))
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("URL %q must not have a query or fragment", clip(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("URL %q has an invalid port", clip(raw))
		}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// Registry manages user-added endpoints.
type Registry struct {
	Store    EndpointStore
	Defaults []Endpoint
	Now      func() time.Time
}

// Add validates and stores a user-added endpoint. An empty id becomes
// "<kind>-<n>", the first free n from 2.
func (r *Registry) Add(ctx context.Context, kind, rawURL, id, apiKeyEnv string) (Endpoint, error) {
	k, err := ParseKind(kind)
	if err != nil {
		return Endpoint{}, flmerr.New(flmerr.InvalidArgument, "%v", err)
	}
	base, err := NormalizeURL(rawURL)
	if err != nil {
		return Endpoint{}, flmerr.New(flmerr.InvalidArgument, "%v", err)
	}
	if apiKeyEnv != "" && !envName.MatchString(apiKeyEnv) {
		return Endpoint{}, flmerr.New(flmerr.InvalidArgument, "--api-key-env %q is not an environment variable name", clip(apiKeyEnv))
	}
	existing, err := r.Store.ListEndpoints(ctx)
	if err != nil {
		return Endpoint{}, err
	}
	all := append(slices.Clone(r.Defaults), existing...)
	taken := func(id string) bool {
		return slices.ContainsFunc(all, func(ep Endpoint) bool { return ep.ID == id })
	}
	if id == "" {
		for n := 2; ; n++ {
			if id = fmt.Sprintf("%s-%d", k, n); !taken(id) {
				break
			}
		}
	}
	if !ValidEngineID(id) {
		return Endpoint{}, flmerr.New(flmerr.InvalidArgument, "engine id %q: use 1-%d letters, digits, '_' or '-'", clip(id), MaxEngineIDLen)
	}
	if taken(id) {
		return Endpoint{}, flmerr.New(flmerr.InvalidArgument, "engine id %q is already in use", id)
	}
	ep := Endpoint{ID: id, Kind: k, BaseURL: base, APIKeyEnv: apiKeyEnv, UserAdded: true}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if err := r.Store.AddEndpoint(ctx, ep, now().UTC()); err != nil {
		return Endpoint{}, err
	}
	return ep, nil
}

// Remove deletes a user-added endpoint. Default endpoints cannot be removed.
func (r *Registry) Remove(ctx context.Context, id string) error {
	if slices.ContainsFunc(r.Defaults, func(ep Endpoint) bool { return ep.ID == id }) {
		return flmerr.New(flmerr.InvalidArgument, "%q is a default endpoint; only endpoints added with `flm engines add` can be removed", id)
	}
	if err := r.Store.RemoveEndpoint(ctx, id); err != nil {
		if errors.Is(err, ErrNotFound) {
			return flmerr.New(flmerr.EngineNotFound, "no user-added engine with id %q", clip(id))
		}
		return err
	}
	return nil
}

// List returns the defaults and the user-added endpoints.
func (r *Registry) List(ctx context.Context) ([]Endpoint, error) {
	added, err := r.Store.ListEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	return append(slices.Clone(r.Defaults), added...), nil
}
