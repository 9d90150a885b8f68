package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/engine/enginehttp"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	llamacpp "github.com/unjuno/flm/engine-llamacpp"
	lmstudio "github.com/unjuno/flm/engine-lmstudio"
	ollama "github.com/unjuno/flm/engine-ollama"
	vllm "github.com/unjuno/flm/engine-vllm"
	"github.com/unjuno/flm/proxy"
	"github.com/unjuno/flm/proxy/egress"
)

// egressCheckWait separates the start-up check's tries.
var egressCheckWait = 500 * time.Millisecond

// newEgress builds the dialer of an egress configuration, credentials from
// the environment. A configuration that cannot work is PROXY_INVALID_CONFIG.
func (a *App) newEgress(e proxyctl.Egress) (*egress.Dialer, error) {
	auth, err := egress.AuthFromEnv(a.Getenv)
	if err != nil {
		return nil, flmerr.New(flmerr.ProxyInvalidConfig, "%v", err)
	}
	if e.Mode == proxyctl.EgressDirect || e.Mode == "" {
		auth = nil
	}
	d, err := egress.New(egress.Config{Mode: e.Mode, Endpoint: egress.EndpointOf(e), Auth: auth})
	if err != nil {
		return nil, flmerr.New(flmerr.ProxyInvalidConfig, "%v", err)
	}
	return d, nil
}

// startEgress is the egress of a proxy about to start (PRODUCT.md §8): the
// SOCKS endpoint is checked (egress.StartupTries tries); a failure is
// PROXY_INVALID_CONFIG naming the endpoint, unless cfg allows failing
// open: then the proxy reaches engines directly, says so on stderr, in the
// audit log and in its handle (fail_open, fell_back). cfg.Egress is
// completed for the handle and the stored profile: Tor's default
// endpoint, the time of the check.
func (a *App) startEgress(ctx context.Context, cfg *proxyctl.Config, audit proxy.AuditSink) (*egress.Dialer, error) {
	e := &cfg.Egress
	if e.Mode == proxyctl.EgressTor && e.SOCKS5Endpoint == "" {
		e.SOCKS5Endpoint = egress.DefaultTorEndpoint
	}
	d, err := a.newEgress(*e)
	if err != nil || !d.SOCKS() {
		return d, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	e.LastCheck = &now
	err = d.StartupCheck(ctx, egressCheckWait)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, egress.ErrUnavailable) {
		return nil, err // the caller's context ended
	}
	if !e.FailOpen {
		hint := "start the SOCKS server (Tor: `systemctl start tor`), fix --socks5-endpoint, or accept direct connections with --egress-fail-open"
		if errors.Is(err, egress.ErrAuthRefused) {
			hint = "set " + egress.EnvUsername + " and " + egress.EnvPassword + " to the credentials the SOCKS server expects"
		}
		return nil, flmerr.New(flmerr.ProxyInvalidConfig, "%v (after %d tries); %s", err, egress.StartupTries, hint)
	}
	msg := fmt.Sprintf("%v (after %d tries); --egress-fail-open: engines that are not on loopback are reached DIRECTLY, without SOCKS, until the proxy is restarted", err, egress.StartupTries)
	fmt.Fprintf(a.Stderr, "warning: %s\n", msg)
	if audit != nil {
		ev := proxy.AuditEvent{Type: "egress_fail_open", Severity: "high", Endpoint: d.Endpoint(), Status: 0, Count: 1, At: now, Detail: msg}
		if aerr := audit.Audit(ctx, []proxy.AuditEvent{ev}); aerr != nil {
			return nil, flmerr.Wrap(aerr, flmerr.CodeOf(aerr), "record the egress fail-open in the audit log")
		}
	}
	e.FellBack = true
	return a.newEgress(proxyctl.Egress{Mode: proxyctl.EgressDirect})
}

// driversVia builds one driver per kind on a shared HTTP client whose
// connections go through d (detection, health checks, model lists).
func driversVia(getenv func(string) string, d *egress.Dialer) map[engine.Kind]engine.Driver {
	c := enginehttp.NewWithDialer(getenv, d.DialContext)
	return map[engine.Kind]engine.Driver{
		engine.Ollama:   ollama.New(c),
		engine.VLLM:     vllm.New(c),
		engine.LMStudio: lmstudio.New(c),
		engine.LlamaCPP: llamacpp.New(c),
	}
}

// storedEgress is the egress outside a proxy (`engines detect`, `models
// list`, the UI's status). The strictest wins: while any recorded proxy
// uses tor or socks5, the most recently started of those; otherwise that
// of the proxy started most recently (proxy_profiles), direct when none
// was. Starting a second, plain proxy never makes detection go around a
// Tor proxy that still runs. A SOCKS egress that is down makes remote
// engines error-network, never reached directly; a proxy that fell back
// to direct at its start does not make the CLI do the same.
func (a *App) storedEgress(d *store.DB) (*egress.Dialer, error) {
	hs, err := store.Handles{DB: d}.List(a.ctx)
	if err != nil {
		return nil, err
	}
	var socks *proxyctl.Handle
	for i := range hs {
		if hs[i].Egress.Mode != proxyctl.EgressDirect && hs[i].Egress.Mode != "" && (socks == nil || hs[i].StartedAt.After(socks.StartedAt)) {
			socks = &hs[i]
		}
	}
	if socks != nil {
		return a.newEgress(proxyctl.Egress{Mode: socks.Egress.Mode, SOCKS5Endpoint: socks.Egress.SOCKS5Endpoint})
	}
	cfg, ok, err := store.Handles{DB: d}.LatestProfile(a.ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		cfg.Egress = proxyctl.Egress{Mode: proxyctl.EgressDirect}
	}
	return a.newEgress(cfg.Egress)
}

// engineDrivers are the drivers of detection outside a proxy, through the
// stored egress. (engines.go's detector calls it.)
func (a *App) engineDrivers(d *store.DB) (map[engine.Kind]engine.Driver, error) {
	e, err := a.storedEgress(d)
	if err != nil {
		return nil, err
	}
	return driversVia(a.Getenv, e), nil
}

// egressCheckResult is `flm check`'s egress line: the stored egress, and
// whether its SOCKS endpoint answers a handshake now.
func egressCheckResult(ctx context.Context, a *App) checkResult {
	const name = "egress"
	d, err := a.DB(store.Config)
	if err != nil {
		return checkResult{name, "error", err.Error()}
	}
	cfg, ok, err := store.Handles{DB: d}.LatestProfile(ctx)
	if err != nil {
		return checkResult{name, "error", err.Error()}
	}
	if !ok || cfg.Egress.Mode == proxyctl.EgressDirect || cfg.Egress.Mode == "" {
		return checkResult{name, "ok", "direct: engines are reached without a SOCKS proxy"}
	}
	e, err := a.newEgress(cfg.Egress)
	if err != nil {
		return checkResult{name, "error", err.Error()}
	}
	if err := e.Check(ctx); err != nil {
		if cfg.Egress.FailOpen {
			return checkResult{name, "warning", fmt.Sprintf("%s: %v; with --egress-fail-open a proxy started now reaches remote engines DIRECTLY (a running proxy keeps the egress it started with)", cfg.Egress.Mode, err)}
		}
		return checkResult{name, "error", fmt.Sprintf("%s: %v; remote engines are unreachable until it answers", cfg.Egress.Mode, err)}
	}
	return checkResult{name, "ok", fmt.Sprintf("%s via %s: the SOCKS5 endpoint completes a handshake", cfg.Egress.Mode, e.Endpoint())}
}

// warnEgressFallback prints, after a background start, that the proxy fell
// back to direct egress (the child's own warning went to its log).
func warnEgressFallback(a *App, h proxyctl.Handle) {
	if h.Egress.FellBack {
		fmt.Fprintf(a.Stderr, "warning: the SOCKS5 egress %s did not answer; --egress-fail-open: the proxy reaches engines that are not on loopback DIRECTLY (see the audit log)\n", h.Egress.SOCKS5Endpoint)
	}
}
