package cli

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy/devtls"
	"github.com/unjuno/flm/proxy/egress"
)

// tlsEnv is what a TLS mode's setup may use.
type tlsEnv struct {
	cfg     proxyctl.Config
	dataDir string
	sec     *store.DB // security.db: certificates and ACME accounts (store.Certs)
	log     *slog.Logger
	// egress carries ACME traffic like engine traffic (PRODUCT.md §8);
	// nil = direct.
	egress *egress.Dialer
}

// tlsSetup is a TLS mode's part of a running proxy.
type tlsSetup struct {
	// Config is the HTTPS listener's configuration (nil in local-http).
	// Modes that renew or reissue serve through GetCertificate, so a new
	// certificate applies to the next handshake without a restart.
	Config *tls.Config
	// Challenge answers ACME HTTP-01 challenges on the HTTP port (nil =
	// none); see proxy.Options.Challenge.
	Challenge http.Handler
	// Obtain, if set, runs once the listeners serve and before the proxy
	// registers: it must leave a valid certificate in place or return the
	// error that stops the proxy (https-acme: PROXY_ACME_ERROR).
	Obtain func(ctx context.Context) error
	// Maintain, if set, runs while the proxy serves (renewal, reissue when
	// the LAN addresses change) and returns when ctx ends.
	Maintain func(ctx context.Context)
}

// prepareTLS sets up the TLS of env.cfg's mode. A mode that cannot get a
// certificate fails here or in Obtain; it never falls back to plain HTTP.
func (a *App) prepareTLS(ctx context.Context, env tlsEnv) (tlsSetup, error) {
	switch env.cfg.Mode {
	case proxyctl.DevSelfSigned:
		files, err := devtls.Ensure(filepath.Join(env.dataDir, "certs"), devtls.Hosts(env.cfg.Bind), time.Now())
		if err != nil {
			return tlsSetup{}, flmerr.Wrap(err, flmerr.ProxyCertFailed, "prepare the development certificate")
		}
		tc, err := devtls.ServerTLSConfig(files)
		if err != nil {
			return tlsSetup{}, flmerr.Wrap(err, flmerr.ProxyCertFailed, "load the development certificate")
		}
		return tlsSetup{Config: tc}, nil
	case proxyctl.HTTPSACME:
		return a.acmeTLS(ctx, env)
	case proxyctl.PackagedCA:
		return a.localCATLS(ctx, env)
	}
	return tlsSetup{}, nil
}
