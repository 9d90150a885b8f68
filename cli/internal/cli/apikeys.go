package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/unjuno/flm/cli/internal/store"
	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/proxyctl"
)

// APIKeysCmd is `flm api-keys`.
type APIKeysCmd struct {
	Create APIKeyCreateCmd `cmd:"" help:"Create a key; it is printed once and never again."`
	List   APIKeyListCmd   `cmd:"" help:"List keys with their scopes and expiry (never the keys themselves)."`
	Update APIKeyUpdateCmd `cmd:"" help:"Change a key's label, models, own rate limit or expiry; the key stays the same."`
	Revoke APIKeyRevokeCmd `cmd:"" help:"Revoke a key at once."`
	Rotate APIKeyRotateCmd `cmd:"" help:"Revoke a key (or every key about to expire) and issue its replacement."`
}

func (a *App) keys() (*apikey.Service, error) {
	d, err := a.DB(store.Security)
	if err != nil {
		return nil, err
	}
	return &apikey.Service{Store: store.APIKeys{DB: d}}, nil
}

// scopeList is --models: comma-separated, repeatable (`\,` for a comma in
// a model name). Unlike a plain []string it remembers that it was given,
// so that `--models ""` (an empty shell variable, say) is an error rather
// than "every model".
type scopeList struct {
	set    bool
	scopes []string
}

// Decode implements kong.MapperValue.
func (s *scopeList) Decode(ctx *kong.DecodeContext) error {
	var raw string
	if err := ctx.Scan.PopValueInto("models", &raw); err != nil {
		return err
	}
	s.set = true
	for _, m := range kong.SplitEscaped(raw, ',') {
		if m = strings.TrimSpace(m); m != "" {
			s.scopes = append(s.scopes, m)
		}
	}
	return nil
}

// list returns the scopes, refusing a --models that named none.
func (s scopeList) list() ([]string, error) {
	if len(s.scopes) == 0 {
		return nil, flmerr.New(flmerr.InvalidArgument, "--models names no model; give flm:// ids or globs, or leave it out (update: --all-models) for every model")
	}
	return s.scopes, nil
}

func lifetimeFlag(name, v string) (time.Duration, error) {
	d, err := apikey.ParseLifetime(v)
	if err != nil {
		return 0, flmerr.Wrap(err, flmerr.InvalidArgument, "--%s", name)
	}
	return d, nil
}

// keyOut is a key as list and update show it (apikey.View): never the
// key, never its hash.
type keyOut = apikey.View

func newKeyOut(r apikey.Record, now time.Time) keyOut { return r.View(now) }

func keyStatus(r apikey.Record, now time.Time) string {
	switch {
	case r.RevokedAt != nil:
		return "revoked " + stampPtr(r.RevokedAt)
	case r.Expired(now):
		return "expired"
	case r.ExpiresSoon(now):
		return "expires soon"
	}
	return "active"
}

func modelsCell(models []string) string {
	if len(models) == 0 {
		return "all"
	}
	return strings.Join(models, ",")
}

func rpmCell(rpm int) string {
	if rpm == 0 {
		return ""
	}
	return strconv.Itoa(rpm)
}

func expiresCell(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return stamp(*t)
}

// issuedKey is a new key, with its plaintext: shown once.
type issuedKey struct {
	ID        string     `json:"id"`
	Label     string     `json:"label"`
	PlainKey  string     `json:"plain_key"`
	CreatedAt time.Time  `json:"created_at"`
	OldKeyID  string     `json:"old_key_id,omitempty"`
	Models    []string   `json:"models"`
	RPM       int        `json:"rpm"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func newIssuedKey(iss apikey.Issued) issuedKey {
	return issuedKey{ID: iss.ID, Label: iss.Label, PlainKey: iss.Plain, CreatedAt: iss.CreatedAt, OldKeyID: iss.OldID,
		Models: iss.Models, RPM: iss.RPM, ExpiresAt: iss.ExpiresAt}
}

type issuedOut struct {
	issuedKey
	// Proxies is each running proxy's answer: the key works (and the old
	// one no longer does) there once it applied.
	Proxies []proxyctl.Result `json:"proxies"`
}

func issuedText(w io.Writer, iss apikey.Issued) {
	fmt.Fprintf(w, "id:      %s\nlabel:   %s\nkey:     %s\nmodels:  %s\nrpm:     %s\nexpires: %s\n",
		iss.ID, cleanCell(iss.Label), iss.Plain, cleanCell(modelsCell(iss.Models)), cleanCell(rpmCell(iss.RPM)), expiresCell(iss.ExpiresAt))
	if iss.OldID != "" {
		fmt.Fprintf(w, "Key %s is revoked.\n", iss.OldID)
	}
}

const shownOnce = "The key is shown once. Store it now; FLM keeps only its hash.\n"

func (a *App) printIssued(iss apikey.Issued) error {
	out := issuedOut{newIssuedKey(iss), a.applyToProxies(proxyctl.ReloadSecurity)}
	return a.print(out, func(w io.Writer) {
		issuedText(w, iss)
		fmt.Fprintf(w, "\n%s", shownOnce)
		proxiesText(w, out.Proxies)
	})
}

// APIKeyCreateCmd is `flm api-keys create --label L [--models …] [--rpm N]
// [--expires-in D]`.
type APIKeyCreateCmd struct {
	Label     string    `required:"" help:"A name for the key, e.g. the device that uses it."`
	Models    scopeList `placeholder:"ID,…" help:"Models the key may use: flm:// ids or globs ('*' any run, '?' one character), comma-separated, e.g. 'flm://ollama/llama3*,flm://llamacpp/tiny-chat' (default: every model)."`
	RPM       int       `name:"rpm" placeholder:"N" help:"The key's own limit in requests per minute, on top of the policy's rate_limit (default: none)."`
	ExpiresIn string    `name:"expires-in" placeholder:"D" help:"Lifetime: 90d, 12h, 30m or a Go duration, at most 3650d (default: never expires)."`
}

// Run creates the key.
func (c APIKeyCreateCmd) Run(a *App) error {
	o := apikey.CreateOptions{Label: c.Label, RPM: c.RPM}
	var err error
	if c.Models.set {
		if o.Models, err = c.Models.list(); err != nil {
			return err
		}
	}
	if c.ExpiresIn != "" {
		if o.ExpiresIn, err = lifetimeFlag("expires-in", c.ExpiresIn); err != nil {
			return err
		}
	}
	svc, err := a.keys()
	if err != nil {
		return err
	}
	iss, err := svc.CreateWith(a.ctx, o)
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
	now := time.Now()
	out := make([]keyOut, len(recs))
	for i, r := range recs {
		out[i] = newKeyOut(r, now)
	}
	return a.print(map[string]any{"api_keys": out}, func(w io.Writer) {
		t := table(w, "ID", "LABEL", "CREATED", "MODELS", "RPM", "EXPIRES", "STATUS")
		for _, r := range recs {
			st := keyStatus(r, now)
			if r.Legacy {
				st += " (legacy)"
			}
			t.row(r.ID, r.Label, stamp(r.CreatedAt), modelsCell(r.Models), rpmCell(r.RPM), expiresCell(r.ExpiresAt), st)
		}
		t.flush()
	})
}

// APIKeyUpdateCmd is `flm api-keys update ID …`.
type APIKeyUpdateCmd struct {
	ID        string    `arg:"" help:"Key id (from api-keys list)."`
	Label     *string   `help:"New label."`
	Models    scopeList `placeholder:"ID,…" xor:"models" help:"Replace the models the key may use (flm:// ids or globs, comma-separated)."`
	AllModels bool      `name:"all-models" xor:"models" help:"Let the key use every model."`
	RPM       *int      `name:"rpm" placeholder:"N" xor:"rpm" help:"New own limit in requests per minute (0 removes it)."`
	NoRPM     bool      `name:"no-rpm" xor:"rpm" help:"Remove the key's own limit; the policy's rate_limit still applies."`
	ExpiresIn string    `name:"expires-in" placeholder:"D" xor:"expiry" help:"New lifetime counted from now (90d, 12h, 30m …); revives an expired key."`
	NoExpiry  bool      `name:"no-expiry" xor:"expiry" help:"The key never expires."`
}

// Run updates the key.
func (c APIKeyUpdateCmd) Run(a *App) error {
	o := apikey.UpdateOptions{Label: c.Label, RPM: c.RPM}
	switch {
	case c.Models.set:
		m, err := c.Models.list()
		if err != nil {
			return err
		}
		o.Models = &m
	case c.AllModels:
		o.Models = &[]string{}
	}
	if c.NoRPM {
		o.RPM = new(int)
	}
	switch {
	case c.ExpiresIn != "":
		d, err := lifetimeFlag("expires-in", c.ExpiresIn)
		if err != nil {
			return err
		}
		o.ExpiresIn = &d
	case c.NoExpiry:
		o.ExpiresIn = new(time.Duration)
	}
	if o == (apikey.UpdateOptions{}) {
		return flmerr.New(flmerr.InvalidArgument, "nothing to update: give --label, --models/--all-models, --rpm/--no-rpm or --expires-in/--no-expiry")
	}
	svc, err := a.keys()
	if err != nil {
		return err
	}
	r, err := svc.Update(a.ctx, c.ID, o)
	if err != nil {
		return err
	}
	now := time.Now()
	out := struct {
		keyOut
		Proxies []proxyctl.Result `json:"proxies"`
	}{newKeyOut(r, now), a.applyToProxies(proxyctl.ReloadSecurity)}
	return a.print(out, func(w io.Writer) {
		fmt.Fprintf(w, "id:      %s\nlabel:   %s\nmodels:  %s\nrpm:     %s\nexpires: %s\nstatus:  %s\n",
			r.ID, cleanCell(r.Label), cleanCell(modelsCell(r.Models)), cleanCell(rpmCell(r.RPM)), expiresCell(r.ExpiresAt), keyStatus(r, now))
		proxiesText(w, out.Proxies)
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

// APIKeyRotateCmd is `flm api-keys rotate ID [--label L]` or
// `flm api-keys rotate --expiring [--within D]`.
type APIKeyRotateCmd struct {
	ID       string `arg:"" optional:"" help:"Key id to replace."`
	Label    string `help:"Label of the new key (default: the old key's)."`
	Expiring bool   `help:"Instead of one key, replace every active key that expires within --within (keys already expired are listed, not replaced)."`
	Within   string `placeholder:"D" help:"With --expiring: the window (default 7d)."`
}

// Run rotates the key, or the expiring keys.
func (c APIKeyRotateCmd) Run(a *App) error {
	switch {
	case c.Expiring && c.ID != "":
		return flmerr.New(flmerr.InvalidArgument, "give a key id or --expiring, not both")
	case c.Expiring && c.Label != "":
		return flmerr.New(flmerr.InvalidArgument, "--label applies to one key; with --expiring each replacement keeps its old label")
	case !c.Expiring && c.Within != "":
		return flmerr.New(flmerr.InvalidArgument, "--within applies only with --expiring")
	case c.Expiring:
		return c.rotateExpiring(a)
	case c.ID == "":
		return flmerr.New(flmerr.InvalidArgument, "give the id of the key to rotate (see `flm api-keys list`), or --expiring")
	}
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

type rotationFailure struct {
	ID      string `json:"id"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// rotateExpiring prints every replacement key even when another rotation
// failed (then the exit status is 1): a key issued and not shown is lost.
func (c APIKeyRotateCmd) rotateExpiring(a *App) error {
	within := apikey.SoonWindow
	if c.Within != "" {
		var err error
		if within, err = lifetimeFlag("within", c.Within); err != nil {
			return err
		}
	}
	svc, err := a.keys()
	if err != nil {
		return err
	}
	res, err := svc.RotateExpiring(a.ctx, within)
	if err != nil {
		return err
	}
	now := time.Now()
	out := struct {
		Rotated []issuedKey       `json:"rotated"`
		Expired []keyOut          `json:"expired"`
		Failed  []rotationFailure `json:"failed"`
		Proxies []proxyctl.Result `json:"proxies"`
	}{Rotated: []issuedKey{}, Expired: []keyOut{}, Failed: []rotationFailure{}, Proxies: []proxyctl.Result{}}
	for _, iss := range res.Rotated {
		out.Rotated = append(out.Rotated, newIssuedKey(iss))
	}
	for _, r := range res.Expired {
		out.Expired = append(out.Expired, newKeyOut(r, now))
	}
	for _, f := range res.Failed {
		out.Failed = append(out.Failed, rotationFailure{ID: f.ID, Code: string(flmerr.CodeOf(f.Err)), Message: f.Err.Error()})
	}
	if len(res.Rotated) > 0 {
		out.Proxies = a.applyToProxies(proxyctl.ReloadSecurity)
	}
	err = a.print(out, func(w io.Writer) {
		for _, iss := range res.Rotated {
			issuedText(w, iss)
			fmt.Fprintln(w)
		}
		if len(res.Rotated) > 0 {
			fmt.Fprintf(w, "The keys are shown once. Store them now; FLM keeps only their hashes.\n")
		} else {
			fmt.Fprintf(w, "No active key expires within %s.\n", c.withinText(within))
		}
		for _, r := range res.Expired {
			fmt.Fprintf(w, "Key %s (%s) expired at %s and was not replaced: `flm api-keys rotate %s` replaces it, `flm api-keys update %s --expires-in D` renews it.\n",
				r.ID, cleanCell(r.Label), expiresCell(r.ExpiresAt), r.ID, r.ID)
		}
		for _, f := range out.Failed {
			fmt.Fprintf(w, "error: key %s was not rotated: %s (%s)\n", f.ID, cleanCell(f.Message), f.Code)
		}
		proxiesText(w, out.Proxies)
	})
	if err != nil {
		return err
	}
	if len(res.Failed) > 0 {
		return reported(1)
	}
	return nil
}

func (c APIKeyRotateCmd) withinText(d time.Duration) string {
	if c.Within != "" {
		return strings.TrimSpace(c.Within)
	}
	return fmt.Sprintf("%dd", d/(24*time.Hour))
}
