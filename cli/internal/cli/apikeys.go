package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/proxyctl"
)

// APIKeysCmd is `flm api-keys`.
type APIKeysCmd struct {
	Create APIKeyCreateCmd `cmd:"" help:"Create a key; it is printed once and never again."`
	List   APIKeyListCmd   `cmd:"" help:"List keys (never the keys themselves)."`
	Revoke APIKeyRevokeCmd `cmd:"" help:"Revoke a key at once."`
	Rotate APIKeyRotateCmd `cmd:"" help:"Revoke a key and issue its replacement."`
}

func (a *App) keys() (*apikey.Service, error) {
	d, err := a.DB(store.Security)
	if err != nil {
		return nil, err
	}
	return &apikey.Service{Store: store.APIKeys{DB: d}}, nil
}

type keyOut struct {
	ID        string     `json:"id"`
	Label     string     `json:"label"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

type issuedOut struct {
	ID        string    `json:"id"`
	Label     string    `json:"label"`
	PlainKey  string    `json:"plain_key"`
	CreatedAt time.Time `json:"created_at"`
	OldKeyID  string    `json:"old_key_id,omitempty"`
	// Proxies is each running proxy's answer: the key works (and the old
	// one no longer does) there once it applied.
	Proxies []proxyctl.Result `json:"proxies"`
}

func (a *App) printIssued(iss apikey.Issued) error {
	out := issuedOut{ID: iss.ID, Label: iss.Label, PlainKey: iss.Plain, CreatedAt: iss.CreatedAt, OldKeyID: iss.OldID,
		Proxies: a.applyToProxies(proxyctl.ReloadSecurity)}
	return a.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "id:    %s\nlabel: %s\nkey:   %s\n\nThe key is shown once. Store it now; FLM keeps only its hash.\n", iss.ID, cleanCell(iss.Label), iss.Plain)
		if iss.OldID != "" {
			fmt.Fprintf(w, "Key %s is revoked.\n", iss.OldID)
		}
		proxiesText(w, out.Proxies)
	})
}

// APIKeyCreateCmd is `flm api-keys create --label L`.
type APIKeyCreateCmd struct {
	Label string `required:"" help:"A name for the key, e.g. the device that uses it."`
}

// Run creates the key.
func (c APIKeyCreateCmd) Run(a *App) error {
	svc, err := a.keys()
	if err != nil {
		return err
	}
	iss, err := svc.Create(a.ctx, c.Label)
	if err != nil {
		return err
	}
	return a.printIssued(iss)
}

// APIKeyListCmd is `flm api-keys list`.
type APIKeyListCmd struct{}

// Run lists the keys.
func (APIKeyListCmd) Run(a *App) error {
	svc, err := a.keys()
	if err != nil {
		return err
	}
	recs, err := svc.List(a.ctx)
	if err != nil {
		return err
	}
	out := make([]keyOut, len(recs))
	for i, r := range recs {
		out[i] = keyOut{ID: r.ID, Label: r.Label, CreatedAt: r.CreatedAt, RevokedAt: r.RevokedAt}
	}
	return a.print(map[string]any{"api_keys": out}, func(w io.Writer) {
		t := table(w, "ID", "LABEL", "CREATED", "STATUS")
		for _, r := range recs {
			status := "active"
			if r.RevokedAt != nil {
				status = "revoked " + stampPtr(r.RevokedAt)
			}
			t.row(r.ID, r.Label, stamp(r.CreatedAt), status)
		}
		t.flush()
	})
}

// APIKeyRevokeCmd is `flm api-keys revoke ID`.
type APIKeyRevokeCmd struct {
	ID string `arg:"" help:"Key id (from api-keys list)."`
}

// Run revokes the key.
func (c APIKeyRevokeCmd) Run(a *App) error {
	svc, err := a.keys()
	if err != nil {
		return err
	}
	r, err := svc.Revoke(a.ctx, c.ID)
	if err != nil {
		return err
	}
	proxies := a.applyToProxies(proxyctl.ReloadSecurity)
	return a.print(map[string]any{"id": r.ID, "revoked": true, "revoked_at": r.RevokedAt, "proxies": proxies}, func(w io.Writer) {
		fmt.Fprintf(w, "Key %s is revoked.\n", r.ID)
		proxiesText(w, proxies)
	})
}

// APIKeyRotateCmd is `flm api-keys rotate ID [--label L]`.
type APIKeyRotateCmd struct {
	ID    string `arg:"" help:"Key id to replace."`
	Label string `help:"Label of the new key (default: the old key's)."`
}

// Run rotates the key.
func (c APIKeyRotateCmd) Run(a *App) error {
	svc, err := a.keys()
	if err != nil {
		return err
	}
	iss, err := svc.Rotate(a.ctx, c.ID, c.Label)
	if err != nil {
		return err
	}
	return a.printIssued(iss)
}
