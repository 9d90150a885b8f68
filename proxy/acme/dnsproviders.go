package acme

import (
	"fmt"
	"slices"
	"strings"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/cloudflare"
	"github.com/go-acme/lego/v5/providers/dns/digitalocean"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/go-acme/lego/v5/providers/dns/duckdns"
	"github.com/go-acme/lego/v5/providers/dns/exec"
	"github.com/go-acme/lego/v5/providers/dns/gandiv5"
	"github.com/go-acme/lego/v5/providers/dns/godaddyv3"
	"github.com/go-acme/lego/v5/providers/dns/hetzner"
	"github.com/go-acme/lego/v5/providers/dns/httpreq"
	"github.com/go-acme/lego/v5/providers/dns/namecheap"
	"github.com/go-acme/lego/v5/providers/dns/ovh"
	"github.com/go-acme/lego/v5/providers/dns/pdns"
	"github.com/go-acme/lego/v5/providers/dns/porkbun"
	"github.com/go-acme/lego/v5/providers/dns/route53"
)

// DNSProvider describes one DNS-01 provider FLM can drive. Credentials
// are read by lego from the environment variables named in Env (see the
// provider's lego documentation for the optional ones).
type DNSProvider struct {
	Name    string   `json:"name"`
	Aliases []string `json:"aliases,omitempty"`
	Title   string   `json:"title"`
	// Env are the variables that carry the credentials/endpoint (some are
	// alternatives to each other).
	Env []string `json:"env"`
	// Docs is lego's page for the provider.
	Docs string `json:"docs"`

	build func() (challenge.Provider, error)
}

func wrap[P challenge.Provider](f func() (P, error)) func() (challenge.Provider, error) {
	return func() (challenge.Provider, error) { return f() }
}

// dnsProviders is FLM's curated registry (lego's full registry cannot be
// built from the module proxy, and most of its SDKs would weigh on every
// build; docs/DECISIONS.md). Sorted by name.
var dnsProviders = []DNSProvider{
	{Name: "cloudflare", Title: "Cloudflare", Env: []string{"CLOUDFLARE_DNS_API_TOKEN", "CLOUDFLARE_ZONE_API_TOKEN", "CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY", "CF_DNS_API_TOKEN", "CF_ZONE_API_TOKEN", "CF_API_EMAIL", "CF_API_KEY"}, build: wrap(cloudflare.NewDNSProvider)},
	{Name: "digitalocean", Title: "DigitalOcean", Env: []string{"DO_AUTH_TOKEN"}, build: wrap(digitalocean.NewDNSProvider)},
	{Name: "dnsupdate", Aliases: []string{"rfc2136"}, Title: "DNS Update (RFC 2136)", Env: []string{"DNSUPDATE_NAMESERVER", "DNSUPDATE_TSIG_KEY", "DNSUPDATE_TSIG_SECRET", "DNSUPDATE_TSIG_ALGORITHM", "DNSUPDATE_TSIG_FILE"}, build: wrap(dnsupdate.NewDNSProvider)},
	{Name: "duckdns", Title: "Duck DNS", Env: []string{"DUCKDNS_TOKEN"}, build: wrap(duckdns.NewDNSProvider)},
	{Name: "exec", Title: "External program", Env: []string{"EXEC_PATH", "EXEC_MODE"}, build: wrap(exec.NewDNSProvider)},
	{Name: "gandiv5", Title: "Gandi LiveDNS", Env: []string{"GANDIV5_PERSONAL_ACCESS_TOKEN", "GANDIV5_API_KEY"}, build: wrap(gandiv5.NewDNSProvider)},
	{Name: "godaddyv3", Aliases: []string{"godaddy"}, Title: "GoDaddy", Env: []string{"GODADDY_API_KEY", "GODADDY_API_SECRET"}, build: wrap(godaddyv3.NewDNSProvider)},
	{Name: "hetzner", Title: "Hetzner", Env: []string{"HETZNER_API_TOKEN"}, build: wrap(hetzner.NewDNSProvider)},
	{Name: "httpreq", Title: "HTTP request (your own webhook)", Env: []string{"HTTPREQ_ENDPOINT", "HTTPREQ_MODE", "HTTPREQ_USERNAME", "HTTPREQ_PASSWORD"}, build: wrap(httpreq.NewDNSProvider)},
	{Name: "namecheap", Title: "Namecheap", Env: []string{"NAMECHEAP_API_USER", "NAMECHEAP_API_KEY"}, build: wrap(namecheap.NewDNSProvider)},
	{Name: "ovh", Title: "OVH", Env: []string{"OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY", "OVH_CLIENT_ID", "OVH_CLIENT_SECRET", "OVH_ACCESS_TOKEN"}, build: wrap(ovh.NewDNSProvider)},
	{Name: "pdns", Aliases: []string{"powerdns"}, Title: "PowerDNS", Env: []string{"PDNS_API_URL", "PDNS_API_KEY"}, build: wrap(pdns.NewDNSProvider)},
	{Name: "porkbun", Title: "Porkbun", Env: []string{"PORKBUN_API_KEY", "PORKBUN_SECRET_API_KEY"}, build: wrap(porkbun.NewDNSProvider)},
	{Name: "route53", Title: "Amazon Route 53", Env: []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_HOSTED_ZONE_ID", "AWS_PROFILE"}, build: wrap(route53.NewDNSProvider)},
}

// DNSProviders lists the DNS-01 providers FLM can drive, by name.
func DNSProviders() []DNSProvider {
	out := slices.Clone(dnsProviders)
	for i := range out {
		out[i].Docs = "https://go-acme.github.io/lego/dns/" + out[i].Name + "/"
	}
	return out
}

// lookupDNSProvider finds a provider by name or alias (case-insensitive).
func lookupDNSProvider(name string) (DNSProvider, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, p := range dnsProviders {
		if p.Name == n || slices.Contains(p.Aliases, n) {
			return p, nil
		}
	}
	names := make([]string, len(dnsProviders))
	for i, p := range dnsProviders {
		names[i] = p.Name
	}
	return DNSProvider{}, fmt.Errorf("unknown DNS provider %q (known: %s)", name, strings.Join(names, ", "))
}
