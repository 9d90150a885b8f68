package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	mangokong "github.com/alecthomas/mango-kong"
	"github.com/muesli/roff"
)

// ManCmd is `flm man` (hidden): the man page the packages install as
// flm.1, generated from the command tree so it never drifts from it.
type ManCmd struct{}

// Run prints the roff source of flm(1).
func (ManCmd) Run(a *App, k *kong.Kong) error {
	app := *k.Model
	app.Node = visibleNode(k.Model.Node, nil)
	app.Help = "a secure personal gateway for local LLM engines (Ollama, LM Studio, vLLM, llama.cpp)"
	app.Detail = "flm detects local LLM engines and serves them through one OpenAI-compatible proxy with API keys, " +
		"an IP allowlist, rate limits and TLS (local HTTP, a self-signed or local CA, or ACME). Every command prints one JSON " +
		"object ({\"version\":\"1.0\",\"data\":...}) on stdout, or a human rendering with --format text. " +
		"`flm service install` runs the proxy as a systemd, launchd or Windows service."
	page := mangokong.NewManPage(1, &app)
	for _, sec := range [][2]string{{"Exit Status", "0 on success, 1 for an error the user can fix, 2 for an internal one (DB_ERROR, MIGRATION_FAILED, IO_ERROR, INTERNAL). " +
		"Errors are one JSON object on stderr with a stable code (or two lines with --format text)."},
		{"Environment", "FLM_DATA_DIR (the data directory), FLM_DB_KEY_SOURCE (auto, keychain, file or env), FLM_DB_KEY (security.db's key, 64 hex digits), " +
			"FLM_API_KEY (the key flm chat uses), FLM_ACME_DIRECTORY, FLM_ACME_CA_ROOTS, FLM_ACME_DNS_RESOLVERS (https-acme), FLM_SOCKS5_USERNAME and FLM_SOCKS5_PASSWORD (SOCKS5 egress)."},
		{"Files", "The data directory: $XDG_DATA_HOME/flm or ~/.local/share/flm on Linux, ~/Library/Application Support/flm on macOS, flm in %LOCALAPPDATA% on Windows; " +
			"/var/lib/flm for the system service. It holds config.db, security.db (encrypted), backups/, certs/ and logs/. " +
			"The system service's unit is /usr/lib/systemd/system/flm.service (packaged) or /etc/systemd/system/flm.service; secrets for it go in /etc/flm/service.env."},
		{"See Also", "systemctl(1), journalctl(1); docs/specs/CLI_SPEC.md and docs/guides/SERVICE_GUIDE.md in the FLM sources."},
	} {
		page = page.WithSection(sec[0], manText(sec[1]))
	}
	out := page.Build(roff.NewDocument())
	// Reproducible packages: the date in .TH comes from SOURCE_DATE_EPOCH
	// when it is set (mango stamps time.Now()).
	if sec, err := strconv.ParseInt(a.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		now, then := time.Now().Format("2006-01-02"), time.Unix(sec, 0).UTC().Format("2006-01-02")
		if i := strings.IndexByte(out, '\n'); i > 0 {
			out = strings.Replace(out[:i], `"`+now+`"`, `"`+then+`"`, 1) + out[i:]
		}
	}
	_, err := fmt.Fprint(a.Stdout, out)
	return err
}

// visibleNode copies n for the man page: without hidden commands and
// flags (mango-kong skips hidden commands but lists hidden flags such as
// --access-log), with a command's detailed help after its one-line help
// (mango prints the detail glued to the command's name), and with "%"
// doubled (roff uses every text as a Printf format).
func visibleNode(n *kong.Node, parent *kong.Node) *kong.Node {
	c := *n
	c.Parent = parent
	c.Help = manText(n.Help)
	if n.Detail != "" {
		c.Help += "\n" + manText(n.Detail)
	}
	c.Detail = ""
	c.Flags = nil
	for _, f := range n.Flags {
		if f.Hidden {
			continue
		}
		fc, v := *f, *f.Value
		v.Help = manText(v.Help)
		fc.Value = &v
		c.Flags = append(c.Flags, &fc)
	}
	c.Children = nil
	for _, ch := range n.Children {
		if !ch.Hidden {
			c.Children = append(c.Children, visibleNode(ch, &c))
		}
	}
	return &c
}

func manText(s string) string { return strings.ReplaceAll(s, "%", "%%") }
