package legacy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/unjuno/flm/core/apikey"
	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/policy"
	"github.com/unjuno/flm/core/proxyctl"
	"github.com/unjuno/flm/core/settings"
)

// PlanKey is one imported key: its hash, never its plaintext.
type PlanKey struct {
	ID        string     `json:"id"`
	LegacyID  string     `json:"legacy_id"`
	Label     string     `json:"label"`
	Hash      string     `json:"hash"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	RPM       int        `json:"rpm"`
	Check     string     `json:"check"`
}

// PlanProfile is a proxy profile made from an API's listener.
type PlanProfile struct {
	ID     string          `json:"id"`
	API    string          `json:"api"`
	Config proxyctl.Config `json:"config"`
}

// PlanEngine is an engine endpoint made from engine_configs.
type PlanEngine struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	BaseURL string `json:"base_url"`
	From    string `json:"from"`
}

// Dropped is something of the legacy file that FLM does not take over.
type Dropped struct {
	What string `json:"what"`
	Why  string `json:"why"`
}

// Plan is what migrating the legacy file does.
type Plan struct {
	Source   *Snapshot         `json:"source"`
	Keys     []PlanKey         `json:"api_keys"`
	Policy   json.RawMessage   `json:"policy"`
	Profiles []PlanProfile     `json:"proxy_profiles"`
	Engines  []PlanEngine      `json:"engines"`
	Settings map[string]string `json:"settings"`
	Dropped  []Dropped         `json:"dropped"`
	Warnings []string          `json:"warnings"`
	Summary  map[string]int    `json:"summary"`
}

// KeyID is the FLM id of an imported legacy key: derived from the legacy
// id, so a second apply of the same file finds the keys it imported.
func KeyID(legacyID string) string {
	s := sha256.Sum256([]byte("flm-legacy-key:" + legacyID))
	return "key_" + hex.EncodeToString(s[:8])
}

// memSettings validates settings through core/settings without storing.
type memSettings map[string]settings.Value

func (m memSettings) Get(_ context.Context, k string) (settings.Value, error) {
	v, ok := m[k]
	if !ok {
		return settings.Value{}, settings.ErrNotFound
	}
	return v, nil
}
func (m memSettings) Set(_ context.Context, v settings.Value) error { m[v.Key] = v; return nil }
func (m memSettings) List(context.Context) ([]settings.Value, error) {
	var out []settings.Value
	for _, v := range m {
		out = append(out, v)
	}
	return out, nil
}

// settingMap maps known prototype user_settings to FLM settings.
var settingMap = map[string]string{
	"default_port": settings.ProxyPort,
	"language":     settings.PreferredLanguage,
}

// BuildPlan maps snap. Every legacy row either maps or is listed in
// Dropped with the reason.
func BuildPlan(snap *Snapshot) (*Plan, error) {
	p := &Plan{Source: snap, Settings: map[string]string{}, Summary: map[string]int{}}
	apis := map[string]API{}
	for _, a := range snap.APIs {
		apis[a.ID] = a
	}
	sec := map[string]Security{}
	for _, s := range snap.Security {
		sec[s.APIID] = s
	}
	rpmOf := func(s Security) int {
		if !s.RateLimitEnabled || s.Requests <= 0 || s.Window <= 0 {
			return 0
		}
		return max(1, (s.Requests*60+s.Window-1)/s.Window)
	}

	// Keys: label = the API's name; the key's own RPM = its API's limit.
	for _, k := range snap.Keys {
		a, ok := apis[k.APIID]
		pk := PlanKey{ID: KeyID(k.ID), LegacyID: k.ID, Hash: k.Hash, CreatedAt: k.CreatedAt.Truncate(time.Millisecond), RevokedAt: k.RevokedAt, Check: k.Check}
		if pk.CreatedAt.IsZero() {
			pk.CreatedAt = time.Unix(0, 0).UTC()
		}
		label := a.Name
		if !ok {
			// The API was deleted: its key stopped working then, and must
			// not come back to life. Imported revoked, for the record.
			label = "deleted api " + k.APIID
			if pk.RevokedAt == nil {
				t := pk.CreatedAt
				pk.RevokedAt = &t
			}
			p.Warnings = append(p.Warnings, fmt.Sprintf("api key %s belongs to API %s, which no longer exists: imported revoked", clip(k.ID), clip(k.APIID)))
		}
		// Labels come from the file: a name that is not a valid label (or
		// carries bidi/format characters that reorder a terminal line) is
		// replaced by one made of the derived id only.
		if l, err := apikey.ValidateLabel(label); err == nil && Safe(l) == l {
			pk.Label = l
		} else {
			pk.Label = "legacy " + pk.ID
		}
		if s, ok := sec[k.APIID]; ok {
			pk.RPM = min(rpmOf(s), policy.MaxRate)
		}
		switch {
		case k.EncryptedSize > MaxEncryptedKey:
			p.Warnings = append(p.Warnings, fmt.Sprintf("api key %s: its encrypted_key is %d bytes (a prototype key seals to under 100): not read nor decrypted; imported by key_hash, unverified", clip(k.ID), k.EncryptedSize))
		case k.Check == Mismatch:
			p.Warnings = append(p.Warnings, fmt.Sprintf("api key %s: its decrypted key does not hash to key_hash; imported by key_hash (what the prototype checked): the client holding the key the prototype accepted keeps working", clip(k.ID)))
		case k.Check == Undecryptable:
			p.Warnings = append(p.Warnings, fmt.Sprintf("api key %s: the AES key does not open its encrypted_key; imported by key_hash, unverified", clip(k.ID)))
		}
		p.Keys = append(p.Keys, pk)
	}

	// Policy: union of allowlists. Rate limits: each key already carries
	// its own API's limit (RPM above), which reproduces the prototype's
	// per-API limits exactly; the policy's per-key limit must not be
	// tighter than any of them, so it is the loosest API's, and none when
	// an API had no limit.
	pol := policy.Default()
	var ips []string
	allowAll, restricted := false, false
	maxRPM, unlimited := 0, false
	for _, a := range snap.APIs {
		if s, ok := sec[a.ID]; !ok || rpmOf(s) == 0 {
			unlimited = true
		}
		s, ok := sec[a.ID]
		if !ok || strings.TrimSpace(s.IPWhitelist) == "" || strings.TrimSpace(s.IPWhitelist) == "[]" || strings.TrimSpace(s.IPWhitelist) == "null" {
			allowAll = true
			continue
		}
		// An API that restricted its clients must stay restricted: a
		// list FLM cannot read, or one none of whose entries FLM accepts,
		// is refused rather than mapped to "every address" (an empty
		// ip_whitelist) — the prototype's listener matched none of them.
		var list []string
		if err := json.Unmarshal([]byte(s.IPWhitelist), &list); err != nil {
			return nil, badInput("%s: API %s (%s) restricts its clients with ip_whitelist %q, which is not a JSON list of addresses; FLM would have to allow every address. Correct it in the prototype (or in a copy of its flm.db) and retry; nothing was changed", snap.Path, Safe(clip(a.Name)), Safe(clip(a.ID)), Safe(clip(s.IPWhitelist)))
		}
		if len(list) == 0 {
			allowAll = true
			continue
		}
		restricted = true
		usable := 0
		var bad []string
		for _, ip := range list {
			ip = strings.TrimSpace(ip)
			if slices.Contains(ips, ip) {
				usable++
				continue
			}
			probe := policy.Policy{IPWhitelist: []string{ip}}
			if _, err := policy.Parse(probe.Document()); ip == "" || err != nil {
				bad = append(bad, strconv.Quote(Safe(clip(ip))))
				p.Dropped = append(p.Dropped, Dropped{fmt.Sprintf("ip_whitelist entry %q of API %s", clip(ip), a.Name), "not an IP address or CIDR FLM accepts"})
				continue
			}
			ips = append(ips, ip)
			usable++
		}
		if usable == 0 {
			return nil, badInput("%s: API %s (%s) allows only the addresses %s, none of which is an IP address or CIDR FLM accepts; mapping it would allow every address. Correct the entries in the prototype (or in a copy of its flm.db) and retry; nothing was changed", snap.Path, Safe(clip(a.Name)), Safe(clip(a.ID)), strings.Join(bad, ", "))
		}
	}
	for _, s := range snap.Security {
		maxRPM = max(maxRPM, min(rpmOf(s), policy.MaxRate))
		if s.KeyRotation {
			p.Dropped = append(p.Dropped, Dropped{"key rotation of API " + s.APIID + fmt.Sprintf(" (every %d days)", s.KeyRotationDays), "FLM does not rotate keys by itself (rotation changes the key every client holds); use `flm api-keys update --expires-in` and `flm api-keys rotate --expiring`"})
		}
	}
	switch {
	case restricted && allowAll:
		p.Warnings = append(p.Warnings, "some APIs had no IP allowlist: FLM has one policy for all models, so the union allows every address; set ip_whitelist with `flm security policy set` to restrict it")
	case restricted:
		pol.IPWhitelist = ips
	}
	if maxRPM > 0 && !unlimited {
		pol.RateLimit = &policy.RateLimit{RPM: maxRPM}
	}
	doc := pol.Document()
	if _, err := policy.Parse(doc); err != nil {
		return nil, fmt.Errorf("the mapped policy is invalid: %w", err)
	}
	p.Policy = doc

	// Profiles: one per API listener; FLM serves every model on one port.
	for _, a := range snap.APIs {
		cfg := proxyctl.DefaultConfig()
		cfg.Port = a.Port
		pr := PlanProfile{ID: "legacy-" + strconv.Itoa(a.Port), API: a.Name, Config: cfg}
		if err := cfg.Validate(); err != nil {
			p.Dropped = append(p.Dropped, Dropped{"API " + a.Name + " listener", err.Error()})
			continue
		}
		p.Profiles = append(p.Profiles, pr)
		p.Dropped = append(p.Dropped, Dropped{fmt.Sprintf("API %s: model %q, status %s, enable_auth %v", a.Name, a.Model, a.Status, a.EnableAuth),
			"FLM serves every model of every engine on one proxy that always requires a key; the API's port became proxy profile " + pr.ID + " (bound to 127.0.0.1: use --bind to open it), its keys may use every model (restrict with `flm api-keys update --models`)"})
	}

	// Engines.
	taken := map[string]bool{}
	for _, e := range snap.Engines {
		kind, err := engine.ParseKind(e.EngineType)
		if err != nil {
			p.Dropped = append(p.Dropped, Dropped{"engine " + e.Name, err.Error()})
			continue
		}
		base, err := engine.NormalizeURL(e.BaseURL)
		if err != nil {
			p.Dropped = append(p.Dropped, Dropped{"engine " + e.Name, "invalid base_url: " + err.Error()})
			continue
		}
		if slices.ContainsFunc(engine.DefaultEndpoints(func(string) string { return "" }), func(d engine.Endpoint) bool { return d.Kind == kind && d.BaseURL == base }) {
			p.Dropped = append(p.Dropped, Dropped{"engine " + e.Name + " (" + base + ")", "already one of FLM's default endpoints"})
			continue
		}
		id := ""
		for n := 1; ; n++ {
			id = fmt.Sprintf("legacy-%s-%d", kind, n)
			if !taken[id] {
				break
			}
		}
		taken[id] = true
		p.Engines = append(p.Engines, PlanEngine{ID: id, Kind: string(kind), BaseURL: base, From: e.Name})
	}

	// Settings: known keys through core/settings, the rest listed.
	svc := &settings.Service{Store: memSettings{}}
	for _, s := range snap.Settings {
		key, ok := settingMap[s.Key]
		if !ok {
			p.Dropped = append(p.Dropped, Dropped{"user_settings." + s.Key, "no FLM setting corresponds"})
			continue
		}
		v, err := svc.Set(context.Background(), key, s.Value)
		if err != nil {
			p.Dropped = append(p.Dropped, Dropped{"user_settings." + s.Key + " = " + clip(s.Value), err.Error()})
			continue
		}
		p.Settings[key] = v.Value
	}
	for _, t := range snap.OtherTables {
		p.Dropped = append(p.Dropped, Dropped{"table " + t, "logs, metrics, catalogs and tokens of the prototype are not migrated"})
	}
	for _, c := range snap.ExtraColumns {
		p.Dropped = append(p.Dropped, Dropped{"column " + c, "not part of the documented prototype schema"})
	}
	// Everything the file named ends up printed: no control or bidi
	// characters (terminal escapes, reordered lines) survive.
	for i := range p.Dropped {
		p.Dropped[i].What, p.Dropped[i].Why = Safe(p.Dropped[i].What), Safe(p.Dropped[i].Why)
	}
	for i := range p.Warnings {
		p.Warnings[i] = Safe(p.Warnings[i])
	}
	for i := range p.Profiles {
		p.Profiles[i].API = Safe(p.Profiles[i].API)
	}
	for i := range p.Engines {
		p.Engines[i].From = Safe(p.Engines[i].From)
	}
	active := 0
	for _, k := range p.Keys {
		if k.RevokedAt == nil {
			active++
		}
		p.Summary["keys_"+k.Check]++
	}
	p.Summary["api_keys"], p.Summary["api_keys_active"] = len(p.Keys), active
	p.Summary["proxy_profiles"], p.Summary["engines"], p.Summary["settings"], p.Summary["dropped"] = len(p.Profiles), len(p.Engines), len(p.Settings), len(p.Dropped)
	return p, nil
}

// Records are the plan's keys as FLM records (Legacy set).
func (p *Plan) Records() []apikey.Record {
	out := make([]apikey.Record, len(p.Keys))
	for i, k := range p.Keys {
		out[i] = apikey.Record{ID: k.ID, Label: k.Label, Hash: k.Hash, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt, RPM: k.RPM, Legacy: true}
	}
	return out
}

// Safe returns s with every character that is not printable (control
// characters such as ESC, bidi overrides and other format characters,
// invalid UTF-8) escaped as \xNN, \uNNNN or \UNNNNNNNN: strings read from a
// legacy file are printed only through it.
func Safe(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r) && r != utf8.RuneError:
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += n
	}
	return b.String()
}
