package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"

	"github.com/unjuno/flm/core/apikey"
)

// KeyRing is an immutable snapshot of the active API keys, indexed by hash
// for O(1) lookup.
type KeyRing struct {
	byHash map[[sha256.Size]byte]apikey.Record
}

// NewKeyRing indexes the active records of recs; revoked ones are left out,
// so they fail like unknown keys.
func NewKeyRing(recs []apikey.Record) *KeyRing {
	k := &KeyRing{byHash: make(map[[sha256.Size]byte]apikey.Record, len(recs))}
	for _, r := range recs {
		var h [sha256.Size]byte
		if !r.Active() || len(r.Hash) != 2*sha256.Size {
			continue
		}
		if _, err := hex.Decode(h[:], []byte(r.Hash)); err != nil {
			continue
		}
		k.byHash[h] = r
	}
	return k
}

// Active is the number of usable keys.
func (k *KeyRing) Active() int { return len(k.byHash) }

// Verify returns the record of an active key. Malformed, unknown and
// revoked keys are refused alike.
func (k *KeyRing) Verify(plain string) (apikey.Record, bool) {
	if k == nil || !apikey.WellFormed(plain) {
		return apikey.Record{}, false
	}
	h := sha256.Sum256([]byte(plain))
	rec, ok := k.byHash[h]
	if !ok {
		return apikey.Record{}, false
	}
	// The map lookup already matched; the constant-time comparison keeps the
	// acceptance decision itself independent of where bytes differ.
	var stored [sha256.Size]byte
	_, _ = hex.Decode(stored[:], []byte(rec.Hash))
	return rec, subtle.ConstantTimeCompare(stored[:], h[:]) == 1
}
