package cli

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/cli/internal/truststore"
	"github.com/unjuno/flm/core/certs"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/proxy/devtls"
	"github.com/unjuno/flm/proxy/localca"
)

// localCAInterval is how often a packaged-ca proxy checks its LAN
// addresses and the certificate's expiry.
const localCAInterval = time.Minute

// localCAManager is the local CA of dataDir, stored in sec (security.db).
func localCAManager(dataDir string, sec *store.DB, bind string) *localca.Manager {
	return &localca.Manager{
		Store:    store.Certs{DB: sec},
		RootFile: filepath.Join(dataDir, "certs", LocalCARootFile),
		Hostname: devtls.MachineHostname(),
		Bind:     bind,
	}
}

// localCATLS sets up packaged-ca: the server certificate is made (or
// reused) now, served through GetCertificate, and reissued by Maintain when
// the LAN addresses change or it is due for renewal.
func (a *App) localCATLS(ctx context.Context, env tlsEnv) (tlsSetup, error) {
	m := localCAManager(env.dataDir, env.sec, env.cfg.Bind)
	m.Log = env.log
	if _, err := m.Refresh(ctx); err != nil {
		if errors.Is(err, localca.ErrOutsideConstraints) {
			return tlsSetup{}, flmerr.Wrap(err, flmerr.ProxyInvalidConfig, "packaged-ca")
		}
		return tlsSetup{}, flmerr.Wrap(err, flmerr.ProxyCertFailed, "prepare the local CA's server certificate")
	}
	return tlsSetup{Config: m.TLSConfig(), Maintain: func(ctx context.Context) { m.Maintain(ctx, localCAInterval) }}, nil
}

// isTerminal reports whether r is an interactive terminal (tests replace
// it).
var isTerminal = defaultIsTerminal

func defaultIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && truststore.IsTerminal(f)
}

// trustOptions are the trust store options of the real machine.
var trustOptions = truststore.Options{}

// caOutput is what install-ca and uninstall-ca print.
type caOutput struct {
	Root struct {
		Subject     string    `json:"subject"`
		Fingerprint string    `json:"fingerprint_sha256"`
		NotAfter    time.Time `json:"not_after"`
		File        string    `json:"file"`
	} `json:"root"`
	Changed bool                `json:"changed"`
	Changes []truststore.Change `json:"changes"`
	Notes   []string            `json:"notes"`
}

// localRoot returns the root certificate for install-ca (create: made if
// missing, replaced if an earlier FLM made it) or uninstall-ca (nil if
// there is none). Root working in another user's data dir (sudo) reads the
// exported certificate instead of opening security.db, whose key is in
// that user's keychain and whose files root must not take over. That file
// is the user's to replace, so before trusting it the certificate must be
// this machine's local CA exactly (localca.CheckRoot: its one host name is
// this machine's, it is limited to TLS servers); for removal any FLM root
// will do.
func (a *App) localRoot(create bool) (*x509.Certificate, string, error) {
	dir, err := a.DataDir()
	if err != nil {
		return nil, "", err
	}
	file := filepath.Join(dir, "certs", LocalCARootFile)
	if truststore.OwnedByOther(dir) {
		data, err := os.ReadFile(file)
		if err != nil {
			if !create && errors.Is(err, os.ErrNotExist) {
				return nil, file, nil
			}
			return nil, file, flmerr.Wrap(err, flmerr.IOError, "read the local CA certificate (run `flm security install-ca` as the data dir's owner first)")
		}
		if !create {
			root, err := localca.ParseRootForRemoval(data)
			if err != nil {
				return nil, file, flmerr.Wrap(err, flmerr.InvalidArgument, "refusing %s", file)
			}
			return root, file, nil
		}
		root, err := localca.ParseRoot(data, devtls.MachineHostname())
		switch {
		case errors.Is(err, localca.ErrOutdatedRoot):
			return nil, file, flmerr.Wrap(err, flmerr.InvalidArgument, "refusing %s; nothing changed. Run `flm --data-dir %s security install-ca` as the data dir's owner first (it replaces the local CA), then again with sudo", file, shellQuote(dir))
		case errors.Is(err, localca.ErrForeignHost):
			return nil, file, flmerr.Wrap(err, flmerr.InvalidArgument, "refusing %s; nothing changed: a local CA for another host name is not trusted (a renamed machine: see docs/guides/HTTPS_LOCAL_CA_GUIDE.md)", file)
		case err != nil:
			return nil, file, flmerr.Wrap(err, flmerr.InvalidArgument, "refusing %s; nothing changed", file)
		}
		return root, file, nil
	}
	sec, err := a.DB(store.Security)
	if err != nil {
		return nil, file, err
	}
	m := localCAManager(dir, sec, "")
	m.OnReplace = func(old *x509.Certificate, why error) {
		where := truststore.SystemFile(old, trustOptions)
		if where == "" {
			where = "its entries are named " + truststore.Name(old)
		}
		a.warn("LOCAL_CA_REPLACED", fmt.Sprintf("replaced the local CA SHA-256 %s (%v): run `sudo flm security install-ca` again, and on every device that trusted the old root install the new %s; the old root stays trusted until you remove it by hand (%s)", localca.Fingerprint(old), why, file, where))
	}
	if !create {
		root, err := localca.LoadRoot(a.ctx, m.Store)
		if errors.Is(err, certs.ErrNotFound) {
			return nil, file, nil
		}
		if err != nil {
			return nil, file, flmerr.Wrap(err, flmerr.CodeOf(err), "read the local CA")
		}
		return root, file, nil
	}
	root, created, err := m.Root(a.ctx)
	if err != nil {
		return nil, file, flmerr.Wrap(err, flmerr.CodeOf(err), "prepare the local CA")
	}
	if created {
		a.warn("LOCAL_CA_CREATED", fmt.Sprintf("created a new local CA (SHA-256 %s); a device trusts it only after install-ca there or after you install %s on it (an earlier local CA is not trusted by it)", localca.Fingerprint(root), file))
	}
	return root, file, nil
}

// consent asks the user, unless yes. Without a terminal it refuses.
func (a *App) consent(yes bool, cmd, question string) error {
	if yes {
		return nil
	}
	if !isTerminal(a.Stdin) {
		return flmerr.New(flmerr.InvalidArgument, "%s changes this machine's trust store and needs your consent: run it in a terminal to be asked, or pass --yes", cmd)
	}
	fmt.Fprintf(a.Stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(a.Stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return flmerr.New(flmerr.InvalidArgument, "%s: not confirmed, nothing changed", cmd)
}

func (a *App) needPrivilege(cmd string) error {
	if truststore.Privileged(trustOptions) {
		return nil
	}
	dir, _ := a.DataDir()
	return flmerr.New(flmerr.InvalidArgument, "%s: %v; nothing changed. Run: %s", cmd, truststore.ErrNeedsPrivilege,
		truststore.SudoHint(fmt.Sprintf("flm --data-dir %s security %s", shellQuote(dir), cmd)))
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (a *App) printCA(root *x509.Certificate, file string, res truststore.Result, none string) error {
	var out caOutput
	out.Root.Subject, out.Root.Fingerprint, out.Root.NotAfter, out.Root.File = root.Subject.String(), localca.Fingerprint(root), root.NotAfter.UTC(), file
	out.Changes, out.Notes, out.Changed = res.Changes, res.Notes, len(res.Changes) > 0
	if out.Changes == nil {
		out.Changes = []truststore.Change{}
	}
	if out.Notes == nil {
		out.Notes = []string{}
	}
	if !out.Changed {
		out.Notes = append(out.Notes, none)
	}
	return a.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "root: %s\nsha256: %s\n", sanitize(out.Root.Subject), out.Root.Fingerprint)
		for _, c := range out.Changes {
			fmt.Fprintf(w, "%s %s%s\n", c.Action, sanitize(c.Path), sanitize(c.Command))
		}
		for _, n := range out.Notes {
			fmt.Fprintf(w, "note: %s\n", sanitize(n))
		}
	})
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// InstallCACmd is `flm security install-ca`.
type InstallCACmd struct {
	Yes bool `help:"Consent without being asked (scripts, provisioning)."`
}

// Help is the detailed help.
func (InstallCACmd) Help() string {
	return `Creates FLM's local CA (packaged-ca) if needed and adds its root certificate to
this machine's trust stores: Linux /usr/local/share/ca-certificates (Debian,
Ubuntu; update-ca-certificates) or /etc/pki/ca-trust/source/anchors (Fedora;
update-ca-trust), macOS the System keychain, Windows the machine's Root store,
and the NSS databases of Firefox and Chromium where certutil exists. Prints
every file written and command run. Needs root (sudo) / Administrator, and your
consent: asked in a terminal, or --yes. The CA is name-constrained to
localhost, .local, .home.arpa, this host name and private addresses. The root
certificate to copy to phones is certs/local-ca.pem in the data dir.`
}

// Run installs the local CA.
func (c InstallCACmd) Run(a *App) error {
	root, file, err := a.localRoot(true)
	if err != nil {
		return err
	}
	if err := a.needPrivilege("install-ca"); err != nil {
		return err
	}
	where := truststore.SystemFile(root, trustOptions)
	q := fmt.Sprintf("Trust FLM's local CA %q (SHA-256 %s) for HTTPS on this machine?\n"+
		"It can only certify HTTPS servers for localhost, *.local, *.home.arpa, this host name and private addresses.\nIt will be added to %s and to the NSS databases found.",
		root.Subject.CommonName, localca.Fingerprint(root), where)
	if err := a.consent(c.Yes, "install-ca", q); err != nil {
		return err
	}
	res, err := truststore.Install(a.ctx, root, trustOptions)
	if err != nil {
		return trustErr(err, "install-ca", res)
	}
	return a.printCA(root, file, res, "nothing to change: the local CA is already trusted")
}

// UninstallCACmd is `flm security uninstall-ca`.
type UninstallCACmd struct {
	Yes bool `help:"Consent without being asked."`
}

// Help is the detailed help.
func (UninstallCACmd) Help() string {
	return `Removes FLM's local CA root from every trust store install-ca adds it to, and
prints what it removed. The CA itself stays in security.db (packaged-ca keeps
working for clients that trust it by other means). Needs root (sudo) /
Administrator and your consent (a terminal, or --yes).`
}

// Run removes the local CA.
func (c UninstallCACmd) Run(a *App) error {
	root, file, err := a.localRoot(false)
	if err != nil {
		return err
	}
	if root == nil {
		return a.print(map[string]any{"changed": false, "changes": []truststore.Change{}, "notes": []string{"nothing to remove: there is no local CA"}},
			func(w io.Writer) { fmt.Fprintln(w, "nothing to remove: there is no local CA") })
	}
	if err := a.needPrivilege("uninstall-ca"); err != nil {
		return err
	}
	q := fmt.Sprintf("Remove FLM's local CA %q (SHA-256 %s) from this machine's trust stores?", root.Subject.CommonName, localca.Fingerprint(root))
	if err := a.consent(c.Yes, "uninstall-ca", q); err != nil {
		return err
	}
	res, err := truststore.Uninstall(a.ctx, root, trustOptions)
	if err != nil {
		return trustErr(err, "uninstall-ca", res)
	}
	return a.printCA(root, file, res, "nothing to remove: the local CA is not in any trust store")
}

// trustErr reports a failure and what had changed before it.
func trustErr(err error, cmd string, res truststore.Result) error {
	code := flmerr.IOError
	if errors.Is(err, truststore.ErrUnsupported) || errors.Is(err, truststore.ErrNeedsPrivilege) {
		code = flmerr.InvalidArgument
	}
	done := "nothing changed"
	if len(res.Changes) > 0 {
		var s []string
		for _, c := range res.Changes {
			s = append(s, c.Action+" "+c.Path+c.Command)
		}
		done = "changed before the failure: " + strings.Join(s, "; ")
	}
	return flmerr.Wrap(err, code, "%s (%s)", cmd, done)
}
