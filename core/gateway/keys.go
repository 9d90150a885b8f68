package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"time"

	"github.com/unjuno/flm/core/apikey"
)

// KeyRing is an immutable snapshot of the unrevoked API keys, indexed by
// their decoded SHA-256 for O(1) lookup. Expired keys stay in it so that
// Check can tell their holder why they are refused. Native and legacy
// (prototype) keys live in separate indexes: a presented string is looked
// up only in the index of its shape.
type KeyRing struct {
	byHash map[[sha256.Size]byte]ringEntry
	legacy map[[sha256.Size]byte]ringEntry
}

type ringEntry struct {
	rec  apikey.Record
	hash [sha256.Size]byte
}

// NewKeyRing indexes the active records of recs; revoked ones are left out,
// so they fail like unknown keys.
func NewKeyRing(recs []apikey.Record) *KeyRing {
	k := &KeyRing{byHash: make(map[[sha256.Size]byte]ringEntry, len(recs)), legacy: map[[sha256.Size]byte]ringEntry{}}
	for _, r := range recs {
		var h [sha256.Size]byte
		if !r.Active() || len(r.Hash) != 2*sha256.Size {
			continue
		}
		if _, err := hex.Decode(h[:], []byte(r.Hash)); err != nil {
			continue
		}
		if r.Legacy {
			k.legacy[h] = ringEntry{rec: r, hash: h}
		} else {
			k.byHash[h] = ringEntry{rec: r, hash: h}
		}
	}
	return k
}

// Active is the number of usable keys: unrevoked and not expired now.
func (k *KeyRing) Active() int {
	if k == nil {
		return 0
	}
	now, n := time.Now(), 0
	for _, idx := range []map[[sha256.Size]byte]ringEntry{k.byHash, k.legacy} {
		for _, e := range idx {
			if !e.rec.Expired(now) {
				n++
			}
		}
	}
	return n
}

// Check returns the record of the key plain if it may be used at now.
// Malformed, unknown and revoked keys are apikey.ErrInvalidKey, alike; a
// native-shaped string (apikey.WellFormed) is looked up only among native
// records, a legacy-shaped one (apikey.LegacyWellFormed) only among legacy
// records. A
// known, unrevoked key past its expiry is apikey.ErrExpired, returned with
// its record so that the refusal can say when it expired and whose key it
// was; that record must not authorise anything.
func (k *KeyRing) Check(plain string, now time.Time) (apikey.Record, error) {
	if k == nil {
		return apikey.Record{}, apikey.ErrInvalidKey
	}
	var idx map[[sha256.Size]byte]ringEntry
	switch {
	case apikey.WellFormed(plain):
		idx = k.byHash
	case apikey.LegacyWellFormed(plain):
		idx = k.legacy
	default:
		return apikey.Record{}, apikey.ErrInvalidKey
	}
	h := sha256.Sum256([]byte(plain))
	e, ok := idx[h]
	// The lookup found it; PRODUCT.md also asks for a constant-time
	// comparison, which costs nothing measurable on 32 bytes.
	if !ok || subtle.ConstantTimeCompare(e.hash[:], h[:]) != 1 {
		return apikey.Record{}, apikey.ErrInvalidKey
	}
	if e.rec.Expired(now) {
		return e.rec, apikey.ErrExpired
	}
	return e.rec, nil
}

// Verify is Check at the current time, as a yes or no: expired keys are
// refused like unknown ones.
func (k *KeyRing) Verify(plain string) (apikey.Record, bool) {
	rec, err := k.Check(plain, time.Now())
	if err != nil {
		return apikey.Record{}, false
	}
	return rec, true
}
