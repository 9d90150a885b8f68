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

// Record is a stored key: never the plaintext, only its hash.
type Record struct {
	ID        string
	Label     string
	Hash      string // hex SHA-256 of the plaintext key
	CreatedAt time.Time
	RevokedAt *time.Time
}

// Active reports whether the key is usable.
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

// Create issues a new key with label.
func (s *Service) Create(ctx context.Context, label string) (Issued, error) {
	label, err := ValidateLabel(label)
	if err != nil {
		return Issued{}, err
	}
	iss, err := s.newRecord(label)
	if err != nil {
		return Issued{}, err
	}
	if err := s.Store.Insert(ctx, iss.Record); err != nil {
		return Issued{}, fmt.Errorf("create api key: %w", err)
	}
	return iss, nil
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
// transaction. The replacement keeps id's label unless label is non-empty.
func (s *Service) Rotate(ctx context.Context, id, label string) (Issued, error) {
	old, err := s.Store.Get(ctx, id)
	if err != nil {
		return Issued{}, s.revokeErr(err, id)
	}
	if !old.Active() {
		return Issued{}, s.revokeErr(ErrRevoked, id)
	}
	if label == "" {
		label = old.Label
	} else if label, err = ValidateLabel(label); err != nil {
		return Issued{}, err
	}
	iss, err := s.newRecord(label)
	if err != nil {
		return Issued{}, err
	}
	if err := s.Store.Revoke(ctx, id, iss.CreatedAt, &iss.Record); err != nil {
		return Issued{}, s.revokeErr(err, id)
	}
	iss.OldID = id
	return iss, nil
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
