package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/proxy/acme"
)

// acmeHTTPClient, when set (tests only), carries the ACME traffic; nil =
// the egress's client in tor/socks5 mode, else the manager's default.
var acmeHTTPClient func() *http.Client

// acmeTLS sets up https-acme: the certificate comes from the CA named by
// FLM_ACME_DIRECTORY (default Let's Encrypt production), is kept in
// security.db with the account key, and is served and renewed by an
// acme.Manager. Obtain gets it (or loads a valid stored one) once the
// listeners serve; Maintain renews it.
func (a *App) acmeTLS(_ context.Context, env tlsEnv) (tlsSetup, error) {
	dir, err := acme.ResolveDirectory(a.Getenv(acme.EnvDirectory))
	if err != nil {
		return tlsSetup{}, flmerr.New(flmerr.ProxyInvalidConfig, "%v", err)
	}
	roots, err := acme.LoadRoots(a.Getenv(acme.EnvCARoots))
	if err != nil {
		return tlsSetup{}, flmerr.New(flmerr.ProxyInvalidConfig, "%v", err)
	}
	resolvers, err := acme.ParseResolvers(a.Getenv(acme.EnvDNSResolvers))
	if err != nil {
		return tlsSetup{}, flmerr.New(flmerr.ProxyInvalidConfig, "%v", err)
	}
	var client *http.Client
	switch {
	case acmeHTTPClient != nil:
		client = acmeHTTPClient()
	case env.egress != nil && env.egress.SOCKS():
		client = env.egress.HTTPClient() // the CA is reached through SOCKS5, name resolved remotely
	}
	st := store.Certs{DB: env.sec}
	m, err := acme.New(acme.Options{
		Domain: env.cfg.ACMEDomain, Email: env.cfg.ACMEEmail, Challenge: env.cfg.ACMEChallenge, DNSProvider: env.cfg.DNSProvider,
		Directory: dir, Roots: roots, DNSResolvers: resolvers, HTTPClient: client,
		Store: st, Accounts: st, Audit: store.Audit{DB: env.sec}, Logger: env.log,
	})
	if err != nil {
		return tlsSetup{}, err
	}
	return tlsSetup{Config: m.TLSConfig(), Challenge: m.HTTPHandler(), Obtain: m.Obtain, Maintain: m.Run}, nil
}

// DNSProvidersCmd is `flm security dns-providers`.
type DNSProvidersCmd struct{}

// Run lists the DNS providers dns-01 can use, with the environment
// variables that carry their credentials.
func (DNSProvidersCmd) Run(a *App) error {
	ps := acme.DNSProviders()
	return a.print(map[string]any{"providers": ps}, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPROVIDER\tCREDENTIALS (env)")
		for _, p := range ps {
			name := p.Name
			if len(p.Aliases) > 0 {
				name += " (" + strings.Join(p.Aliases, ", ") + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", name, p.Title, strings.Join(p.Env, " "))
		}
		_ = tw.Flush()
		fmt.Fprintln(w, "\nDetails per provider: https://go-acme.github.io/lego/dns/<name>/")
	})
}
