package apikey

import (
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/unjuno/flm/core/engine"
	"github.com/unjuno/flm/core/flmerr"
	"github.com/unjuno/flm/core/policy"
)

// Bounds on a key's scope and lifetime. A scope is a short list written by
// a person; the caps keep a stored record, and the per-request match over
// it, small.
const (
	// MaxModels is the most model scopes one key may have.
	MaxModels = 64
	// MaxScopeLen is the longest scope in bytes: the longest model id.
	MaxScopeLen = len(engine.Scheme) + engine.MaxEngineIDLen + 1 + engine.MaxModelNameLen
	// MinLifetime and MaxLifetime bound an expiry, counted from when it is
	// set. Below a minute is a typo, not a policy; above ten years is
	// "never", which is spelled by leaving the expiry unset.
	MinLifetime = time.Minute
	MaxLifetime = 3650 * 24 * time.Hour
	// SoonWindow is how close to its expiry a key is listed as expiring
	// soon, and the default window of RotateExpiring.
	SoonWindow = 7 * 24 * time.Hour
)

// AllowsModel reports whether the key may use the model id, a full
// flm://{engine}/{model} id. A key without model scopes may use every
// model. Otherwise id must match one scope as a whole: '*' matches any run
// of characters, '/' included (model names contain '/'), '?' exactly one
// character, and every other character only itself (case-sensitive; there
// is no escape character, so a literal '*' or '?' in a model name is
// matched by a wildcard).
func (r Record) AllowsModel(id string) bool {
	if len(r.Models) == 0 {
		return true
	}
	if len(id) > MaxScopeLen {
		return false // no model id is that long; spares the matcher
	}
	for _, p := range r.Models {
		if matchScope(p, id) {
			return true
		}
	}
	return false
}

// Expired reports whether the key's expiry has come: at ExpiresAt exactly,
// the key is expired.
func (r Record) Expired(now time.Time) bool {
	return r.ExpiresAt != nil && !now.Before(*r.ExpiresAt)
}

// ExpiresSoon reports whether an active key that has not expired yet will
// expire within SoonWindow of now.
func (r Record) ExpiresSoon(now time.Time) bool {
	return r.Active() && r.ExpiresAt != nil && !r.Expired(now) && !r.ExpiresAt.After(now.Add(SoonWindow))
}

// matchScope matches id against the glob p in O(len(p)·len(id)) at worst:
// on a mismatch it only ever backtracks to the last '*' (the classic
// two-pointer wildcard match), so no pattern can make it exponential.
func matchScope(p, s string) bool {
	ok, _ := matchSteps(p, s)
	return ok
}

// matchSteps is matchScope that also counts its loop iterations, so a test
// can bound the work without timing it.
func matchSteps(p, s string) (ok bool, steps int) {
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for px < len(p) || sx < len(s) {
		steps++
		if px < len(p) {
			switch p[px] {
			case '*':
				starPx, starSx = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					_, w := utf8.DecodeRuneInString(s[sx:])
					px++
					sx += w
					continue
				}
			default:
				if sx < len(s) && p[px] == s[sx] {
					px++
					sx++
					continue
				}
			}
		}
		// Mismatch: let the last '*' swallow one more character.
		if starPx < 0 || starSx >= len(s) {
			return false, steps
		}
		_, w := utf8.DecodeRuneInString(s[starSx:])
		starSx += w
		px, sx = starPx+1, starSx
	}
	return true, steps
}

// ValidateModels checks a key's model scopes and returns them without
// duplicates, in the order given; no scopes (nil or empty) is nil, every
// model. Each scope is a flm:// model id or a glob over ids with '*' and
// '?'. Bare model names are refused: a scope always names its engine, so
// adding an engine never widens an existing key.
func ValidateModels(models []string) ([]string, error) {
	if len(models) == 0 {
		return nil, nil
	}
	if len(models) > MaxModels {
		return nil, flmerr.New(flmerr.InvalidArgument, "%d model scopes; the limit is %d (use a glob such as flm://ollama/* to cover many models)", len(models), MaxModels)
	}
	out := make([]string, 0, len(models))
	for _, m := range models {
		if err := validateScope(m); err != nil {
			return nil, err
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}

func validateScope(p string) error {
	bad := func(why string, args ...any) error {
		return flmerr.New(flmerr.InvalidArgument, "model scope %q: "+why, append([]any{clip(p)}, args...)...)
	}
	switch {
	case p == "":
		return flmerr.New(flmerr.InvalidArgument, "model scope is empty")
	case len(p) > MaxScopeLen:
		return bad("longer than %d bytes", MaxScopeLen)
	case !utf8.ValidString(p):
		return flmerr.New(flmerr.InvalidArgument, "model scope is not valid UTF-8")
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return bad("must not contain control characters")
	case !strings.HasPrefix(p, engine.Scheme):
		return bad("must be a model id or glob starting with %s, e.g. %s (run `flm models list` for the ids)", engine.Scheme, engine.Scheme+"ollama/"+clip(strings.TrimLeft(p, "/")))
	}
	rest := p[len(engine.Scheme):]
	eng, model, hasSlash := strings.Cut(rest, "/")
	wild := strings.ContainsAny(p, "*?")
	switch {
	case eng == "":
		return bad("the engine id is missing: write %s{engine}/{model}", engine.Scheme)
	case !hasSlash && !strings.ContainsAny(eng, "*?"):
		return bad("names an engine but no model; write %s%s/* to allow all its models", engine.Scheme, eng)
	case hasSlash && model == "":
		return bad("the model name is missing; write %s%s/* to allow all its models", engine.Scheme, eng)
	}
	if strings.IndexFunc(eng, func(c rune) bool {
		return !(c == '*' || c == '?' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-')
	}) >= 0 {
		return bad("an engine id has only letters, digits, '_' and '-'")
	}
	if !wild {
		if _, _, err := engine.ParseModelID(p); err != nil {
			return flmerr.Wrap(err, flmerr.InvalidArgument, "model scope is not a valid model id")
		}
	}
	return nil
}

// ValidateRPM checks a key's own requests-per-minute limit: 0 (none) or
// 1..policy.MaxRate.
func ValidateRPM(rpm int) error {
	if rpm < 0 || rpm > policy.MaxRate {
		return flmerr.New(flmerr.InvalidArgument, "rpm must be between 1 and %d, or 0 for no limit of the key's own; got %d", policy.MaxRate, rpm)
	}
	return nil
}

// ValidateLifetime checks how long from now a key may live: 0 (never
// expires) or MinLifetime..MaxLifetime.
func ValidateLifetime(d time.Duration) error {
	if d != 0 && (d < MinLifetime || d > MaxLifetime) {
		return flmerr.New(flmerr.InvalidArgument, "expiry must be between %s and %d days from now; got %s", MinLifetime, MaxLifetime/(24*time.Hour), d)
	}
	return nil
}

// ParseLifetime reads a lifetime as people write it: "90d", "12h", "30m",
// or any Go duration ("1h30m"). It checks the bounds of ValidateLifetime;
// "0" is refused, since "never" is said by not setting an expiry.
func ParseLifetime(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	var d time.Duration
	ok := false
	if n, found := strings.CutSuffix(t, "d"); found {
		if days, valid := atoi(n); valid {
			d, ok = time.Duration(days)*24*time.Hour, true
		}
	} else if v, err := time.ParseDuration(t); err == nil {
		d, ok = v, true
	}
	if !ok {
		return 0, flmerr.New(flmerr.InvalidArgument, "%q is not a duration: write e.g. 90d, 12h, 30m or 1h30m", clip(s))
	}
	if d == 0 {
		return 0, flmerr.New(flmerr.InvalidArgument, "a lifetime of 0 is not an expiry; leave it unset for a key that never expires")
	}
	if err := ValidateLifetime(d); err != nil {
		return 0, err
	}
	return d, nil
}

// atoi parses a non-negative decimal without sign or spaces. It saturates
// at 100000, past every bound, so that days*24h cannot overflow.
func atoi(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = min(n*10+int64(c-'0'), 100_000)
	}
	return n, true
}
