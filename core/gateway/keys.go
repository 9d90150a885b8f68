package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"

	"github.com/unjuno/flm/core/apikey"
)

// KeyRing is an immutable snapshot of the active API keys, indexed by
// their decoded SHA-256 for O(1) lookup.
type KeyRing struct {
	byHash map[[sha256.Size]byte]ringEntry
}

type ringEntry struct {
	rec  apikey.Record
	hash [sha256.Size]byte
}

// NewKeyRing indexes the active records of recs; revoked ones are left out,
// so they fail like unknown keys.
func NewKeyRing(recs []apikey.Record) *KeyRing {
	k := &KeyRing{byHash: make(map[[sha256.Size]byte]ringEntry, len(recs))}
	for _, r := range recs {
		var h [sha256.Size]byte
		if !r.Active() || len(r.Hash) != 2*sha256.Size {
			continue
		}
		if _, err := hex.Decode(h[:], []byte(r.Hash)); err != nil {
			continue
		}
		k.byHash[h] = ringEntry{rec: r, hash: h}
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
	e, ok := k.byHash[h]
	// The lookup found it; PRODUCT.md also asks for a constant-time
	// comparison, which costs nothing measurable on 32 bytes.
	if !ok || subtle.ConstantTimeCompare(e.hash[:], h[:]) != 1 {
		return apikey.Record{}, false
	}
	return e.rec, true
}
