package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/certs"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/proxy/devtls"
)

// The ids under which dev-selfsigned's files (certs/) are listed.
const (
	devCAID     = "dev:ca"
	devServerID = "dev:server"
)

// CertificatesCmd is `flm security certificates`.
type CertificatesCmd struct {
	List CertificatesListCmd `cmd:"" default:"1" help:"List certificates: subject, SANs, issuer, expiry, source (acme, local-ca, dev)."`
	Show CertificatesShowCmd `cmd:"" help:"Show one certificate (--pem prints its public certificate chain)."`
}

// CertificatesListCmd is `flm security certificates list`.
type CertificatesListCmd struct{}

// CertificatesShowCmd is `flm security certificates show`.
type CertificatesShowCmd struct {
	ID  string `arg:"" help:"Certificate id (from the list), e.g. acme:llm.example.net, local-ca:root, dev:server."`
	PEM bool   `name:"pem" help:"Print the public certificate chain as PEM (never a private key)."`
}

// certEntry is a certificate as the CLI reads it: its description and its
// public chain. Private keys never leave the store.
type certEntry struct {
	info  certs.Info
	chain []byte
}

// certificates lists security.db's certificates and dev-selfsigned's
// files, ordered by id.
func (a *App) certificates(ctx context.Context) ([]certEntry, error) {
	sec, err := a.DB(store.Security)
	if err != nil {
		return nil, err
	}
	recs, err := store.Certs{DB: sec}.List(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	var out []certEntry
	for _, r := range recs {
		out = append(out, certEntry{certs.InfoOf(r, now), r.CertPEM})
	}
	dir, err := a.DataDir()
	if err != nil {
		return nil, err
	}
	dev, err := devCertificates(filepath.Join(dir, "certs"), now)
	if err != nil {
		return nil, err
	}
	return append(out, dev...), nil
}

// devCertificates reads dev-selfsigned's CA and server certificates; absent
// files are no certificates, damaged ones an error naming the file.
func devCertificates(dir string, now time.Time) ([]certEntry, error) {
	f := devtls.FilesIn(dir)
	var out []certEntry
	for _, c := range []struct{ id, path string }{{devCAID, f.CACert}, {devServerID, f.Cert}} {
		pem, err := os.ReadFile(c.path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, flmerr.Wrap(err, flmerr.IOError, "read %s", c.path)
		}
		// FromPEM wants a key; dev keys stay in their files, unread.
		r, err := certs.FromPEM(c.id, certs.SourceDev, pem, []byte("-"), now)
		if err != nil {
			return nil, flmerr.Wrap(err, flmerr.ProxyCertFailed, "%s is damaged (the next dev-selfsigned start replaces it)", c.path)
		}
		out = append(out, certEntry{certs.InfoOf(r, now), pem})
	}
	return out, nil
}

// Run lists certificates.
func (CertificatesListCmd) Run(a *App) error {
	list, err := a.certificates(a.ctx)
	if err != nil {
		return err
	}
	infos := make([]certs.Info, len(list))
	for i, e := range list {
		infos[i] = e.info
	}
	return a.print(infos, func(w io.Writer) {
		if len(infos) == 0 {
			fmt.Fprintln(w, "No certificates yet. TLS modes create them: flm proxy start --mode dev-selfsigned | packaged-ca | https-acme.")
			return
		}
		t := table(w, "ID", "SOURCE", "SUBJECT", "SANS", "ISSUER", "NOT AFTER", "STATE")
		for _, i := range infos {
			t.row(i.ID, string(i.Source), i.Subject, strings.Join(i.SANs, ","), i.Issuer, stamp(i.NotAfter), certState(i))
		}
		t.flush()
	})
}

func certState(i certs.Info) string {
	switch {
	case i.Expired:
		return "EXPIRED"
	case i.LastError != "":
		return "renewal failing: " + i.LastError
	}
	return "valid"
}

// Run shows one certificate.
func (c CertificatesShowCmd) Run(a *App) error {
	list, err := a.certificates(a.ctx)
	if err != nil {
		return err
	}
	for _, e := range list {
		if e.info.ID != c.ID {
			continue
		}
		if c.PEM {
			_, err := a.Stdout.Write(e.chain)
			return err
		}
		return a.print(e.info, func(w io.Writer) {
			t := table(w, "FIELD", "VALUE")
			t.row("id", e.info.ID)
			t.row("source", string(e.info.Source))
			t.row("subject", e.info.Subject)
			t.row("sans", strings.Join(e.info.SANs, ", "))
			t.row("issuer", e.info.Issuer)
			t.row("not_before", stamp(e.info.NotBefore))
			t.row("not_after", stamp(e.info.NotAfter))
			t.row("state", certState(e.info))
			t.flush()
		})
	}
	return flmerr.New(flmerr.InvalidArgument, "no certificate %q; `flm security certificates list` shows the ids", c.ID)
}

// certFinder is proxyctl.CertFinder: the certificate a TLS proxy serves,
// by its mode.
type certFinder struct{ a *App }

var _ proxyctl.CertFinder = certFinder{}

func (f certFinder) Certificate(ctx context.Context, h proxyctl.Handle) (*certs.Info, error) {
	var id string
	switch h.Mode {
	case proxyctl.DevSelfSigned:
		id = devServerID
	case proxyctl.PackagedCA:
		id = certs.LocalCAServerID
	case proxyctl.HTTPSACME:
		u, err := url.Parse(h.URLs.External)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("the handle names no domain")
		}
		id = certs.ACMEID(u.Hostname())
	default:
		return nil, nil
	}
	list, err := f.a.certificates(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range list {
		if e.info.ID == id {
			info := e.info
			return &info, nil
		}
	}
	return nil, fmt.Errorf("no certificate %s is stored", id)
}
