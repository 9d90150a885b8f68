package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/unjuno/flm/core/flmerr"
)

// Prefix starts every FLM API key, so a leaked key is recognisable (secret
// scanners, logs) and never mistaken for an engine's own key.
const Prefix = "flm_"

// secretBytes is the key's entropy: 256 bits, above PRODUCT.md's 192.
const secretBytes = 32

// KeyLen is the length of a plaintext key.
var KeyLen = len(Prefix) + base64.RawURLEncoding.EncodedLen(secretBytes)

// MaxLabelRunes bounds a label; labels are for people, not payloads.
const MaxLabelRunes = 200

// Sentinel errors that Store implementations return and callers branch on.
var (
	ErrNotFound = errors.New("api key not found")
	ErrRevoked  = errors.New("api key already revoked")
)

// Sentinel errors of key verification (gateway.KeyRing.Check).
var (
	// ErrInvalidKey: malformed, unknown or revoked, alike.
	ErrInvalidKey = errors.New("invalid api key")
	// ErrExpired: a known, unrevoked key past its ExpiresAt.
	ErrExpired = errors.New("api key expired")
)

// Record is a stored key: never the plaintext, only its hash.
type Record struct {
	ID        string
	Label     string
	Hash      string // hex SHA-256 of the plaintext key
	CreatedAt time.Time
	RevokedAt *time.Time
	// Models is the key's allowlist of flm:// model ids and globs (see
	// AllowsModel); empty (stores return nil) = every model.
	Models []string
	// RPM is the key's own requests-per-minute limit, enforced besides
	// the policy's rate_limit; 0 = only the policy's applies.
	RPM int
	// ExpiresAt is when the key stops working; nil = never.
	ExpiresAt *time.Time
	// Legacy marks a key imported from the prototype (flm migrate
	// legacy): its plaintext has the LegacyWellFormed shape, not the
	// WellFormed one, and only such strings are checked against it.
	Legacy bool
}

// Active reports whether the key is not revoked. An expired key is still
// active in this sense: it can be rotated or given a new expiry.
func (r Record) Active() bool { return r.RevokedAt == nil }

// Store persists key records.
//
// Implementations are safe for concurrent use, honour ctx, and return
// ErrNotFound (possibly wrapped) for an unknown id or hash. Timestamps may be
// stored with millisecond precision.
type Store interface {
	// Insert adds rec. A duplicate id or hash is an error.
	Insert(ctx context.Context, rec Record) error
	// Get returns the record with id, revoked or not.
	Get(ctx context.Context, id string) (Record, error)
	// ByHash returns the record whose Hash is hash, revoked or not.
	ByHash(ctx context.Context, hash string) (Record, error)
	// List returns every record, oldest first.
	List(ctx context.Context) ([]Record, error)
	// Revoke sets RevokedAt of the active key id to at, and, when next is
	// not nil, inserts *next in the same transaction: either both happen
	// or neither. A revoked id gives ErrRevoked, an unknown one ErrNotFound.
	Revoke(ctx context.Context, id string, at time.Time, next *Record) error
	// Update reads the active key id, calls edit with it and stores what
	// edit left in Label, Models, RPM and ExpiresAt, all in one
	// transaction, and returns the stored record. Other fields never
	// change. An error from edit is returned as is and stores nothing. A
	// revoked id gives ErrRevoked, an unknown one ErrNotFound.
	Update(ctx context.Context, id string, edit func(*Record) error) (Record, error)
}

// Hash returns the hex SHA-256 of a plaintext key, the form a Store keeps.
func Hash(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// WellFormed reports whether s has the shape of an FLM key. It lets callers
// refuse garbage before any lookup; it says nothing about validity.
func WellFormed(s string) bool {
	if len(s) != KeyLen || !strings.HasPrefix(s, Prefix) {
		return false
	}
	for _, c := range s[len(Prefix):] {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// LegacyLen is the length of a prototype key: the first 32 characters of
// the standard base64 of 32 random bytes (192 bits, no padding possible).
const LegacyLen = 32

// LegacyWellFormed reports whether s has the shape of a key imported from
// the prototype: exactly 32 characters of the standard base64 alphabet
// [A-Za-z0-9+/]. Base64url ('-', '_') and padding ('=') are refused: the
// prototype never produced them, so accepting them would only widen what
// an attacker may try. Like WellFormed, it says nothing about validity.
func LegacyWellFormed(s string) bool {
	if len(s) != LegacyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// View is a key as front ends show it (CLI list/update, the UI): never
// the key, never its hash.
type View struct {
	ID        string     `json:"id"`
	Label     string     `json:"label"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	// Models is null for every model.
	Models      []string   `json:"models"`
	RPM         int        `json:"rpm"`
	ExpiresAt   *time.Time `json:"expires_at"`
	Expired     bool       `json:"expired"`
	ExpiresSoon bool       `json:"expires_soon"`
	// Legacy: imported from the prototype (flm migrate legacy).
	Legacy bool `json:"legacy"`
}

// View describes r at now.
func (r Record) View(now time.Time) View {
	return View{ID: r.ID, Label: r.Label, CreatedAt: r.CreatedAt, RevokedAt: r.RevokedAt,
		Models: r.Models, RPM: r.RPM, ExpiresAt: r.ExpiresAt,
		Expired: r.Active() && r.Expired(now), ExpiresSoon: r.ExpiresSoon(now), Legacy: r.Legacy}
}

// Issued is a freshly created key. Plain is shown to the user once and then
// forgotten.
type Issued struct {
	Record
	Plain string
	// OldID is the id of the key a rotation replaced.
	OldID string
}

// Service is the API-key use case.
type Service struct {
	Store Store
	// Now and Rand default to time.Now and crypto/rand.Reader.
	Now  func() time.Time
	Rand io.Reader
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) random(n int) ([]byte, error) {
	b := make([]byte, n)
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, flmerr.Wrap(err, flmerr.Internal, "read random bytes")
	}
	return b, nil
}

// ValidateLabel checks a label: 1–200 characters after trimming, valid
// UTF-8, no control characters.
func ValidateLabel(label string) (string, error) {
	if !utf8.ValidString(label) {
		return "", flmerr.New(flmerr.InvalidArgument, "label is not valid UTF-8")
	}
	label = strings.TrimSpace(label)
	if label == "" {
		return "", flmerr.New(flmerr.InvalidArgument, "label must not be empty")
	}
	if n := utf8.RuneCountInString(label); n > MaxLabelRunes {
		return "", flmerr.New(flmerr.InvalidArgument, "label is %d characters; the limit is %d", n, MaxLabelRunes)
	}
	if strings.IndexFunc(label, unicode.IsControl) >= 0 {
		return "", flmerr.New(flmerr.InvalidArgument, "label must not contain control characters")
	}
	return label, nil
}

func (s *Service) newRecord(label string) (Issued, error) {
	idb, err := s.random(8)
	if err != nil {
		return Issued{}, err
	}
	secret, err := s.random(secretBytes)
	if err != nil {
		return Issued{}, err
	}
	plain := Prefix + base64.RawURLEncoding.EncodeToString(secret)
	return Issued{
		Record: Record{ID: "key_" + hex.EncodeToString(idb), Label: label, Hash: Hash(plain), CreatedAt: s.now().Truncate(time.Millisecond)},
		Plain:  plain,
	}, nil
}

// CreateOptions describe a new key. Only Label is required.
type CreateOptions struct {
	Label string
	// Models, RPM: see Record. ValidateModels and ValidateRPM apply.
	Models []string
	RPM    int
	// ExpiresIn is the key's lifetime from now; 0 = it never expires.
	// ValidateLifetime applies.
	ExpiresIn time.Duration
}

// Create issues a new key with label, for every model, without an own
// limit or expiry.
func (s *Service) Create(ctx context.Context, label string) (Issued, error) {
	return s.CreateWith(ctx, CreateOptions{Label: label})
}

// CreateWith issues a new key as o describes. Invalid options are an
// INVALID_ARGUMENT error and store nothing.
func (s *Service) CreateWith(ctx context.Context, o CreateOptions) (Issued, error) {
	label, err := ValidateLabel(o.Label)
	if err != nil {
		return Issued{}, err
	}
	models, err := ValidateModels(o.Models)
	if err != nil {
		return Issued{}, err
	}
	if err := ValidateRPM(o.RPM); err != nil {
		return Issued{}, err
	}
	if err := ValidateLifetime(o.ExpiresIn); err != nil {
		return Issued{}, err
	}
	iss, err := s.newRecord(label)
	if err != nil {
		return Issued{}, err
	}
	iss.Models, iss.RPM, iss.ExpiresAt = models, o.RPM, expiry(iss.CreatedAt, o.ExpiresIn)
	if err := s.Store.Insert(ctx, iss.Record); err != nil {
		return Issued{}, fmt.Errorf("create api key: %w", err)
	}
	return iss, nil
}

// expiry is from+d, or nil (never) for d = 0.
func expiry(from time.Time, d time.Duration) *time.Time {
	if d == 0 {
		return nil
	}
	t := from.Add(d).Truncate(time.Millisecond)
	return &t
}

// UpdateOptions change a key; a nil field is left as it is.
type UpdateOptions struct {
	Label *string
	// Models replaces the scopes; an empty list allows every model.
	Models *[]string
	// RPM replaces the key's own limit; 0 removes it.
	RPM *int
	// ExpiresIn sets the expiry to that long from now; 0 removes it. An
	// expired key given a new expiry works again.
	ExpiresIn *time.Duration
}

// Update changes the label, scopes, own limit or expiry of the active key
// id, keeping the key itself. Nothing set, or an invalid value, is an
// INVALID_ARGUMENT error and changes nothing; an unknown or revoked id is
// API_KEY_NOT_FOUND.
func (s *Service) Update(ctx context.Context, id string, o UpdateOptions) (Record, error) {
	if o.Label == nil && o.Models == nil && o.RPM == nil && o.ExpiresIn == nil {
		return Record{}, flmerr.New(flmerr.InvalidArgument, "nothing to update: give a new label, models, rpm or expiry")
	}
	var label string
	var models []string
	var err error
	if o.Label != nil {
		if label, err = ValidateLabel(*o.Label); err != nil {
			return Record{}, err
		}
	}
	if o.Models != nil {
		if models, err = ValidateModels(*o.Models); err != nil {
			return Record{}, err
		}
	}
	if o.RPM != nil {
		if err := ValidateRPM(*o.RPM); err != nil {
			return Record{}, err
		}
	}
	if o.ExpiresIn != nil {
		if err := ValidateLifetime(*o.ExpiresIn); err != nil {
			return Record{}, err
		}
	}
	now := s.now().Truncate(time.Millisecond)
	rec, err := s.Store.Update(ctx, id, func(r *Record) error {
		if o.Label != nil {
			r.Label = label
		}
		if o.Models != nil {
			r.Models = models
		}
		if o.RPM != nil {
			r.RPM = *o.RPM
		}
		if o.ExpiresIn != nil {
			r.ExpiresAt = expiry(now, *o.ExpiresIn)
		}
		return nil
	})
	if err != nil {
		return Record{}, s.revokeErr(err, id)
	}
	return rec, nil
}

// List returns every key's record, oldest first.
func (s *Service) List(ctx context.Context) ([]Record, error) {
	return s.Store.List(ctx)
}

// Revoke revokes key id at once.
func (s *Service) Revoke(ctx context.Context, id string) (Record, error) {
	at := s.now().Truncate(time.Millisecond)
	if err := s.Store.Revoke(ctx, id, at, nil); err != nil {
		return Record{}, s.revokeErr(err, id)
	}
	return Record{ID: id, RevokedAt: &at}, nil
}

// Rotate revokes key id at once and issues its replacement in the same
// transaction. The replacement keeps id's label unless label is non-empty,
// and keeps its model scopes and own limit. An expiring key's replacement
// gets the same lifetime, counted from now: a key made to last 90 days is
// replaced by one that lasts 90 days. An expired key can be rotated.
func (s *Service) Rotate(ctx context.Context, id, label string) (Issued, error) {
	old, err := s.Store.Get(ctx, id)
	if err != nil {
		return Issued{}, s.revokeErr(err, id)
	}
	return s.rotate(ctx, old, label)
}

func (s *Service) rotate(ctx context.Context, old Record, label string) (Issued, error) {
	if !old.Active() {
		return Issued{}, s.revokeErr(ErrRevoked, old.ID)
	}
	var err error
	if label == "" {
		label = old.Label
	} else if label, err = ValidateLabel(label); err != nil {
		return Issued{}, err
	}
	iss, err := s.newRecord(label)
	if err != nil {
		return Issued{}, err
	}
	iss.Models, iss.RPM = slices.Clone(old.Models), old.RPM
	if old.ExpiresAt != nil {
		life := min(max(old.ExpiresAt.Sub(old.CreatedAt), MinLifetime), MaxLifetime)
		iss.ExpiresAt = expiry(iss.CreatedAt, life)
	}
	if err := s.Store.Revoke(ctx, old.ID, iss.CreatedAt, &iss.Record); err != nil {
		return Issued{}, s.revokeErr(err, old.ID)
	}
	iss.OldID = old.ID
	return iss, nil
}

// ExpiringRotation is what RotateExpiring did.
type ExpiringRotation struct {
	// Rotated are the replacements, each with its plaintext key.
	Rotated []Issued
	// Expired are active keys already past their expiry, left alone:
	// bringing back a key nobody renewed in time takes a deliberate
	// Rotate(id) or a new expiry.
	Expired []Record
	// Failed are keys whose rotation failed; the others were rotated.
	Failed []RotationFailure
}

// RotationFailure is one key RotateExpiring could not rotate.
type RotationFailure struct {
	ID  string
	Err error
}

// RotateExpiring rotates, like Rotate, every active key that has not
// expired yet and expires within the window from now (SoonWindow is the
// usual one). Each key is rotated in its own transaction; a failure is
// reported in Failed and does not stop the others, so the plaintext keys
// already issued are never lost to a later error.
func (s *Service) RotateExpiring(ctx context.Context, within time.Duration) (ExpiringRotation, error) {
	if within <= 0 || within > MaxLifetime {
		return ExpiringRotation{}, flmerr.New(flmerr.InvalidArgument, "the window must be positive and at most %d days; got %s", MaxLifetime/(24*time.Hour), within)
	}
	recs, err := s.Store.List(ctx)
	if err != nil {
		return ExpiringRotation{}, err
	}
	now := s.now()
	var res ExpiringRotation
	for _, r := range recs {
		switch {
		case !r.Active() || r.ExpiresAt == nil || r.ExpiresAt.After(now.Add(within)):
		case r.Expired(now):
			res.Expired = append(res.Expired, r)
		default:
			iss, err := s.rotate(ctx, r, "")
			if err != nil {
				res.Failed = append(res.Failed, RotationFailure{ID: r.ID, Err: err})
				continue
			}
			res.Rotated = append(res.Rotated, iss)
		}
	}
	return res, nil
}

func (s *Service) revokeErr(err error, id string) error {
	var fe *flmerr.Error
	switch {
	case errors.As(err, &fe):
		return err
	case errors.Is(err, ErrNotFound):
		return &flmerr.Error{Code: flmerr.APIKeyNotFound, Message: fmt.Sprintf("no api key with id %q", clip(id)), Err: err}
	case errors.Is(err, ErrRevoked):
		return &flmerr.Error{Code: flmerr.APIKeyNotFound, Message: fmt.Sprintf("api key %q is already revoked", clip(id)), Err: err}
	}
	return err
}

// clip keeps user-supplied text in messages short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
